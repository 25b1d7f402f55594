from __future__ import annotations

import math
import time

import numpy as np
import pytest

from hybridjet.errors import HybridjetError
from hybridjet.eval.metrics import auc, binary_metrics, bootstrap_interval, max_sic, roc_points


def gaussian(n: int, shift: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 2).astype(np.int8)
    return y, rng.normal(size=n) + shift * y


def test_perfect_separation() -> None:
    y = np.array([0, 0, 0, 1, 1, 1])
    m = binary_metrics(y, np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9]))
    assert m["auc"] == 1.0
    assert m["accuracy"] == 1.0
    assert m["rejection_at_0.5"] == math.inf
    assert (m["n_events"], m["n_signal"], m["n_background"]) == (6, 3, 3)
    assert auc(y, -np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])) == 0.0


def test_identical_distributions_auc_half() -> None:
    y, s = gaussian(20_000, 0.0)
    assert abs(auc(y, s) - 0.5) < 0.02
    assert auc(y, np.zeros(len(y))) == 0.5  # all tied


def test_gaussian_shift_matches_analytic_auc() -> None:
    y, s = gaussian(20_000, 1.0, seed=3)
    expected = 0.5 * (1.0 + math.erf(1.0 / 2.0))  # Phi(delta / sqrt 2)
    lo, hi = bootstrap_interval(auc, y, s)
    assert abs(auc(y, s) - expected) < 3 * (hi - lo)


def test_rejection_and_auc_by_hand() -> None:
    # descending ROC points (eff_s, eff_b): (.25,0) (.25,.25) (.75,.5) (.75,.75) (1,.75) (1,1)
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    s = np.array([0.9, 0.6, 0.6, 0.2, 0.8, 0.6, 0.3, 0.1])
    m = binary_metrics(y, s)
    # eff_s = 0.5 lies between (.25,.25) and (.75,.5): eff_b = .25 + .25 * (.25/.5) = .375
    assert m["rejection_at_0.5"] == pytest.approx(1 / 0.375)
    assert m["rejection_at_0.3"] == pytest.approx(1 / 0.275)
    # Mann-Whitney: 16 pairs, signal wins 9, 2 ties count one half -> 10/16
    assert m["auc"] == pytest.approx(10 / 16)
    assert m["accuracy"] == pytest.approx(5 / 8)  # threshold 0.5, score >= threshold is signal
    eff_s, eff_b, thr = roc_points(y, s)
    assert eff_s.tolist() == [0, 0.25, 0.25, 0.75, 0.75, 1, 1]
    assert eff_b.tolist() == [0, 0, 0.25, 0.5, 0.75, 0.75, 1]
    assert thr[0] == math.inf


def test_threshold_default_for_logits() -> None:
    y = np.array([0, 0, 1, 1])
    s = np.array([-2.0, -0.5, 0.5, 3.0])
    assert binary_metrics(y, s)["threshold"] == 0.0
    assert binary_metrics(y, s)["accuracy"] == 1.0
    assert binary_metrics(y, s, threshold=1.0)["accuracy"] == 0.75


def test_max_sic_needs_background_statistics() -> None:
    y, s = gaussian(20_000, 2.0)
    value = max_sic(y, s)
    eff_s, eff_b, _ = roc_points(y, s)
    ok = eff_b * 10_000 >= 10
    assert value == pytest.approx(np.max(eff_s[ok] / np.sqrt(eff_b[ok])))
    assert math.isnan(max_sic(y[:20], s[:20], min_background=100))


def test_bootstrap_contains_estimate_and_shrinks() -> None:
    widths = []
    for n in (1_000, 30_000):
        y, s = gaussian(n, 1.0, seed=n)
        lo, hi = bootstrap_interval("auc", y, s)
        assert lo <= auc(y, s) <= hi
        widths.append(hi - lo)
    assert widths[1] < widths[0] / 3
    # generic callables take the slow path and agree with the fast one
    y, s = gaussian(1_000, 1.0, seed=1)
    fast = bootstrap_interval(auc, y, s, n_boot=50)
    slow = bootstrap_interval(lambda a, b: auc(a, b), y, s, n_boot=50)
    assert fast == pytest.approx(slow)


def test_bootstrap_is_fast_for_100k() -> None:
    y, s = gaussian(100_000, 1.0)
    t0 = time.perf_counter()
    bootstrap_interval("auc", y, s, n_boot=200)
    assert time.perf_counter() - t0 < 5.0


@pytest.mark.parametrize(
    ("labels", "scores", "message"),
    [
        ([0, 1, 1], [0.1, 0.2], "different lengths"),
        ([0, 1, 1], [0.1, float("nan"), 0.3], "NaN"),
        ([1, 1, 1], [0.1, 0.2, 0.3], "only signal"),
        ([0, 2, 1], [0.1, 0.2, 0.3], r"0 \(background\) or 1"),
        ([], [], "no events"),
    ],
)
def test_bad_inputs_one_line_errors(labels: list, scores: list, message: str) -> None:
    with pytest.raises(HybridjetError, match=message) as info:
        binary_metrics(np.array(labels), np.array(scores))
    assert "\n" not in str(info.value)


def test_split_metrics_of_a_one_class_split_gives_counts_and_the_scores_are_written(tmp_path):
    from hybridjet.eval.metrics import split_metrics
    from hybridjet.eval.scores import read_scores
    from hybridjet.run import write_split_scores

    rng = np.random.default_rng(0)
    y = (rng.random(200) < 0.3).astype(int)
    s = rng.random(200)
    assert split_metrics(y, s) == binary_metrics(y, s)  # both classes: the full metrics
    assert split_metrics(np.zeros(7, np.int8), s[:7]) == {"n_events": 7, "n_signal": 0, "n_background": 7}
    # a small test split of rare signal holds background only: its scores are written, not refused
    out = write_split_scores(tmp_path, "test", np.arange(7), s[:7], np.zeros(7, np.int8), "gbdt")
    assert out == {"n_events": 7, "n_signal": 0, "n_background": 7}
    scores = read_scores(tmp_path / "scores.h5", "test")
    assert len(scores.score) == 7 and (scores.label == 0).all()
