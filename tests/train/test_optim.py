"""One optimiser and schedule for every LLM training: the event classifiers and the text SFT build theirs from the
same settings through the same function."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch

from hybridjet.errors import HybridjetError
from hybridjet.train.optim import Optimization, OptimizerSettings, lr_factor


def rates(module: L.LightningModule, steps: int) -> list[float]:
    """The learning rates of ``module``'s first parameter group over ``steps`` optimiser steps of a trainer that
    plans ``steps`` in all."""
    trainer = L.Trainer(max_steps=steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, accelerator="cpu")
    module.trainer = trainer
    config = module.configure_optimizers()
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
    seen = []
    for _ in range(steps):
        seen.append(optimizer.param_groups[-1]["lr"])
        optimizer.step()
        scheduler.step()
    return seen


@pytest.mark.parametrize("scheduler", ["cosine", "linear", "constant"])
def test_the_schedule_warms_up_then_decays_to_its_floor(scheduler: str) -> None:
    settings = OptimizerSettings(scheduler=scheduler, warmup_steps=4, min_lr_ratio=0.1)
    factor = lr_factor(settings, total_steps=20)
    assert [factor(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert factor(4) == pytest.approx(1.0)
    assert factor(20) == pytest.approx(1.0 if scheduler == "constant" else 0.1)
    values = [factor(s) for s in range(4, 21)]
    assert all(a >= b - 1e-12 for a, b in zip(values, values[1:], strict=False))  # never rises after the warmup


def test_the_classifiers_keep_their_defaults_and_add_the_encoder_rate() -> None:
    classifier = Optimization()
    assert (classifier.warmup_fraction, classifier.min_lr_ratio, classifier.weight_decay) == (0.05, 0.05, 0.01)
    assert lr_factor(classifier, 100)(99) == pytest.approx(0.05, abs=1e-3)
    assert lr_factor(OptimizerSettings(), 100)(99) == pytest.approx(0.0, abs=1e-3)  # the text SFT's: down to 0
    with pytest.raises(HybridjetError, match="optim.scheduler: expected one of cosine"):
        OptimizerSettings(scheduler="step")
    with pytest.raises(HybridjetError, match="optim.optimizer: expected one of adamw"):
        OptimizerSettings(optimizer="sgd")


def test_classifier_and_text_sft_follow_one_schedule(tiny_llama: Path) -> None:
    """The same settings give the same rates whether a classifier or the text SFT trains (before, the two had
    schedules of their own with different warmups and floors)."""
    from hybridjet.runtime import Runtime
    from hybridjet.text.sft import TextSFT
    from hybridjet.train.classifiers import HybridClassifier

    settings = dict(lr=1e-3, scheduler="cosine", warmup_steps=3, min_lr_ratio=0.2)
    text = TextSFT(model=str(tiny_llama), runtime=Runtime(quantization="none"), optim=OptimizerSettings(**settings))
    classifier = HybridClassifier.from_settings(model=str(tiny_llama), quantization="none", n_soft_tokens=2,
                                                **settings)
    classifier.build(4)
    want = [1e-3 * lr_factor(OptimizerSettings(**settings), 12)(s) for s in range(12)]
    torch.testing.assert_close(rates(text, 12), want)
    torch.testing.assert_close(rates(classifier, 12), want)
