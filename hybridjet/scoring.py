"""The scoring side of an event classifier (a mixin of :class:`hybridjet.train.classifiers.EventClassifier`):
signal probabilities of jets.h5 files, in-memory jets or feature arrays, in bounded memory; compiled kernels kept
for the next process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hybridjet import compile_cache
from hybridjet.data.columnar import scores_like
from hybridjet.data.events import EventFeatures, iter_event_batches
from hybridjet.errors import HybridjetError
from hybridjet.runtime import default_scoring_batch


class Scoring:
    """``predict_proba`` and friends for a classifier with ``net``, ``normalizer``, ``feature_set``, ``run_dir``
    and ``loop_scores``."""

    compiled_artifacts_kept: Path | None = None  # the file this model last kept in this machine's cache

    def scoring_batch_size(self) -> int:
        """Events per forward pass when scoring and no batch size is given."""
        return default_scoring_batch(self.device, getattr(self.net, "llm", None) is not None)

    @torch.no_grad()
    def predict_proba(self, events: Any, batch_size: int | None = None, progress: bool = False) -> np.ndarray:
        """Signal probabilities (sigmoid of the logit) for a jets.h5 path (read in chunks), JetArrays/JetDataset,
        or — for the hybrid — a raw feature array as :func:`hybridjet.data.features.event_features` returns it."""
        out = [probs for _, probs in self.iter_probabilities(events, batch_size, progress)]
        return scores_like(events, np.concatenate(out) if out else np.zeros(0, np.float32))

    @torch.no_grad()
    def iter_probabilities(self, events: Any, batch_size: int | None = None,
                           progress: bool = False) -> Iterator[tuple[dict[str, torch.Tensor], np.ndarray]]:
        """``(batch, signal probabilities)`` per batch of ``events``, so callers keep the batch's ids and labels."""
        if self.normalizer is None:
            raise HybridjetError("model: no feature normalisation (train it or load a run with hybridjet.load_run)")
        self.eval()
        size = self.scoring_batch_size() if batch_size is None else batch_size
        inputs = EventFeatures(self.feature_set, self.normalizer)
        for i, batch in enumerate(iter_event_batches(inputs, events, size, progress)):
            # batches are full but for the last, which loop_scores pads where that saves a compilation
            yield batch, torch.sigmoid(self.loop_scores(batch, "score", i, size).float()).cpu().numpy()
        self.save_compiled_artifacts()

    def save_compiled_artifacts(self) -> Path | None:
        """Keep what ``torch.compile`` built for this run in this machine's cache (:mod:`hybridjet.compile_cache`);
        returns the file written, if any."""
        device = self.compiled_device()
        if self.run_dir is None or device is None:
            return None
        written = compile_cache.save_compiled(self.run_dir, device)
        self.compiled_artifacts_kept = written or self.compiled_artifacts_kept
        return written

    def compiled_device(self) -> torch.device | None:
        """Where the net's layers were compiled (``None``: not compiled)."""
        return None

    def follow_run_dir(self) -> None:
        """Tell the net which run it belongs to (compiled kernels are kept per run)."""
