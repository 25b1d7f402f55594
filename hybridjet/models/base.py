"""What every event classifier shares: evaluation and AUC logging, optimiser and schedule, light checkpoints,
and the run directory (weights as safetensors, metadata as JSON, scores.h5, metrics.json)."""

from __future__ import annotations

import inspect
import json
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from safetensors.torch import load_file, save_file

from hybridjet import __version__
from hybridjet.errors import HybridjetError
from hybridjet.io_utils import atomic_path, write_json
from hybridjet.models.features import Normalizer
from hybridjet.train.resume import load_rng, save_rng

RUN_MODEL_FILE = "model.json"
RUN_WEIGHTS_FILE = "weights.safetensors"
#: keys LightningCLI adds to a model's hparams (runs written by earlier versions recorded them as settings)
LIGHTNING_CLI_KEYS = ("_class_path", "_instantiator")


def read_run_metadata(run_dir: str | Path) -> dict[str, Any]:
    """``model.json`` of a run directory, checked to be a JSON object (one line naming the file otherwise)."""
    path = Path(run_dir) / RUN_MODEL_FILE
    if not Path(run_dir).is_dir():
        raise HybridjetError(f"{run_dir}: no such run directory")
    if not path.is_file():
        raise HybridjetError(f"{run_dir}: not a hybridjet run directory ({RUN_MODEL_FILE} missing)")
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise HybridjetError(f"{path}: not readable JSON ({str(err).splitlines()[0][:120]}); expected the run "
                             "record hybridjet wrote") from None
    if not isinstance(meta, dict):
        raise HybridjetError(f"{path}: expected a JSON object, found {type(meta).__name__}")
    return meta


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """AUC of ``hybridjet.eval.metrics.auc``, NaN (instead of an error) when a split holds one class only."""
    from hybridjet.eval.metrics import auc

    labels = np.asarray(labels).astype(int)
    if len(np.unique(labels)) < 2:
        return float("nan")
    return float(auc(labels, scores))


def pad_batch(batch: dict[str, torch.Tensor], size: int) -> dict[str, torch.Tensor]:
    """``batch`` with its last event repeated up to ``size`` events (every field)."""
    return {k: torch.cat([v, v[-1:].expand(size - len(v), *v.shape[1:])]) for k, v in batch.items()}


def padded_batch_size(n: int, batch_size: int) -> int:
    """The size a scoring pass of ``n`` events in batches of ``batch_size`` pads to when padding saves compilations:
    ``batch_size`` for a pass of at least one full batch, else the next power of two (at most ``batch_size``), so
    that inputs of any length share at most log2(batch_size) + 1 batch shapes."""
    return batch_size if n >= batch_size else min(batch_size, 1 << max(n - 1, 0).bit_length())


