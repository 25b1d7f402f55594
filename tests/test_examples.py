"""``examples/``: the downstream analysis run as its docstring says, on real (small) Pythia events — generated,
mixed, clustered and a run trained by the CLI as the README types them, written as a NanoAOD-style ROOT file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HYBRIDJET = [sys.executable, "-m", "hybridjet.cli"]
ROOT = Path(__file__).resolve().parents[1]

pytest.importorskip("uproot")
pytest.importorskip("mplhep")


def _run(args: list[str], cwd: Path) -> str:
    result = subprocess.run(args, capture_output=True, text=True, timeout=900, cwd=cwd)
    assert result.returncode == 0, f"{' '.join(map(str, args))}\n{result.stderr[-3000:]}"
    return result.stdout


def test_the_downstream_analysis_reads_root_scores_cuts_and_plots(tmp_path):
    for process, seed in (("wprime", 1), ("qcd", 2)):
        _run([*HYBRIDJET, "generate", "--process", process, "--events", "300", "--seed", str(seed), "--out",
              f"{process}.h5", "--no-progress"], tmp_path)
    _run([*HYBRIDJET, "mix", "--signal", "wprime.h5", "--background", "qcd.h5", "--signal-fraction", "0.5",
          "--seed", "3", "--out", "events.h5"], tmp_path)
    _run([*HYBRIDJET, "cluster", "events.h5", "--out", "jets.h5", "--no-progress"], tmp_path)
    _run([*HYBRIDJET, "fit", "-c", str(ROOT / "configs" / "gbdt.yaml"), "--data.data", "jets.h5",
          "--trainer.default_root_dir", "runs/gbdt"], tmp_path)
    printed = _run([sys.executable, str(ROOT / "examples" / "jets_to_nanoaod.py"), "jets.h5", "nano.root"], tmp_path)
    assert "NanoAOD's FatJet layout" in printed
    printed = _run([sys.executable, str(ROOT / "examples" / "downstream_analysis.py"), "runs/gbdt", "nano.root",
                    "--cut", "0.5", "--out", "analysis"], tmp_path)
    total, kept = (int(w.replace(",", "")) for w in printed.split()[0:3:2])
    assert total >= 300 and 0 < kept < total  # a cut on a trained score keeps some events, not all
    assert (tmp_path / "analysis" / "mjj.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import awkward as ak

    selected = ak.from_parquet(tmp_path / "analysis" / "selected.parquet")
    assert len(selected) == kept and ak.all(selected.score > 0.5) and ak.all(selected.mjj > 0)
