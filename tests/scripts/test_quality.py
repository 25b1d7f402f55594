"""``scripts/device/quality.py`` as run on a GPU machine, here on a toy jets.h5 and the tiny Llama: every model
through the package's one recipe entry point, ``compare`` with the paired gaps, and the predecessor-format run
compared on the events it scored."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "device" / "quality.py"


def test_quality_trains_every_kind_and_compares_them(toy_jets_h5: Path, tiny_llama: Path, tmp_path: Path) -> None:
    runs, out = tmp_path / "runs", tmp_path / "report"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--data", str(toy_jets_h5), "--model", str(tiny_llama), "--runs", str(runs),
         "--out", str(out), "--models", "gbdt", "ablation", "hybrid", "text-predecessor",
         "--epochs", '{"ablation": 1, "hybrid": 1, "text-predecessor": 1}', "--batch-size", '{"text": 16}',
         "--text-train-events", "64", "--predecessor-eval-events", "40"],
        capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "comparison.json").read_text())
    assert [row["name"] for row in report["rows"]] == ["gbdt", "ablation", "hybrid"]
    assert {gap["other"] for gap in report["gaps"]} == {"gbdt", "ablation"}  # the hybrid is the reference
    subset = json.loads((out / "vs_predecessor_hybrid" / "comparison.json").read_text())
    assert subset["meta"]["n_events"] <= 40 and subset["gaps"][0]["reference"] == "hybrid"
    assert "generated-answer accuracy" in done.stdout
