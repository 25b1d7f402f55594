"""The thin Python API over finished runs: load any run directory, score events with it. Every classifier a run
holds — the nets and the trees — implements one protocol, :class:`Classifier`; :data:`RUN_LOADERS` says how each
kind of run is loaded."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from hybridjet.models.classical import GradientBoostedTrees
from hybridjet.run import read_run_metadata
from hybridjet.train.classifiers import EventClassifier


@runtime_checkable
class Classifier(Protocol):
    """What every classifier a run holds does: score events (a jets.h5 path, :class:`JetArrays` or a feature
    matrix) as signal probabilities, all at once or batch by batch, describe itself as a run record, and write
    itself as a run directory."""

    def predict_proba(self, events: Any, batch_size: int | None = None, progress: bool = False) -> np.ndarray:
        """Signal probability of every event."""
        ...

    def iter_probabilities(self, events: Any, batch_size: int | None = None,
                           progress: bool = False) -> Iterator[tuple[dict[str, Any], np.ndarray]]:
        """``(batch, signal probabilities)`` one batch at a time, the batch keeping its event ids and labels."""
        ...

    def run_metadata(self) -> dict[str, Any]:
        """The record a run directory keeps of it."""
        ...

    def save_run(self, run_dir: str | Path) -> None:
        """Write it as a run directory."""
        ...


def _load_trees(run_dir: str | os.PathLike[str], model: str | None = None, dense: bool = False) -> Classifier:
    return GradientBoostedTrees.from_pretrained(run_dir)  # no LLM: ``model`` and ``dense`` do not apply


#: a run record's ``class`` -> how such a run is loaded (any other class: an LLM classifier, by its record)
RUN_LOADERS: dict[str, Callable[..., Classifier]] = {GradientBoostedTrees.__name__: _load_trees}


def load_run(run_dir: str | os.PathLike[str], model: str | None = None, dense: bool = False) -> Classifier:
    """The classifier a run directory holds, ready to score: a hybrid, an ablation or a text-baseline
    :class:`~hybridjet.train.classifiers.EventClassifier` (its base LLM resolved from the run's record, or ``model``;
    ``dense`` as in :meth:`EventClassifier.from_pretrained`), or :class:`GradientBoostedTrees`; each a
    :class:`Classifier`."""
    loader = RUN_LOADERS.get(read_run_metadata(run_dir).get("class"), EventClassifier.from_pretrained)
    return loader(run_dir, model=model, dense=dense)
