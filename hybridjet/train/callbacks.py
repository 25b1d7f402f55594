"""Callbacks every classifier recipe uses: best-by-val-AUC and ``last.ckpt`` checkpoints, early stopping, the run
export after ``fit`` and the ``predict`` scores writer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter, EarlyStopping, ModelCheckpoint

from hybridjet.eval.scores import data_of
from hybridjet.rundir import RunDir
from hybridjet.train.classifiers import EventClassifier
from hybridjet.train.gather import gather_events

#: what early stopping and the best checkpoint may watch, and which way is better
MONITORS = {"val_auc": "max", "val_loss": "min"}


class RunExport(Callback):
    """After ``fit``: reload the best checkpoint's weights and export the run (safetensors + JSON)."""

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not isinstance(pl_module, EventClassifier):
            return
        best = next((cb.best_model_path for cb in trainer.checkpoint_callbacks if cb.monitor), "")
        if best and Path(best).exists():  # on every rank: under DDP the test pass after fit uses all of them
            state = trainer.strategy.checkpoint_io.load_checkpoint(best)["state_dict"]
            pl_module.load_state_dict(state, strict=False)
        if trainer.is_global_zero:
            pl_module.save_run(trainer.default_root_dir)
            pl_module.save_compiled_artifacts()


class ScoresWriter(BasePredictionWriter):
    """``predict`` writes ``<run>/scores.h5`` (split = the datamodule's ``predict_split``); under DDP rank 0 writes
    every rank's predictions, each event once (sorted by event id)."""

    def __init__(self) -> None:
        super().__init__(write_interval="epoch")

    def write_on_epoch_end(self, trainer: Trainer, pl_module: LightningModule, predictions: Any,
                           batch_indices: Any) -> None:
        import numpy as np

        batches = predictions[0] if predictions and isinstance(predictions[0], list) else predictions
        # a collective under DDP: every rank takes part (the CLI's models are EventClassifiers)
        merged = gather_events(pl_module, list(batches), empty={"score": torch.zeros(0), "label": torch.zeros(0)})
        if not trainer.is_global_zero or not merged:
            return
        split = getattr(trainer.datamodule, "predict_split", "predict")
        path = RunDir(trainer.default_root_dir).write_scores(split, merged["event_id"], merged["score"].astype(np.float32),
                     merged["label"].astype(np.int8), attrs={"model": getattr(pl_module, "model_kind", "model"),
                                                             "score_kind": "probability"},
                     split_attrs=data_of(trainer.datamodule, split))
        print(f"scores of {len(merged['score'])} events ({split} split) -> {path}")


def run_callbacks(dirpath: str | None = None, every_n_train_steps: int = 50,
                  select_by: str = "val_auc") -> list[Callback]:
    """The best checkpoint by ``select_by`` (``val_auc`` or ``val_loss``), ``last.ckpt`` every N steps (for
    resuming) and the run export after fit."""
    return [
        ModelCheckpoint(dirpath=dirpath, monitor=select_by, mode=MONITORS[select_by], filename="best", save_top_k=1,
                        enable_version_counter=False),
        ModelCheckpoint(dirpath=dirpath, save_last=True, save_top_k=0, every_n_train_steps=every_n_train_steps),
        RunExport(),
    ]


def early_stopping(patience: int, monitor: str = "val_auc") -> EarlyStopping:
    """Stop when ``monitor`` (``val_auc`` or ``val_loss``) has not improved for ``patience`` validations."""
    return EarlyStopping(monitor=monitor, mode=MONITORS[monitor], patience=patience)


def default_precision() -> str:
    """``bf16-mixed`` (bf16 autocast) on GPUs that support it, else full precision (``32-true``)."""
    return "bf16-mixed" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "32-true"
