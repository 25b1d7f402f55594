"""The training recipes, one function per task, shared by the CLI, the demo and the benchmark scripts: an event
classifier into a run directory (:func:`train_classifier`), the gradient-boosted trees
(:func:`train_gbdt`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
from lightning.pytorch.loggers import CSVLogger

from hybridjet import checks
from hybridjet.data.datamodule import JetDataModule
from hybridjet.errors import HybridjetError
from hybridjet.eval.metrics import split_metrics
from hybridjet.eval.scores import data_of
from hybridjet.models.classical import GradientBoostedTrees
from hybridjet.quiet import quiet_training_warnings
from hybridjet.run import RunClaim
from hybridjet.rundir import RunDir
from hybridjet.train.callbacks import MONITORS, ScoresWriter, default_precision, early_stopping, run_callbacks
from hybridjet.train.checkpoints import DataCheckpointIO, remove_partial_checkpoints
from hybridjet.train.classifiers import EventClassifier


def trainer_defaults() -> dict[str, Any]:
    """The Trainer settings every classifier recipe starts from (the CLI's defaults, which configs can override):
    best-by-val-AUC and ``last.ckpt`` checkpoints, the run export after fit, ``predict``'s scores writer, checkpoints
    as data, bf16 autocast on a GPU, gradient clipping at 1."""
    return {
        "precision": default_precision(),
        "callbacks": [*run_callbacks(), ScoresWriter()],
        "plugins": [DataCheckpointIO()],
        "default_root_dir": "runs/default",
        "gradient_clip_val": 1.0,
        "log_every_n_steps": 10,
        "num_sanity_val_steps": 0,
        "enable_model_summary": False,
    }


def train_classifier(
    model: EventClassifier,
    datamodule: JetDataModule,
    run_dir: str | Path,
    max_epochs: int = 1,
    progress: bool = True,
    ckpt_path: str | None = None,
    checkpoint_every_n_steps: int = 50,
    early_stopping_patience: int | None = None,
    early_stopping_monitor: str = "val_auc",
    select_by: str = "val_auc",
    **trainer_kwargs: Any,
) -> dict[str, float]:
    """The classifier recipe: fit ``model`` into ``run_dir`` (the best weights by ``select_by``, ``val_auc`` or
    ``val_loss``; stopping early after ``early_stopping_patience`` validations without improvement of
    ``early_stopping_monitor``, if given; resuming from ``ckpt_path``), export
    the run and score the test split; returns the metrics. ``trainer_kwargs`` override :func:`trainer_defaults`
    (``callbacks`` among them join the recipe's own)."""
    quiet_training_warnings()
    checks.training_budget({"max_epochs": max_epochs, **trainer_kwargs})
    checks.integer("checkpoint_every_n_steps", checkpoint_every_n_steps, 1)
    checks.integer("early_stopping_patience", early_stopping_patience, 0, optional=True)
    for setting, value in (("early_stopping_monitor", early_stopping_monitor), ("select_by", select_by)):
        if value not in MONITORS:
            raise HybridjetError(f"{setting}: expected one of {', '.join(MONITORS)}, got {value!r}")
    run_dir = Path(run_dir)
    with RunClaim(run_dir):
        return _fit_and_test(model, datamodule, run_dir, max_epochs, progress, ckpt_path, checkpoint_every_n_steps,
                             early_stopping_patience, early_stopping_monitor, select_by, trainer_kwargs)


def _fit_and_test(model: EventClassifier, datamodule: JetDataModule, run_dir: Path, max_epochs: int, progress: bool,
                  ckpt_path: str | None, checkpoint_every_n_steps: int, early_stopping_patience: int | None,
                  early_stopping_monitor: str, select_by: str, trainer_kwargs: dict[str, Any]) -> dict[str, float]:
    """:func:`train_classifier` in its claimed run directory."""
    remove_partial_checkpoints(run_dir / "checkpoints")
    callbacks = [*run_callbacks(str(run_dir / "checkpoints"), checkpoint_every_n_steps, select_by), ScoresWriter(),
                 *trainer_kwargs.pop("callbacks", [])]
    if early_stopping_patience is not None:
        callbacks.append(early_stopping(early_stopping_patience, early_stopping_monitor))
    settings = {**trainer_defaults(), "callbacks": callbacks, "default_root_dir": str(run_dir),
                "logger": CSVLogger(save_dir=str(run_dir), name="logs"), "max_epochs": max_epochs,
                "enable_progress_bar": progress, **trainer_kwargs}
    trainer = L.Trainer(**settings)
    trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    best = next((cb.best_model_score for cb in trainer.checkpoint_callbacks if cb.monitor), None)
    if best is not None:
        metrics[f"best_{select_by}"] = float(best)
    metrics["epochs_run"] = trainer.current_epoch  # the epochs completed (fewer than max_epochs: stopped early)
    trainer.test(model, datamodule=datamodule, verbose=False)
    metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
    return metrics


def train_gbdt(
    datamodule: JetDataModule,
    run_dir: str | Path,
    max_iter: int = 500,
    learning_rate: float = 0.1,
    max_leaf_nodes: int = 31,
    seed: int = 0,
    class_weight: str | None = None,
) -> dict[str, Any]:
    """Fit the trees, save the run, score the test split into ``scores.h5`` + ``metrics.json`` in ``run_dir``,
    like every other run. Returns the metrics (``metrics.json`` is strict JSON: a non-finite number, such as an
    unbounded 1/ε_B, is ``null``)."""
    run_dir = Path(run_dir)
    with RunClaim(run_dir):
        return _fit_trees(GradientBoostedTrees(max_iter, learning_rate, max_leaf_nodes, seed, class_weight), datamodule,
                          run_dir)


def _fit_trees(model: GradientBoostedTrees, datamodule: JetDataModule, run_dir: Path) -> dict[str, Any]:
    """:func:`train_gbdt` in its claimed run directory."""
    model.fit(datamodule)
    model.save_run(run_dir)
    test = datamodule.splits["test"].tensors
    started = time.perf_counter()
    score = model.score_features(test["features"].numpy())
    infer_seconds = time.perf_counter() - started
    labels = test["label"].numpy().astype(np.int8)
    run = RunDir(run_dir)
    run.write_scores("test", test["event_id"].numpy(), score, labels,
                     attrs={"model": "gbdt", "score_kind": "probability"}, split_attrs=data_of(datamodule, "test"))
    metrics = {
        "name": run_dir.name, "model": "gbdt", "trainable_params": model._check_fitted().n_nodes(),
        **model.timing, "infer_events_per_s": len(score) / max(infer_seconds, 1e-9),
        "iterations": model.iterations, "feature_set": datamodule.feature_set,
        "test": split_metrics(labels, score),
    }
    run.write_metrics(metrics)
    return metrics

