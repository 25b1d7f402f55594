"""Keep third-party chatter out of hybridjet's own output (the progress bars and summaries stay)."""

from __future__ import annotations

import logging
import warnings


def quiet_third_party(progress_bars: bool = True) -> None:
    """Silence Lightning's hardware/tip banners, bitsandbytes' optional-kernel notice and known deprecations;
    with ``progress_bars=False`` also transformers' weight-loading bars."""
    if not progress_bars:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero",
                 "lightning.pytorch.accelerators.cuda", "bitsandbytes.backends.cpu.ops"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=r".*Couldn't infer the batch indices.*")
    quiet_training_warnings()


def quiet_training_warnings() -> None:
    """Silence Lightning's warnings about loaders that do not apply to hybridjet's training batches: they resume
    mid-epoch by following the trainer's progress (:mod:`hybridjet.data.batches`), which Lightning's check for a
    loader with a state of its own does not see, and they run in the training process (no workers)."""
    warnings.filterwarnings("ignore", message=r".*your dataloader is not resumable.*")
    warnings.filterwarnings("ignore", message=r".*Your `IterableDataset` has `__len__` defined.*")
