"""The Lightning side of the event classifiers: one thin ``LightningModule`` around a model (``net``) — steps, loss,
optimiser and schedule, evaluation with DDP gathering, light checkpoints — plus loading, saving and scoring runs.

:class:`HybridClassifier` (the hybrid and its no-LLM ablation) and :class:`TextPromptClassifier` (the text baseline)
only say which net they hold; a run records the net's architecture config, never how it ran.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import nn

from hybridjet import run
from hybridjet.data.features import Normalizer
from hybridjet.errors import HybridjetError
from hybridjet.eval.scores import data_of
from hybridjet.runtime import pad_batch, padded_batch_size
from hybridjet.train.checkpoints import check_trainable_state, trainable_state
from hybridjet.train.gather import log_eval
from hybridjet.train.optim import Optimization, optimizer_with_schedule
from hybridjet.train.resume import load_rng, save_rng


class ClassifierModule(L.LightningModule):
    """The Lightning steps of an event classifier around ``self.net`` (set by a subclass: logits [B] of a batch).
    Writing the run (``update_metrics``, ``check_base_identity``) and keeping compiled kernels
    (``save_compiled_artifacts``) come from :class:`hybridjet.run.RunIO` and :class:`hybridjet.scoring.Scoring`,
    which :class:`hybridjet.train.classifiers.EventClassifier` combines with it."""

    model_kind = "classifier"
    net: nn.Module

    def __init__(self, optim: Optimization | None = None, run_name: str | None = None) -> None:
        super().__init__()
        self.optim = optim or Optimization()
        self.run_name = run_name
        self.strict_loading = False  # checkpoints hold the trainable weights only
        self.dense_inference = False
        self.normalizer: Normalizer | None = None
        self.feature_set: str | None = None
        self.pos_weight = 1.0
        self.run_dir: Path | None = None  # the run it was loaded from or trains into (kept compiled kernels)
        self.timing: dict[str, float] = {}
        self._eval_outputs: list[dict[str, torch.Tensor]] = []
        self._fit_started: float | None = None
        self._train_events = 0
        self._loop_batch_size: dict[str, int] = {}  # each loop's first batch size this epoch (padding target)

    # ---- the net --------------------------------------------------------------------------------------------
    def forward(self, *inputs: Any) -> torch.Tensor:
        """The net's forward (the hybrid's: logits [B] of normalised features [B, F])."""
        return self.net(*inputs)

    def score(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Logits [B] of a batch."""
        raise NotImplementedError

    def loss(self, batch: dict[str, torch.Tensor], batch_idx: int = 0) -> torch.Tensor:
        logits = self.loop_scores(batch, "train", batch_idx)
        weight = torch.tensor(self.pos_weight, device=logits.device) if self.optim.class_weight == "balanced" else None
        return nn.functional.binary_cross_entropy_with_logits(logits.float(), batch["label"].float(),
                                                              pos_weight=weight)

    def build(self, n_features: int) -> None:
        """Create the layers whose shape depends on the data (once the feature count is known)."""

    def pads_partial_batches(self) -> bool:
        """Whether :meth:`loop_scores` pads a loop's shorter last batch to the loop's size (compiled nets)."""
        return False

    # ---- data hand-over ------------------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if datamodule is None:
            return
        datamodule.setup(stage)
        if self.feature_set is not None and datamodule.feature_set != self.feature_set:
            raise HybridjetError(
                f"data.feature_set: this model was trained on {self.feature_set!r}, got {datamodule.feature_set!r}")
        self.normalizer, self.feature_set = datamodule.normalizer, datamodule.feature_set
        self.pos_weight = datamodule.pos_weight
        self.build(datamodule.n_features)

    # ---- steps ------------------------------------------------------------------------------------------------
    def loop_scores(self, batch: dict[str, torch.Tensor], loop: str, batch_idx: int,
                    batch_size: int | None = None) -> torch.Tensor:
        """``score(batch)`` inside a loop. For a net that :meth:`pads_partial_batches`, a batch shorter than the
        loop's first one this epoch is padded to that size and the padding's logits dropped (events are
        independent: the same logits and gradients), so a compiled net sees one shape and compiles once. With
        ``batch_size`` (scoring), a first batch shorter than it is padded to :func:`padded_batch_size`."""
        n = len(next(iter(batch.values())))  # every field holds one row per event
        if batch_idx == 0 or loop not in self._loop_batch_size:
            self._loop_batch_size[loop] = n if batch_size is None else padded_batch_size(n, batch_size)
        full = self._loop_batch_size[loop]
        if n < full and self.pads_partial_batches():
            return self.score(pad_batch(batch, full))[:n]
        return self.score(batch)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.loss(batch, batch_idx)
        self._train_events += len(batch["label"])
        self.log("train_loss", loss, prog_bar=True, batch_size=len(batch["label"]))
        return loss

    def eval_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        """A validation or test step: the batch's logits kept for the epoch's end."""
        loop = "test" if self._trainer is not None and self.trainer.testing else "validate"
        logits = self.loop_scores(batch, loop, batch_idx).float()
        self._eval_outputs.append(
            {"score": logits.detach().cpu(), "label": batch["label"].cpu(), "event_id": batch["event_id"].cpu()})

    validation_step = eval_step
    test_step = eval_step

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor]:
        scores = self.loop_scores(batch, "predict", batch_idx).float()
        return {"score": torch.sigmoid(scores).cpu(), "event_id": batch["event_id"].cpu(),
                "label": batch["label"].cpu()}

    def on_validation_epoch_end(self) -> None:
        log_eval(self, self._take_eval_outputs(), "val")

    def on_test_epoch_start(self) -> None:
        self._test_started = time.perf_counter()

    def on_test_epoch_end(self) -> None:
        merged = log_eval(self, self._take_eval_outputs(), "test")
        if merged and self.trainer.is_global_zero:
            seconds = time.perf_counter() - self._test_started
            self.timing["infer_events_per_s"] = len(merged["score"]) / max(seconds, 1e-9)
            run_dir = Path(self.trainer.default_root_dir)
            prob = 1.0 / (1.0 + np.exp(-merged["score"].astype(np.float64)))
            metrics = run.write_split_scores(run_dir, "test", merged["event_id"], prob, merged["label"],
                                             self.model_kind, data_of(self.trainer.datamodule))
            self.update_metrics(run_dir, test=metrics)
            self.save_compiled_artifacts()

    def on_fit_start(self) -> None:
        if self.dense_inference:
            raise HybridjetError("model: densified for inference; load the run again to train")
        self._fit_started, self._train_events = time.perf_counter(), 0
        self.run_dir = Path(self.trainer.default_root_dir)
        self.follow_run_dir()

    def on_fit_end(self) -> None:
        if self._fit_started is not None:
            seconds = time.perf_counter() - self._fit_started
            self.timing.update(train_time_s=seconds, train_events_per_s=self._train_events / max(seconds, 1e-9))

    # ---- optimisation -----------------------------------------------------------------------------------------
    def configure_optimizers(self) -> dict[str, Any]:
        """AdamW with ``encoder_lr`` for the parameters outside the LLM and ``lr`` for the LLM's, one schedule."""
        trainable = [(n, p) for n, p in self.named_parameters() if p.requires_grad]
        groups = [{"params": [p for n, p in trainable if not n.startswith("net.llm.")], "lr": self.optim.encoder_lr},
                  {"params": [p for n, p in trainable if n.startswith("net.llm.")], "lr": self.optim.lr}]
        return optimizer_with_schedule(self.optim, groups, int(self.trainer.estimated_stepping_batches))

    # ---- light checkpoints ------------------------------------------------------------------------------------
    def _take_eval_outputs(self) -> list[dict[str, torch.Tensor]]:
        outputs, self._eval_outputs = self._eval_outputs, []
        return outputs

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # LightningCLI rebuilds the model of a --ckpt_path from these: the class and its (plain) arguments
        checkpoint["hyper_parameters"] = {"_class_path": f"{type(self).__module__}.{type(self).__name__}",
                                          **{k: v for k, v in self.hparams.items() if k != "_instantiator"}}
        checkpoint["state_dict"] = {f"net.{k}": v for k, v in trainable_state(self.net).items()}
        checkpoint["hybridjet"] = self.run_metadata()
        save_rng(checkpoint)  # dropout's random stream: a resumed run continues it

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if trainable_state(self.net):  # built: the data-dependent layers exist
            state = {k.removeprefix("net."): v for k, v in checkpoint["state_dict"].items()}
            check_trainable_state(self.net, state, "checkpoint")
        self.check_base_identity(checkpoint.get("hybridjet", {}).get("base_model"))
        load_rng(checkpoint)
