"""Cluster LHCO events into jets with fastjet's vectorised (awkward) interface, chunk by chunk, in parallel.

Each chunk of events is clustered by one ``fastjet.ClusterSequence`` call on an awkward array (no Python loop
over events). N-subjettiness uses exclusive-kT axes found by reclustering each jet's constituents, again
vectorised over all jets of the chunk:

    tau_N = sum_i pT_i * min_k dR(i, axis_k) / (sum_i pT_i * R),    dR in (rapidity, phi), beta = 1.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import dataclasses
import multiprocessing as mp
import os
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from hybridjet.data.columnar import RootParticles
from hybridjet.data.lhco import LHCOEvents, count_events, is_labelled, iter_lhco
from hybridjet.data.store import JETS_WHAT, MAX_CONSTITUENTS, JetArrays, is_jets_file, jets_writer
from hybridjet.errors import HybridjetError, InputFileError
from hybridjet.io_utils import check_writable
from hybridjet.workers import die_with_parent

ALGORITHMS = ("antikt", "kt", "cambridge")
N_TAU = 3
_KT_AXES_R = 1000.0  # exclusive kT for subjet axes: R large enough to never merge with the beam first
EXECUTORS = ("local", "dask")
_BANNER_DONE = False
_BANNER_LOCK = threading.Lock()  # dask's in-process workers are threads: redirect fd 1 once, never concurrently

PathLike = str | os.PathLike[str]


@dataclass
class ClusterSummary:
    """What ``cluster`` did."""

    out: str
    n_events: int
    n_fewer_jets: int
    n_jets: int
    seconds: float
    workers: int

    @property
    def events_per_s(self) -> float:
        return self.n_events / self.seconds if self.seconds > 0 else float("nan")

    def __str__(self) -> str:
        return (f"clustered {self.n_events} events in {self.seconds:.1f} s ({self.events_per_s:.0f} events/s, "
                f"{self.workers} worker(s)); {self.n_fewer_jets} event(s) have fewer than {self.n_jets} jets "
                f"(kept, masked) -> {self.out}")


def _silence_fastjet_banner() -> None:
    """FastJet prints its banner to C++ stdout on first use; run a tiny clustering once with fd 1 muted."""
    global _BANNER_DONE
    if _BANNER_DONE:
        return
    import fastjet

    with _BANNER_LOCK:
        if _BANNER_DONE:
            return
        sys.stdout.flush()
        saved = os.dup(1)
        try:
            with open(os.devnull, "w") as devnull:
                os.dup2(devnull.fileno(), 1)
                dummy = ak.zip({"px": [[1.0]], "py": [[0.0]], "pz": [[0.0]], "E": [[1.0]]})
                fastjet.ClusterSequence(dummy, fastjet.JetDefinition(fastjet.kt_algorithm, 1.0)).inclusive_jets(0.0)
        finally:
            os.dup2(saved, 1)
            os.close(saved)
        _BANNER_DONE = True


def jet_definition(algorithm: str, radius: float) -> Any:
    """A ``fastjet.JetDefinition`` for antikt / kt / cambridge (E recombination scheme)."""
    import fastjet

    algos = {"antikt": fastjet.antikt_algorithm, "kt": fastjet.kt_algorithm, "cambridge": fastjet.cambridge_algorithm}
    if algorithm not in algos:
        raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}, got {algorithm!r}")
    if not radius > 0:
        raise ValueError(f"radius must be > 0, got {radius}")
    return fastjet.JetDefinition(algos[algorithm], float(radius))


def to_cartesian(particles: ak.Array) -> ak.Array:
    """Massless (pt, eta, phi) records [N, var] -> (px, py, pz, E) records, computed on the flat content."""
    counts = ak.num(particles)
    pt = ak.to_numpy(ak.flatten(particles.pt)).astype(np.float64)
    eta = ak.to_numpy(ak.flatten(particles.eta)).astype(np.float64)
    phi = ak.to_numpy(ak.flatten(particles.phi)).astype(np.float64)
    fields = {"px": pt * np.cos(phi), "py": pt * np.sin(phi), "pz": pt * np.sinh(eta), "E": pt * np.cosh(eta)}
    return ak.zip({k: ak.unflatten(v, counts) for k, v in fields.items()})


def _rapidity_phi(px: Any, py: Any, pz: Any, e: Any) -> tuple[Any, Any]:
    with np.errstate(divide="ignore", invalid="ignore"):
        y = 0.5 * np.log((e + pz) / np.maximum(e - pz, 1e-300))
    return y, np.arctan2(py, px)


def _flat_fields(records: ak.Array) -> tuple[np.ndarray, ...]:
    """(px, py, pz, E) of a [M, var] record array as flat float64 numpy arrays (no copy when already float64)."""
    flat = ak.flatten(records, axis=1)
    return tuple(np.asarray(ak.to_numpy(flat[f]), dtype=np.float64) for f in ("px", "py", "pz", "E"))


def _positions(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For a flat array split by ``counts``: the row of each element and its position inside the row."""
    rows = np.repeat(np.arange(len(counts)), counts)
    starts = np.cumsum(counts) - counts
    return rows, np.arange(len(rows)) - starts[rows]


