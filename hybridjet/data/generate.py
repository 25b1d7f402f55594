"""Generate LHCO-style events with Pythia 8 (QCD dijets or W'->X(qq)Y(qq)) and mix signal into background.

Physics choices (documented because they matter):

* 13 TeV pp, Pythia 8 default tune, no multiparton interactions (``PartonLevel:MPI = off``) for signal *and*
  background, as in the LHCO R&D sample (no MPI, no pileup), so particle multiplicity is not a trivial handle.
* QCD: ``HardQCD:all = on`` with ``PhaseSpace:pTHatMin = 1000 GeV``.  The trigger asks for an anti-kT R=1.0 jet
  with pT > 1.2 TeV; with R = 1.0 the leading jet carries nearly all of its parton's pT, so events with
  pT-hat < 1 TeV pass only through rare upward fluctuations (ISR into the jet), while a lower cut would waste
  most of the generation on events the trigger rejects.  The trigger efficiency is printed for every run.
* Signal: ``NewGaugeBoson:ffbar2Wprime`` (W'+- id 34, m = 3.5 TeV) forced to X Y with X = the neutral scalar
  id 35 (m = 500 GeV) and Y = the charged scalar id 37 (m = 100 GeV), so the decay conserves charge.
  X -> q qbar (d, u, s, c equally), Y -> u dbar / c sbar (equally); narrow widths (0.01 GeV) are forced.
* Kept: visible final-state particles (``isFinal() and isVisible()``: no neutrinos), treated as massless
  (pT, eta, phi), at most 700 per event (highest pT first).  No detector simulation.
* Trigger: at least one anti-kT R = 1.0 jet with pT > 1.2 TeV and |eta| < 2.5.
* Reproducibility and resumption: the events are made in chunks of ``chunk_events`` accepted events, chunk c
  with its own Pythia stream (:func:`chunk_seed`: the seed itself for chunk 0, a hash of (seed, c) after it), in
  chunk order whatever the number of workers. Finished chunks are kept in ``.<out name>.chunks/`` next to the
  output until it is written, so a killed generate resumes where it stopped and writes the same file.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import math
import multiprocessing as mp
import os
import queue as queue_mod
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hybridjet.data.lhco import (
    EVENTS_WHAT,
    MAX_PARTICLES,
    N_FEATURE_COLUMNS,
    LHCOWriter,
    count_events,
    is_hybridjet_events,
)
from hybridjet.errors import HybridjetError, InputFileError
from hybridjet.io_utils import atomic_path, check_writable, lock_folder, release_lock

PROCESSES = ("qcd", "wprime")
SQRT_S = 13000.0
QCD_PTHAT_MIN = 1000.0
TRIGGER_PT = 1200.0
TRIGGER_ETA = 2.5
TRIGGER_R = 1.0
_X_ID, _Y_ID, _WPRIME_ID = 35, 37, 34
MIN_MASS = 1.0  # GeV; below ~0.1 GeV the forced mass window [m - 1, m + 1] (floored at 0.1) is empty
_BUFFER = 512  # events buffered before a write
#: accepted events per resumable chunk (a killed generate loses at most the chunks in progress)
CHUNK_EVENTS = 1000

PathLike = str | os.PathLike[str]

_progress_queue: Any = None  # set in worker processes


@dataclass
class GenerateSummary:
    """What ``generate`` did."""

    out: str
    process: str
    n_events: int
    n_generated: int
    seconds: float
    workers: int
    n_failed: int = 0

    @property
    def trigger_efficiency(self) -> float:
        return self.n_events / self.n_generated if self.n_generated else float("nan")

    @property
    def events_per_s(self) -> float:
        """Accepted (post-trigger) events per second of wall time."""
        return self.n_events / self.seconds if self.seconds > 0 else float("nan")

    def __str__(self) -> str:
        return (f"{self.process}: {self.n_events} events accepted of {self.n_generated} generated "
                f"(trigger efficiency {100 * self.trigger_efficiency:.1f}%) in {self.seconds:.1f} s: "
                f"{self.events_per_s:.1f} accepted events/s with {self.workers} worker(s) -> {self.out}")


@dataclass
class MixSummary:
    """What ``mix`` did."""

    out: str
    n_signal: int
    n_background: int

    def __str__(self) -> str:
        n = self.n_signal + self.n_background
        frac = self.n_signal / n if n else 0.0
        return f"mixed {self.n_signal} signal + {self.n_background} background events (signal fraction {frac:.4f}) -> {self.out}"


#: seeds Pythia takes (Random:seed is 1 + seed, at most 900,000,000)
MAX_SEED = 900_000_000


def pythia_settings(process: str, seed: int, mx: float = 500.0, my: float = 100.0, mwprime: float = 3500.0) -> list[str]:
    """The Pythia 8 configuration strings for ``process`` ("qcd" or "wprime")."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < MAX_SEED:
        # Pythia takes seeds up to 900,000,000: a larger one would alias a smaller one's events
        raise HybridjetError(f"--seed: expected an integer in [0, {MAX_SEED - 1:,}], got {seed!r}")
    common = [f"Beams:eCM = {SQRT_S}", "Print:quiet = on", "Next:numberCount = 0", "PartonLevel:MPI = off",
              "Random:setSeed = on", f"Random:seed = {1 + seed % 900_000_000}"]
    if process == "qcd":
        return common + ["HardQCD:all = on", f"PhaseSpace:pTHatMin = {QCD_PTHAT_MIN}"]
    if process == "wprime":
        for name, mass in (("mx", mx), ("my", my), ("mwprime", mwprime)):
            if not (math.isfinite(mass) and mass >= MIN_MASS):  # Pythia's init fails on these, without a reason
                raise HybridjetError(f"--{name} must be a finite mass >= {MIN_MASS:g} GeV, got {mass}")
        if not mx + my < mwprime:
            raise HybridjetError(f"W' mass {mwprime} GeV must exceed mX + mY = {mx + my} GeV")
        if not mwprime < SQRT_S:
            raise HybridjetError(f"--mwprime: {mwprime:g} GeV cannot be made at sqrt(s) = {SQRT_S:g} GeV; expected "
                                 "a lighter W'")
        return common + [
            "NewGaugeBoson:ffbar2Wprime = on",
            f"{_WPRIME_ID}:m0 = {mwprime}",
            f"{_WPRIME_ID}:oneChannel = 1 1.0 100 {_X_ID} {_Y_ID}",
            f"{_X_ID}:m0 = {mx}", f"{_X_ID}:mWidth = 0.01", f"{_X_ID}:doForceWidth = on",
            f"{_X_ID}:mMin = {max(mx - 1.0, 0.1)}", f"{_X_ID}:mMax = {mx + 1.0}",
            f"{_X_ID}:oneChannel = 1 0.25 100 1 -1", f"{_X_ID}:addChannel = 1 0.25 100 2 -2",
            f"{_X_ID}:addChannel = 1 0.25 100 3 -3", f"{_X_ID}:addChannel = 1 0.25 100 4 -4",
            f"{_Y_ID}:m0 = {my}", f"{_Y_ID}:mWidth = 0.01", f"{_Y_ID}:doForceWidth = on",
            f"{_Y_ID}:mMin = {max(my - 1.0, 0.1)}", f"{_Y_ID}:mMax = {my + 1.0}",
            f"{_Y_ID}:oneChannel = 1 0.5 100 2 -1", f"{_Y_ID}:addChannel = 1 0.5 100 4 -3",
        ]
    raise HybridjetError(f"process must be one of {', '.join(PROCESSES)}, got {process!r}")


