"""The pending (method, mode, S/B, seed) trainings of a search, one after another or several at once in worker
processes (``hybridjet anomaly --jobs N``): one small model leaves most of a GPU unused, so N processes share it,
each with its own copy of the model. A task's run is complete on disk when it finishes, so a search stopped midway
keeps the finished ones, and those in progress their finished fold models; results come back in the order of the tasks, whatever the
order they finish in."""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing as mp
import os
import time
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hybridjet.anomaly.config import Method
from hybridjet.anomaly.kfold import train_kfold
from hybridjet.data.weak import FoldFiles
from hybridjet.errors import HybridjetError
from hybridjet.eval.sic import SicFloor

_thread_limits: Any = None  # a worker's limit on the native thread pools, held for the worker's life


@dataclass(frozen=True)
class KfoldTask:
    """Everything one (method, mode, S/B, seed) trains from: :func:`train_kfold`'s arguments."""

    method: Method
    mode: str
    folds: tuple[FoldFiles, ...]
    test: Path | None
    run_dir: Path
    seed: int
    feature_set: str
    split: tuple[float, float, float]
    per_fold: int = 1
    ensemble_folds: bool = True
    floor: SicFloor = field(default_factory=SicFloor)
    info: dict[str, Any] = field(default_factory=dict)


def run_task(task: KfoldTask) -> tuple[dict[str, Any], float]:
    """Train ``task`` (the fold models an earlier try finished with the same settings kept, the rest trained anew);
    returns its metrics and the seconds it took."""
    started = time.perf_counter()
    metrics = train_kfold(task.method, task.mode, list(task.folds), task.test, task.run_dir, task.seed,
                          task.feature_set, task.split, task.per_fold, task.ensemble_folds, task.floor, task.info,
                          progress=False)
    return metrics, time.perf_counter() - started


def _init_worker(threads: int) -> None:
    import torch
    from threadpoolctl import threadpool_limits

    from hybridjet.quiet import quiet_third_party

    global _thread_limits
    # the machine's cores shared out among the workers: torch's threads and every OpenMP / BLAS pool (the trees
    # bring their own OpenMP runtime)
    torch.set_num_threads(threads)
    _thread_limits = threadpool_limits(threads)
    quiet_third_party(progress_bars=False)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the cores this process may use, not all the machine's
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def run_tasks(tasks: list[KfoldTask], jobs: int = 1,
              on_done: Callable[[KfoldTask, dict[str, Any], float], None] | None = None) -> list[dict[str, Any]]:
    """Train every task, ``jobs`` at a time (``jobs`` > 1: in spawned worker processes); ``on_done(task, metrics,
    seconds)`` is called as each finishes. Returns the metrics in the order of ``tasks``. A failing task raises
    once the tasks already running have finished (their runs are kept), the ones waiting dropped. On Ctrl-C or a
    worker that died (out of memory, killed) the finished runs are kept, and the running ones' finished folds."""
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    results: dict[int, dict[str, Any]] = {}

    def finished(i: int, metrics: dict[str, Any], seconds: float) -> None:
        results[i] = metrics
        if on_done is not None:
            on_done(tasks[i], metrics, seconds)

    if jobs == 1 or len(tasks) <= 1:
        for i, task in enumerate(tasks):
            finished(i, *run_task(task))
        return [results[i] for i in range(len(tasks))]
    workers = min(jobs, len(tasks))
    threads = max(1, _cores() // workers)
    with cf.ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                                initargs=(threads,)) as pool:
        futures = {pool.submit(run_task, task): i for i, task in enumerate(tasks)}
        try:
            for future in cf.as_completed(futures):
                finished(futures[future], *future.result())
        except BrokenProcessPool:
            pool.shutdown(wait=False, cancel_futures=True)
            lost = [str(task.run_dir) for i, task in enumerate(tasks) if i not in results]
            raise HybridjetError(f"a training process died (out of memory, or killed) while {len(lost)} run(s) were "
                                 f"unfinished, e.g. {lost[0]}; the finished runs are kept and a rerun reuses them; "
                                 "expected fewer --jobs if memory ran out") from None
        except KeyboardInterrupt:
            pool.shutdown(wait=False, cancel_futures=True)  # the workers were interrupted too
            raise
        except BaseException:
            with contextlib.suppress(Exception):
                pool.shutdown(wait=True, cancel_futures=True)  # the running ones finish and are kept
            raise
    return [results[i] for i in range(len(tasks))]
