"""The main job's wiring, end to end at smoke size: Pythia -> fastjet -> four models -> comparison report."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_demo_smoke_end_to_end(tiny_llama, tmp_path):
    args = [sys.executable, "-m", "hybridjet.cli", "demo", "--scale", "smoke", "--model", str(tiny_llama),
            "--data-dir", str(tmp_path / "data"), "--runs-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "report"),
            "--no-progress"]
    first = subprocess.run(args, capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert first.returncode == 0, first.stderr[-3000:]
    report = json.loads((tmp_path / "report" / "comparison.json").read_text())
    names = [row["name"] for row in report["rows"]]
    assert sorted(names) == ["ablation", "gbdt", "hybrid", "text"]
    for png in ("roc.png", "roc_tpr_fpr.png"):
        assert (tmp_path / "report" / png).stat().st_size > 10_000
    assert "| hybrid" in first.stdout or "hybrid" in first.stdout
    # a second run reuses the generated events instead of regenerating them
    again = subprocess.run(args + ["--only", "gbdt"], capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "reusing" in again.stdout


def test_the_demo_never_replaces_a_folder_that_is_not_its_run(tiny_llama, tmp_path):
    """Before: the demo removed whatever was at <runs-dir>/<model>, a user's thesis or a fit in progress."""
    from hybridjet.run import RunClaim

    (tmp_path / "runs" / "gbdt").mkdir(parents=True)
    (tmp_path / "runs" / "gbdt" / "thesis.tex").write_text("years of work")
    args = [sys.executable, "-m", "hybridjet.cli", "demo", "--scale", "smoke", "--model", str(tiny_llama),
            "--data-dir", str(tmp_path / "data"), "--runs-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "r"),
            "--no-progress", "--only", "gbdt"]
    result = subprocess.run(args, capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert result.returncode == 2 and "none of a run directory's" in result.stderr.strip().splitlines()[-1]
    assert (tmp_path / "runs" / "gbdt" / "thesis.tex").read_text() == "years of work"
    assert not (tmp_path / "data").exists()  # refused before any event was generated
    (tmp_path / "runs" / "gbdt" / "thesis.tex").unlink()
    with RunClaim(tmp_path / "runs" / "gbdt"):  # a training in progress there
        result = subprocess.run(args, capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert result.returncode == 2 and "another hybridjet process" in result.stderr.strip().splitlines()[-1]