def _make_pythia(settings: list[str]) -> Any:
    import pythia8mc

    pythia = pythia8mc.Pythia("", False)  # no banner
    for line in settings:
        if not pythia.readString(line):
            raise RuntimeError(f"Pythia rejected setting {line!r}")
    if not pythia.init():
        raise RuntimeError("Pythia initialisation failed")
    return pythia


def _visible_final_state(pythia: Any) -> np.ndarray:
    """[n, 3] (pT, eta, phi) of the visible final-state particles, highest pT first, at most 700."""
    rows = [(p.pT(), p.eta(), p.phi()) for p in pythia.event.particles() if p.isFinal() and p.isVisible()]
    arr = np.asarray(rows, dtype=np.float64).reshape(-1, 3)
    order = np.argsort(-arr[:, 0], kind="stable")[:MAX_PARTICLES]
    return arr[order]


def passes_trigger(particles: np.ndarray, jetdef: Any) -> bool:
    """At least one anti-kT R=1.0 jet with pT > 1.2 TeV and |eta| < 2.5 (``particles``: [n, 3] pT, eta, phi)."""
    import fastjet

    if particles[:, 0].sum() < TRIGGER_PT:
        return False
    pt, eta, phi = particles[:, 0], particles[:, 1], particles[:, 2]
    px, py, pz, e = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta), pt * np.cosh(eta)
    pjs = [fastjet.PseudoJet(float(a), float(b), float(c), float(d)) for a, b, c, d in zip(px, py, pz, e, strict=True)]
    jets = fastjet.ClusterSequence(pjs, jetdef).inclusive_jets(TRIGGER_PT)
    return any(abs(j.eta()) < TRIGGER_ETA for j in jets)


