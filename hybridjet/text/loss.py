"""Memory-safe causal-LM loss for text SFT: the LM head runs only on the learned positions, a chunk at a time.

:func:`token_loss_sum` calls the decoder body (no LM head), gathers the hidden states of the positions whose
next token is learned ([N, H]), and computes the summed cross entropy either

* chunked (``fused="none"``, and ``auto`` off CUDA): ``chunk_tokens`` positions at a time, each chunk under
  non-reentrant activation checkpointing, so at most one chunk's [chunk, V] logits live at once and backward
  recomputes them; logits come out of the head in its dtype and are cast to fp32 for the cross entropy; or
* fused (``fused="liger"``, and ``auto`` on CUDA when ``liger_kernel`` imports and the head is one plain
  weight matrix): Liger's fused linear cross entropy, which never materialises the logits of all N positions.

The logit post-processing of the installed transformers' (5.x) ``*ForCausalLM.forward`` is reproduced per
family (the ``logits`` of its :data:`hybridjet.llm.families.FAMILIES` record): Gemma 2/3 apply
``final_logit_softcapping`` (``tanh(logits / cap) * cap``), Cohere multiplies by ``logit_scale``, Granite
divides by ``logits_scaling``; Llama, Mistral, Mixtral, Qwen2/3 (and MoE), Gemma, Phi-3, SmolLM3 and OLMo 2
apply nothing.  Any other model type falls back to the model's own forward (full logits, correct but not
memory-safe), with a warning.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from hybridjet.errors import HybridjetError
from hybridjet.llm.backbone import decoder_of
from hybridjet.llm.families import family_of
from hybridjet.text.dataset import IGNORE_INDEX, LEARNED_INDEX, learned_index

FUSED = ("auto", "liger", "none")

log = logging.getLogger(__name__)
_warned: set[str] = set()


@dataclass(frozen=True)
class LogitPost:
    """A causal LM's change to its LM head's output: ``logits * scale``, then ``tanh(logits / cap) * cap``."""

    scale: float = 1.0
    softcap: float | None = None

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        """The post-processed logits (same order of operations as transformers)."""
        if self.scale != 1.0:
            logits = logits * self.scale
        if self.softcap is not None:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits


def logit_post(config: Any) -> LogitPost | None:
    """The logit post-processing of a causal LM with ``config``, or None for a model type not known here."""
    logits = family_of(getattr(config, "model_type", None)).logits  # the family registry's record
    cap = getattr(config, "final_logit_softcapping", None)
    softcap = float(cap) if cap else None
    if logits == "plain":
        return LogitPost(softcap=softcap)
    if callable(logits):
        return LogitPost(scale=logits(config), softcap=softcap)
    return None


def _chunk_loss(head: Callable[[torch.Tensor], torch.Tensor], post: LogitPost, hidden: torch.Tensor,
                target: torch.Tensor) -> torch.Tensor:
    logits = post.apply(head(hidden).float())
    return F.cross_entropy(logits, target, ignore_index=IGNORE_INDEX, reduction="sum")


def chunked_cross_entropy(
    head: Callable[[torch.Tensor], torch.Tensor],
    hidden: torch.Tensor,
    target: torch.Tensor,
    post: LogitPost | None = None,
    chunk_tokens: int = 4096,
) -> torch.Tensor:
    """Summed cross entropy of ``post(head(hidden))`` [N, V] against ``target`` [N], ``chunk_tokens`` rows at
    a time; with autograd on, each chunk is checkpointed (backward recomputes its logits, none are kept)."""
    step = partial(_chunk_loss, head, post or LogitPost())
    n = hidden.size(0)
    total: torch.Tensor | None = None
    # one (empty) chunk when nothing is learned: a zero connected to the graph
    for start in range(0, max(n, 1), chunk_tokens):
        h, t = hidden[start : start + chunk_tokens], target[start : start + chunk_tokens]
        part = checkpoint(step, h, t, use_reentrant=False) if torch.is_grad_enabled() else step(h, t)
        total = part if total is None else total + part
    assert total is not None
    return total


def fused_head_problem(head: Any) -> str | None:
    """Why Liger's fused loss cannot take this LM head (None when it can): it needs one plain floating weight
    matrix, not a LoRA-wrapped head (peft ``lora.Linear``) nor a quantized one (bitsandbytes)."""
    if not isinstance(head, torch.nn.Linear) or hasattr(head, "base_layer"):
        kind = f"{type(head).__module__}.{type(head).__qualname__}"
        return f"the LM head is a {kind} (LoRA or wrapped), not a plain torch Linear"
    if not head.weight.is_floating_point():
        return f"the LM head's weight is {head.weight.dtype} (quantized)"
    return None


def _liger_loss() -> Callable[..., torch.Tensor] | None:
    if importlib.util.find_spec("liger_kernel") is None:
        return None
    try:
        from liger_kernel.transformers.functional import liger_fused_linear_cross_entropy
    except ImportError:
        return None
    return liger_fused_linear_cross_entropy


def _fused_loss(fused: str, head: Any, device: torch.device) -> Callable[..., torch.Tensor] | None:
    """Liger's fused loss when ``fused`` asks for it and it can run; ``fused="liger"`` raises if not."""
    if fused == "none":
        return None
    problem = None if device.type == "cuda" else f"the model is on {device.type}, not CUDA"
    problem = problem or fused_head_problem(head)
    loss = None
    if problem is None:
        loss = _liger_loss()
        if loss is None:
            problem = "liger_kernel is not installed (pip install liger-kernel)"
    if problem is not None and fused == "liger":
        raise HybridjetError(f"fused='liger' cannot be used: {problem}")
    return loss


