"""``hybridjet study``: learning curves of every method, and of the controls against the pretrained hybrid.

One fixed test set and one fixed validation set are cut from the signal and background pools first; the rest is the
training pool, from which seed s draws its training sets (nested: the N = 300 set holds the N = 100 one). Every
(method, N, seed) trains through the package's recipes (:func:`hybridjet.train.methods.train_model`) into
``<out>/runs/<method>/n<N>/seed<s>/`` with the budget the config gives for N, is scored on the test set, and is
reused by a later study with the same settings (a stopped study goes on from the finished runs).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hybridjet.anomaly.jobs import run_tasks, start_grid
from hybridjet.data.datamodule import JetDataModule
from hybridjet.data.features import FEATURE_SETS
from hybridjet.data.injection import Pools
from hybridjet.data.sources import DataSource
from hybridjet.data.store import JetArrays, write_jets
from hybridjet.errors import HybridjetError
from hybridjet.eval.metrics import binary_metrics
from hybridjet.io_utils import lock_folder, write_json
from hybridjet.run import RUN_LOCK
from hybridjet.rundir import STUDY_RECORD, RunDir
from hybridjet.study.config import Budget, StudyConfig
from hybridjet.train.methods import Method, check_backbones, train_model

RECORD = STUDY_RECORD
#: bumped when what a finished run of a study holds changes, so that older runs are trained again
VERSION = 1


@dataclass(frozen=True)
class Sample:
    """The fixed test and validation files, and the training file of each (N, seed)."""

    test: Path
    val: Path
    train: dict[tuple[int, int], Path]
    key: str


def load_pools(cfg: StudyConfig, progress: bool = True) -> Pools:
    """The signal and background pools the config names (generated first when it says so)."""
    return DataSource(cfg.jets, cfg.signal, cfg.background, cfg.generate).pools(progress)


def _counts(n: int, fraction: float) -> tuple[int, int]:
    signal = int(round(n * fraction))
    return signal, n - signal


def check_sample(cfg: StudyConfig, pools: Pools) -> None:
    """One line when the pools cannot hold the test set, the validation set and the largest training set."""
    need = [sum(parts) for parts in zip(_counts(cfg.test_events, cfg.signal_fraction),
                                        _counts(cfg.val_events, cfg.signal_fraction),
                                        _counts(max(cfg.sizes), cfg.signal_fraction), strict=True)]
    have = (len(pools.signal), len(pools.background))
    for kind, needed, held in zip(("signal", "background"), need, have, strict=True):
        if needed > held:
            raise HybridjetError(f"curve.sizes: the largest training size {max(cfg.sizes):,} with the test set "
                                 f"({cfg.test_events:,}) and the validation set ({cfg.val_events:,}) needs "
                                 f"{needed:,} {kind} events at signal fraction {cfg.signal_fraction}; the data holds "
                                 f"{held:,}: expected smaller sizes or more events")


def check_constituents(methods: tuple[Method, ...], default: str, pools: Pools) -> None:
    """One line, before any training, when a method reads jet constituents and the events hold none."""
    needing = [m.name for m in methods if FEATURE_SETS[m.feature_set(default)].needs_constituents]
    if needing and not (pools.signal.n_constituents and pools.background.n_constituents):
        raise HybridjetError(f"methods.{needing[0]}: reads jet constituents and the events hold none; expected "
                             "jets.h5 files made by 'hybridjet cluster --constituents P' (or data.generate."
                             "constituents: P)")


def pools_key(pools: Pools) -> str:
    """A digest of the pools' events, so that runs trained on other events are not reused."""
    digest = hashlib.sha256()
    for arrays in (pools.signal, pools.background):
        digest.update(np.ascontiguousarray(arrays.event_id, np.int64).tobytes())
        digest.update(np.ascontiguousarray(arrays.jets, np.float32).tobytes())
        if arrays.constituents is not None:  # (files without them keep their key)
            digest.update(np.ascontiguousarray(arrays.constituents, np.float32).tobytes())
    return digest.hexdigest()[:16]