def _to_row(particles: np.ndarray) -> np.ndarray:
    row = np.zeros(N_FEATURE_COLUMNS, dtype=np.float64)
    row[0:3 * len(particles)] = particles.reshape(-1)
    return row


def _generate_part(process: str, n_events: int, seed: int, out: str, mx: float, my: float, mwprime: float,
                   report_every: int = 10) -> dict[str, Any]:
    """Generate ``n_events`` triggered events with one Pythia instance into the LHCO file ``out``."""
    import fastjet

    from hybridjet.data.cluster import _silence_fastjet_banner

    _silence_fastjet_banner()
    jetdef = fastjet.JetDefinition(fastjet.antikt_algorithm, TRIGGER_R)
    pythia = _make_pythia(pythia_settings(process, seed, mx, my, mwprime))
    t0 = time.perf_counter()
    n_generated = n_failed = pending = 0
    buffer: list[np.ndarray] = []
    with LHCOWriter(out, n_events, labelled=True) as writer:
        accepted = 0
        while accepted < n_events:
            if not pythia.next():
                n_failed += 1
                if n_failed > 1000 + n_generated:
                    raise RuntimeError("Pythia fails to generate events with these settings")
                continue
            n_generated += 1
            particles = _visible_final_state(pythia)
            if not passes_trigger(particles, jetdef):
                continue
            row = _to_row(particles)
            row_label = 1.0 if process == "wprime" else 0.0
            buffer.append(np.append(row, row_label))
            accepted += 1
            pending += 1
            if len(buffer) >= _BUFFER:
                writer.append(np.stack(buffer))
                buffer.clear()
            if pending >= report_every:
                _report(pending, n_generated)
                pending = 0
        if buffer:
            writer.append(np.stack(buffer))
    _report(pending, 0)
    return {"n_generated": n_generated, "n_failed": n_failed, "seconds": time.perf_counter() - t0}


_local_bar: Any = None


def _report(accepted: int, generated: int) -> None:
    if _progress_queue is not None:
        _progress_queue.put(accepted)
    elif _local_bar is not None and accepted:
        _local_bar.update(accepted)


def _init_worker(q: Any, parent_pid: int) -> None:
    from hybridjet.workers import die_with_parent

    global _progress_queue
    die_with_parent(parent_pid)
    _progress_queue = q


def _split_counts_by_chunk(n: int, chunk_events: int) -> list[int]:
    return [min(chunk_events, n - start) for start in range(0, n, chunk_events)]


def chunk_seed(seed: int, chunk: int) -> int:
    """The seed of chunk ``chunk``'s Pythia stream: ``seed`` itself for the first chunk (a generate of at most
    one chunk is what it always was), a hash of (seed, chunk) for the others, so no two chunks share a stream."""
    if chunk == 0:
        return seed
    return int(np.random.SeedSequence([seed, chunk]).generate_state(1)[0]) % 900_000_000


class ChunkStore:
    """The finished chunks of one generate of ``out`` (``.<name>.chunks/`` next to it): an LHCO file and its
    counts per chunk, each written atomically, under the settings that made them (other settings: started anew)."""

    def __init__(self, out: PathLike, settings: dict[str, Any]) -> None:
        out = Path(out)
        self.dir = out.parent / f".{out.name}.chunks"
        manifest = self.dir / "settings.json"
        try:
            same = json.loads(manifest.read_text()) == settings
        except (OSError, ValueError):
            same = False
        if not same:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir.mkdir(parents=True)
            with atomic_path(manifest) as tmp:
                tmp.write_text(json.dumps(settings))

    def path(self, chunk: int) -> Path:
        return self.dir / f"chunk{chunk:05d}.h5"

    def done(self, chunk: int) -> bool:
        return self.path(chunk).is_file() and self.path(chunk).with_suffix(".json").is_file()

    def stats(self, chunk: int) -> dict[str, Any]:
        return json.loads(self.path(chunk).with_suffix(".json").read_text())

    def save_stats(self, chunk: int, stats: dict[str, Any]) -> None:
        """The chunk's counts, written after its events: a chunk is done once both are there."""
        with atomic_path(self.path(chunk).with_suffix(".json")) as tmp:
            tmp.write_text(json.dumps(stats))

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def _generate_chunk(process: str, n_events: int, seed: int, chunk: int, store: ChunkStore, mx: float, my: float,
                    mwprime: float) -> None:
    """One chunk into ``store`` (written under a temporary name, then renamed: a killed chunk leaves nothing)."""
    with atomic_path(store.path(chunk), suffix=".h5") as tmp:
        stats = _generate_part(process, n_events, seed, str(tmp), mx, my, mwprime)
    store.save_stats(chunk, stats)


