"""A fixed text prefix run once and shared by every sequence of a batch.

The hybrid's prompt starts with the same tokens for every event.  :func:`forward_with_shared_prefix` runs them once
(batch 1), keeps each layer's keys and values, and runs the batch's own tokens against them: the same hidden states
as the full sequence, with the prefix's share of the work done once per batch instead of once per event.

It runs the decoder layers itself, the Llama-family layer written out (RMSNorm, q/k/v projections, rotary,
attention, o projection, residual, MLP) calling the layer's own modules, so LoRA, 4-bit and merged weights all
work.  Attention to the prefix is one matrix product against keys shared by the batch (no copy per event), the
softmax runs over prefix and own keys together.  Fused kernels such as flash attention help little here: a few
dozen keys per query, and the prefix's keys would have to be copied per event to form their inputs.  With
``compiled=True`` the layer function is compiled once for all layers (they share its graph).  Other architectures
are reported unsupported and run the full sequence instead.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

#: decoders whose forward is: inputs_embeds -> rotary_emb -> layers (pre-norm attention + MLP) -> norm
SHARED_PREFIX_MODEL_TYPES = frozenset({"llama", "mistral", "qwen2"})
_LAYER_PARTS = ("input_layernorm", "post_attention_layernorm", "mlp", "self_attn")
_ATTENTION_PARTS = ("q_proj", "k_proj", "v_proj", "o_proj", "head_dim", "scaling")


def supports_shared_prefix(decoder: nn.Module) -> bool:
    """Whether :func:`forward_with_shared_prefix` reproduces this decoder's own forward."""
    config = getattr(decoder, "config", None)
    if getattr(config, "model_type", None) not in SHARED_PREFIX_MODEL_TYPES:
        return False
    if not all(hasattr(decoder, name) for name in ("layers", "rotary_emb", "norm")) or not len(decoder.layers):
        return False
    layer = decoder.layers[0]
    return all(hasattr(layer, n) for n in _LAYER_PARTS) and all(hasattr(layer.self_attn, n) for n in _ATTENTION_PARTS)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, prefix_k: torch.Tensor | None,
            prefix_v: torch.Tensor | None, scale: float) -> torch.Tensor:
    """Causal attention of q [B, H, T, d] over the shared prefix keys [G, P, d] (all visible) and the own keys
    [B, G, T, d] (causal); G key/value heads serve H / G query heads each.  Returns [B, H, T, d]."""
    b, h, t, d = q.shape
    g = k.shape[1]
    q = q.reshape(b, g, h // g, t, d)
    k, v = k.to(q.dtype), v.to(q.dtype)
    own = torch.einsum("bgrtd,bgsd->bgrts", q, k).float() * scale
    causal = torch.ones(t, t, dtype=torch.bool, device=q.device).tril()
    own = own.masked_fill(~causal, float("-inf"))
    if prefix_k is None:
        weights = torch.softmax(own, dim=-1).to(v.dtype)
        return torch.einsum("bgrts,bgsd->bgrtd", weights, v).reshape(b, h, t, d)
    prefix_k, prefix_v = prefix_k.to(q.dtype), prefix_v.to(q.dtype)
    shared = torch.einsum("bgrtd,gpd->bgrtp", q, prefix_k).float() * scale
    weights = torch.softmax(torch.cat([shared, own], dim=-1), dim=-1).to(v.dtype)
    n_prefix = prefix_k.shape[1]
    out = (torch.einsum("bgrtp,gpd->bgrtd", weights[..., :n_prefix], prefix_v)
           + torch.einsum("bgrts,bgsd->bgrtd", weights[..., n_prefix:], v))
    return out.reshape(b, h, t, d)


def _layer(layer: nn.Module, hidden: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
           prefix_k: torch.Tensor | None, prefix_v: torch.Tensor | None
           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One pre-norm decoder layer on hidden [B, T, D]; returns the new hidden states and this pass's keys and
    values [B, G, T, d] (after rotary)."""
    attn = layer.self_attn
    b, t, _ = hidden.shape
    x = layer.input_layernorm(hidden)
    q = attn.q_proj(x).view(b, t, -1, attn.head_dim).transpose(1, 2)
    k = attn.k_proj(x).view(b, t, -1, attn.head_dim).transpose(1, 2)
    v = attn.v_proj(x).view(b, t, -1, attn.head_dim).transpose(1, 2)
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    q = q * cos + _rotate_half(q) * sin
    k = k * cos + _rotate_half(k) * sin
    a = _attend(q, k, v, prefix_k, prefix_v, attn.scaling)
    hidden = hidden + attn.o_proj(a.transpose(1, 2).reshape(b, t, -1))
    hidden = hidden + layer.mlp(layer.post_attention_layernorm(hidden))
    return hidden, k, v


_compiled_layer: Any = None


def _layer_function(compiled: bool) -> Any:
    global _compiled_layer
    if not compiled:
        return _layer
    if _compiled_layer is None:
        _compiled_layer = torch.compile(_layer)
    return _compiled_layer


def forward_with_shared_prefix(decoder: nn.Module, prefix_embeds: torch.Tensor, embeds: torch.Tensor,
                               compiled: bool = False) -> torch.Tensor:
    """Final hidden states [B, T, D] of ``prefix + embeds[b]`` for each b, at the positions of ``embeds``.

    Args:
        decoder: a decoder body for which :func:`supports_shared_prefix` holds (no LM head).
        prefix_embeds: [1, P, D] input embeddings of the shared prefix.
        embeds: [B, T, D] input embeddings of each sequence's own tokens.
        compiled: run the layers through ``torch.compile`` (one graph for all layers).
    """
    layer_fn = _layer_function(compiled)
    layers = decoder.layers[: decoder.config.num_hidden_layers]
    n_prefix, n_own = prefix_embeds.shape[1], embeds.shape[1]
    device = embeds.device
    prefix_pos = torch.arange(n_prefix, device=device)[None]
    own_pos = torch.arange(n_prefix, n_prefix + n_own, device=device)[None]
    prefix_cos, prefix_sin = decoder.rotary_emb(prefix_embeds, position_ids=prefix_pos)
    cos, sin = decoder.rotary_emb(embeds, position_ids=own_pos)
    prefix, hidden = prefix_embeds, embeds
    for layer in layers:
        # the prefix at batch 1 (causal among itself), then the batch against its keys and values
        prefix, prefix_k, prefix_v = layer_fn(layer, prefix, prefix_cos, prefix_sin, None, None)
        hidden, _, _ = layer_fn(layer, hidden, cos, sin, prefix_k[0], prefix_v[0])
    return decoder.norm(hidden)
