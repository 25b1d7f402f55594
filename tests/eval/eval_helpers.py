"""Synthetic run directories for the eval tests (a uniquely named module: importable next to other areas' tests)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from hybridjet.eval.scores import write_scores


def make_run(
    root: Path,
    name: str,
    shift: float,
    n: int = 2000,
    seed: int = 0,
    event_offset: int = 0,
    probability: bool = True,
    **info: object,
) -> Path:
    """A run directory with scores.h5 (test split, shuffled event order) and metrics.json."""
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 2).astype(np.int8)  # same labels for every run with the same event ids
    raw = rng.normal(size=n) + shift * labels
    score = 1.0 / (1.0 + np.exp(-raw)) if probability else raw
    order = rng.permutation(n)
    run = root / name
    write_scores(
        run / "scores.h5",
        "test",
        np.arange(n, dtype=np.int64)[order] + event_offset,
        score[order],
        labels[order],
        attrs={"model": name, "score_kind": "probability" if probability else "logit-difference"},
    )
    (run / "metrics.json").write_text(json.dumps({"name": name, "model": name, **info}))
    return run
