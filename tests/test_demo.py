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
