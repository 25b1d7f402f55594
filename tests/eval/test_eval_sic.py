import json
import math
from pathlib import Path

import numpy as np
import pytest

from hybridjet.errors import HybridjetError
from hybridjet.eval.compare import compare_runs
from hybridjet.eval.scores import write_scores
from hybridjet.eval.sic import SicFloor, band, max_sic, sic_curve, significance


def _separated(n_sig: int = 10, n_bkg: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """Every signal event scores above every background event; background scores distinct."""
    labels = np.concatenate([np.ones(n_sig, np.int8), np.zeros(n_bkg, np.int8)])
    scores = np.concatenate([np.linspace(2.0, 3.0, n_sig), np.linspace(0.0, 1.0, n_bkg)])
    return labels, scores


def test_max_sic_stops_at_the_background_floor():
    labels, scores = _separated()
    # 1e-4 of 1,000 events is less than one event: the floor is one background event, ε_B = 1e-3
    best = max_sic(labels, scores, SicFloor(min_eff_b=1e-4))
    assert best["floor_eff_b"] == pytest.approx(1e-3)
    assert best["max_sic"] == pytest.approx(1 / math.sqrt(1e-3)) and best["eff_s"] == 1.0
    assert max_sic(labels, scores, SicFloor(min_eff_b=1e-2))["max_sic"] == pytest.approx(10.0)
    assert max_sic(labels, scores, SicFloor(min_eff_b=0, min_background=25))["max_sic"] == pytest.approx(1 / 0.025 ** 0.5)
    eff_s, eff_b, sic = sic_curve(labels, scores, SicFloor(min_eff_b=1e-2))
    assert eff_b.min() >= 1e-2 - 1e-12 and eff_b[-1] == 1.0 and sic[-1] == pytest.approx(1.0)
    np.testing.assert_allclose(sic, eff_s / np.sqrt(eff_b))


def test_random_scores_give_no_improvement():
    rng = np.random.default_rng(0)
    labels = (rng.random(40_000) < 0.5).astype(np.int8)
    best = max_sic(labels, rng.random(40_000), SicFloor(min_eff_b=0.05))
    assert best["max_sic"] < 1.25  # ε_S ≈ ε_B: SIC ≈ √ε_B ≤ 1 up to fluctuations


def test_band_and_significance():
    b = band([5.0, 1.0, 4.0, 2.0, 3.0, float("nan")])
    assert b["median"] == 3.0 and b["n"] == 5
    assert b["lo"] == pytest.approx(np.percentile([1, 2, 3, 4, 5], 16))
    assert b["hi"] == pytest.approx(np.percentile([1, 2, 3, 4, 5], 84))
    assert math.isnan(band([])["median"])
    sig = significance(60, 10_000, 5.0)
    assert sig == pytest.approx({"s_over_b": 0.006, "s_over_sqrt_b": 0.6, "best_s_over_sqrt_b": 3.0})


@pytest.mark.parametrize(("kwargs", "match"), [({"min_eff_b": -1}, "evaluation.min_eff_b"),
                                               ({"min_eff_b": 1.0}, "below 1"),
                                               ({"min_background": "ten"}, "evaluation.min_background")])
def test_bad_floors(kwargs, match):
    with pytest.raises(HybridjetError, match=match):
        SicFloor(**kwargs)


def _search_run(root: Path, name: str, shift: float, selection: str | None) -> Path:
    rng = np.random.default_rng(len(name))
    labels = (np.arange(4000) % 20 == 0).astype(np.int8)
    attrs = {"model": "gbdt", "score_kind": "probability"}
    if selection:
        attrs.update(selection=selection, n_signal_sr=60, n_background_sr=10_000)
    write_scores(root / name / "scores.h5", "test", np.arange(4000), 1 / (1 + np.exp(-(rng.normal(size=4000) + shift
                                                                                        * labels))), labels, attrs)
    (root / name / "metrics.json").write_text(json.dumps({"name": name, "model": "gbdt"}))
    return root / name


def test_compare_adds_the_search_columns_for_signal_region_runs(tmp_path):
    runs = [_search_run(tmp_path, "cwola", 1.0, "signal_region"), _search_run(tmp_path, "supervised", 3.0,
                                                                               "signal_region")]
    report = compare_runs(runs, out=tmp_path / "report", n_boot=0, sic_floor=SicFloor(min_eff_b=1e-3))
    cwola, supervised = report.rows
    assert supervised["max_sic_floor"] > cwola["max_sic_floor"] > 1.0
    assert cwola["s_over_sqrt_b"] == pytest.approx(0.6)
    assert cwola["best_s_over_sqrt_b"] == pytest.approx(0.6 * cwola["max_sic_floor"])
    assert "S/√B after cut" in report.table() and "ε_B ≥ 0.001" in report.notes()
    assert (tmp_path / "report" / "sic.png").stat().st_size > 0
    assert set(json.loads((tmp_path / "report" / "comparison.json").read_text())["sic"]) == {"cwola", "supervised"}
    plain = compare_runs([_search_run(tmp_path, "other", 1.0, None), runs[0]], out=None, n_boot=0)
    assert "max_sic_floor" not in plain.rows[0] and not plain.sic_curves
