"""``scripts/device/anomaly_runs.sh``: part of a search trained within a time limit, its finished runs brought back
as one tar and reused by ``hybridjet anomaly`` where the tar is unpacked (the GPU workflow, with the trees on a
CPU)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

from hybridjet.cli import main

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "device" / "anomaly_runs.sh"


def _run_script(args: list[str], out: Path, **env: str) -> subprocess.CompletedProcess:
    """One call of the script in a process group of its own; like the device tool when a call returns, every process
    it left in that group is then killed."""
    environ = {**os.environ, "OUT": str(out), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", **env}
    with subprocess.Popen(["bash", str(SCRIPT), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=environ, cwd=SCRIPT.parents[2], start_new_session=True) as call:
        try:
            stdout, stderr = call.communicate(timeout=600)
        finally:
            try:
                os.killpg(call.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    return subprocess.CompletedProcess(call.args, call.returncode, stdout, stderr)


def test_finished_runs_come_back_in_a_tar_and_are_reused(tmp_path, resonance_file, search_file, capsys):
    path = search_file(tmp_path, resonance_file(300, 3000, seed=4), training={"folds": 2, "seeds": [0, 1]},
                       evaluation={"min_background": 5})
    brought = tmp_path / "brought"
    brought.mkdir()
    done = _run_script([str(path), "300", "--modes", "idealized", "cwola", "--jobs", "2"], brought,
                       RUNS_TAR_PART_BYTES="20000")  # parts, as a tar over what one file of $OUT may be comes
    assert done.returncode == 0, done.stdout + done.stderr
    parts = sorted(brought.glob("runs.tar.[0-9][0-9]"))
    assert len(parts) > 1 and not (brought / "runs.tar").exists() and f"runs.tar in {len(parts)} parts" in done.stdout
    assert all(p.stat().st_size <= 20000 for p in parts)
    (brought / "runs.tar").write_bytes(b"".join(p.read_bytes() for p in parts))
    with tarfile.open(brought / "runs.tar") as tar:
        names = tar.getnames()
    finished = sorted(n.rsplit("/", 1)[0] for n in names if n.endswith("metrics.json"))
    assert finished == [f"gbdt/{mode}/sb0.1/seed{s}" for mode in ("cwola", "idealized") for s in (0, 1)]
    assert not any("/fold" in n for n in names) and any(n.startswith("logs/anomaly_") for n in names)
    assert "4 finished runs" in done.stdout and "training 4 (method, mode, S/B, seed), 2 at a time" in done.stdout

    # a fresh machine's view: only the tar's runs, unpacked where the config's runs go
    runs = tmp_path / "out" / "runs"
    shutil.rmtree(runs)
    runs.mkdir()
    with tarfile.open(brought / "runs.tar") as tar:
        tar.extractall(runs, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    assert main(["anomaly", "-c", str(path), "--modes", "idealized", "cwola", "--no-progress"]) == 0
    capsys.readouterr()
    assert not list(runs.glob("gbdt/*/sb0.1/seed*/fold0"))  # reused, not trained again
    report = json.loads((tmp_path / "report" / "anomaly.json").read_text())
    assert {(r["label_mode"], r["n_seeds"]) for r in report["rows"]} == {("idealized", 2), ("cwola", 2)}


def test_a_search_stopped_at_the_limit_still_brings_back_a_tar(tmp_path, resonance_file, search_file):
    path = search_file(tmp_path, resonance_file(300, 3000, seed=4))
    done = _run_script([str(path), "1"], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr  # not 124: the device tool reads that as its own kill
    assert "stopped after 1 s: the runs in progress keep their finished folds" in done.stdout
    with tarfile.open(tmp_path / "runs.tar") as tar:
        assert not [n for n in tar.getnames() if n.endswith("metrics.json")]


def test_bad_calls_say_how_to_call_it(tmp_path):
    done = _run_script(["configs/anomaly_gpu.yaml"], tmp_path)
    assert done.returncode == 2 and "usage:" in done.stderr
    done = _run_script(["configs/anomaly_gpu.yaml", "60", "--out", "elsewhere"], tmp_path)
    assert done.returncode == 2 and "--out: the runs go to the config's out" in done.stderr
    done = _run_script(["configs/anomaly_gpu.yaml", "60", "-c", "configs/anomaly_demo.yaml"], tmp_path)
    assert done.returncode == 2 and "-c: the config is the first argument" in done.stderr
    for limit in ("9m", "-5", ""):
        done = _run_script(["--detached", "configs/anomaly_gpu.yaml", limit], tmp_path)
        assert done.returncode == 2 and f"LIMIT_S: expected whole seconds, got '{limit}'" in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1


def test_a_bad_config_is_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("regions: {signal_region: [3700, 3300]}\n")
    done = _run_script([str(bad), "60"], tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith("hybridjet: error: ") and len(done.stderr.strip().splitlines()) == 1


def test_a_detached_search_outlives_the_call_and_a_later_call_waits_for_it(tmp_path, resonance_file, search_file):
    path = search_file(tmp_path, resonance_file(300, 3000, seed=4), training={"folds": 2, "seeds": [0, 1]},
                       evaluation={"min_background": 5})
    args = ["--detached", str(path), "0", "--modes", "idealized", "--jobs", "2"]
    first_call = _run_script(args, tmp_path)
    assert first_call.returncode == 0, first_call.stdout + first_call.stderr
    assert "started the search in the background" in first_call.stdout
    assert "still running after 0 s" in first_call.stdout and "0 finished runs" in first_call.stdout
    logs = tmp_path / "out" / "runs" / "logs"
    pid = int(next(logs.glob("detached_*.pid")).read_text())
    os.kill(pid, 0)  # still alive: the call returned and every process left in its group was killed
    later = _run_script([*args[:2], "300", *args[3:]], tmp_path)
    assert later.returncode == 0, later.stdout + later.stderr
    assert f"waiting for the search started earlier (pid {pid}" in later.stdout
    assert "the search ended (exit 0)" in later.stdout and "2 finished runs" in later.stdout
    with tarfile.open(tmp_path / "runs.tar") as tar:
        finished = sorted(n.rsplit("/", 1)[0] for n in tar.getnames() if n.endswith("metrics.json"))
    assert finished == ["gbdt/idealized/sb0.1/seed0", "gbdt/idealized/sb0.1/seed1"]
    assert len(list(logs.glob("anomaly_*.log"))) == 1  # one search, not a second started by the later call
