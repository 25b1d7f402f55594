"""``TextSFT``: supervised fine-tuning of a (4-bit) LoRA causal LM on text, as a LightningModule.

Loss: causal-LM cross entropy on the unmasked label tokens (assistant turns / continuations), memory-safe
(:func:`hybridjet.text.loss.token_loss_sum`: the LM head on the learned positions only, chunked or fused).
Validation logs the token-weighted ``val_loss``, ``val_ppl`` = exp(val_loss) and an exponential moving average
``val_loss_ema``.
Checkpoints hold only the trainable (LoRA) weights; at the end of ``fit`` the run directory gets ``adapter/``
(the best checkpoint by ``val_loss`` when there is one), the tokenizer with its chat template and
``text_config.yaml``.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from pathlib import Path
from typing import Any

import lightning as L
import torch

from hybridjet import checks
from hybridjet.errors import HybridjetError
from hybridjet.llm.backbone import decoder_of, load_backbone
from hybridjet.runtime import compiles_by_default
from hybridjet.text.export import save_text_run
from hybridjet.text.loss import token_loss_sum
from hybridjet.text.packing import packing_is_exact
from hybridjet.train.checkpoints import load_checkpoint_data
from hybridjet.train.resume import load_rng, save_rng

OPTIMIZERS = ("adamw", "adamw8bit")
#: a packed row's length with FlexAttention: one row per batch (its block mask skips what examples do not see)
FLEX_ROW_TOKENS = 1 << 17


def checkpoint_fraction(model: Any, fraction: bool | float) -> None:
    """Leave gradient checkpointing on for ``fraction`` of the decoder layers (evenly spread) and off for the rest
    (transformers' checkpointed layers each carry their own switch)."""
    if isinstance(fraction, bool) or not fraction:
        return
    if not 0 < float(fraction) <= 1:
        raise HybridjetError(f"gradient_checkpointing: expected true, false or a fraction in (0, 1], got {fraction}")
    layers = list(decoder_of(model).layers)
    for i, layer in enumerate(layers):
        layer.gradient_checkpointing = int((i + 1) * fraction) > int(i * fraction)


def compile_layers(model: Any) -> None:
    """Compile every decoder layer of ``model`` in place (each layer its own ``torch.compile`` wrapper, sharing the
    compiled code; dynamic shapes, since packed rows change length every step)."""
    for layer in decoder_of(model).layers:
        layer.compile(dynamic=True)


def resolve_attention(attention: str | None) -> str | None:
    """``auto``: FlexAttention on CUDA, transformers' default elsewhere; other names as given."""
    if attention == "auto":
        return "flex_attention" if torch.cuda.is_available() else None
    return attention
SCHEDULERS = ("cosine", "linear", "constant")


class TextSFT(L.LightningModule):
    """LoRA supervised fine-tuning of a causal LM.

    Args:
        model: backbone name or path (``smollm2`` = the embedded SmolLM2-135M-Instruct).
        quantization: ``auto`` (nf4-dq on CUDA, none on CPU), ``nf4``, ``nf4-dq``, ``int8``, ``none``.
        lora: preset ``qkv``, ``attn`` or ``all-linear`` (or comma-separated module names).
        lora_r / lora_alpha / lora_dropout: LoRA rank, scaling and dropout.
        dtype: compute dtype (``bf16``, ``fp16``, ``fp32``; default per device).
        gradient_checkpointing: trade compute for activation memory: ``true`` for every decoder layer, a fraction
            in (0, 1) for that share of them, evenly spread (the memory saved and the time spent both scale with it).
        optimizer: ``adamw`` (torch) or ``adamw8bit`` (bitsandbytes).
        lr / weight_decay / betas: optimizer settings.
        scheduler: ``cosine`` (default), ``linear`` or ``constant``, each after ``warmup_steps`` linear warmup.
        ema_decay: decay of the moving average of the eval loss (``val_loss_ema``).
        run_dir: where ``adapter/``, tokenizer and ``text_config.yaml`` go (default: the trainer's root dir).
        save_best: export the checkpoint with the lowest ``val_loss`` (else the final weights).
        cache_dir: hybridjet model cache (GGUF conversions).
        attention: transformers' attention implementation (``sdpa``, ``eager``, ``flex_attention``); ``auto``:
            ``flex_attention`` on CUDA (block-sparse: a whole packed batch in one row costs only its examples'
            attention), transformers' default elsewhere. Packed rows are used only where it keeps examples apart
            (checked on the model).
        torch_compile: compile each decoder layer (``torch.compile``, dynamic shapes: packed rows vary in length)
            when fitting starts, after the packing check has run on the uncompiled model; ``None``: on CUDA with
            Triton (where it pays, BENCHMARKS.md), not on CPUs.
    """

    def __init__(
        self,
        model: str = "smollm2",
        quantization: str = "auto",
        lora: str = "qkv",
        lora_r: int = 16,
        lora_alpha: int = 32,
        lora_dropout: float = 0.05,
        dtype: str | None = None,
        gradient_checkpointing: bool | float = False,
        optimizer: str = "adamw",
        lr: float = 2e-4,
        weight_decay: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        scheduler: str = "cosine",
        warmup_steps: int = 0,
        ema_decay: float = 0.9,
        run_dir: str | None = None,
        save_best: bool = True,
        cache_dir: str | None = None,
        attention: str = "auto",
        torch_compile: bool | None = None,
    ) -> None:
        super().__init__()
        # every setting checked before the LLM loads: one line, nothing written
        checks.positive("model.lr", lr)
        checks.non_negative("model.weight_decay", weight_decay)
        if not isinstance(betas, list | tuple) or len(betas) != 2:
            raise HybridjetError(f"model.betas: expected two numbers in [0, 1), got {betas!r}")
        for beta in betas:
            checks.fraction("model.betas", beta, include_one=False)
        checks.integer("model.warmup_steps", warmup_steps, 0)
        checks.fraction("model.ema_decay", ema_decay, include_one=False)
        checks.integer("model.lora_r", lora_r, 1, 4096)
        checks.positive("model.lora_alpha", lora_alpha)
        checks.fraction("model.lora_dropout", lora_dropout, include_one=False)
        if not isinstance(gradient_checkpointing, bool):
            checks.fraction("model.gradient_checkpointing", gradient_checkpointing)
        if optimizer not in OPTIMIZERS:
            raise HybridjetError(f"unknown optimizer {optimizer!r}: expected one of {', '.join(OPTIMIZERS)}")
        if scheduler not in SCHEDULERS:
            raise HybridjetError(f"unknown scheduler {scheduler!r}: expected one of {', '.join(SCHEDULERS)}")
        self.save_hyperparameters()
        spec = {"r": lora_r, "alpha": lora_alpha, "dropout": lora_dropout}
        if "," in lora:
            spec["target_modules"] = [m.strip() for m in lora.split(",") if m.strip()]
        else:
            spec["preset"] = lora
        self.backbone = load_backbone(
            model,
            quantization=quantization,
            lora=spec,
            dtype=dtype,
            gradient_checkpointing=bool(gradient_checkpointing),
            cache_dir=cache_dir,
            attention=resolve_attention(attention),
        )
        checkpoint_fraction(self.backbone.model, gradient_checkpointing)
        self.model = self.backbone.model
        self.tokenizer = self.backbone.tokenizer
        self._val_sum = 0.0
        self._val_count = 0
        self.val_loss_ema: float | None = None
        self.exported_from: dict[str, Any] = {}
        self._packing: tuple[bool, str] | None = None
        self._compiled = False
        self._step_tokens = torch.zeros((), dtype=torch.float64)  # the learned tokens of the step in progress

    def match_attention_to_device(self) -> None:
        """``attention: auto`` chose FlexAttention because CUDA is present; a trainer on another device (CPU
        ranks on a GPU machine) gets transformers' SDPA instead, FlexAttention having no CPU backward."""
        if self.hparams.attention != "auto" or self._trainer is None:
            return
        lm = self.backbone.causal_lm
        if self.trainer.strategy.root_device.type != "cuda" and lm.config._attn_implementation == "flex_attention":
            lm.set_attn_implementation("sdpa")
            self._packing = None

    def packed_row_tokens(self, max_length: int) -> int:
        """The length of a packed row: a whole batch in one row with block-sparse FlexAttention, else ``max_length``
        (a dense mask per row costs the row's length squared)."""
        self.match_attention_to_device()
        implementation = getattr(self.backbone.causal_lm.config, "_attn_implementation", None)
        return FLEX_ROW_TOKENS if implementation == "flex_attention" else max_length

    def packing_check(self) -> tuple[bool, str]:
        """Whether this model keeps packed examples apart (checked once on the model, :func:`packing_is_exact`)."""
        self.match_attention_to_device()
        if self._packing is None:
            self._packing = packing_is_exact(self.model, self.tokenizer)
        return self._packing

    def on_fit_start(self) -> None:
        self.match_attention_to_device()
        wanted = self.hparams.torch_compile
        if wanted is None:
            wanted = compiles_by_default(self.device)
        if wanted and not self._compiled:
            compile_layers(self.model)
            self._compiled = True
        self.model.train()  # the loader returns the model in eval mode; LoRA dropout is on while training

    # ---------------------------------------------------------------------------------------------- forward
    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:  # type: ignore[override]
        """Mean token loss of ``batch``."""
        total, count = token_loss_sum(self.model, batch)
        return total / count.clamp(min=1)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        total, count = token_loss_sum(self.model, batch)
        n = batch["input_ids"].size(0)
        self.log("train_loss", total.detach() / count.clamp(min=1), prog_bar=True, batch_size=n)
        self.log("train_tokens", count.float(), reduce_fx="sum", batch_size=n)
        # every learned token of an optimiser step weighs the same, whatever feeds the batches (this package's data
        # module, a user's DataLoader), the micro-batching and the ranks: the summed token loss is back-propagated
        # (times the micro-batches Lightning divides by), and the step's gradient is divided by the step's tokens
        # on every rank just before the optimiser steps (optimizer_step)
        self._step_tokens = self._step_tokens + count.detach().to(torch.float64)
        return total * self.trainer.accumulate_grad_batches

    def optimizer_step(self, epoch: int, batch_idx: int, optimizer: Any, optimizer_closure: Any = None) -> None:
        """The optimiser's step, its closure (the last micro-batch's forward and backward) followed by the division
        of the accumulated gradient by the step's learned tokens on every rank; gradient clipping and the
        ``on_before_optimizer_step`` hooks then see the mean gradient per token."""

        def closure() -> Any:
            loss = optimizer_closure() if optimizer_closure is not None else None
            self.average_gradient_over_tokens()
            return loss

        optimizer.step(closure=closure)

    def average_gradient_over_tokens(self) -> None:
        """Divide the trainable parameters' gradients (sums over this rank's tokens, averaged over the ranks by
        DDP) by the step's learned tokens on every rank, times the ranks; resets the count for the next step."""
        tokens = torch.as_tensor(self._step_tokens, dtype=torch.float64, device=self.device)
        world = self.trainer.world_size if self._trainer is not None else 1
        if world > 1:
            tokens = self.trainer.strategy.reduce(tokens, reduce_op="sum")
        scale = float(world) / float(tokens.clamp(min=1))
        for param in self.parameters():
            if param.requires_grad and param.grad is not None:
                param.grad.mul_(scale)
        self._step_tokens = torch.zeros((), dtype=torch.float64)

    def on_validation_epoch_start(self) -> None:
        self._val_sum, self._val_count = 0.0, 0

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        total, count = token_loss_sum(self.model, batch)
        self._val_sum += float(total)
        self._val_count += int(count)

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking or self._val_count == 0:
            return
        loss = self._val_sum / self._val_count
        if self.val_loss_ema is None:
            self.val_loss_ema = loss
        else:
            d = float(self.hparams.ema_decay)
            self.val_loss_ema = d * self.val_loss_ema + (1 - d) * loss
        self.log("val_loss", loss, prog_bar=True)
        self.log("val_ppl", math.exp(min(loss, 50.0)))
        self.log("val_loss_ema", self.val_loss_ema)
        self.log("val_tokens", float(self._val_count))

    test_step = validation_step
    on_test_epoch_start = on_validation_epoch_start

    def on_test_epoch_end(self) -> None:
        if self._val_count:
            loss = self._val_sum / self._val_count
            self.log("test_loss", loss)
            self.log("test_ppl", math.exp(min(loss, 50.0)))

    # -------------------------------------------------------------------------------------------- optimizer
    def configure_optimizers(self) -> Any:
        hp = self.hparams
        params = [p for p in self.parameters() if p.requires_grad]
        if not params:
            raise HybridjetError("no trainable parameters (LoRA adapters missing?)")
        if hp.optimizer == "adamw8bit":
            try:
                import bitsandbytes as bnb
            except ImportError:
                raise HybridjetError("optimizer adamw8bit needs bitsandbytes (pip install bitsandbytes)") from None
            opt = bnb.optim.AdamW8bit(params, lr=hp.lr, weight_decay=hp.weight_decay, betas=tuple(hp.betas))
        else:
            opt = torch.optim.AdamW(params, lr=hp.lr, weight_decay=hp.weight_decay, betas=tuple(hp.betas))
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = min(int(hp.warmup_steps), total)

        def factor(step: int) -> float:
            if warmup and step < warmup:
                return (step + 1) / warmup
            if hp.scheduler == "constant":
                return 1.0
            progress = min(1.0, (step - warmup) / max(1, total - warmup))
            if hp.scheduler == "linear":
                return 1.0 - progress
            return 0.5 * (1.0 + math.cos(math.pi * progress))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # ------------------------------------------------------------------------------- LoRA-only checkpoints
    def trainable_names(self) -> set[str]:
        """Names of the trainable parameters (what checkpoints hold)."""
        return {name for name, p in self.named_parameters() if p.requires_grad}

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:  # type: ignore[override]
        """Only the trainable (LoRA) weights: the frozen base is never written to checkpoints."""
        full = super().state_dict(*args, **kwargs)
        prefix = kwargs.get("prefix", "")
        keep = {prefix + name for name in self.trainable_names()}
        return OrderedDict((k, v) for k, v in full.items() if k in keep)

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:  # type: ignore[override]
        """Load trainable weights; with ``strict`` every trainable weight must be present and nothing else."""
        expected = self.trainable_names()
        missing = sorted(expected - set(state_dict))
        unexpected = sorted(set(state_dict) - set(super().state_dict()))
        if strict and (missing or unexpected):
            raise HybridjetError(
                f"checkpoint does not match the model: {len(missing)} LoRA weights missing "
                f"(e.g. {missing[:1]}), {len(unexpected)} unexpected (e.g. {unexpected[:1]}); "
                "same model and lora settings?"
            )
        return super().load_state_dict(state_dict, strict=False, assign=assign)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["text_sft"] = {"val_loss_ema": self.val_loss_ema}
        save_rng(checkpoint)  # LoRA dropout's random stream: a resumed run continues it

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.val_loss_ema = checkpoint.get("text_sft", {}).get("val_loss_ema")
        load_rng(checkpoint)

    # ---------------------------------------------------------------------------------------------- export
    def on_fit_end(self) -> None:
        if self.trainer.is_global_zero:
            self.export(self.resolve_run_dir())

    def resolve_run_dir(self) -> Path:
        """The run directory: ``run_dir`` or the trainer's ``default_root_dir``."""
        if self.hparams.run_dir:
            return Path(self.hparams.run_dir)
        return Path(self.trainer.default_root_dir)

    def _load_best(self) -> None:
        cb = getattr(self.trainer, "checkpoint_callback", None)
        best = getattr(cb, "best_model_path", "") if cb is not None else ""
        if not (self.hparams.save_best and best and Path(best).is_file()):
            self.exported_from = {"checkpoint": "final", "step": int(self.global_step)}
            return
        ckpt = load_checkpoint_data(best)
        self.load_state_dict(ckpt["state_dict"])
        score = getattr(cb, "best_model_score", None)
        self.exported_from = {
            "checkpoint": str(best),
            "step": int(ckpt.get("global_step", -1)),
            "val_loss": float(score) if score is not None else None,
        }

    def export(self, run_dir: str | Path) -> Path:
        """Write ``adapter/``, ``tokenizer/`` (with chat template) and ``text_config.yaml`` into ``run_dir``."""
        self._load_best()
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        settings = datamodule.text_settings() if hasattr(datamodule, "text_settings") else {}
        return save_text_run(self.backbone, run_dir, settings, self.hparams, extra={"exported": self.exported_from})
