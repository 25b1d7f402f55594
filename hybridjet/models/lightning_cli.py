"""``hybridjet fit|validate|test|predict``: LightningCLI over the event classifiers and the jets.h5 datamodule.

The run directory is ``trainer.default_root_dir`` (e.g. ``runs/hybrid``): checkpoints go to ``<run>/checkpoints``
(``last.ckpt`` + best by val AUC), CSV logs to ``<run>/logs``, and after ``fit`` the best weights are exported as
safetensors + JSON and the test split is scored into ``scores.h5`` / ``metrics.json``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter, EarlyStopping, ModelCheckpoint
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback

from hybridjet.errors import HybridjetError
from hybridjet.models.base import EventClassifier
from hybridjet.models.datamodule import JetDataModule


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temporary file and renamed, so a kill never leaves a half-written ``.ckpt``
    (a SIGKILL mid-write can leave the ``.NAME.ckpt.tmp`` itself: never read, removed when a run starts)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        torch.save(checkpoint, tmp)
        os.replace(tmp, path)

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        # our checkpoints hold tensors and plain metadata only: load without unpickling code where possible
        try:
            return torch.load(path, map_location=map_location or "cpu", weights_only=True)
        except Exception:  # noqa: BLE001 - older checkpoints with non-tensor hparams
            return torch.load(path, map_location=map_location or "cpu", weights_only=False)


def remove_partial_checkpoints(checkpoint_dir: str | Path) -> list[Path]:
    """Delete ``.*.ckpt.tmp`` files a killed run left in ``checkpoint_dir``; returns what was removed."""
    removed = sorted(Path(checkpoint_dir).glob(".*.ckpt.tmp"))
    for partial in removed:
        partial.unlink(missing_ok=True)
    return removed


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

        from hybridjet.eval.scores import write_scores

        batches = predictions[0] if predictions and isinstance(predictions[0], list) else predictions
        # a collective under DDP: every rank takes part (the CLI's models are EventClassifiers)
        merged = pl_module.gather_events(list(batches), empty={"score": torch.zeros(0), "label": torch.zeros(0)})
        if not trainer.is_global_zero or not merged:
            return
        split = getattr(trainer.datamodule, "predict_split", "predict")
        path = Path(trainer.default_root_dir) / "scores.h5"
        write_scores(path, split, merged["event_id"], merged["score"].astype(np.float32),
                     merged["label"].astype(np.int8), attrs={"model": getattr(pl_module, "model_kind", "model"),
                                                             "score_kind": "probability"})
        print(f"scores of {len(merged['score'])} events ({split} split) -> {path}")


class HybridjetCLI(LightningCLI):
    """LightningCLI with the run-directory conventions and a test pass after ``fit``."""

    def add_arguments_to_parser(self, parser: Any) -> None:
        parser.add_argument("--test_after_fit", type=bool, default=True,
                            help="score the test split with the best weights after fit (scores.h5, metrics.json)")
        parser.add_argument("--checkpoint_every_n_steps", type=int, default=50,
                            help="write <run>/checkpoints/last.ckpt every N optimizer steps (resume with --ckpt_path last)")
        parser.add_argument("--early_stopping_patience", type=int | None, default=None,
                            help="stop when val_auc has not improved for N validations (default: never)")

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[Callback]) -> Trainer:
        root = Path(config.get("default_root_dir") or "runs/default")
        if config.get("logger") in (None, True):
            from lightning.pytorch.loggers import CSVLogger

            config["logger"] = CSVLogger(save_dir=str(root), name="logs")
        patience = self.config_init[self.subcommand].get("early_stopping_patience")
        if patience is not None:
            callbacks = [*callbacks, early_stopping(patience)]
        remove_partial_checkpoints(root / "checkpoints")
        trainer = super()._instantiate_trainer(config, callbacks)
        every = self.config_init[self.subcommand].get("checkpoint_every_n_steps", 50)
        for cb in trainer.callbacks:
            if isinstance(cb, ModelCheckpoint):
                if cb.dirpath is None:
                    cb.dirpath = str(root / "checkpoints")
                if cb.save_last and cb.monitor is None:
                    cb._every_n_train_steps = every
        return trainer

    def after_fit(self) -> None:
        if self.config_init[self.subcommand].get("test_after_fit", True) and not self.trainer.interrupted:
            self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=None, verbose=True)


def run_callbacks(dirpath: str | None = None, every_n_train_steps: int = 50) -> list[Callback]:
    """Best-by-val-AUC checkpoint, ``last.ckpt`` every N steps (for resuming) and the run export after fit."""
    return [
        ModelCheckpoint(dirpath=dirpath, monitor="val_auc", mode="max", filename="best", save_top_k=1,
                        enable_version_counter=False),
        ModelCheckpoint(dirpath=dirpath, save_last=True, save_top_k=0, every_n_train_steps=every_n_train_steps),
        RunExport(),
    ]


def early_stopping(patience: int) -> EarlyStopping:
    """Stop when ``val_auc`` has not improved for ``patience`` validations."""
    return EarlyStopping(monitor="val_auc", mode="max", patience=patience)


def default_precision() -> str:
    """``bf16-mixed`` (bf16 autocast) on GPUs that support it, else full precision (``32-true``)."""
    return "bf16-mixed" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "32-true"


def trainer_defaults() -> dict[str, Any]:
    """Defaults every config can override: checkpointing on val AUC, CSV logs, atomic checkpoint writes, bf16
    autocast on a GPU."""
    return {
        "precision": default_precision(),
        "callbacks": [*run_callbacks(), ScoresWriter()],
        "plugins": [AtomicCheckpointIO()],
        "default_root_dir": "runs/default",
        "log_every_n_steps": 10,
        "num_sanity_val_steps": 0,
    }


def main(argv: list[str]) -> int:
    """Run the LightningCLI with ``argv`` (``fit -c configs/hybrid.yaml ...``)."""
    import warnings

    warnings.filterwarnings("ignore", message=".*provide both args and command line arguments.*")
    try:
        HybridjetCLI(
            EventClassifier,
            JetDataModule,
            subclass_mode_model=True,
            trainer_defaults=trainer_defaults(),
            save_config_callback=SaveConfigCallback,
            save_config_kwargs={"overwrite": True},
            seed_everything_default=0,
            args=argv,
            parser_kwargs={"prog": "hybridjet", "default_env": False},
        )
    except FileNotFoundError as exc:
        raise HybridjetError(f"{exc.filename}: file not found") from exc
    return 0
