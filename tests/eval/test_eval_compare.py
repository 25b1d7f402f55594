from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from eval_helpers import make_run

from hybridjet.errors import HybridjetError
from hybridjet.eval import compare_runs, evaluate
from hybridjet.eval.metrics import auc


def test_evaluate_rows_table_json() -> None:
    rng = np.random.default_rng(0)
    y = (np.arange(4000) % 2).astype(np.int8)
    scores = {"good": rng.normal(size=4000) + 2 * y, "perfect": y.astype(float)}
    report = evaluate(
        y, scores, info={"good": {"trainable_params": 1_200_000, "train_time_s": 300.0}}, n_boot=50
    )
    good, perfect = report.rows
    assert good["auc_lo"] <= good["auc"] <= good["auc_hi"]
    assert good["n_test"] == 4000 and good["trainable_params"] == 1_200_000
    assert perfect["auc"] == 1.0 and math.isinf(perfect["rejection_at_0.5"])
    table = report.table()
    assert "| good |" in table and "1.2M" in table and "5 min" in table
    assert "> 2,000" in table  # unbounded rejection shown as a bound
    assert f"{good['auc']:.3f} [" in table
    data = json.loads(report.to_json())
    assert data["rows"][1]["rejection_at_0.5"] == "inf"
    assert set(data["roc"]) == {"good", "perfect"}


def test_compare_runs_aligns_by_event_id(two_runs: tuple[Path, Path], tmp_path: Path) -> None:
    report = compare_runs(list(two_runs), out=tmp_path / "report", n_boot=20)
    assert [r["name"] for r in report.rows] == ["hybrid", "gbdt"]
    assert report.rows[0]["auc"] > report.rows[1]["auc"] > 0.7  # misalignment would give ~0.5
    assert report.rows[1]["threshold"] == 0.0  # logit-difference scores
    for name in ("comparison.md", "comparison.json", "roc.png", "roc_tpr_fpr.png"):
        assert (tmp_path / "report" / name).stat().st_size > 0
    # the same AUC as computed from the file directly
    from hybridjet.eval import read_scores

    ss = read_scores(two_runs[0] / "scores.h5")
    assert report.rows[0]["auc"] == pytest.approx(auc(ss.label, ss.score))


def test_compare_refuses_different_event_sets(tmp_path: Path) -> None:
    a = make_run(tmp_path, "a", 1.0, n=100)
    b = make_run(tmp_path, "b", 1.0, n=100, event_offset=10)
    with pytest.raises(HybridjetError) as info:
        compare_runs([a, b], out=None)
    msg = str(info.value)
    assert str(a) in msg and str(b) in msg and "10 of 100 events" in msg
    assert "\n" not in msg


def test_compare_refuses_label_disagreement(tmp_path: Path) -> None:
    from hybridjet.eval import read_scores, write_scores

    a = make_run(tmp_path, "a", 1.0, n=100)
    b = make_run(tmp_path, "b", 1.0, n=100)
    ss = read_scores(b / "scores.h5")
    write_scores(b / "scores.h5", "test", ss.event_id, ss.score, 1 - ss.label)
    with pytest.raises(HybridjetError, match="disagree on the label of 100 events"):
        compare_runs([a, b], out=None)


def test_compare_missing_run(tmp_path: Path) -> None:
    with pytest.raises(HybridjetError, match="no such run directory"):
        compare_runs([tmp_path / "missing"], out=None)


def test_compare_reads_nulls_of_a_strict_metrics_json(tmp_path: Path) -> None:
    """``null`` (a strict metrics.json's non-finite number, or a field without a value) counts as absent."""
    run = make_run(tmp_path, "trees", 1.0, n=200)
    (run / "metrics.json").write_text(json.dumps({"name": None, "model": None, "train_time_s": None,
                                                  "test": {"rejection_at_0.3": None}}))
    report = compare_runs([run], out=None, n_boot=0)
    assert report.rows[0]["name"] == "trees" and report.rows[0]["model"] == "trees"
    assert "train_time_s" not in report.rows[0]


