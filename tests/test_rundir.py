"""``RunDir``: the one owner of a run directory's metrics and scores files, which the recipes, the search, the study
and ``compare`` read and write through."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hybridjet.errors import InputFileError
from hybridjet.rundir import RunDir


def test_metrics_and_scores_round_trip(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    assert run.read_metrics(missing_ok=True) == {}
    with pytest.raises(InputFileError, match="metrics.json: not found"):
        run.read_metrics()
    run.path.mkdir()
    run.write_metrics({"name": "a", "auc": float("nan")})
    run.update_metrics(model="gbdt")
    assert run.read_metrics() == {"name": "a", "auc": None, "model": "gbdt"}  # strict JSON: NaN is null
    ids, score, label = np.arange(5), np.linspace(0, 1, 5, dtype=np.float32), np.array([0, 1, 0, 1, 1], np.int8)
    assert run.write_scores("test", ids, score, label, attrs={"model": "gbdt"}) == run.scores_file
    run.write_scores("data", ids[:2], score[:2], label[:2])  # another split, the first kept
    got = run.read_scores("test")
    np.testing.assert_array_equal(got.event_id, ids) and np.testing.assert_array_equal(got.label, label)
    assert len(run.read_scores("data").score) == 2


def test_a_broken_metrics_file_is_one_line_naming_it(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    run.metrics_file.write_text("[1, 2]")
    with pytest.raises(InputFileError, match="expected a JSON object") as info:
        run.read_metrics()
    assert str(run.metrics_file) in str(info.value) and "\n" not in str(info.value)
    run.metrics_file.write_text("{not json")
    with pytest.raises(InputFileError, match="not valid JSON"):
        run.read_metrics()