def write_sample(cfg: StudyConfig, pools: Pools) -> Sample:
    """Cut and write the test and validation sets and every (N, seed)'s training set into ``<out>/files``."""
    rng = np.random.default_rng(cfg.sample_seed)
    order = {"signal": rng.permutation(len(pools.signal)), "background": rng.permutation(len(pools.background))}
    arrays = {"signal": pools.signal, "background": pools.background}
    taken = {"signal": 0, "background": 0}

    def take(n: int) -> JetArrays:
        parts = []
        for kind, count in zip(("signal", "background"), _counts(n, cfg.signal_fraction), strict=True):
            rows = order[kind][taken[kind]:taken[kind] + count]
            taken[kind] += count
            parts.append(arrays[kind].subset(np.sort(rows)))
        return JetArrays.concatenate(parts)

    files = Path(cfg.out) / "files"
    test, val = files / "test.h5", files / "val.h5"
    write_jets(test, take(cfg.test_events), attrs={"content": f"study {cfg.name}: the fixed test set"})
    write_jets(val, take(cfg.val_events), attrs={"content": f"study {cfg.name}: the fixed validation set"})
    pool = {kind: order[kind][taken[kind]:] for kind in order}
    train: dict[tuple[int, int], Path] = {}
    for seed in sorted({s for n in cfg.sizes for s in cfg.seeds_at(n)}):
        draw = np.random.default_rng([cfg.sample_seed, seed])
        shuffled = {kind: draw.permutation(rows) for kind, rows in pool.items()}
        for n in (n for n in cfg.sizes if seed in cfg.seeds_at(n)):
            parts = [arrays[kind].subset(np.sort(shuffled[kind][:count]))
                     for kind, count in zip(("signal", "background"), _counts(n, cfg.signal_fraction), strict=True)]
            path = files / f"seed{seed}" / f"n{n}.h5"
            write_jets(path, JetArrays.concatenate(parts), attrs={"content": f"study {cfg.name}: N={n}, seed {seed}"})
            train[(n, seed)] = path
    return Sample(test, val, train, pools_key(pools))


def fingerprint(cfg: StudyConfig, method: Method, n: int, seed: int, data_key: str) -> str:
    """What one trained (method, N, seed) depends on: the events, the sample's settings, the features, the
    budget, this method's settings, N and the seed (not the other methods, sizes or seeds)."""
    record = {"version": VERSION, "data": data_key, "features": cfg.feature_set, "test": cfg.test_events,
              "val": cfg.val_events, "fraction": cfg.signal_fraction, "sample_seed": cfg.sample_seed,
              "budget": dataclasses.asdict(cfg.budget), "method": method.record(), "n": n, "seed": seed}
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class StudyTask:
    """One (method, N, seed) to train: everything :func:`train_point` needs, picklable for ``--jobs``."""

    method: Method
    n: int
    seed: int
    train: Path
    val: Path
    test: Path
    run_dir: Path
    feature_set: str
    budget: Budget
    info: dict[str, Any] = field(default_factory=dict)

    def run(self) -> dict[str, Any]:
        """Train it; returns its record."""
        return train_point(self)


def train_point(task: StudyTask) -> dict[str, Any]:
    """Train one (method, N, seed) into its run directory and score the fixed test set; writes and returns the
    run's study record (``study.json``, written last: a run without it is trained again)."""
    method, budget = task.method, task.budget
    batch, epochs = budget.batch_size(method, task.n), budget.epochs(method, task.n)
    if task.run_dir.exists():  # an earlier try stopped midway, or other settings: trained anew
        shutil.rmtree(task.run_dir)
    datamodule = JetDataModule(str(task.train), feature_set=task.feature_set, split=(1.0, 0.0, 0.0), seed=task.seed,
                               batch_size=batch, eval_batch_size=max(batch, 1024), val_data=str(task.val),
                               test_data=str(task.test))
    started = time.perf_counter()
    metrics = train_model(method, datamodule, task.run_dir, task.seed, epochs=epochs, patience=budget.patience,
                          monitor="val_loss")
    seconds = time.perf_counter() - started
    scores = RunDir(task.run_dir).read_scores("test")
    record = {**task.info, "method": method.name, "classifier": method.classifier, "n": task.n, "seed": task.seed,
              "batch_size": batch, "max_epochs": epochs, "fit_time_s": seconds,
              "epochs_run": metrics.get("epochs_run", metrics.get("iterations")),
              "test": binary_metrics(scores.label, scores.score),
              "run_dir": str(task.run_dir)}
    write_json(task.run_dir / RECORD, record)
    return record


