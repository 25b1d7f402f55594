"""How every LLM training in the package optimises: the settings (:class:`OptimizerSettings`, the text SFT's;
:class:`Optimization`, the event classifiers', adding the encoder's rate and class weights), one optimiser builder
and one learning-rate schedule (linear warmup, then cosine, linear or constant down to a floor)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from hybridjet import checks
from hybridjet.errors import HybridjetError

OPTIMIZERS = ("adamw", "adamw8bit")
SCHEDULERS = ("cosine", "linear", "constant")


@dataclass(frozen=True)
class OptimizerSettings:
    """The optimiser and its schedule (the text SFT's defaults).

    Args:
        optimizer: ``adamw`` (torch) or ``adamw8bit`` (bitsandbytes).
        lr: peak learning rate of the LLM's trainable (LoRA) weights.
        weight_decay, betas: AdamW's.
        scheduler: ``cosine``, ``linear`` or ``constant`` after the warmup, down to ``min_lr_ratio`` of the rates.
        warmup_steps: optimiser steps of linear warmup; ``None``: ``warmup_fraction`` of the total steps.
    """

    optimizer: str = "adamw"
    lr: float = 2e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    scheduler: str = "cosine"
    warmup_steps: int | None = None
    warmup_fraction: float = 0.0
    min_lr_ratio: float = 0.0

    def __post_init__(self) -> None:
        checks.positive("optim.lr", self.lr)
        checks.non_negative("optim.weight_decay", self.weight_decay)
        if not isinstance(self.betas, list | tuple) or len(self.betas) != 2:
            raise HybridjetError(f"optim.betas: expected two numbers in [0, 1), got {self.betas!r}")
        for beta in self.betas:
            checks.fraction("optim.betas", beta, include_one=False)
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        if self.warmup_steps is not None:
            checks.integer("optim.warmup_steps", self.warmup_steps, 0)
        checks.fraction("optim.warmup_fraction", self.warmup_fraction)
        checks.fraction("optim.min_lr_ratio", self.min_lr_ratio)
        if self.optimizer not in OPTIMIZERS:
            raise HybridjetError(f"optim.optimizer: expected one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.scheduler not in SCHEDULERS:
            raise HybridjetError(f"optim.scheduler: expected one of {', '.join(SCHEDULERS)}, got {self.scheduler!r}")

    def warmup(self, total_steps: int) -> int:
        """The warmup's optimiser steps out of ``total_steps``."""
        steps = self.warmup_steps if self.warmup_steps is not None else int(total_steps * self.warmup_fraction)
        return min(int(steps), total_steps)


@dataclass(frozen=True)
class Optimization(OptimizerSettings):
    """The event classifiers' optimisation: :class:`OptimizerSettings` with the classifiers' defaults (AdamW, warmup
    over 5 % of the steps, cosine decay to 5 % of the rates), plus

    Args:
        encoder_lr: rate of everything outside the LLM (encoder, head).
        class_weight: ``balanced`` weighs signal by N_bkg/N_sig in the loss.
    """

    weight_decay: float = 0.01
    warmup_fraction: float = 0.05
    min_lr_ratio: float = 0.05
    encoder_lr: float = 1e-3
    class_weight: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        checks.positive("optim.encoder_lr", self.encoder_lr)
        if self.class_weight not in (None, "balanced"):
            raise HybridjetError(f"optim.class_weight: expected null or balanced, got {self.class_weight!r}")


def lr_factor(settings: OptimizerSettings, total_steps: int) -> Callable[[int], float]:
    """The rate's multiplier at each optimiser step: ``(step + 1) / warmup`` during the warmup, then the scheduler's
    shape from 1 down to ``min_lr_ratio`` at ``total_steps``."""
    total = max(int(total_steps), 1)
    warmup = settings.warmup(total)
    floor = float(settings.min_lr_ratio)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if settings.scheduler == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(total - warmup, 1))
        shape = 1.0 - progress if settings.scheduler == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))
        return floor + (1.0 - floor) * shape

    return factor


def optimizer_with_schedule(settings: OptimizerSettings, groups: list[dict[str, Any]],
                            total_steps: int) -> dict[str, Any]:
    """Lightning's optimiser config for parameter ``groups`` (each ``{"params": [...], "lr": rate}``; empty groups
    are left out): the settings' optimiser and the :func:`lr_factor` schedule, stepped per optimiser step."""
    groups = [g for g in groups if g["params"]]
    if not groups:
        raise HybridjetError("no trainable parameters (LoRA adapters missing?)")
    kwargs = {"weight_decay": settings.weight_decay, "betas": tuple(settings.betas)}
    if settings.optimizer == "adamw8bit":
        try:
            import bitsandbytes as bnb
        except ImportError:
            raise HybridjetError("optimizer adamw8bit needs bitsandbytes (pip install bitsandbytes)") from None
        optimizer = bnb.optim.AdamW8bit(groups, **kwargs)
    else:
        # not fused=True: Lightning refuses gradient clipping under mixed precision with an optimizer that unscales
        # gradients in its own step, as the fused one does (the SFT recipes clip)
        optimizer = torch.optim.AdamW(groups, **kwargs)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(settings, total_steps))
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