def _liger_sum(
    loss: Callable[..., torch.Tensor], head: torch.nn.Linear, post: LogitPost, hidden: torch.Tensor,
    target: torch.Tensor,
) -> torch.Tensor:
    # a logit scale folds into the input (and bias): s * (h W^T + b) = (s h) W^T + s b
    bias = head.bias
    if post.scale != 1.0:
        hidden = hidden * post.scale
        bias = None if bias is None else bias * post.scale
    if hidden.dtype != head.weight.dtype and not torch.is_autocast_enabled(hidden.device.type):
        hidden = hidden.to(head.weight.dtype)  # as the head itself would need outside autocast
    return loss(hidden, head.weight, target, bias=bias, ignore_index=IGNORE_INDEX, reduction="sum",
                softcap=post.softcap)


def token_loss_sum(
    model: Any, batch: dict[str, torch.Tensor], chunk_tokens: int = 4096, fused: str = "auto"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed next-token cross entropy over the learned labels of ``batch`` and the number of learned tokens.

    ``model``: a causal LM, peft-wrapped or not; ``batch``: ``input_ids`` and ``labels`` [B, T] with either
    ``attention_mask`` (padded rows) or ``position_ids`` restarting at 0 per example (packed rows, no mask), and
    the collators' ``learned_index`` (else found from the labels, which on a GPU waits for the device);
    ``chunk_tokens``: positions per LM-head chunk; ``fused``: ``auto`` (Liger on CUDA when installed and the
    head is a plain matrix), ``liger`` (required) or ``none`` (chunked).  The sum is fp32, the count int64.
    """
    if fused not in FUSED:
        raise HybridjetError(f"unknown fused loss {fused!r}: expected one of {', '.join(FUSED)}")
    if int(chunk_tokens) < 1:
        raise HybridjetError(f"chunk_tokens must be positive, got {chunk_tokens}")
    index = batch.get(LEARNED_INDEX)
    if index is None:  # a batch not from this package's collators: its learned positions found where it lies
        index = learned_index(batch)  # on a GPU, this waits for the device
    labels = batch["labels"]
    target = labels.flatten().index_select(0, index + 1)
    count = torch.full((), index.numel(), dtype=torch.int64, device=labels.device)
    # use_cache=False: transformers isolates packed examples (position_ids, no mask) only without a cache
    inputs = {"input_ids": batch["input_ids"], "use_cache": False}
    for key in ("attention_mask", "position_ids"):
        if batch.get(key) is not None:
            inputs[key] = batch[key]
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    post = logit_post(base.config)
    if post is None:
        if fused == "liger":
            raise HybridjetError(
                f"fused='liger' cannot be used: model type {base.config.model_type!r} is not known"
            )
        if base.config.model_type not in _warned:
            _warned.add(base.config.model_type)
            log.warning("hybridjet: model type %r: loss from the full logits (not memory-safe)",
                        base.config.model_type)
        logits = model(**inputs).logits
        logits = logits.flatten(0, 1).index_select(0, index).float()
        return F.cross_entropy(logits, target, ignore_index=IGNORE_INDEX, reduction="sum"), count
    hidden = decoder_of(model)(**inputs).last_hidden_state
    hidden = hidden.flatten(0, 1).index_select(0, index)  # [N, H]
    head = model.get_output_embeddings()
    loss = _fused_loss(fused, head, hidden.device)
    if loss is not None and hidden.size(0):  # nothing learned: the chunked path gives the zero
        return _liger_sum(loss, head, post, hidden, target), count
    return chunked_cross_entropy(head, hidden, target, post, int(chunk_tokens)), count
