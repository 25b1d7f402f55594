"""Where a resonance search or a study takes its signal and background events from: one truth-labelled jets.h5,
a jets.h5 of each, or Pythia 8 events generated and clustered once (files that exist are reused). The ``data:``
section of ``configs/anomaly_*.yaml`` and ``configs/study_*.yaml``."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from hybridjet import checks
from hybridjet.data.injection import Pools
from hybridjet.errors import HybridjetError


@dataclass(frozen=True)
class Generate:
    """Pythia 8 events to generate and cluster when no jets files are given."""

    dir: str = "data/anomaly"
    signal_events: int = 3000
    background_events: int = 60000
    workers: int = 2
    seed: int = 0
    mx: float = 500.0
    my: float = 100.0
    mwprime: float = 3500.0
    constituents: int = 0  # each jet's leading constituents kept (cluster --constituents; 0: none)


@dataclass(frozen=True)
class DataSource:
    """One of: ``jets``, ``signal`` + ``background``, or ``generate``."""

    jets: str | None = None
    signal: str | None = None
    background: str | None = None
    generate: Generate | None = None

    def pools(self, progress: bool = True) -> Pools:
        """The signal and background pools (generated first when the source says so), checked."""
        if self.generate is not None:
            signal, background = generate_jets(self.generate, progress)
            pools = Pools.from_files(signal=signal, background=background)
        else:
            pools = Pools.from_files(jets=self.jets, signal=self.signal, background=self.background)
        pools.check()
        return pools


def parse_data_source(raw: Any, name: str = "data") -> DataSource:
    """The ``data:`` section, checked: exactly one of its three forms, the generation's settings."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise HybridjetError(f"{name}: expected a mapping, got {raw!r}")
    allowed = ("jets", "signal", "background", "generate")
    unknown = sorted(set(raw) - set(allowed))
    if unknown:
        raise HybridjetError(f"{name}.{unknown[0]}: unknown setting; expected one of {', '.join(allowed)}")
    given = [k for k in allowed if raw.get(k) is not None]
    if given not in (["jets"], ["signal", "background"], ["generate"]):
        raise HybridjetError(f"{name}: expected jets (one truth-labelled jets.h5), signal and background (a jets.h5 "
                             f"each) or generate, got {', '.join(given) or 'none'}")
    generate = None
    if "generate" in given:
        settings = raw["generate"]
        known = [f.name for f in fields(Generate)]
        if not isinstance(settings, dict):
            raise HybridjetError(f"{name}.generate: expected a mapping, got {settings!r}")
        unknown = sorted(set(settings) - set(known))
        if unknown:
            raise HybridjetError(f"{name}.generate.{unknown[0]}: unknown setting; expected one of {', '.join(known)}")
        generate = Generate(**settings)
        for key in ("signal_events", "background_events", "workers"):
            checks.integer(f"{name}.generate.{key}", getattr(generate, key), 1)
        checks.integer(f"{name}.generate.constituents", generate.constituents, 0, 700)
    return DataSource(raw.get("jets"), raw.get("signal"), raw.get("background"), generate)


def generate_jets(gen: Generate, progress: bool = True) -> tuple[Path, Path]:
    """Signal (W'→XY) and background (QCD) events from Pythia 8, each clustered into its own jets.h5 (files that
    exist are reused); returns (signal, background) jets paths."""
    from hybridjet.data.cluster import cluster
    from hybridjet.data.generate import generate

    directory = Path(gen.dir)
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for process, n, seed in (("wprime", gen.signal_events, gen.seed + 100), ("qcd", gen.background_events,
                                                                               gen.seed + 200)):
        suffix = f"_c{gen.constituents}" if gen.constituents else ""
        events, jets = directory / f"{process}.h5", directory / f"{process}_jets{suffix}.h5"
        if not jets.exists():
            if not events.exists():
                print(f"generating {n} {process} events with Pythia 8 ({gen.workers} workers)", flush=True)
                generate(process, n, seed=seed, out=events, mx=gen.mx, my=gen.my, mwprime=gen.mwprime,
                         workers=gen.workers, progress=progress)
            summary = cluster(events, jets, workers=gen.workers, progress=progress, constituents=gen.constituents)
            print(summary, flush=True)
        else:
            print(f"reusing {jets}", flush=True)
        out.append(jets)
    return out[0], out[1]