def nsubjettiness(constituents: ak.Array, radius: float, n_max: int = N_TAU) -> np.ndarray:
    """tau_1..tau_n_max [M, n_max] for M jets given their constituents [M, var] (px, py, pz, E records).

    Axes: exclusive-kT subjets of each jet's constituents (fastjet-contrib's ``KT_Axes``), found with one
    ClusterSequence call for all M jets; the 1 + 2 + ... + n_max axes of every jet are laid out side by side
    so that distances and minima are a single flat numpy pass over all constituents.
    """
    import fastjet

    m = len(constituents)
    out = np.zeros((m, n_max), dtype=np.float64)
    if m == 0:
        return out
    counts = ak.to_numpy(ak.num(constituents, axis=1))
    jet_of = np.repeat(np.arange(m), counts)
    px, py, pz, e = _flat_fields(constituents)
    c_y, c_phi = _rapidity_phi(px, py, pz, e)
    c_pt = np.hypot(px, py)
    norm = np.bincount(jet_of, weights=c_pt, minlength=m) * radius
    cs = fastjet.ClusterSequence(constituents, fastjet.JetDefinition(fastjet.kt_algorithm, _KT_AXES_R))
    first = np.cumsum([0, *range(1, n_max + 1)])  # column of axis 0 of the n-axis set
    a_y = np.full((m, first[-1]), np.nan)
    a_phi = np.full((m, first[-1]), np.nan)
    for n in range(1, n_max + 1):
        with warnings.catch_warnings():  # fastjet's check misfires for kt definitions
            warnings.simplefilter("ignore", UserWarning)
            axes = cs.exclusive_jets_up_to(n)  # fewer than n where a jet has fewer constituents
        rows, pos = _positions(ak.to_numpy(ak.num(axes, axis=1)))
        a_y[rows, first[n - 1] + pos], a_phi[rows, first[n - 1] + pos] = _rapidity_phi(*_flat_fields(axes))
    dphi = np.abs(c_phi[:, None] - a_phi[jet_of])  # [C, all axes]; missing axes are NaN
    dphi = np.where(dphi > np.pi, 2 * np.pi - dphi, dphi)
    dr2 = (c_y[:, None] - a_y[jet_of]) ** 2 + dphi**2
    for n in range(1, n_max + 1):
        dmin = np.sqrt(np.fmin.reduce(dr2[:, first[n - 1]:first[n]], axis=1))
        numerator = np.bincount(jet_of, weights=c_pt * np.nan_to_num(dmin, nan=0.0), minlength=m)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[:, n - 1] = np.where(norm > 0, numerator / norm, 0.0)
    return out


