"""Hidden states of a loaded backbone for the llm tests (a uniquely named module: importable next to other areas'
tests)."""

from __future__ import annotations

from typing import Any

import torch

from hybridjet.llm.backbone import decoder_of


def embed(bb: Any, input_ids: torch.Tensor) -> torch.Tensor:
    """Input embeddings [B, T, H] of token ids [B, T]."""
    table = bb.input_embeddings
    return table(input_ids.to(table.weight.device))


def embed_dtype(bb: Any) -> torch.dtype:
    """The input embeddings' dtype (fp32 after peft's upcast of a 4-bit model, else the compute dtype)."""
    return bb.input_embeddings.weight.dtype


def hidden_states(bb: Any, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """The decoder's last hidden state [B, T, H] for ``inputs_embeds`` (cast differentiably to the embeddings'
    dtype and device), no vocabulary projection."""
    weight = bb.input_embeddings.weight
    inputs_embeds = inputs_embeds.to(device=weight.device, dtype=weight.dtype)
    if attention_mask is not None:
        attention_mask = attention_mask.to(weight.device)
    return decoder_of(bb.model)(inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                                use_cache=False).last_hidden_state
