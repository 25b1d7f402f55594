"""Fixtures of the eval tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from eval_helpers import make_run


@pytest.fixture
def two_runs(tmp_path: Path) -> tuple[Path, Path]:
    a = make_run(tmp_path, "hybrid", 2.0, seed=1, trainable_params=1_234_567, train_time_s=75.0)
    b = make_run(tmp_path, "gbdt", 1.0, seed=2, probability=False, infer_events_per_s=25_000.0)
    return a, b