class EventClassifier(L.LightningModule):
    """Base class: subclasses implement ``score(batch) -> [B] logits`` and may override ``loss(batch)``."""

    model_kind = "classifier"
    legacy_hparams: dict[str, Any] = {}  # hparams a run saved before they existed loads with (see from_pretrained)

    def __init__(
        self,
        lr: float = 2e-4,
        encoder_lr: float = 1e-3,
        weight_decay: float = 0.01,
        warmup_fraction: float = 0.05,
        class_weight: str | None = None,
        run_name: str | None = None,
    ) -> None:
        super().__init__()
        self.strict_loading = False  # checkpoints hold the trainable weights only
        self.backbone: Any = None
        self.dense_inference = False
        self.normalizer: Normalizer | None = None
        self.feature_set: str | None = None
        self.pos_weight = 1.0
        self._eval_outputs: list[dict[str, torch.Tensor]] = []
        self._fit_started: float | None = None
        self._train_events = 0
        self.timing: dict[str, float] = {}
        self.run_dir: Path | None = None  # the run directory it was loaded from or trains into (compiled artifacts)
        self.compiled_artifacts_read = 0  # compile artifacts read from run_dir before compiling
        self.compiled_artifacts_kept: Path | None = None  # the artifact file this model last wrote into run_dir
        self._loop_batch_size: dict[str, int] = {}  # each loop's first batch size this epoch (padding target)

    # ---- subclass interface -------------------------------------------------------------------------------
    def score(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def loss(self, batch: dict[str, torch.Tensor], batch_idx: int = 0) -> torch.Tensor:
        logits = self.loop_scores(batch, "train", batch_idx)
        weight = None
        if self.hparams.get("class_weight") == "balanced":
            weight = torch.tensor(self.pos_weight, device=logits.device)
        return torch.nn.functional.binary_cross_entropy_with_logits(
            logits.float(), batch["label"].float(), pos_weight=weight
        )

    def encoder_parameter_names(self) -> set[str]:
        """Names of parameters trained at ``encoder_lr`` (the rest of the trainable ones use ``lr``)."""
        return {n for n, _ in self.named_parameters() if not n.startswith("llm.")}

    # ---- data hand-over ------------------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if datamodule is None:
            return
        datamodule.setup(stage)
        if self.feature_set is not None and datamodule.feature_set != self.feature_set:
            raise HybridjetError(
                f"data.feature_set: this model was trained on {self.feature_set!r}, got {datamodule.feature_set!r}"
            )
        self.normalizer = datamodule.normalizer
        self.feature_set = datamodule.feature_set
        self.pos_weight = datamodule.pos_weight
        self.build(datamodule.n_features)

    def build(self, n_features: int) -> None:
        """Create layers whose shape depends on the data (called once the feature count is known)."""

    # ---- steps ------------------------------------------------------------------------------------------------
    def loop_scores(self, batch: dict[str, torch.Tensor], loop: str, batch_idx: int,
                    batch_size: int | None = None) -> torch.Tensor:
        """``score(batch)`` inside a Lightning loop.  For a model that :meth:`pads_partial_batches`, a batch shorter
        than the loop's first one this epoch (the epoch's last) is padded to that size and the padding's logits
        dropped (events are independent: the same logits and gradients), so a compiled model sees one shape and
        compiles once, instead of recompiling at every epoch's end and, under DDP, stalling the other ranks.
        With ``batch_size`` (scoring), a first batch shorter than it is padded as well, to
        :func:`padded_batch_size`: scoring inputs of many lengths then shares a few shapes."""
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

    def _eval_step(self, batch: dict[str, torch.Tensor], loop: str, batch_idx: int) -> None:
        logits = self.loop_scores(batch, loop, batch_idx).float()
        self._eval_outputs.append(
            {"score": logits.detach().cpu(), "label": batch["label"].cpu(), "event_id": batch["event_id"].cpu()}
        )

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "validate", batch_idx)

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "test", batch_idx)

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor]:
        scores = self.loop_scores(batch, "predict", batch_idx).float()
        return {"score": torch.sigmoid(scores).cpu(), "event_id": batch["event_id"].cpu(),
                "label": batch["label"].cpu()}

    def _gather_eval(self) -> dict[str, np.ndarray]:
        """This epoch's scores, labels and event ids; under DDP from every rank, each event exactly once."""
        outputs = self._eval_outputs
        self._eval_outputs = []
        return self.gather_events(outputs, empty={"score": torch.zeros(0), "label": torch.zeros(0)})

    def gather_events(self, outputs: list[dict[str, torch.Tensor]],
                      empty: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
        """Per-event tensors (``event_id`` and the fields of ``empty``, which gives their dtypes for a rank with
        no events) of this rank's batches; under DDP from every rank, each event exactly once, sorted by event id.

        Ranks may hold different numbers of events (the distributed sampler splits batches and repeats some to
        even out the ranks): pad to the longest, ``all_gather``, cut the padding, keep the first copy of each
        event id.
        """
        if self._trainer is None or self.trainer.world_size <= 1:
            return {k: torch.cat([o[k] for o in outputs]).numpy() for k in outputs[0]} if outputs else {}
        empty = {**empty, "event_id": torch.zeros(0, dtype=torch.long)}
        merged = {k: torch.cat([o[k] for o in outputs]) if outputs else v for k, v in empty.items()}
        sizes = self.all_gather(torch.tensor(len(merged["event_id"]), device=self.device)).reshape(-1).cpu()
        longest = int(sizes.max())
        gathered = {}
        for k, v in merged.items():
            padded = torch.zeros(longest, dtype=v.dtype)
            padded[: len(v)] = v
            ranks = self.all_gather(padded.to(self.device)).reshape(len(sizes), longest).cpu()
            gathered[k] = torch.cat([ranks[r, : int(n)] for r, n in enumerate(sizes)]).numpy()
        if len(gathered["event_id"]) == 0:
            return {}
        _, first = np.unique(gathered["event_id"], return_index=True)
        return {k: v[first] for k, v in gathered.items()}

    def _log_eval(self, prefix: str) -> dict[str, np.ndarray]:
        merged = self._gather_eval()
        if not merged:
            return merged
        logits, labels = merged["score"], merged["label"]
        loss = torch.nn.functional.binary_cross_entropy_with_logits(torch.from_numpy(logits),
                                                                    torch.from_numpy(labels)).item()
        auc = roc_auc(labels, logits)
        acc = float(((logits > 0) == (labels > 0.5)).mean())
        self.log_dict({f"{prefix}_loss": loss, f"{prefix}_auc": auc, f"{prefix}_acc": acc}, prog_bar=True,
                      sync_dist=False)
        return merged

    def on_validation_epoch_end(self) -> None:
        self._log_eval("val")

    def on_test_epoch_start(self) -> None:
        self._test_started = time.perf_counter()

    def on_test_epoch_end(self) -> None:
        merged = self._log_eval("test")
        if merged and self.trainer.is_global_zero:
            seconds = time.perf_counter() - self._test_started
            self.timing["infer_events_per_s"] = len(merged["score"]) / max(seconds, 1e-9)
            run_dir = Path(self.trainer.default_root_dir)
            self.write_scores(run_dir, "test", merged)
            self.save_compiled_artifacts()

    def on_fit_start(self) -> None:
        if self.dense_inference:
            raise HybridjetError("model: densified for inference (densify_for_inference); load the run again to train")
        self._fit_started = time.perf_counter()
        self._train_events = 0
        # compiled artifacts are read from and kept in the run (a resumed fit on a fresh node compiles from them)
        self.run_dir = Path(self.trainer.default_root_dir)

    def on_fit_end(self) -> None:
        if self._fit_started is not None:
            seconds = time.perf_counter() - self._fit_started
            self.timing.update(train_time_s=seconds, train_events_per_s=self._train_events / max(seconds, 1e-9))

    # ---- optimisation -----------------------------------------------------------------------------------------
    def configure_optimizers(self) -> dict[str, Any]:
        fast = self.encoder_parameter_names()
        groups = [
            {"params": [p for n, p in self.named_parameters() if p.requires_grad and n in fast],
             "lr": self.hparams.encoder_lr},
            {"params": [p for n, p in self.named_parameters() if p.requires_grad and n not in fast],
             "lr": self.hparams.lr},
        ]
        groups = [g for g in groups if g["params"]]
        optimizer = torch.optim.AdamW(groups, weight_decay=self.hparams.weight_decay)
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        warmup = int(total * self.hparams.warmup_fraction)

        def schedule(step: int) -> float:
            if step < warmup:
                return (step + 1) / (warmup + 1)
            progress = (step - warmup) / max(total - warmup, 1)
            return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # ---- light checkpoints ------------------------------------------------------------------------------------
    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Trainable parameters only: never the frozen base weights."""
        names = {n for n, p in self.named_parameters() if p.requires_grad}
        return {k: v for k, v in self.state_dict().items() if k in names}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["state_dict"] = self.trainable_state_dict()
        checkpoint["hybridjet"] = self.run_metadata()
        save_rng(checkpoint)  # dropout's random stream: a resumed run continues it

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        missing = set(self.trainable_state_dict()) - set(checkpoint["state_dict"])
        if missing and self.trainable_state_dict():
            raise HybridjetError(f"checkpoint: missing trainable weights {sorted(missing)[:3]}... "
                                 "(was it written by a different model configuration?)")
        meta = checkpoint.get("hybridjet", {})
        self.check_base_identity(meta.get("base_model"))
        load_rng(checkpoint)

    def check_base_identity(self, recorded: dict[str, Any] | None) -> None:
        """Refuse weights trained on another base model (compared by the base weights' sha256)."""
        mine = self.base_identity() or {}
        if recorded and mine and recorded.get("sha256") and recorded.get("sha256") != mine.get("sha256"):
            raise HybridjetError(
                f"weights were trained on base model {recorded.get('name')} (sha256 {recorded['sha256'][:12]}), "
                f"but {mine.get('name')} (sha256 {str(mine.get('sha256'))[:12]}) is loaded"
            )

    def load_llm(self, model: str, quantization: str, dtype: str | None, lora: str | None, lora_r: int,
                 lora_alpha: int, lora_dropout: float, gradient_checkpointing: bool,
                 upcast_frozen: bool | None = None) -> torch.nn.Module:
        """Load the shared backbone (``self.backbone``); only LoRA weights train, and only when ``lora`` is set."""
        from hybridjet.llm.backbone import load_backbone

        spec = None if lora is None else {"preset": lora, "r": lora_r, "alpha": lora_alpha, "dropout": lora_dropout}
        self.backbone = load_backbone(model, quantization=quantization, lora=spec, dtype=dtype,
                                      gradient_checkpointing=gradient_checkpointing, upcast_frozen=upcast_frozen)
        llm = self.backbone.model
        for name, param in llm.named_parameters():
            param.requires_grad_(lora is not None and "lora_" in name)
        llm.train()  # loaders hand models over in eval mode; LoRA dropout must be live while training
        return llm

    def densify_for_inference(self, dtype: str | torch.dtype | None = None) -> EventClassifier:
        """Scoring only: replace the 4-bit (+ LoRA) LLM by a dense copy with the adapter merged in
        (:func:`hybridjet.llm.dense.densify`), in the backbone's compute dtype unless ``dtype`` is given. Same scores
        up to that dtype's rounding, without per-step dequantization; the model can no longer be trained or saved."""
        import dataclasses

        from hybridjet.llm.backbone import resolve_dtype
        from hybridjet.llm.dense import densify

        if getattr(self, "llm", None) is None or self.dense_inference:
            return self
        target = resolve_dtype(dtype, self.backbone.device) if dtype is not None else self.backbone.dtype
        self.llm = densify(self.llm, target)
        self.backbone = dataclasses.replace(self.backbone, model=self.llm, quantization="none", lora=None,
                                            dtype=target)
        self.dense_inference = True
        return self.eval()

    # ---- run directory ------------------------------------------------------------------------------------------
    def base_identity(self) -> dict[str, Any] | None:
        """Name, path and sha256 of the base LLM (None for models without one)."""
        backbone = getattr(self, "backbone", None)
        if backbone is None:
            return None
        identity = backbone.identity
        return identity.to_dict() if hasattr(identity, "to_dict") else dict(vars(identity))

    def init_hparams(self) -> dict[str, Any]:
        """The constructor arguments this model was built with (what a run records to build it again); keys that
        callers add to ``hparams`` besides them, such as LightningCLI's ``_class_path``, are left out."""
        accepted = inspect.signature(type(self).__init__).parameters
        return {k: v for k, v in self.hparams.items() if k in accepted and k != "self"}

    def run_metadata(self) -> dict[str, Any]:
        return {
            "class": type(self).__name__,
            "model": self.model_kind,
            "hybridjet_version": __version__,
            "hparams": self.init_hparams(),
            "feature_set": self.feature_set,
            "n_features": None if self.normalizer is None else len(self.normalizer.names),
            "normalizer": None if self.normalizer is None else self.normalizer.to_dict(),
            "base_model": self.base_identity(),
            "trainable_params": sum(p.numel() for p in self.parameters() if p.requires_grad),
        }

    def save_run(self, run_dir: str | Path) -> None:
        """Write weights (safetensors) and metadata (JSON): all ``from_pretrained`` needs besides the base model."""
        if self.dense_inference:
            raise HybridjetError("model: densified for inference; save the run before densify_for_inference")
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.trainable_state_dict().items()}
        with atomic_path(run_dir / RUN_WEIGHTS_FILE) as tmp:
            save_file(state, str(tmp))
        with atomic_path(run_dir / RUN_MODEL_FILE) as tmp:
            tmp.write_text(json.dumps(self.run_metadata(), indent=1, default=str))
        self.update_metrics(run_dir)

    @classmethod
    def from_pretrained(cls, run_dir: str | Path, model: str | None = None, dense: bool = False,
                        **overrides: Any) -> EventClassifier:
        """Load a finished run: base LLM resolved from the run's record (or ``model``), trained weights from it.

        Called on :class:`EventClassifier` it returns whichever classifier the run holds. ``dense=True``: for
        scoring only, dequantize the 4-bit base and merge LoRA into it (:meth:`densify_for_inference`; faster).
        """
        import importlib

        run_dir = Path(run_dir)
        meta_path = run_dir / RUN_MODEL_FILE
        meta = read_run_metadata(run_dir)
        classes = {"HybridClassifier": "hybridjet.models.hybrid", "TextPromptClassifier": "hybridjet.models.text_baseline"}
        if meta.get("class") not in classes:
            raise HybridjetError(f"{meta_path}: unknown model class {meta.get('class')!r}")
        run_cls = getattr(importlib.import_module(classes[meta["class"]]), meta["class"])
        if not issubclass(run_cls, cls):
            raise HybridjetError(f"{run_dir}: holds a {meta['class']}, not a {cls.__name__}")
        recorded = {k: v for k, v in (meta.get("hparams") or {}).items() if k not in LIGHTNING_CLI_KEYS}
        accepted = inspect.signature(run_cls.__init__).parameters
        unknown = sorted(set(recorded) - set(accepted))
        if unknown:
            raise HybridjetError(f"{meta_path}: hparams {', '.join(unknown)} are not settings of {meta['class']} "
                                 f"(written by another hybridjet version?)")
        hparams = {**run_cls.legacy_hparams, **recorded, **({"model": model} if model is not None else {}), **overrides}
        clf = run_cls(**hparams)
        clf.check_base_identity(meta.get("base_model"))
        try:
            if meta.get("normalizer"):
                clf.normalizer = Normalizer.from_dict(meta["normalizer"])
            n_features = int(meta["n_features"]) if meta.get("n_features") else None
        except (KeyError, TypeError, ValueError) as err:
            raise HybridjetError(f"{meta_path}: malformed 'normalizer' or 'n_features' ({err!r})") from None
        clf.feature_set = meta.get("feature_set")
        if n_features:
            clf.build(n_features)
        clf.load_run_weights(run_dir)  # in place: the model stays where construction and build put it
        clf.run_dir = run_dir
        clf.eval()
        return clf.densify_for_inference() if dense else clf

    def follow_llm_device(self) -> None:
        """Move the whole classifier to where its LLM was loaded (4-bit weights load onto the GPU), so that
        ``self.device`` and the inputs put there follow: a freshly loaded run scores without a ``.to()``."""
        if self.llm is not None:
            self.to(next(self.llm.parameters()).device)

    def scoring_batch_size(self) -> int:
        """Events per forward pass when scoring and no batch size is given."""
        return 256

    @torch.no_grad()
    def predict_proba(self, events: Any, batch_size: int | None = None, progress: bool = False) -> np.ndarray:
        """Signal scores in [0, 1] (sigmoid of the logit) for a jets.h5 path (read in chunks), JetArrays/JetDataset,
        or — for the hybrid — a raw feature array as :func:`hybridjet.models.features.event_features` returns it.
        ``batch_size``: events per forward pass (default :meth:`scoring_batch_size`)."""
        out = [probs for _, probs in self.iter_probabilities(events, batch_size, progress)]
        return np.concatenate(out) if out else np.zeros(0, np.float32)

    @torch.no_grad()
    def iter_probabilities(self, events: Any, batch_size: int | None = None,
                           progress: bool = False) -> Iterator[tuple[dict[str, torch.Tensor], np.ndarray]]:
        """``(batch, signal probabilities)`` per batch of ``events`` (as :meth:`predict_proba` takes them), so callers
        can keep the batch's ``event_id``/``label`` next to the scores."""
        from hybridjet.models.scoring import iter_event_batches

        self.eval()
        size = batch_size or self.scoring_batch_size()
        for i, batch in enumerate(iter_event_batches(self, events, size, progress)):
            # batches are full but for the last, which loop_scores pads where that saves a compilation
            yield batch, torch.sigmoid(self.loop_scores(batch, "score", i, size).float()).cpu().numpy()
        self.save_compiled_artifacts()

    def compiled_device(self) -> torch.device | None:
        """The device this model's layers were compiled for (``None``: not compiled)."""
        return None

    def save_compiled_artifacts(self) -> Path | None:
        """Keep what ``torch.compile`` built in :attr:`run_dir` for the next load on this kind of machine
        (:mod:`hybridjet.models.compile_cache`); returns the file written, if any."""
        from hybridjet.models.compile_cache import save_compiled

        device = self.compiled_device()
        if self.run_dir is None or device is None:
            return None
        written = save_compiled(self.run_dir, device)
        self.compiled_artifacts_kept = written or self.compiled_artifacts_kept
        return written

    def pads_partial_batches(self) -> bool:
        """Whether :meth:`loop_scores` pads a loop's last, shorter batch to the full batch size (models whose events
        are scored independently and for which a new batch shape costs a compilation)."""
        return False

    def load_run_weights(self, run_dir: str | Path) -> None:
        """Load ``weights.safetensors`` of a run into this (already built) model, checking every key."""
        path = Path(run_dir) / RUN_WEIGHTS_FILE
        if not path.exists():
            raise HybridjetError(f"{path}: run weights not found (is this a finished hybridjet run directory?)")
        try:
            state = load_file(str(path))
        except Exception as err:  # safetensors' own error types: a truncated or overwritten file
            raise HybridjetError(f"{path}: unreadable run weights ({str(err).splitlines()[0][:160]}); "
                                 "expected the safetensors file hybridjet wrote") from None
        expected = set(self.trainable_state_dict())
        if set(state) != expected:
            raise HybridjetError(f"{path}: weights do not match the model ({len(set(state) ^ expected)} keys differ)")
        self.load_state_dict(state, strict=False)

    def write_scores(self, run_dir: Path, split: str, merged: dict[str, np.ndarray]) -> None:
        """``scores.h5`` (probabilities) and ``metrics.json`` for one evaluated split."""
        from hybridjet.eval.metrics import binary_metrics
        from hybridjet.eval.scores import write_scores

        prob = 1.0 / (1.0 + np.exp(-merged["score"].astype(np.float64)))
        write_scores(run_dir / "scores.h5", split, merged["event_id"], prob.astype(np.float32),
                     merged["label"].astype(np.int8), attrs={"model": self.model_kind, "score_kind": "probability"})
        self.update_metrics(run_dir, **{split: binary_metrics(merged["label"].astype(int), prob)})

    def update_metrics(self, run_dir: Path, **fields: Any) -> None:
        """Merge ``fields`` (and the run's identity and timings) into ``metrics.json``, atomically (strict JSON:
        non-finite numbers are ``null``)."""
        metrics_path = Path(run_dir) / "metrics.json"
        metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
        metrics.update(name=self.hparams.get("run_name") or Path(run_dir).name, model=self.model_kind,
                       trainable_params=sum(p.numel() for p in self.parameters() if p.requires_grad),
                       **self.timing, **fields)
        write_json(metrics_path, metrics)
