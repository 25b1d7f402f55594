"""``scripts/device/anomaly_concurrent.sh``: (S/B, seed) pairs trained at once, their runs brought back as one tar,
then reused by ``hybridjet anomaly`` where the tar is unpacked (the GPU workflow, with the trees on a CPU)."""

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from hybridjet.cli import main

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "device" / "anomaly_concurrent.sh"


def _run_script(args: list[str], out: Path, **env: str) -> subprocess.CompletedProcess:
    environ = {**os.environ, "OUT": str(out), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", **env}
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=environ,
                          cwd=SCRIPT.parents[2], timeout=600)


def test_pairs_train_at_once_and_their_tar_is_reused(tmp_path, resonance_file, search_file, capsys):
    path = search_file(tmp_path, resonance_file(300, 3000, seed=4), training={"folds": 2, "seeds": [0, 1]},
                       evaluation={"min_background": 5})
    brought = tmp_path / "brought"
    brought.mkdir()
    done = _run_script([str(path), "gbdt", "300", "0.1:0", "0.1:1"], brought, MODES="idealized cwola")
    assert done.returncode == 0, done.stderr
    with tarfile.open(brought / "runs.tar") as tar:
        names = tar.getnames()
    finished = sorted(n.rsplit("/", 1)[0] for n in names if n.endswith("metrics.json"))
    assert finished == [f"gbdt/{mode}/sb0.1/seed{s}" for mode in ("cwola", "idealized") for s in (0, 1)]
    assert not any("/fold" in n for n in names) and "logs/gbdt_sb0.1_seed1.log" in names
    assert "4 finished runs" in done.stdout

    # a fresh machine's view: only the tar's runs, unpacked where the config's runs go
    runs = tmp_path / "out" / "runs"
    shutil.rmtree(runs)
    runs.mkdir()
    with tarfile.open(brought / "runs.tar") as tar:
        tar.extractall(runs, filter="data")
    assert main(["anomaly", "-c", str(path), "--modes", "idealized", "cwola", "--no-progress"]) == 0
    capsys.readouterr()
    assert not list(runs.glob("gbdt/*/sb0.1/seed*/fold0"))  # reused, not trained again
    report = json.loads((tmp_path / "report" / "anomaly.json").read_text())
    assert {(r["label_mode"], r["n_seeds"]) for r in report["rows"]} == {("idealized", 2), ("cwola", 2)}


def test_a_call_without_pairs_says_how_to_call_it(tmp_path):
    done = _run_script(["configs/anomaly_gpu.yaml", "hybrid", "60"], tmp_path)
    assert done.returncode == 2 and "usage:" in done.stderr
