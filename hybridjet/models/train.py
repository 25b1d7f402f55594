"""One function per recipe step: train an event classifier into a run directory, then score its test split."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.loggers import CSVLogger

from hybridjet.models.base import EventClassifier
from hybridjet.models.datamodule import JetDataModule
from hybridjet.quiet import quiet_training_warnings
from hybridjet.train.callbacks import default_precision, early_stopping, run_callbacks
from hybridjet.train.checkpoints import DataCheckpointIO, remove_partial_checkpoints


def train_classifier(
    model: EventClassifier,
    datamodule: JetDataModule,
    run_dir: str | Path,
    max_epochs: int = 1,
    progress: bool = True,
    ckpt_path: str | None = None,
    checkpoint_every_n_steps: int = 50,
    early_stopping_patience: int | None = None,
    **trainer_kwargs: Any,
) -> dict[str, float]:
    """Fit ``model`` (best weights by val AUC; stopping early after ``early_stopping_patience`` validations without
    improvement, if given), export the run and score the test split; returns test metrics."""
    quiet_training_warnings()
    trainer_kwargs.setdefault("precision", default_precision())

    remove_partial_checkpoints(Path(run_dir) / "checkpoints")
    callbacks = run_callbacks(str(Path(run_dir) / "checkpoints"), checkpoint_every_n_steps)
    if early_stopping_patience is not None:
        callbacks.append(early_stopping(early_stopping_patience))

    run_dir = Path(run_dir)
    trainer = L.Trainer(
        max_epochs=max_epochs,
        default_root_dir=str(run_dir),
        logger=CSVLogger(save_dir=str(run_dir), name="logs"),
        callbacks=callbacks,
        plugins=[DataCheckpointIO()],
        gradient_clip_val=1.0,
        num_sanity_val_steps=0,
        enable_progress_bar=progress,
        enable_model_summary=False,
        log_every_n_steps=5,
        **trainer_kwargs,
    )
    trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    best = next((cb.best_model_score for cb in trainer.checkpoint_callbacks if cb.monitor), None)
    if best is not None:
        metrics["best_val_auc"] = float(best)
    trainer.test(model, datamodule=datamodule, verbose=False)
    metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
    return metrics