def generate(
    process: str,
    n_events: int,
    seed: int,
    out: PathLike,
    mx: float = 500.0,
    my: float = 100.0,
    mwprime: float = 3500.0,
    workers: int = 1,
    progress: bool = True,
    chunk_events: int = CHUNK_EVENTS,
) -> GenerateSummary:
    """Generate ``n_events`` triggered events of ``process`` into the LHCO-layout file ``out`` (atomically).

    Every setting and the destination are checked before Pythia starts. The events come in chunks of
    ``chunk_events`` (each its own seeded stream, the same file whatever ``workers``); the chunks a killed run
    finished with the same settings are kept and reused.
    """
    pythia_settings(process, seed, mx, my, mwprime)  # validates process and masses
    if n_events < 1 or workers < 1:
        raise HybridjetError("n_events and workers must be >= 1")
    check_writable(out, replaces=is_hybridjet_events, what=EVENTS_WHAT)
    if chunk_events < 1:
        raise HybridjetError(f"chunk_events must be >= 1, got {chunk_events}")
    counts = _split_counts_by_chunk(n_events, chunk_events)
    # one generate per output at a time: a second one would share (and clear) the first one's chunks
    lock_name = f".{Path(out).name}.lock"
    lock = lock_folder(Path(out).parent, lock_name, f"generating events into {Path(out).name}")
    try:
        summary = _generate_locked(process, n_events, seed, out, mx, my, mwprime, workers, progress, chunk_events,
                                   counts)
    finally:
        release_lock(Path(out).parent, lock_name, lock)
    return summary


def _generate_locked(process: str, n_events: int, seed: int, out: PathLike, mx: float, my: float, mwprime: float,
                     workers: int, progress: bool, chunk_events: int, counts: list[int]) -> GenerateSummary:
    """:func:`generate` under its output's lock."""
    global _local_bar
    from tqdm.auto import tqdm

    chunks = ChunkStore(out, {"process": process, "n_events": n_events, "seed": seed, "mx": mx, "my": my,
                              "mwprime": mwprime, "chunk_events": chunk_events, "version": 1})
    todo = [c for c in range(len(counts)) if not chunks.done(c)]
    made = sum(counts) - sum(counts[c] for c in todo)
    workers = max(1, min(workers, len(todo)))
    t0 = time.perf_counter()
    if progress and len(todo) < len(counts):
        print(f"generate {process}: resuming, {len(counts) - len(todo)} of {len(counts)} chunks already made "
              f"({chunks.dir})", flush=True)
    bar = tqdm(total=n_events, unit="ev", desc=f"generate {process}", disable=not progress, smoothing=0.1,
               initial=made)
    with bar:
        jobs = [(process, counts[c], chunk_seed(seed, c), c, chunks, mx, my, mwprime) for c in todo]
        if workers == 1:
            _local_bar = bar
            try:
                for job in jobs:
                    _generate_chunk(*job)
            finally:
                _local_bar = None
        else:
            _run_workers(jobs, workers, bar)
        stats = [chunks.stats(c) for c in range(len(counts))]
        with atomic_path(out, suffix=".h5") as tmp:
            _concatenate([chunks.path(c) for c in range(len(counts))], tmp, n_events)
    chunks.remove()
    seconds = time.perf_counter() - t0
    summary = GenerateSummary(str(out), process, n_events, sum(s["n_generated"] for s in stats), seconds, workers,
                              sum(s["n_failed"] for s in stats))
    if progress:
        print(summary)
    return summary


def _run_workers(jobs: list[tuple[Any, ...]], workers: int, bar: Any) -> None:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    with cf.ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(q, os.getpid())) as pool:
        futures = [pool.submit(_generate_chunk, *job) for job in jobs]
        while not all(f.done() for f in futures):
            try:
                bar.update(q.get(timeout=0.2))
            except queue_mod.Empty:
                pass
        for f in futures:
            f.result()
    while True:
        try:
            bar.update(q.get_nowait())
        except queue_mod.Empty:
            break


def _concatenate(parts: list[Path], out: PathLike, n_events: int) -> None:
    import h5py

    with LHCOWriter(out, n_events, labelled=True) as writer:
        for part in parts:
            with h5py.File(part, "r") as f:
                ds = f["df/block0_values"]
                for s in range(0, ds.shape[0], 8192):
                    writer.append(ds[s:s + 8192])


