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


@pytest.mark.parametrize("style", ["hep", "CMS", "plain"])
def test_compare_draws_roc_beside_sic_and_the_score_distributions_in_a_style(two_runs, tmp_path, capsys, style):
    out = tmp_path / style
    assert main(["compare", str(two_runs[0]), str(two_runs[1]), "--out", str(out), "--bootstrap", "0",
                 "--style", style]) == 0
    printed = capsys.readouterr().out
    for name in ("roc_sic.png", "scores.png", "roc.png"):
        assert str(out / name) in printed and (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_an_unknown_plot_style_is_one_line_before_any_file(two_runs, tmp_path, capsys):
    assert main(["compare", str(two_runs[0]), "--out", str(tmp_path / "r"), "--style", "D0"]) == 2
    err = capsys.readouterr().err
    assert "--style: expected one of plain, hep, ATLAS, CMS" in err and err.count("\n") == 1
    assert not (tmp_path / "r").exists()


def test_runs_of_the_same_name_are_told_apart_by_their_paths(tmp_path, capsys):
    # a study's runs: every one is 'seed0'; compare names them by as much of the path as tells them apart
    from eval_helpers import make_run

    a = make_run(tmp_path / "gbdt" / "n300", "seed0", 2.0, seed=1)
    b = make_run(tmp_path / "hybrid" / "n300", "seed0", 1.0, seed=2)
    assert main(["compare", str(a), str(b), "--out", str(tmp_path / "r"), "--bootstrap", "0"]) == 0
    table = capsys.readouterr().out
    assert "| gbdt/n300/seed0 |" in table and "| hybrid/n300/seed0 |" in table
    assert main(["compare", str(a), str(a), "--out", str(tmp_path / "r"), "--bootstrap", "0"]) == 0
    assert "| seed0 (2) |" in capsys.readouterr().out  # the same run twice: numbered


def test_the_highest_scores_are_in_the_score_histogram():
    """Before: hist's top edge is exclusive and the range ended at the highest score, so every event at it
    (saturated probabilities: often most of the signal) fell into the overflow."""
    import numpy as np

    from hybridjet.eval.plots import _histogram

    counts, edges = _histogram(np.array([0.1, 0.5, 1.0, 1.0, 1.0]), 4, 0.1, 1.0)
    assert counts.sum() == 5 and counts[-1] == 3 and edges[-1] == 1.0


def test_a_path_tail_that_is_another_runs_name_is_one_line(tmp_path, capsys):
    from eval_helpers import make_run

    a = make_run(tmp_path / "a", "x", 2.0, seed=1)  # named x, in a/x
    b = make_run(tmp_path / "b", "x", 1.0, seed=2)  # named x, in b/x: told apart as a/x and b/x
    c = make_run(tmp_path / "c", "a/x", 1.5, seed=3)  # named a/x
    assert main(["compare", str(a), str(b), str(c), "--out", str(tmp_path / "r"), "--bootstrap", "0"]) == 2
    assert "two runs would both be named 'a/x'" in capsys.readouterr().err
