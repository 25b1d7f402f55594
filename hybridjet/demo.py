"""``hybridjet demo``: the main job end to end — generate, cluster, train four models, compare.

Pythia 8 events (W'→XY→(qq)(qq) signal, QCD dijet background) → fastjet jets.h5 → on identical splits: the hybrid
(soft prompts into the 4-bit LoRA LLM), the text-prompt baseline (same LLM, numbers as text), gradient-boosted trees
and the no-LLM ablation → one comparison table and ROC figures. Existing data and the converted model are reused.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import yaml

from hybridjet.errors import HybridjetError

MODELS = ("gbdt", "ablation", "hybrid", "text")


def demo_config(scale: str) -> dict[str, Any]:
    """The sizes for ``scale`` from ``configs/demo.yaml`` (repository checkout or current directory)."""
    for root in (Path.cwd(), Path(__file__).resolve().parents[1]):
        path = root / "configs" / "demo.yaml"
        if path.exists():
            sizes = yaml.safe_load(path.read_text())
            if scale not in sizes:
                raise HybridjetError(f"{path}: no scale {scale!r} (have {', '.join(sizes)})")
            return sizes[scale]
    raise HybridjetError("configs/demo.yaml not found: run the demo from the hybridjet checkout")


def _step(title: str) -> float:
    print(f"\n=== {title}", flush=True)
    return time.perf_counter()


def prepare_data(cfg: dict[str, Any], data_dir: Path, force: bool = False, seed: int = 0,
                 progress: bool = True) -> Path:
    """Generate signal and background with Pythia 8, mix them, cluster: returns the jets.h5 path (reused if present)."""
    from hybridjet.data.cluster import cluster
    from hybridjet.data.generate import generate, mix

    data_dir.mkdir(parents=True, exist_ok=True)
    jets = data_dir / "jets.h5"
    if jets.exists() and not force:
        print(f"reusing {jets} (pass --force to regenerate)")
        return jets
    for process, n, s in (("wprime", cfg["signal_events"], seed + 100), ("qcd", cfg["background_events"], seed + 200)):
        out = data_dir / f"{process}.h5"
        if out.exists() and not force:
            print(f"reusing {out}")
            continue
        t = _step(f"generating {n} {process} events with Pythia 8 ({cfg['workers']} workers)")
        summary = generate(process, n, seed=s, out=out, workers=cfg["workers"], progress=progress)
        print(f"{'' if progress else f'{summary}  '}[{time.perf_counter() - t:.0f} s]")
    events = data_dir / "events.h5"
    n_total = cfg["signal_events"] + cfg["background_events"]
    mix(data_dir / "wprime.h5", data_dir / "qcd.h5", events, signal_fraction=cfg["signal_events"] / n_total,
        seed=seed, n_events=n_total)
    t = _step("clustering anti-kT R=1.0 jets with fastjet")
    summary = cluster(events, jets, workers=cfg["workers"], progress=progress)
    print(f"{'' if progress else f'{summary}  '}[{time.perf_counter() - t:.0f} s]")
    return jets


def demo_method(cfg: dict[str, Any], kind: str, model: str) -> Any:
    """The demo's :class:`~hybridjet.train.methods.Method` for ``kind`` (gbdt, ablation, hybrid, text) at the
    settings of its scale."""
    from hybridjet.train.methods import Method

    if kind == "gbdt":
        return Method("gbdt")
    settings = {"model": model, "lora": cfg["lora"], "dtype": cfg["dtype"], "cache_prefix": cfg.get("cache_prefix")}
    if kind != "text":
        settings["n_soft_tokens"] = cfg["n_soft_tokens"]
    return Method(kind, settings, epochs=cfg["epochs"][kind], batch_size=cfg["batch_size"].get(kind, 32))


def run_demo(scale: str = "small", data_dir: str = "data/demo", runs_dir: str = "runs/demo", out: str = "report",
             model: str = "smollm2", force: bool = False, only: tuple[str, ...] = MODELS, progress: bool = True,
             seed: int = 0) -> Any:
    """Run the whole comparison; returns the :class:`hybridjet.eval.compare.Report`."""

    from hybridjet.quiet import quiet_third_party

    quiet_third_party(progress_bars=progress)
    from hybridjet.data.datamodule import JetDataModule
    from hybridjet.eval.compare import compare_runs
    from hybridjet.run import RunClaim, clear_run_dir
    from hybridjet.train.methods import train_model

    started = time.perf_counter()
    cfg = demo_config(scale)
    for kind in only:  # before any event is generated: a folder that cannot be the run's is one line
        RunClaim(Path(runs_dir) / kind).check()
    jets = prepare_data(cfg, Path(data_dir), force=force, seed=seed, progress=progress)

    def datamodule(kind: str) -> JetDataModule:
        return JetDataModule(str(jets), feature_set="fourvec", split=tuple(cfg["split"]), seed=seed,
                             batch_size=cfg["batch_size"].get(kind, 32), eval_batch_size=4 * cfg["batch_size"].get(kind, 32),
                             max_train_events=cfg["max_train_events"], max_eval_events=cfg["max_eval_events"])

    t = _step(f"preparing the LLM ({model})")
    from hybridjet.llm.resolve import resolve_model

    resolved = resolve_model(model)
    print(f"model files: {getattr(resolved, 'path', resolved)}  [{time.perf_counter() - t:.0f} s]")

    runs = Path(runs_dir)
    done = []
    for kind in only:
        t = _step(f"training: {kind}")
        run_dir = runs / kind
        clear_run_dir(run_dir)  # models are retrained: no stale checkpoints or metrics
        metrics = train_model(demo_method(cfg, kind, model), datamodule(kind), run_dir, seed, progress=progress)
        auc = metrics["test"]["auc"] if kind == "gbdt" else metrics["test_auc"]
        print(f"{kind}: test AUC {auc:.3f}  [{time.perf_counter() - t:.0f} s]", flush=True)
        done.append(run_dir)

    _step("comparison")
    report = compare_runs(done, split="test", out=out)
    print(report.table())
    print(f"\nfigures and tables in {out}/ ; total {time.perf_counter() - started:.0f} s")
    return report


def register(subparsers: Any) -> None:
    """Add ``hybridjet demo``."""
    p = subparsers.add_parser(
        "demo", help="The main job: generate, cluster, train hybrid/text/GBDT/ablation, compare",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--scale", choices=("small", "full", "smoke"), default="small",
                   help="small: ~10 min on a 2-core CPU; full: publication sizes, for a GPU; smoke: wiring check (configs/demo.yaml)")
    p.add_argument("--data-dir", default="data/demo", help="where events and jets.h5 go (default data/demo)")
    p.add_argument("--runs-dir", default="runs/demo", help="where the four runs go (default runs/demo)")
    p.add_argument("--out", default="report", help="comparison table and figures (default report/)")
    p.add_argument("--model", default="smollm2", help="base LLM: alias or local HF directory (default smollm2)")
    p.add_argument("--only", nargs="+", choices=MODELS, default=list(MODELS), help="train only these models")
    p.add_argument("--force", action="store_true", help="regenerate the events even if they exist")
    p.add_argument("--seed", type=int, default=0, help="seed of splits and training (default 0)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    p.set_defaults(handler=lambda a: run_demo(a.scale, a.data_dir, a.runs_dir, a.out, a.model, a.force,
                                              tuple(a.only), a.progress, a.seed) and 0)
