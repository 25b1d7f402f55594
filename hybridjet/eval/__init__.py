"""Evaluation and comparison: HEP metrics, scores.h5 files, comparison tables and ROC plots."""

from __future__ import annotations

from hybridjet.eval.compare import Report, compare_runs, evaluate
from hybridjet.eval.metrics import binary_metrics, bootstrap_interval, roc_points
from hybridjet.eval.scores import ScoreSet, read_scores, write_scores

__all__ = [
    "Report",
    "ScoreSet",
    "binary_metrics",
    "bootstrap_interval",
    "compare_runs",
    "evaluate",
    "read_scores",
    "roc_points",
    "write_scores",
]
