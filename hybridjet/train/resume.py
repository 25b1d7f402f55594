"""What a checkpoint must carry beyond Lightning's own state for a resumed run to equal the uninterrupted one.

Lightning restores weights, optimiser, schedule and loop progress, and hybridjet's training batches follow the
restored progress (:mod:`hybridjet.data.batches`); the random streams that dropout draws from are saved here.
"""

from __future__ import annotations

from typing import Any

import torch

RNG_KEY = "hybridjet_rng"


def rng_state() -> dict[str, Any]:
    """The torch random states (CPU, and every CUDA device once CUDA is initialised), as tensors."""
    state: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any] | None) -> None:
    """Set the random states :func:`rng_state` returned (nothing when ``state`` is empty)."""
    if not state:
        return
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_rng(checkpoint: dict[str, Any]) -> None:
    """Store the random states in a checkpoint being written (``on_save_checkpoint``)."""
    checkpoint[RNG_KEY] = rng_state()


def load_rng(checkpoint: dict[str, Any]) -> None:
    """Restore the random states of a checkpoint being loaded (``on_load_checkpoint``)."""
    restore_rng(checkpoint.get(RNG_KEY))