def constituent_features(constituents: ak.Array, jets: np.ndarray, n_keep: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``n_keep`` leading constituents by pT of M jets (``constituents`` [M, var] px/py/pz/E records, ``jets``
    [M, 4] their four-vectors): float32 [M, n_keep, 7] of log pT, log E, log pT/pT_jet, log E/E_jet, Δη, Δφ, ΔR to
    the jet axis (GeV; η pseudorapidity) and a bool [M, n_keep] mask; empty slots hold zeros."""
    m = len(constituents)
    out = np.zeros((m, n_keep, 7), np.float32)
    mask = np.zeros((m, n_keep), bool)
    if m == 0:
        return out, mask
    counts = ak.to_numpy(ak.num(constituents, axis=1))
    px, py, pz, e = _flat_fields(constituents)
    jet_of = np.repeat(np.arange(m), counts)
    tiny = 1e-30
    pt = np.maximum(np.hypot(px, py), tiny)
    eta, phi = np.arcsinh(pz / pt), np.arctan2(py, px)
    jpt = np.maximum(np.hypot(jets[:, 0], jets[:, 1]), tiny)
    jeta, jphi = np.arcsinh(jets[:, 2] / jpt), np.arctan2(jets[:, 1], jets[:, 0])
    deta = eta - jeta[jet_of]
    dphi = (phi - jphi[jet_of] + np.pi) % (2 * np.pi) - np.pi
    features = np.stack([np.log(pt), np.log(np.maximum(e, tiny)), np.log(pt / jpt[jet_of]),
                         np.log(np.maximum(e, tiny) / np.maximum(jets[jet_of, 3], tiny)), deta, dphi,
                         np.hypot(deta, dphi)], axis=-1)
    order = np.lexsort((-pt, jet_of))  # by jet, then pT-descending (the flat order is already grouped by jet)
    _, rank = _positions(counts)
    kept = rank < n_keep
    rows, slots = jet_of[kept], rank[kept]
    out[rows, slots] = features[order][kept]
    mask[rows, slots] = True
    return out, mask


def cluster_particles(
    particles: ak.Array, radius: float = 1.0, algorithm: str = "antikt", n_jets: int = 2, min_pt: float = 20.0,
    with_tau: bool = True, constituents: int = 0,
) -> dict[str, np.ndarray]:
    """Cluster many events at once: jets [N,J,4], jet_mask [N,J], tau [N,J,3], n_particles [N] (numpy); with
    ``constituents`` P > 0 also each jet's P leading constituents [N,J,P,7] and their mask [N,J,P]
    (:func:`constituent_features`)."""
    import fastjet

    _silence_fastjet_banner()
    n = len(particles)
    events = to_cartesian(particles)
    cs = fastjet.ClusterSequence(events, jet_definition(algorithm, radius))
    jets = cs.inclusive_jets(min_pt)
    jet_counts = ak.to_numpy(ak.num(jets, axis=1))
    comp = _flat_fields(jets)
    event_of = np.repeat(np.arange(n), jet_counts)
    # pT-descending within each event (stable for ties, as ak.argsort), then keep the n_jets leading ones
    order = np.lexsort((-np.hypot(comp[0], comp[1]), event_of))
    _, rank = _positions(jet_counts)
    keep = order[rank < n_jets]  # flat jet indices, grouped by event, leading first
    ev, slot = event_of[keep], rank[rank < n_jets]
    mask = np.zeros((n, n_jets), dtype=bool)
    mask[ev, slot] = True
    out_jets = np.zeros((n, n_jets, 4), dtype=np.float64)
    out_jets[ev, slot] = np.stack(comp, axis=-1)[keep]
    tau = np.zeros((n, n_jets, N_TAU), dtype=np.float64)
    out = {"jets": out_jets, "jet_mask": mask, "tau": tau, "n_particles": ak.to_numpy(ak.num(particles))}
    members = ak.flatten(cs.constituents(min_pt), axis=1)[keep] if len(keep) and (with_tau or constituents) else None
    if with_tau and members is not None:
        tau[ev, slot] = nsubjettiness(members, radius)
    if constituents:
        features = np.zeros((n, n_jets, constituents, 7), np.float32)
        present = np.zeros((n, n_jets, constituents), bool)
        if members is not None:
            features[ev, slot], present[ev, slot] = constituent_features(members, out_jets[ev, slot], constituents)
        out.update(constituents=features, constituent_mask=present)
    return out


def cluster_particles_loop(
    particles: ak.Array, radius: float = 1.0, algorithm: str = "antikt", n_jets: int = 2, min_pt: float = 20.0,
) -> dict[str, Any]:
    """Reference path: one ClusterSequence per event (PseudoJet interface). Jets and constituent indices only.

    Used by the benchmark and the tests; ``cluster_particles`` is the fast path.
    """
    import fastjet

    _silence_fastjet_banner()
    jetdef = jet_definition(algorithm, radius)
    events = to_cartesian(particles)
    n = len(events)
    out_jets = np.zeros((n, n_jets, 4))
    mask = np.zeros((n, n_jets), dtype=bool)
    constituents: list[list[list[int]]] = []
    px, py, pz, e = (ak.to_list(events[f]) for f in ("px", "py", "pz", "E"))
    for i in range(n):
        pjs = []
        for j in range(len(px[i])):
            pj = fastjet.PseudoJet(px[i][j], py[i][j], pz[i][j], e[i][j])
            pj.set_user_index(j)
            pjs.append(pj)
        cs = fastjet.ClusterSequence(pjs, jetdef)
        jets = fastjet.sorted_by_pt(cs.inclusive_jets(min_pt))[:n_jets]
        constituents.append([[c.user_index() for c in jet.constituents()] for jet in jets])
        for k, jet in enumerate(jets):
            out_jets[i, k] = (jet.px(), jet.py(), jet.pz(), jet.E())
            mask[i, k] = True
    return {"jets": out_jets, "jet_mask": mask, "constituents": constituents}


@dataclass(frozen=True)
class LHCOSource:
    """An LHCO-format file as the clustering's input (the other kind: a particle-level ROOT tree,
    :class:`~hybridjet.data.columnar.RootParticles`); picklable, so that workers read their own chunks."""

    path: str

    def count(self) -> int:
        return count_events(self.path)

    def labelled(self) -> bool:
        return is_labelled(self.path)

    def read(self, start: int, stop: int) -> LHCOEvents:
        (events,) = list(iter_lhco(self.path, chunk_size=stop - start, start=start, stop=stop))
        return events


def _cluster_chunk(source: Any, start: int, stop: int, params: dict[str, Any]) -> JetArrays:
    return _cluster_events(source.read(start, stop), params)


def _cluster_events(events: LHCOEvents, params: dict[str, Any]) -> JetArrays:
    res = cluster_particles(events.particles, **params)
    label = events.labels if events.labels is not None else np.full(len(events), -1, dtype=np.int8)
    return JetArrays(
        jets=res["jets"].astype(np.float32), jet_mask=res["jet_mask"], n_particles=res["n_particles"].astype(np.int32),
        tau=res["tau"].astype(np.float32), label=label.astype(np.int8), event_id=events.event_id,
        constituents=res.get("constituents"), constituent_mask=res.get("constituent_mask"),
    )


def cluster(
    in_path: PathLike,
    out: PathLike,
    radius: float = 1.0,
    algorithm: str = "antikt",
    n_jets: int = 2,
    min_pt: float = 20.0,
    workers: int = 1,
    chunk_size: int = 5_000,
    progress: bool = True,
    start: int = 0,
    stop: int | None = None,
    executor: str = "local",
    scheduler: str | None = None,
    root: RootParticles | None = None,
    constituents: int = 0,
) -> ClusterSummary:
    """Cluster an LHCO-format file into ``out`` (jets.h5): J leading jets, masks, tau_1..3, labels, event ids; or,
    with ``root``, the particles of a ROOT tree (``in_path`` is then ``root.path``).

    ``executor="local"`` runs the chunks here (``workers`` processes); ``executor="dask"`` submits them to a
    ``dask.distributed`` cluster: the one at ``scheduler`` (an address such as ``tcp://host:8786``; its workers
    must see ``in_path`` at the same absolute path), or a ``LocalCluster`` of ``workers`` processes started here.
    The output is the same whichever executor runs it.
    """
    from tqdm.auto import tqdm

    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}, got {algorithm!r}")
    if n_jets < 1 or chunk_size < 1 or workers < 1:
        raise ValueError("n_jets, chunk_size and workers must be >= 1")
    if isinstance(constituents, bool) or not isinstance(constituents, int) or not 0 <= constituents <= MAX_CONSTITUENTS:
        raise HybridjetError(f"constituents: expected 0 (none) to {MAX_CONSTITUENTS} per jet, got {constituents!r}")
    if executor not in EXECUTORS:
        raise HybridjetError(f"executor must be one of {', '.join(EXECUTORS)}, got {executor!r}")
    if scheduler is not None and executor != "dask":
        raise HybridjetError("a dask scheduler address needs executor 'dask' (--executor dask)")
    client_factory = _dask_client_factory() if executor == "dask" else None
    jet_definition(algorithm, radius)  # validates radius
    if root is not None:
        in_path = root.path  # what is read, checked against the output and recorded
    source: Any = root if root is not None else LHCOSource(str(in_path))
    if root is not None:
        root.branches()  # every branch there, before any work
    n_total = source.count()
    if n_total == 0:
        raise InputFileError(in_path, "holds no events (0 rows); nothing to cluster")
    labelled = source.labelled()
    check_writable(out, inputs=(in_path,), replaces=is_jets_file, what=JETS_WHAT)  # before the clustering
    stop = n_total if stop is None else min(stop, n_total)
    ranges = [(s, min(s + chunk_size, stop)) for s in range(start, stop, chunk_size)]
    params = {"radius": radius, "algorithm": algorithm, "n_jets": n_jets, "min_pt": min_pt,
              "constituents": constituents}
    t0 = time.perf_counter()
    attrs = {
        "source": str(Path(in_path).resolve()), "source_events": n_total, "source_labelled": labelled,
        "algorithm": algorithm, "R": float(radius), "min_pt": float(min_pt), "n_jets": int(n_jets),
        "tau_axes": "exclusive kT", "tau_beta": 1.0, "recombination": "E_scheme",
    }
    empty = _empty_arrays(n_jets, constituents)
    n_events = n_fewer = 0
    bar = tqdm(total=stop - start, unit="ev", unit_scale=True, desc="cluster", disable=not progress, smoothing=0.1)
    with bar, jets_writer(out) as writer:
        if client_factory is not None:
            absolute = dataclasses.replace(source, path=str(Path(source.path).resolve()))
            blocks, workers = _run_dask(absolute, ranges, params, workers, scheduler, client_factory)
        elif workers == 1 or len(ranges) <= 1:
            blocks = (_cluster_chunk(source, s, e, params) for s, e in ranges)
        else:
            blocks = _run_parallel(source, ranges, params, workers)
        for block in blocks:  # in input order, each written as it comes (bounded memory with constituents)
            writer.append(block)
            n_events += len(block)
            n_fewer += int((~block.jet_mask.all(axis=1)).sum())
            bar.update(len(block))
        writer.finish(empty, attrs)
    seconds = time.perf_counter() - t0
    return ClusterSummary(str(out), n_events, n_fewer, n_jets, seconds, workers)


def _empty_arrays(n_jets: int, constituents: int) -> JetArrays:
    """The layout of a file of no events."""
    return JetArrays(np.zeros((0, n_jets, 4), np.float32), np.zeros((0, n_jets), bool), np.zeros(0, np.int32),
                     np.zeros((0, n_jets, N_TAU), np.float32), np.zeros(0, np.int8), np.zeros(0, np.int64),
                     constituents=np.zeros((0, n_jets, constituents, 7), np.float32) if constituents else None,
                     constituent_mask=np.zeros((0, n_jets, constituents), bool) if constituents else None)


def _run_parallel(source: Any, ranges: list[tuple[int, int]], params: dict[str, Any],
                  workers: int) -> Iterator[JetArrays]:
    """The chunks clustered by ``workers`` processes, yielded in input order (a few chunks in flight per worker, the
    ones finished out of order held until their turn)."""
    results: dict[int, JetArrays] = {}
    next_out = 0
    ctx = mp.get_context("spawn")
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=die_with_parent,
                                initargs=(os.getpid(),)) as pool:
        pending: dict[cf.Future[JetArrays], int] = {}
        queue = list(enumerate(ranges))
        queue.reverse()
        try:
            while queue or pending:
                while queue and len(pending) < 2 * workers:  # bounded: a few chunks in flight per worker
                    i, (s, e) = queue.pop()
                    pending[pool.submit(_cluster_chunk, source, s, e, params)] = i
                done, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
                for fut in done:
                    results[pending.pop(fut)] = fut.result()
                while next_out in results:
                    yield results.pop(next_out)
                    next_out += 1
        except BaseException:
            for fut in pending:
                fut.cancel()
            with contextlib.suppress(Exception):
                pool.shutdown(wait=False, cancel_futures=True)
            raise


def _dask_client_factory() -> Any:
    """``dask.distributed``'s ``Client`` and ``LocalCluster``, or a one-line error when dask is not installed."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as exc:
        raise HybridjetError("executor 'dask' needs dask.distributed: pip install 'hybridjet[dask]' "
                             f"(or 'dask[distributed]'); import failed: {exc}") from None
    return Client, LocalCluster


