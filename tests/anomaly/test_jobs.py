"""Several (method, mode, S/B, seed) trained at once in worker processes (``hybridjet anomaly --jobs N``)."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hybridjet.anomaly.config import Method
from hybridjet.anomaly.jobs import KfoldTask, run_tasks
from hybridjet.cli import main
from hybridjet.data.weak import FoldFiles
from hybridjet.errors import HybridjetError

HYBRIDJET = [sys.executable, "-m", "hybridjet.cli"]

METHODS = {"gbdt": {"max_iter": 20},
           "ablation": {"n_soft_tokens": 2, "ablation_width": 8, "encoder_hidden": 16, "encoder_layers": 1,
                        "epochs": 2, "batch_size": 128}}


def _metrics(out: Path) -> dict[str, dict]:
    return {str(p.parent.relative_to(out)): json.loads(p.read_text())
            for p in sorted(out.glob("runs/*/*/*/seed*/metrics.json"))}


def test_jobs_train_the_same_runs_as_one_at_a_time(tmp_path, resonance_file, search_file, capsys):
    jets = resonance_file(300, 3000, seed=5)
    common = dict(methods=METHODS, modes=["idealized", "cwola"], injection={"s_over_b": [0.2]},
                  training={"folds": 2, "seeds": [0, 1]}, evaluation={"min_background": 5})
    serial = search_file(tmp_path / "serial", jets, **common)
    at_once = search_file(tmp_path / "at_once", jets, **common)
    assert main(["anomaly", "-c", str(serial), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["anomaly", "-c", str(at_once), "--no-progress", "--jobs", "3"]) == 0
    printed = capsys.readouterr().out
    assert "training 8 (method, mode, S/B, seed), 3 at a time" in printed
    assert printed.count(" max SIC test ") == 8  # each run named as it finishes
    one, three = _metrics(tmp_path / "serial" / "out"), _metrics(tmp_path / "at_once" / "out")
    assert sorted(one) == sorted(three) and len(one) == 8
    for name, m in one.items():
        got = three[name]["search"]["test"]
        if m["model"] == "gbdt":  # the trees do not depend on the thread count
            assert got == m["search"]["test"]
        else:  # the ablation's float sums may: the same model up to rounding
            assert got["auc"] == pytest.approx(m["search"]["test"]["auc"], abs=2e-3)
    # the same report rows in the same order, whatever order the runs finished in
    def rows(name: str) -> list[tuple]:
        report = json.loads((tmp_path / name / "report/anomaly.json").read_text())
        return [(r["method"], r["label_mode"], r["s_over_b"], r["n_seeds"]) for r in report["rows"]]

    assert rows("at_once") == rows("serial") and len(rows("serial")) == 4
    # trained at once: some two runs' files were being written at the same time
    spans = [(min(times), max(times)) for run in three
             for times in [[p.stat().st_mtime_ns for p in (tmp_path / "at_once/out" / run).rglob("*") if p.is_file()]]]
    assert any(a0 < b1 and b0 < a1 for i, (a0, a1) in enumerate(spans) for b0, b1 in spans[i + 1:])
    assert main(["anomaly", "-c", str(at_once), "--no-progress", "--jobs", "3"]) == 0
    assert "\ntraining " not in capsys.readouterr().out  # a second search reuses every run


@pytest.fixture
def cwola_folds(tmp_path, resonance_file, search_file, capsys) -> tuple[FoldFiles, ...]:
    """The CWoLa fold files of a small search (trees, 2 folds, S/B 0.1, seed 0)."""
    path = search_file(tmp_path, resonance_file(300, 3000, seed=5), modes=["cwola"], training={"folds": 2,
                                                                                                 "seeds": [0]})
    assert main(["anomaly", "-c", str(path), "--no-progress"]) == 0
    capsys.readouterr()
    out = tmp_path / "out"
    return tuple(FoldFiles(f, {"cwola": out / f"files/sb0.1/seed0/fold{f}/cwola.h5"},
                           out / f"files/sb0.1/seed0/fold{f}/score.h5") for f in range(2))


def test_a_failing_task_raises_as_itself_and_the_others_are_kept(tmp_path, cwola_folds):
    folds = cwola_folds
    good = KfoldTask(Method("gbdt", {"max_iter": 20}), "cwola", folds, None, tmp_path / "good", 0, "highlevel",
                     (0.75, 0.2, 0.05), info={"name": "good"})
    missing = FoldFiles(0, {"cwola": tmp_path / "nowhere.h5"}, folds[0].score)
    bad = KfoldTask(good.method, "cwola", (missing,), None, tmp_path / "bad", 0, "highlevel", good.split)
    finished = []
    with pytest.raises(HybridjetError, match="nowhere.h5: jets.h5 file not found"):
        run_tasks([bad, good], jobs=2, on_done=lambda task, metrics, seconds: finished.append(task.info["name"]))
    assert (tmp_path / "good/metrics.json").is_file()  # finished after the failure, kept
    assert finished in ([], ["good"])


class _DiesWhenUnpickled:
    """Unpickled in a worker, it ends that process at once (as the out-of-memory killer would)."""

    def __reduce__(self):
        return os._exit, (3,)


def test_a_worker_that_dies_is_one_line_and_keeps_the_finished_runs(tmp_path, cwola_folds):
    folds = cwola_folds
    good = KfoldTask(Method("gbdt", {"max_iter": 20}), "cwola", folds, None, tmp_path / "good", 0, "highlevel",
                     (0.75, 0.2, 0.05))
    dying = KfoldTask(good.method, "cwola", folds, None, tmp_path / "dying", 0, "highlevel", good.split,
                      info={"ends": _DiesWhenUnpickled()})
    with pytest.raises(HybridjetError, match=r"a training process ended unexpectedly .* e\.g\. .*dying; the finished "
                                             "runs are kept"):
        run_tasks([dying, good], jobs=2)
    assert not (tmp_path / "dying/metrics.json").exists()


def test_jobs_below_one_is_refused_before_any_work(tmp_path, resonance_file, search_file, capsys):
    path = search_file(tmp_path, resonance_file(300, 3000, seed=5))
    assert main(["anomaly", "-c", str(path), "--jobs", "0"]) == 2
    assert "--jobs: expected an integer >= 1, got 0" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_layers_the_model_lacks_are_refused_before_any_work(tmp_path, resonance_file, search_file, tiny_llama,
                                                           capsys):
    """A hybrid's ``llm_layers`` beyond its model's decoder layers (the tiny model has 2): one line, nothing trained."""
    hybrid = {"method": "hybrid", "model": str(tiny_llama), "quantization": "none", "llm_layers": 3}
    path = search_file(tmp_path, resonance_file(300, 3000, seed=5), methods={"gbdt": {"max_iter": 20},
                                                                             "hybrid_cut": hybrid})
    assert main(["anomaly", "-c", str(path)]) == 2
    assert "methods.hybrid_cut.llm_layers: expected a whole number from 1 to 2" in capsys.readouterr().err
    assert not list((tmp_path / "out").glob("runs/*/*"))


def _alive_in_group(pgid: int) -> list[str]:
    """The processes of group ``pgid`` still running (zombies, which only wait to be reaped, left out)."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(stat.parent.name)
    return alive


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_ctrl_c_stops_every_worker_at_once_and_keeps_the_finished_folds(tmp_path, resonance_file, search_file, jobs):
    slow = {**METHODS["ablation"], "epochs": 300}  # ~10 s a fold model: ~2.5 min for the whole search
    path = search_file(tmp_path, resonance_file(300, 3000, seed=5), methods={"ablation": slow},
                       modes=["idealized", "cwola"], injection={"s_over_b": [0.2]},
                       training={"folds": 4, "seeds": [0, 1, 2]}, evaluation={"min_background": 5})
    # Ctrl-C as in a terminal: SIGINT handled by default, even where these tests run in a background job (whose
    # processes inherit SIGINT ignored)
    proc = subprocess.Popen([*HYBRIDJET, "anomaly", "-c", str(path), "--no-progress", "--jobs", jobs],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    runs = tmp_path / "out" / "runs"
    try:
        deadline = time.time() + 300
        while not any(runs.glob("*/*/*/*/fold*/trained.json")) and time.time() < deadline and proc.poll() is None:
            time.sleep(0.05)
        time.sleep(2)  # into the next fold model's training
        assert proc.poll() is None, "the search ended before it could be interrupted"
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole process group
        stopped = time.time()
        _, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert time.time() - stopped < 30 and proc.returncode == 130, err[-2000:]
    assert err.strip().splitlines()[-1] == "hybridjet: interrupted"
    time.sleep(1)
    assert _alive_in_group(proc.pid) == []  # no worker goes on training
    assert len(list(runs.glob("*/*/*/*/metrics.json"))) < 6
    assert list(runs.glob("*/*/*/*/fold*/trained.json"))  # the finished fold models are kept for the rerun


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_a_killed_search_leaves_no_worker_training(tmp_path, resonance_file, search_file, how):
    """Before: `kill` (or a batch system's time limit) ended the search but not its workers, which trained on into
    the run folders the next try cleared and wrote (Lightning's SIGTERM handler kept them alive)."""
    slow = {**METHODS["ablation"], "epochs": 300}
    path = search_file(tmp_path, resonance_file(300, 3000, seed=5), methods={"ablation": slow},
                       modes=["idealized", "cwola"], injection={"s_over_b": [0.2]},
                       training={"folds": 4, "seeds": [0, 1]}, evaluation={"min_background": 5})
    proc = subprocess.Popen([*HYBRIDJET, "anomaly", "-c", str(path), "--no-progress", "--jobs", "2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    runs = tmp_path / "out" / "runs"
    try:
        deadline = time.time() + 300
        while not any(runs.glob("*/*/*/*/fold*/trained.json")) and time.time() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert proc.poll() is None and _alive_in_group(proc.pid), "the search ended before it could be killed"
        os.kill(proc.pid, how)  # the search's own process only, as `kill PID` does
        proc.communicate(timeout=90)
        deadline = time.time() + 20
        while _alive_in_group(proc.pid) and time.time() < deadline:
            time.sleep(0.2)
        assert _alive_in_group(proc.pid) == []  # no worker goes on training
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def test_a_device_out_of_memory_is_one_line_naming_the_run(tmp_path, cwola_folds, monkeypatch):
    import torch

    import hybridjet.anomaly.jobs as jobs

    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore detail")

    monkeypatch.setattr(jobs, "train_kfold", out_of_memory)
    task = KfoldTask(Method("gbdt", {"max_iter": 20}), "cwola", cwola_folds, None, tmp_path / "big", 0,
                     "highlevel", (0.75, 0.2, 0.05))
    with pytest.raises(HybridjetError) as caught:
        run_tasks([task])
    assert str(caught.value) == (f"{tmp_path / 'big'}: the device ran out of memory (CUDA out of memory. Tried to "
                                 "allocate 2.00 GiB); the finished fold models are kept and a rerun reuses them; "
                                 "expected fewer --jobs or a smaller batch_size")


def test_a_search_trains_on_a_dask_cluster(tmp_path, resonance_file, search_file, capsys):
    """--scheduler: each (method, mode, S/B, seed) a task on a dask.distributed worker (a local cluster of 2), the
    fold files handed over by absolute path; the same report as here, and every run reused here afterwards."""
    distributed = pytest.importorskip("dask.distributed")
    from hybridjet.cli import main

    path = search_file(tmp_path, resonance_file(300, 3000))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        assert main(["anomaly", "-c", str(path), "--no-progress", "--scheduler", cluster.scheduler_address]) == 0
    first = capsys.readouterr().out
    assert "training 3 (method, mode, S/B, seed)" in first
    assert main(["anomaly", "-c", str(path), "--no-progress"]) == 0
    again = capsys.readouterr().out
    assert "training" not in again and again.split("\n\n")[-2] == first.split("\n\n")[-2]  # the same table
