"""The pending (method, mode, S/B, seed) trainings of a search, one after another or several at once in worker
processes (``hybridjet anomaly --jobs N``): one small model leaves most of a GPU unused, so N processes share it,
each with its own copy of the model. A task's run is complete on disk when it finishes, so a search stopped midway
keeps the finished ones, and those in progress their finished fold models; results come back in the order of the tasks, whatever the
order they finish in."""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import dataclasses
import itertools
import multiprocessing as mp
import os
import time
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from hybridjet.anomaly.config import Method
from hybridjet.anomaly.kfold import train_kfold
from hybridjet.data.weak import FoldFiles
from hybridjet.errors import HybridjetError
from hybridjet.eval.sic import SicFloor
from hybridjet.workers import terminate_as_exit

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

    def run(self) -> dict[str, Any]:
        """Train it (the fold models an earlier try finished with the same settings kept); returns its metrics."""
        return train_kfold(self.method, self.mode, list(self.folds), self.test, self.run_dir, self.seed,
                           self.feature_set, self.split, per_fold=self.per_fold, ensemble_folds=self.ensemble_folds,
                           floor=self.floor, info=self.info, progress=False)


class Task(Protocol):
    """What :func:`run_tasks` trains: a picklable description with its run directory and ``run()``."""

    run_dir: Path
    info: dict[str, Any]

    def run(self) -> dict[str, Any]: ...


def run_task(task: Task) -> tuple[dict[str, Any], float]:
    """Train ``task``; returns its metrics and the seconds it took."""
    import torch

    started = time.perf_counter()
    try:
        metrics = task.run()
    except torch.OutOfMemoryError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else "out of memory"
        raise HybridjetError(f"{task.run_dir}: the device ran out of memory ({first}); the finished fold models are "
                             "kept and a rerun reuses them; expected fewer --jobs or a smaller batch_size") from None
    return metrics, time.perf_counter() - started


def _init_worker(threads: int, parent_pid: int) -> None:
    import signal

    import torch

    from hybridjet.quiet import quiet_third_party
    from hybridjet.workers import die_with_parent

    die_with_parent(parent_pid)

    global _thread_limits
    # Ctrl-C is the parent's to handle: it stops every worker at once (a worker left to Lightning's handler would
    # finish its task and take the next with Ctrl-C ignored)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # the machine's cores shared out among the workers: torch's threads, the OpenMP / BLAS pools loaded already,
    # and (through the environment) those loaded later, such as the trees' own OpenMP runtime
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)
    torch.set_num_threads(threads)
    with contextlib.suppress(ImportError):  # threadpoolctl comes with the trees' extra (scikit-learn)
        from threadpoolctl import threadpool_limits

        _thread_limits = threadpool_limits(threads)
    quiet_third_party(progress_bars=False)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the cores this process may use, not all the machine's
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def run_tasks(tasks: list[Task], jobs: int = 1,
              on_done: Callable[[Task, dict[str, Any], float], None] | None = None,
              scheduler: str | None = None) -> list[dict[str, Any]]:
    """Train every task, ``jobs`` at a time (``jobs`` > 1: in spawned worker processes, each handed a task only when
    it is free), or on the ``dask.distributed`` cluster at ``scheduler`` (each task on a worker, its paths made
    absolute: the folders must be on a file system the workers share at the same path); ``on_done(task, metrics,
    seconds)`` is called as each finishes. Returns the metrics in the order of ``tasks``. A failing task raises once
    the tasks already running have finished (their runs are kept), and no other task starts. On Ctrl-C, or a worker
    that died (out of memory, killed, failed to start), the workers are stopped at once; the finished runs are kept,
    and the running ones' finished fold models."""
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    results: dict[int, dict[str, Any]] = {}

    def finished(i: int, metrics: dict[str, Any], seconds: float) -> None:
        results[i] = metrics
        if on_done is not None:
            on_done(tasks[i], metrics, seconds)

    if scheduler is not None and tasks:
        _run_on_dask(tasks, scheduler, finished)
    elif jobs == 1 or len(tasks) <= 1:
        for i, task in enumerate(tasks):
            finished(i, *run_task(task))
    else:
        _run_in_workers(tasks, min(jobs, len(tasks)), finished, results)
    return [results[i] for i in range(len(tasks))]


