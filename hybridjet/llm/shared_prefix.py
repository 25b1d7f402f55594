"""A fixed text prefix run once and shared by every sequence of a batch.

The hybrid's prompt starts with the same tokens for every event.  :func:`forward_with_shared_prefix` runs them once
(batch 1), keeps each layer's keys and values, and runs the batch's own tokens against them: the same hidden states
as the full sequence, with the prefix's share of the work done once per batch instead of once per event.

It runs the decoder layers itself, the Llama-family layer written out (RMSNorm, q/k/v projections, rotary,
attention, o projection, residual, MLP) calling the layer's own modules, so LoRA, 4-bit and merged weights all
work.  Attention to the prefix is one matrix product per key/value head against keys shared by the batch (no
copy per event); the softmax runs over prefix and own keys together.  Fused kernels such as flash attention help
little here: a few dozen keys per query, and the prefix's keys would have to be copied per event to form their
inputs (measured: BENCHMARKS.md, "Compiled layers and a shared prefix").  With
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
    """Attention of q [G, B, R, T, d] (R query heads per key/value head) over the shared prefix's keys
    [G, P, d] (all visible) and the own keys k, v [G, B, T, d] (causal).  Returns [G, B, R, T, d].

    Everything is laid out key/value-head first, so the prefix scores are one matrix product per head over all
    events and rows, and both score blocks share the layout the softmax reduces over."""
    g, b, r, t, d = q.shape
    dtype = v.dtype
    q, k = q.to(dtype), k.to(dtype)
    rows = r * t
    own = torch.matmul(q.reshape(g * b, rows, d), k.reshape(g * b, t, d).transpose(1, 2))
    own = own.view(g, b, rows, t).float() * scale
    query_pos = torch.arange(rows, device=q.device) % t
    causal = torch.arange(t, device=q.device)[None, :] <= query_pos[:, None]
    own = own.masked_fill(~causal, float("-inf"))
    if prefix_k is None:
        weights = torch.softmax(own, dim=-1).to(dtype)
        return torch.matmul(weights.view(g * b, rows, t), v.reshape(g * b, t, d)).view(g, b, r, t, d)
    n_prefix = prefix_k.shape[1]
    shared = torch.bmm(q.reshape(g, b * rows, d), prefix_k.to(dtype).transpose(1, 2))
    shared = shared.view(g, b, rows, n_prefix).float() * scale
    weights = torch.softmax(torch.cat([shared, own], dim=-1), dim=-1).to(dtype)
    out = torch.bmm(weights[..., :n_prefix].reshape(g, b * rows, n_prefix), prefix_v.to(dtype)).view(g * b, rows, d)
    out = out + torch.matmul(weights[..., n_prefix:].reshape(g * b, rows, t), v.reshape(g * b, t, d))
    return out.view(g, b, r, t, d)


def _layer(layer: nn.Module, hidden: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
           prefix_k: torch.Tensor | None, prefix_v: torch.Tensor | None
           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One pre-norm decoder layer on hidden [B, T, D]; returns the new hidden states and this pass's keys and
    values [G, B, T, d] (after rotary)."""
    attn = layer.self_attn
    b, t, _ = hidden.shape
    d = attn.head_dim
    x = layer.input_layernorm(hidden)
    k = attn.k_proj(x).view(b, t, -1, d)
    g = k.shape[2]
    q = attn.q_proj(x).view(b, t, g, -1, d).permute(2, 0, 3, 1, 4)  # [G, B, R, T, d]
    k = k.permute(2, 0, 1, 3)  # [G, B, T, d]
    v = attn.v_proj(x).view(b, t, g, d).permute(2, 0, 1, 3)
    cos, sin = cos[None], sin[None]  # [1, B or 1, T, d]
    k = k * cos + _rotate_half(k) * sin
    cos, sin = cos[:, :, None], sin[:, :, None]
    q = q * cos + _rotate_half(q) * sin
    a = _attend(q, k, v, prefix_k, prefix_v, attn.scaling)
    hidden = hidden + attn.o_proj(a.permute(1, 3, 0, 2, 4).reshape(b, t, -1))
    hidden = hidden + layer.mlp(layer.post_attention_layernorm(hidden))
    return hidden, k, v


#: keyword arguments of ``torch.compile`` for the layer function (benchmarks try modes; set before first use)
COMPILE_OPTIONS: dict[str, Any] = {}
_compiled_layer: Any = None


def _layer_function(compiled: bool) -> Any:
    global _compiled_layer
    if not compiled:
        return _layer
    if _compiled_layer is None:
        _compiled_layer = torch.compile(_layer, **COMPILE_OPTIONS)
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
        hidden, _, _ = layer_fn(layer, hidden, cos, sin, prefix_k[:, 0], prefix_v[:, 0])
    return decoder.norm(hidden)