def finished(run_dir: Path, fingerprint_: str) -> dict[str, Any] | None:
    """The record of a run finished with these settings, or None."""
    try:
        record = json.loads((run_dir / RECORD).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("fingerprint") == fingerprint_ else None


def run_study(cfg: StudyConfig, progress: bool = True, check_only: bool = False, jobs: int = 1,
              scheduler: str | None = None) -> dict[str, Any]:
    """Run the whole study, ``jobs`` trainings at a time (or on the dask cluster at ``scheduler``); returns
    ``{"records", "summary", "paths"}``."""
    from hybridjet.study.report import write_report

    started = start_grid(cfg.out, jobs, progress, "study")
    pools = load_pools(cfg, progress)
    check_sample(cfg, pools)
    check_constituents(cfg.methods, cfg.feature_set, pools)
    check_backbones(cfg.methods)
    print(f"pools: {len(pools.signal):,} signal, {len(pools.background):,} background events; test {cfg.test_events:,},"
          f" validation {cfg.val_events:,}; sizes {', '.join(f'{n:,}' for n in cfg.sizes)}", flush=True)
    if check_only:
        return {"records": [], "summary": [], "paths": {}}
    lock = lock_folder(cfg.out, RUN_LOCK, "running a study into it")  # its files are rewritten
    try:
        sample = write_sample(cfg, pools)
        records: list[dict[str, Any] | None] = []
        pending: list[tuple[int, StudyTask]] = []
        for method in cfg.methods:
            for n in cfg.sizes:
                for seed in cfg.seeds_at(n):
                    run_dir = Path(cfg.out) / "runs" / method.name / f"n{n}" / f"seed{seed}"
                    key = fingerprint(cfg, method, n, seed, sample.key)
                    record = finished(run_dir, key)
                    if record is None and cfg.train_only is not None and method.name not in cfg.train_only:
                        continue  # not asked for: reported when finished, never trained here
                    if record is None:
                        info = {"name": f"{method.name}/n{n}/seed{seed}", "fingerprint": key}
                        pending.append((len(records), StudyTask(method, n, seed, sample.train[(n, seed)], sample.val,
                                                                sample.test, run_dir,
                                                                method.feature_set(cfg.feature_set), cfg.budget,
                                                                info)))
                    records.append(record)
        print(f"{len(records) - len(pending)} runs reused, {len(pending)} to train, {min(jobs, max(len(pending), 1))} "
              "at a time", flush=True)
        done = run_tasks([task for _, task in pending], jobs, on_done=_print_run, scheduler=scheduler)
        for (slot, _), record in zip(pending, done, strict=True):
            records[slot] = record
    finally:
        os.close(lock)
    finished_records = [r for r in records if r is not None]
    paths, summary = write_report(cfg, finished_records, sample.test, time.perf_counter() - started)
    print(f"report: {', '.join(str(p) for p in paths.values())}  [{time.perf_counter() - started:.0f} s]")
    return {"records": finished_records, "summary": summary, "paths": paths}


def _print_run(task: Any, record: dict[str, Any], seconds: float) -> None:
    test = record["test"]
    budget = f"{record.get('epochs_run')} iterations" if record.get("classifier") == "gbdt" else \
        f"{record.get('epochs_run')} epochs of {record['max_epochs']}"
    print(f"{record['name']}: test AUC {test['auc']:.4f}, 1/eps_B(0.5) {test['rejection_at_0.5']:.3g}, {budget} "
          f"[{seconds:.0f} s]", flush=True)