def _run_dask(source: Any, ranges: list[tuple[int, int]], params: dict[str, Any], workers: int,
              scheduler: str | None, client_factory: Any) -> tuple[list[JetArrays], int]:
    """Cluster every chunk as a dask task; returns the parts in input order and the number of dask workers."""
    from dask.distributed import as_completed

    client_cls, local_cluster_cls = client_factory
    with contextlib.ExitStack() as stack:
        if scheduler is None:
            local = stack.enter_context(local_cluster_cls(n_workers=workers, threads_per_worker=1, processes=True,
                                                          dashboard_address=None))
            client = stack.enter_context(client_cls(local))
        else:
            try:
                client = stack.enter_context(client_cls(scheduler, timeout="30s"))
            except (OSError, TimeoutError) as exc:
                raise HybridjetError(f"dask scheduler {scheduler}: cannot connect ({exc})") from None
        n_workers = max(len(client.nthreads()), 1)
        futures = [client.submit(_cluster_chunk, source, s, e, params, pure=False) for s, e in ranges]
        index = {fut.key: i for i, fut in enumerate(futures)}
        results: dict[int, JetArrays] = {}
        try:
            for fut in as_completed(futures):
                results[index[fut.key]] = fut.result()
        except BaseException:
            client.cancel(futures)
            raise
    return [results[i] for i in range(len(ranges))], n_workers
