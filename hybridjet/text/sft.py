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

import dataclasses
import math
from pathlib import Path
from typing import Any

import lightning as L
import torch

from hybridjet import checks
from hybridjet.errors import HybridjetError
from hybridjet.llm.backbone import decoder_of
from hybridjet.llm.lora import LoraSpec
from hybridjet.runtime import Runtime, compiles_by_default, load_llm
from hybridjet.text.export import save_text_run
from hybridjet.text.loss import token_loss_sum
from hybridjet.text.packing import packing_is_exact
from hybridjet.train.checkpoints import (
    check_trainable_state,
    load_checkpoint_data,
    load_trainable_state,
    trainable_state,
)
from hybridjet.train.optim import OptimizerSettings, optimizer_with_schedule
from hybridjet.train.resume import load_rng, save_rng

#: a packed row's length with FlexAttention: one row per batch (its block mask skips what examples do not see)
FLEX_ROW_TOKENS = 1 << 17
#: the runtime settings of the classifiers' shared prompt prefix, which text SFT does not have
PREFIX_SETTINGS = {"cache_prefix": None, "cuda_graphs": None, "prefix_attention": "auto"}


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


def check_text_runtime(runtime: Runtime) -> None:
    """One line for a runtime setting that only the classifiers' shared prompt prefix uses."""
    for name, default in PREFIX_SETTINGS.items():
        if getattr(runtime, name) != default:
            raise HybridjetError(f"runtime.{name}: a setting of the event classifiers' shared prompt prefix, which "
                                 f"text SFT does not have (expected {'null' if default is None else default})")


class TextSFT(L.LightningModule):
    """LoRA supervised fine-tuning of a causal LM, configured by the same settings objects as the event classifiers.

    Args:
        model: backbone name or path (``smollm2`` = the embedded SmolLM2-135M-Instruct).
        lora: the adapters (:class:`~hybridjet.llm.lora.LoraSpec`: ``preset`` qkv / attn / all-linear or
            ``target_modules``, ``r``, ``alpha``, ``dropout``); default qkv, r 16, alpha 32, dropout 0.05.
        runtime: how the LLM runs (:class:`~hybridjet.runtime.Runtime`: ``quantization`` auto = nf4-dq on CUDA,
            none on CPU; ``dtype``; ``gradient_checkpointing`` true or a fraction of the layers; ``torch_compile``:
            compile each decoder layer when fitting starts, after the packing check, ``None`` = on CUDA with
            Triton, where it pays, BENCHMARKS.md).
        optim: optimiser and schedule (:class:`~hybridjet.train.optim.OptimizerSettings`: ``optimizer`` adamw or
            adamw8bit, ``lr``, ``weight_decay``, ``betas``, ``scheduler`` cosine / linear / constant after
            ``warmup_steps``, down to ``min_lr_ratio``).
        attention: transformers' attention implementation (``sdpa``, ``eager``, ``flex_attention``); ``auto``:
            ``flex_attention`` on CUDA (block-sparse: a whole packed batch in one row costs only its examples'
            attention), transformers' default elsewhere. Packed rows are used only where it keeps examples apart
            (checked on the model).
        ema_decay: decay of the moving average of the eval loss (``val_loss_ema``).
        run_dir: where ``adapter/``, tokenizer and ``text_config.yaml`` go (default: the trainer's root dir).
        save_best: export the checkpoint with the lowest ``val_loss`` (else the final weights).
        cache_dir: hybridjet model cache (GGUF conversions).
    """

    def __init__(
        self,
        model: str = "smollm2",
        lora: LoraSpec | None = None,
        runtime: Runtime | None = None,
        optim: OptimizerSettings | None = None,
        attention: str = "auto",
        ema_decay: float = 0.9,
        run_dir: str | None = None,
        save_best: bool = True,
        cache_dir: str | None = None,
    ) -> None:
        super().__init__()
        # every setting checked before the LLM loads: one line, nothing written
        lora = lora if lora is not None else LoraSpec()
        runtime = runtime or Runtime()
        self.optim = optim or OptimizerSettings()
        check_text_runtime(runtime)
        checks.fraction("model.ema_decay", ema_decay, include_one=False)
        self.runtime = runtime
        self.save_hyperparameters({"model": model, "lora": lora.to_dict(), "runtime": dataclasses.asdict(runtime),
                                   "optim": dataclasses.asdict(self.optim), "attention": attention,
                                   "ema_decay": ema_decay, "run_dir": run_dir, "save_best": save_best,
                                   "cache_dir": cache_dir})
        self.backbone = load_llm(model, lora, runtime, cache_dir=cache_dir, attention=resolve_attention(attention))
        self.model = self.backbone.model
        self.tokenizer = self.backbone.tokenizer
        self.strict_loading = False  # checkpoints hold the trainable weights only (checked in on_load_checkpoint)
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
        wanted = self.runtime.torch_compile
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
        # the scale stays a device tensor: reading it on the host would wait for the step's backward to finish
        scale = (world / tokens.clamp(min=1)).float()
        grads = [p.grad for p in self.parameters() if p.requires_grad and p.grad is not None]
        if grads:
            torch._foreach_mul_(grads, scale)
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
        params = [p for p in self.parameters() if p.requires_grad]
        return optimizer_with_schedule(self.optim, [{"params": params, "lr": self.optim.lr}],
                                       int(self.trainer.estimated_stepping_batches))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["state_dict"] = trainable_state(self)  # the frozen base is never written to checkpoints
        checkpoint["text_sft"] = {"val_loss_ema": self.val_loss_ema}
        save_rng(checkpoint)  # LoRA dropout's random stream: a resumed run continues it

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        check_trainable_state(self, checkpoint.get("state_dict", {}), "checkpoint")
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
        load_trainable_state(self, ckpt["state_dict"], str(best))
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
