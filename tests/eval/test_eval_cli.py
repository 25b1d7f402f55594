from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hybridjet.cli import main


def test_compare_cli_end_to_end(
    two_runs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "report"
    code = main(["compare", str(two_runs[0]), str(two_runs[1]), "--out", str(out), "--bootstrap", "20"])
    assert code == 0
    stdout = capsys.readouterr().out
    assert "| hybrid |" in stdout and "| gbdt |" in stdout and str(out / "roc.png") in stdout
    for name in ("comparison.md", "comparison.json", "roc.png", "roc_tpr_fpr.png"):
        assert (out / name).stat().st_size > 0
    assert (out / "roc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_cli_bad_split(two_runs: tuple[Path, Path], capsys: pytest.CaptureFixture) -> None:
    assert main(["compare", str(two_runs[0]), "--split", "val"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no split 'val'" in err


def test_compare_cli_missing_run_subprocess(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "hybridjet.cli",
            "compare",
            str(tmp_path / "nope"),
            "--out",
            str(tmp_path / "r"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("hybridjet: error:") and proc.stderr.count("\n") == 1
