"""Evaluation outputs of every data-parallel rank, each event exactly once, and the epoch's evaluation metrics."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from hybridjet.eval.metrics import auc_or_nan


def gather_events(module: Any, outputs: list[dict[str, torch.Tensor]],
                  empty: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """Per-event tensors (``event_id`` and the fields of ``empty``, which gives their dtypes for a rank with no
    events) of a LightningModule's batches on this rank; under DDP from every rank, each event exactly once, sorted
    by event id. Ranks may hold different numbers of events (the distributed sampler repeats some to even them out):
    padded to the longest, all-gathered, the padding cut, the first copy of each event id kept."""
    if module._trainer is None or module.trainer.world_size <= 1:
        return {k: torch.cat([o[k] for o in outputs]).numpy() for k in outputs[0]} if outputs else {}
    empty = {**empty, "event_id": torch.zeros(0, dtype=torch.long)}
    merged = {k: torch.cat([o[k] for o in outputs]) if outputs else v for k, v in empty.items()}
    sizes = module.all_gather(torch.tensor(len(merged["event_id"]), device=module.device)).reshape(-1).cpu()
    longest = int(sizes.max())
    gathered = {}
    for k, v in merged.items():
        padded = torch.zeros(longest, dtype=v.dtype)
        padded[: len(v)] = v
        ranks = module.all_gather(padded.to(module.device)).reshape(len(sizes), longest).cpu()
        gathered[k] = torch.cat([ranks[r, : int(n)] for r, n in enumerate(sizes)]).numpy()
    if len(gathered["event_id"]) == 0:
        return {}
    _, first = np.unique(gathered["event_id"], return_index=True)
    return {k: v[first] for k, v in gathered.items()}


def log_eval(module: Any, outputs: list[dict[str, torch.Tensor]], prefix: str) -> dict[str, np.ndarray]:
    """Log ``<prefix>_loss``, ``_auc`` and ``_acc`` of an evaluation epoch's logits (every rank's events, each
    once) on ``module``; returns the merged per-event outputs (empty when there were none)."""
    merged = gather_events(module, outputs, empty={"score": torch.zeros(0), "label": torch.zeros(0)})
    if not merged:
        return merged
    logits, labels = merged["score"], merged["label"]
    loss = nn.functional.binary_cross_entropy_with_logits(torch.from_numpy(logits), torch.from_numpy(labels))
    acc = float(((logits > 0) == (labels > 0.5)).mean())
    module.log_dict({f"{prefix}_loss": loss.item(), f"{prefix}_auc": auc_or_nan(labels, logits),
                     f"{prefix}_acc": acc}, prog_bar=True, sync_dist=False)
    return merged