def test_paired_auc_gap_of_the_reference_to_each_other_model() -> None:
    """The gap is the difference of the two AUCs; its paired interval holds it and is narrower than the unpaired
    spread when the two classifiers share most of their errors (the usual case: same events, similar models)."""
    rng = np.random.default_rng(1)
    y = (rng.random(6000) < 0.5).astype(np.int8)
    common = rng.normal(size=6000)
    scores = {"hybrid": 1.5 * y + common + 0.2 * rng.normal(size=6000),
              "trees": 1.5 * y + common + 0.3 * rng.normal(size=6000)}
    report = evaluate(y, scores, n_boot=200)
    (gap,) = report.gaps
    assert gap["reference"] == "hybrid" and gap["other"] == "trees" and gap["level"] == 0.95
    assert gap["gap"] == pytest.approx(auc(y, scores["hybrid"]) - auc(y, scores["trees"]), abs=1e-12)
    assert gap["lo"] <= gap["gap"] <= gap["hi"]
    unpaired = (report.rows[0]["auc_hi"] - report.rows[0]["auc_lo"]) + (report.rows[1]["auc_hi"] - report.rows[1]["auc_lo"])
    assert gap["hi"] - gap["lo"] < unpaired / 2  # 95% paired vs two 68% intervals: still narrower
    assert "hybrid − trees" in report.table() and json.loads(report.to_json())["gaps"][0]["other"] == "trees"
    other = evaluate(y, scores, n_boot=50, reference="trees")
    assert other.gaps[0]["reference"] == "trees" and other.gaps[0]["gap"] == pytest.approx(-gap["gap"])
    with pytest.raises(HybridjetError, match="--reference: no model named 'nope'"):
        evaluate(y, scores, n_boot=20, reference="nope")


@pytest.mark.parametrize(("settings", "needle"), [({"gap_level": 2}, "gap_level: expected a number in"),
                                                  ({"seed": -1}, "seed: expected an integer >= 0"),
                                                  ({"n_boot": 10**12}, "resamples: expected an integer in")])
def test_evaluate_refuses_settings_that_cannot_be_meant(settings, needle):
    """Before: numpy's ValueError tracebacks (quantiles outside [0, 1], a negative seed), or 7 TiB allocated."""
    import numpy as np

    from hybridjet import evaluate
    from hybridjet.errors import HybridjetError

    labels = np.array([0, 1, 0, 1])
    with pytest.raises(HybridjetError, match=needle):
        evaluate(labels, {"a": np.array([0.1, 0.9, 0.2, 0.8]), "b": np.array([0.3, 0.6, 0.4, 0.7])}, **settings)


def test_common_events_compares_a_run_scored_on_a_subset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A run scored on a subset of the others' events (the text baseline in the predecessor's format) is compared
    on the events both scored with ``--common-events``; before, only a hand-written bootstrap in
    scripts/device/quality.py could, and ``compare`` refused it."""
    from hybridjet.cli import main

    a = make_run(tmp_path, "a", 1.0, n=100)
    b = make_run(tmp_path, "b", 0.5, n=100, event_offset=10)
    assert main(["compare", str(a), str(b), "--out", str(tmp_path / "refused")]) == 2
    assert "scored on different events" in capsys.readouterr().err
    assert main(["compare", str(a), str(b), "--common-events", "--out", str(tmp_path / "report")]) == 0
    report = json.loads((tmp_path / "report" / "comparison.json").read_text())
    assert report["meta"]["n_events"] == 90
    kept = compare_runs([a, b], out=None, common_events=True)
    assert [row["n_events"] for row in kept.rows] == [90, 90] and kept.gaps[0]["other"] == "b"
    far = make_run(tmp_path, "far", 1.0, n=50, event_offset=1000)
    with pytest.raises(HybridjetError, match="share no scored event"):
        compare_runs([a, far], out=None, common_events=True)