def _absolute(value: Any) -> Any:
    """``value`` with every path in it (dataclass fields, tuples, dicts) made absolute, for workers elsewhere."""
    if isinstance(value, Path):
        return value.resolve()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.replace(value, **{f.name: _absolute(getattr(value, f.name))
                                             for f in dataclasses.fields(value) if f.init})
    if isinstance(value, tuple):
        return tuple(_absolute(v) for v in value)
    if isinstance(value, dict):
        return {k: _absolute(v) for k, v in value.items()}
    return value


def _run_on_dask(tasks: list[Task], scheduler: str, finished: Callable[[int, dict[str, Any], float], None]) -> None:
    """Every task on the dask cluster at ``scheduler``; the first failure cancels what has not finished."""
    try:
        from dask.distributed import Client, as_completed
    except ImportError as exc:
        raise HybridjetError(f"--scheduler needs dask.distributed: pip install 'hybridjet[dask]' ({exc})") from None
    try:
        client = Client(scheduler, timeout="30s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise HybridjetError(f"--scheduler {scheduler}: cannot connect ({str(exc).splitlines()[0][:160]})") from None
    with client:
        futures = [client.submit(run_task, _absolute(task), pure=False) for task in tasks]
        index = {future.key: i for i, future in enumerate(futures)}
        failure: Exception | None = None
        try:
            for future in as_completed(futures):
                if future.cancelled():  # after a failure
                    continue
                try:
                    metrics, seconds = future.result()
                except Exception as err:  # noqa: BLE001 - raised once the others are cancelled
                    failure = failure or err
                    client.cancel([f for f in futures if not f.done()])
                    continue
                finished(index[future.key], metrics, seconds)
        except BaseException:
            client.cancel(futures)
            raise
    if failure is not None:
        raise failure


def _run_in_workers(tasks: list[Task], workers: int, finished: Callable[[int, dict[str, Any], float], None],
                    results: dict[int, dict[str, Any]]) -> None:
    ours_before = set(mp.active_children())
    pool = cf.ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                                  initargs=(max(1, _cores() // workers), os.getpid()))
    waiting = iter(enumerate(tasks))
    running: dict[cf.Future, int] = {}
    stack = contextlib.ExitStack()
    failure: Exception | None = None

    def start(count: int) -> None:  # never more than the free workers: nothing waits in the pool's queue
        for i, task in itertools.islice(waiting, count):
            running[pool.submit(run_task, task)] = i

    try:
        stack.enter_context(terminate_as_exit())  # `kill` stops the workers as Ctrl-C does
        start(workers)
        while running:
            done, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
            for future in done:
                i = running.pop(future)
                try:
                    metrics, seconds = future.result()
                except BrokenProcessPool:
                    lost = [str(task.run_dir) for j, task in enumerate(tasks) if j not in results]
                    raise HybridjetError(
                        f"a training process ended unexpectedly (out of memory, killed, or it failed to start) while "
                        f"{len(lost)} run(s) were unfinished, e.g. {lost[0]}; the finished runs are kept and a "
                        "rerun reuses them; expected fewer --jobs if memory ran out") from None
                except Exception as err:  # noqa: BLE001 - raised once the running tasks are done
                    failure = failure or err
                    continue
                finished(i, metrics, seconds)
            if failure is None:
                start(workers - len(running))
    except BaseException:
        # Ctrl-C or a dead worker: stop the workers now. A task's files are complete on disk or retrained next time.
        for process in set(mp.active_children()) - ours_before:
            process.kill()
            process.join(10)
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    finally:
        stack.close()
    pool.shutdown(wait=True)
    if failure is not None:
        raise failure


def start_grid(out: Path, jobs: int, progress: bool, what: str) -> float:
    """What a grid of trainings (a resonance search, a study) does first: ``jobs`` checked, third-party noise
    quieted, ``out`` checked to be the grid's own folder (before any event is generated or read); returns the
    start time."""
    from hybridjet.quiet import quiet_third_party
    from hybridjet.run import check_search_folder

    if jobs < 1:
        raise HybridjetError(f"--jobs: expected an integer >= 1, got {jobs}")
    quiet_third_party(progress_bars=progress)
    check_search_folder(out, what)
    return time.perf_counter()