# ----------------------------------------------------------------------------------------------------- mix
def mix(
    signal_path: PathLike,
    background_path: PathLike,
    out: PathLike,
    signal_fraction: float,
    seed: int,
    n_events: int | None = None,
) -> MixSummary:
    """Draw signal and background events (without replacement), label them 1/0, shuffle, write ``out``."""
    import h5py

    from hybridjet.data.lhco import _open, _read_rows, _validate_block, _values_dataset

    if not 0.0 <= signal_fraction <= 1.0:
        raise HybridjetError(f"signal fraction must be within [0, 1], got {signal_fraction}")
    if n_events is not None and n_events < 1:
        raise HybridjetError(f"n_events must be >= 1, got {n_events}")
    check_writable(out, inputs=(signal_path, background_path), replaces=is_hybridjet_events, what=EVENTS_WHAT)
    if Path(signal_path).is_file() and Path(background_path).is_file() and os.path.samefile(signal_path,
                                                                                               background_path):
        raise HybridjetError(f"{signal_path}: is both the signal and the background; the same events would be "
                             "labelled 1 and 0: expected two files")
    n_sig_avail, n_bkg_avail = count_events(signal_path), count_events(background_path)
    for path, n_avail, needed in ((signal_path, n_sig_avail, signal_fraction > 0),
                                  (background_path, n_bkg_avail, signal_fraction < 1)):
        if needed and n_avail == 0:  # else the mix would silently hold no events
            raise InputFileError(path, f"holds no events; nothing to mix at signal fraction {signal_fraction}")
    if n_events is None:
        limits = []
        if signal_fraction > 0:
            limits.append(n_sig_avail / signal_fraction)
        if signal_fraction < 1:
            limits.append(n_bkg_avail / (1 - signal_fraction))
        n_events = int(np.floor(min(limits) + 1e-9))
    n_sig = int(round(signal_fraction * n_events))
    n_bkg = n_events - n_sig
    if n_sig > n_sig_avail:
        raise InputFileError(signal_path, f"holds {n_sig_avail} events; {n_sig} needed for {n_events} at fraction {signal_fraction}")
    if n_bkg > n_bkg_avail:
        raise InputFileError(background_path, f"holds {n_bkg_avail} events; {n_bkg} needed for {n_events}")
    rng = np.random.default_rng(seed)
    sig_rows = np.sort(rng.choice(n_sig_avail, n_sig, replace=False))
    bkg_rows = np.sort(rng.choice(n_bkg_avail, n_bkg, replace=False))
    source = np.concatenate([np.ones(n_sig, np.int8), np.zeros(n_bkg, np.int8)])
    rows = np.concatenate([sig_rows, bkg_rows])
    order = rng.permutation(n_events)
    source, rows = source[order], rows[order]
    block = 8192
    with _open(signal_path) as fs, _open(background_path) as fb:
        datasets = {1: (_values_dataset(fs, signal_path), signal_path), 0: (_values_dataset(fb, background_path), background_path)}
        with atomic_path(out, suffix=".h5") as tmp, LHCOWriter(tmp, n_events, labelled=True) as writer:
            for b0 in range(0, n_events, block):
                src, idx = source[b0:b0 + block], rows[b0:b0 + block]
                chunk = np.zeros((len(idx), N_FEATURE_COLUMNS + 1))
                for label, (ds, path) in datasets.items():
                    sel = src == label
                    if not sel.any():
                        continue
                    wanted = idx[sel]
                    uniq = np.unique(wanted)
                    data = _fancy_rows(ds, path, uniq, _read_rows, h5py)
                    _validate_block(data[:, :N_FEATURE_COLUMNS], path, 0)
                    chunk[sel, :N_FEATURE_COLUMNS] = data[np.searchsorted(uniq, wanted), :N_FEATURE_COLUMNS]
                    chunk[sel, N_FEATURE_COLUMNS] = label
                writer.append(chunk)
    return MixSummary(str(out), n_sig, n_bkg)


def _fancy_rows(ds: Any, path: PathLike, sorted_rows: np.ndarray, read_rows: Any, h5py: Any) -> np.ndarray:
    """Rows ``sorted_rows`` of ``ds``: contiguous spans read as slices, the rest through h5py point selection."""
    lo, hi = int(sorted_rows[0]), int(sorted_rows[-1]) + 1
    if hi - lo <= 4 * len(sorted_rows):  # dense: one slice, then pick
        return read_rows(ds, path, lo, hi)[sorted_rows - lo]
    try:
        return np.asarray(ds[sorted_rows], dtype=np.float64)
    except OSError as exc:
        raise InputFileError(path, f"unreadable rows ({str(exc)[:120]})") from None
