"""A run directory's files: their names, in one place, and :class:`RunDir`, through which modules read and write
a run's metrics and scores. :mod:`hybridjet.run` holds what a classifier writes into a run (its record and
weights)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

#: the run's record: class, architecture, feature set and normalisation, base-model identity (JSON)
RUN_MODEL_FILE = "model.json"
#: the trainable weights of a net (safetensors); the trees' arrays are TREES_FILE
RUN_WEIGHTS_FILE = "weights.safetensors"
TREES_FILE = "trees.safetensors"
#: the run's metrics (strict JSON) and its per-event scores (one HDF5 group per split)
METRICS_FILE = "metrics.json"
SCORES_FILE = "scores.h5"
#: the lock a training holds on its run directory, and a study's per-run record
RUN_LOCK = ".hybridjet.lock"
STUDY_RECORD = "study.json"


class RunDir:
    """A run directory, the owner of its files' names and formats: ``metrics.json`` (strict JSON, written
    atomically) and ``scores.h5`` (one HDF5 group per split, :mod:`hybridjet.eval.scores`). Modules read and write a
    run's metrics and scores through it, never by path."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    @property
    def metrics_file(self) -> Path:
        """``<run>/metrics.json``."""
        return self.path / METRICS_FILE

    @property
    def scores_file(self) -> Path:
        """``<run>/scores.h5``."""
        return self.path / SCORES_FILE

    def read_metrics(self, missing_ok: bool = False) -> dict[str, Any]:
        """The run's metrics (``{}`` for none with ``missing_ok``); one line for a file that is not a JSON object."""
        from hybridjet.errors import InputFileError

        if missing_ok and not self.metrics_file.exists():
            return {}
        try:
            metrics = json.loads(self.metrics_file.read_text())
        except FileNotFoundError:
            raise InputFileError(self.metrics_file, "not found") from None
        except (OSError, ValueError) as exc:
            raise InputFileError(self.metrics_file, f"not valid JSON ({exc})") from None
        if not isinstance(metrics, dict):
            raise InputFileError(self.metrics_file, "expected a JSON object with at least 'name' and 'model'")
        return metrics

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        """Replace the run's metrics, atomically (non-finite numbers are written as null)."""
        from hybridjet.io_utils import write_json

        write_json(self.metrics_file, metrics)

    def update_metrics(self, **fields: Any) -> None:
        """Merge ``fields`` into the run's metrics."""
        self.write_metrics({**self.read_metrics(missing_ok=True), **fields})

    def read_scores(self, split: str = "test") -> Any:
        """One split of the run's scores (:class:`~hybridjet.eval.scores.ScoreSet`)."""
        from hybridjet.eval.scores import read_scores

        return read_scores(self.scores_file, split)

    def write_scores(self, split: str, event_id: Any, score: Any, label: Any, attrs: dict[str, Any] | None = None,
                     split_attrs: dict[str, Any] | None = None) -> Path:
        """Write (or replace) one split of the run's scores, keeping the others
        (:func:`~hybridjet.eval.scores.write_scores`)."""
        from hybridjet.eval.scores import write_scores

        return write_scores(self.scores_file, split, event_id, score, label, attrs, split_attrs)
