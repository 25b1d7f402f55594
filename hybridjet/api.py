"""The thin Python API over finished runs: load any run directory, score events with it."""

from __future__ import annotations

import os
from typing import Any

from hybridjet.models.classical import GradientBoostedTrees
from hybridjet.run import read_run_metadata
from hybridjet.train.classifiers import EventClassifier


def load_run(run_dir: str | os.PathLike[str], model: str | None = None, dense: bool = False) -> Any:
    """The classifier a run directory holds, ready to score: a hybrid, an ablation or a text-baseline
    :class:`~hybridjet.train.classifiers.EventClassifier` (its base LLM resolved from the run's record, or ``model``;
    ``dense`` as in :meth:`EventClassifier.from_pretrained`), or :class:`GradientBoostedTrees`. All of them have
    ``predict_proba(events)``."""
    meta = read_run_metadata(run_dir)
    if meta.get("class") == GradientBoostedTrees.__name__:
        return GradientBoostedTrees.from_pretrained(run_dir)
    return EventClassifier.from_pretrained(run_dir, model=model, dense=dense)
