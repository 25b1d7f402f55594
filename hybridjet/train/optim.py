"""The classifiers' optimisation: AdamW in two parameter groups, linear warmup, cosine decay."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from hybridjet import checks
from hybridjet.errors import HybridjetError


@dataclass(frozen=True)
class Optimization:
    """AdamW with linear warmup and a cosine decay to 5 % of the rates.

    Args:
        lr: rate of the LLM's LoRA weights; encoder_lr: rate of everything outside the LLM (encoder, head).
        weight_decay, warmup_fraction: of the total optimiser steps.
        class_weight: ``balanced`` weighs signal by N_bkg/N_sig in the loss.
    """

    lr: float = 2e-4
    encoder_lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_fraction: float = 0.05
    class_weight: str | None = None

    def __post_init__(self) -> None:
        checks.positive("optim.lr", self.lr)
        checks.positive("optim.encoder_lr", self.encoder_lr)
        checks.non_negative("optim.weight_decay", self.weight_decay)
        checks.fraction("optim.warmup_fraction", self.warmup_fraction)
        if self.class_weight not in (None, "balanced"):
            raise HybridjetError(f"optim.class_weight: expected null or balanced, got {self.class_weight!r}")


def adamw_with_warmup_cosine(optim: Optimization, encoder_params: list[torch.nn.Parameter],
                             llm_params: list[torch.nn.Parameter], total_steps: int) -> dict[str, Any]:
    """Lightning's optimizer config: AdamW with ``encoder_lr`` for the parameters outside the LLM and ``lr`` for the
    LLM's, a linear warmup over ``warmup_fraction`` of ``total_steps`` and a cosine decay to 5 %, stepped per step."""
    groups = [{"params": encoder_params, "lr": optim.encoder_lr}, {"params": llm_params, "lr": optim.lr}]
    optimizer = torch.optim.AdamW([g for g in groups if g["params"]], weight_decay=optim.weight_decay)
    total = max(total_steps, 1)
    warmup = int(total * optim.warmup_fraction)

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = (step - warmup) / max(total - warmup, 1)
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
