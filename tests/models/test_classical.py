"""The trees baseline's run directory: strict-JSON metrics.json that ``hybridjet compare`` reads."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

from hybridjet.data.datamodule import JetDataModule
from hybridjet.train.recipes import train_gbdt

ROOT = Path(__file__).resolve().parents[2]


def _no_constants(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def test_an_infinite_rejection_is_null_in_a_strict_metrics_json(toy_jets_h5, tmp_path):
    run_dir = tmp_path / "gbdt"
    metrics = train_gbdt(JetDataModule(str(toy_jets_h5), batch_size=32), run_dir, max_iter=20)
    assert math.isinf(metrics["test"]["rejection_at_0.3"])  # no background passes at eps_S = 0.3
    text = (run_dir / "metrics.json").read_text()
    written = json.loads(text, parse_constant=_no_constants)  # NaN / Infinity / -Infinity refused
    assert written["test"]["rejection_at_0.3"] is None
    assert written["test"]["auc"] == metrics["test"]["auc"]
    compared = subprocess.run([sys.executable, "-m", "hybridjet.cli", "compare", str(run_dir), "--out",
                               str(tmp_path / "report"), "--bootstrap", "0"], capture_output=True, text=True,
                              timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert compared.returncode == 0, compared.stderr[-2000:]
    assert "| gbdt |" in compared.stdout and "> " in compared.stdout  # the unbounded rejection, as a bound
    json.loads((tmp_path / "report" / "comparison.json").read_text(), parse_constant=_no_constants)


def test_fitting_keeps_the_callers_warning_filters(toy_jets_h5, monkeypatch):
    """scikit-learn's binning threads reset the warning filters inside catch_warnings(), which is not thread-safe:
    two overlapping can leave none (seen as Lightning's and scikit-learn's warnings flooding a search's output
    after some dozens of tree fits). The race is rare, so the fit here resets them as such an overlap does."""
    import warnings

    from sklearn.ensemble import HistGradientBoostingClassifier

    from hybridjet.models.classical import GradientBoostedTrees

    fit = HistGradientBoostingClassifier.fit

    def fit_with_overlapping_threads(self, *args, **kwargs):
        warnings.resetwarnings()
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(HistGradientBoostingClassifier, "fit", fit_with_overlapping_threads)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="a filter of the caller's")
        before = list(warnings.filters)
        GradientBoostedTrees(max_iter=5).fit(JetDataModule(str(toy_jets_h5), batch_size=32))
        assert warnings.filters == before
