"""A fixed text prefix run once and shared by every sequence of a batch.

The hybrid's prompt starts with the same tokens for every event.  :func:`forward_with_shared_prefix` runs them once
per batch, not once per event: one residual stream holds the prefix's tokens and then every event's own tokens, the
token-wise parts of each layer run over all of them at once, and attention lets each event's tokens see the
prefix's keys and values and, causally, their own.  The same hidden states as the full sequence.

It runs the decoder layers itself, the Llama-family layer written out (RMSNorm, q/k/v projections, rotary,
attention, o projection, residual, MLP) calling the layer's own modules, so LoRA, 4-bit and merged weights all
work.  Attention comes in two implementations (``attention=``):

* ``"matmul"``: the prefix scores are one matrix product per key/value head against keys shared by the batch (no
  copy per event), the own scores a batched product per event; one softmax over both.  Runs everywhere.
* ``"flex"``: one fused FlexAttention kernel over the whole batch laid end to end as a single sequence, the prefix's
  keys in front: a block-sparse "document" mask lets each event's tokens see the prefix and, causally, their own
  tokens, and skips every other block.  No score matrix is written to memory.  Needs ``compiled=True`` to be fast
  (eager FlexAttention materialises the scores) and, for gradients, a GPU.

With ``compiled=True`` the layer function is compiled once for all layers (they share one graph).  A head that
reads only the last position (the hybrid's) asks for ``last_only``: the last layer then computes its query,
attention, o projection and MLP for one position per event, a small part of a layer's cost.  Other
architectures are reported unsupported and run the full sequence instead.
"""

from __future__ import annotations

from functools import cache, lru_cache
from typing import Any

import torch
from torch import nn

from hybridjet.llm.families import family_of

_LAYER_PARTS = ("input_layernorm", "post_attention_layernorm", "mlp", "self_attn")
_ATTENTION_PARTS = ("q_proj", "k_proj", "v_proj", "o_proj", "head_dim", "scaling")


def supports_shared_prefix(decoder: nn.Module) -> bool:
    """Whether :func:`forward_with_shared_prefix` reproduces this decoder's own forward."""
    config = getattr(decoder, "config", None)
    if not family_of(getattr(config, "model_type", None)).shared_prefix:  # the registry's record says
        return False
    if not all(hasattr(decoder, name) for name in ("layers", "rotary_emb", "norm")) or not len(decoder.layers):
        return False
    layer = decoder.layers[0]
    return all(hasattr(layer, n) for n in _LAYER_PARTS) and all(hasattr(layer.self_attn, n) for n in _ATTENTION_PARTS)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, prefix_k: torch.Tensor | None,
            prefix_v: torch.Tensor | None, scale: float, key_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Attention of q [G, B, R, Tq, d] (R query heads per key/value head; the last Tq of the T own positions) over
    the shared prefix's keys [G, P, d] (all visible) and the own keys k, v [G, B, T, d] (causal; with ``key_mask``
    [B, T] only the keys it marks True).  Returns [G, B, R, Tq, d].

    Everything is laid out key/value-head first, so the prefix scores are one matrix product per head over all
    events and rows, and both score blocks share the layout the softmax reduces over."""
    g, b, r, tq, d = q.shape
    t = k.shape[2]
    dtype = v.dtype
    q, k = q.to(dtype), k.to(dtype)
    rows = r * tq
    own = torch.matmul(q.reshape(g * b, rows, d), k.reshape(g * b, t, d).transpose(1, 2))
    own = own.view(g, b, rows, t).float() * scale
    query_pos = torch.arange(rows, device=q.device) % tq + (t - tq)
    visible = (torch.arange(t, device=q.device)[None, :] <= query_pos[:, None])[None, None]
    if key_mask is not None:
        visible = visible & key_mask[None, :, None, :]
    own = own.masked_fill(~visible, float("-inf"))
    if prefix_k is None:
        weights = torch.softmax(own, dim=-1).to(dtype)
        return torch.matmul(weights.view(g * b, rows, t), v.reshape(g * b, t, d)).view(g, b, r, tq, d)
    n_prefix = prefix_k.shape[1]
    shared = torch.bmm(q.reshape(g, b * rows, d), prefix_k.to(dtype).transpose(1, 2))
    shared = shared.view(g, b, rows, n_prefix).float() * scale
    weights = torch.softmax(torch.cat([shared, own], dim=-1), dim=-1).to(dtype)
    out = torch.bmm(weights[..., :n_prefix].reshape(g, b * rows, n_prefix), prefix_v.to(dtype)).view(g * b, rows, d)
    out = out + torch.matmul(weights[..., n_prefix:].reshape(g * b, rows, t), v.reshape(g * b, t, d))
    return out.view(g, b, r, tq, d)


def _flex_attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, prefix_k: torch.Tensor, prefix_v: torch.Tensor,
                 scale: float, block_mask: Any) -> torch.Tensor:
    """FlexAttention of q [B, T, G, R, d] over the prefix's keys [G, P, d] and the own keys k, v [B, T, G, d], the
    batch laid end to end (``block_mask`` from :func:`document_block_mask`).  Returns [B, T, G * R * d]."""
    from torch.nn.attention.flex_attention import flex_attention

    b, t, g, r, d = q.shape
    dtype = v.dtype
    pad = block_mask.seq_lengths[1] - b * t - prefix_k.shape[1]  # prefix padded to whole blocks

    def keys(prefix: torch.Tensor, own: torch.Tensor) -> torch.Tensor:
        prefix = nn.functional.pad(prefix.to(dtype), (0, 0, 0, pad))
        return torch.cat([prefix, own.to(dtype).reshape(b * t, g, d).transpose(0, 1)], dim=1)[None]

    query = q.to(dtype).reshape(b * t, g * r, d).transpose(0, 1)[None]  # [1, H, B*T, d], head = g*R + r
    out = flex_attention(query, keys(prefix_k, k), keys(prefix_v, v), block_mask=block_mask, scale=scale,
                         enable_gqa=True)
    return out[0].transpose(0, 1).reshape(b, t, g * r * d)


def _keys_values(layer: nn.Module, tokens: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, n_prefix: int,
                 n_own: int) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """A layer's normed tokens x [P + B*T, D], the events' keys and values [B, T, G, d] (keys rotated) and the
    prefix's [G, P, d]."""
    attn = layer.self_attn
    n_tokens, d = tokens.shape[0], attn.head_dim
    n_events = (n_tokens - n_prefix) // n_own
    x = layer.input_layernorm(tokens)
    k = attn.k_proj(x).view(n_tokens, -1, d)
    g = k.shape[1]
    v = attn.v_proj(x).view(n_tokens, g, d)
    k = k * cos[:, None] + _rotate_half(k) * sin[:, None]
    own = k[n_prefix:].view(n_events, n_own, g, d), v[n_prefix:].view(n_events, n_own, g, d)
    return x, own, (k[:n_prefix].transpose(0, 1), v[:n_prefix].transpose(0, 1))


def _layer(layer: nn.Module, tokens: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, n_prefix: int, n_own: int,
           block_mask: Any = None, key_mask: torch.Tensor | None = None) -> torch.Tensor:
    """One pre-norm decoder layer on the prefix's and the batch's tokens together, tokens [P + B*T, D] (the prefix's
    P first, then each event's T): every token-wise part (norms, q/k/v/o projections, MLP) runs once over all of
    them; only attention tells them apart (the prefix causal among itself, each event over the prefix and, causally,
    itself; through :func:`_flex_attend` with ``block_mask``).  cos, sin: [P + B*T, d]; ``key_mask`` [B, T]: the
    own keys attended to (the matmul attention; FlexAttention's block mask holds it).  Returns the new tokens.

    One pass per layer instead of one for the prefix and one for the batch: half the kernel launches and compiled
    calls, which is what small GPU batches wait on."""
    attn = layer.self_attn
    n_tokens, d = tokens.shape[0], attn.head_dim
    n_events = (n_tokens - n_prefix) // n_own
    x, (k_own, v_own), (prefix_k, prefix_v) = _keys_values(layer, tokens, cos, sin, n_prefix, n_own)
    g = k_own.shape[2]
    q = attn.q_proj(x).view(n_tokens, g, -1, d)
    q = q * cos[:, None, None] + _rotate_half(q) * sin[:, None, None]
    r = q.shape[2]
    q_own = q[n_prefix:].view(n_events, n_own, g, r, d)
    if block_mask is not None:
        a = _flex_attend(q_own, k_own, v_own, prefix_k, prefix_v, attn.scaling, block_mask)
    else:  # key/value head first: [G, B, R, T, d] and [G, B, T, d]
        a = _attend(q_own.permute(2, 0, 3, 1, 4), k_own.permute(2, 0, 1, 3), v_own.permute(2, 0, 1, 3), prefix_k,
                    prefix_v, attn.scaling, key_mask)
        a = a.permute(1, 3, 0, 2, 4)
    a = a.reshape(n_events * n_own, -1)
    if n_prefix:  # the prefix is one sequence (batch 1), causal among itself: [G, 1, R, P, d]
        a_prefix = _attend(q[:n_prefix].permute(1, 2, 0, 3)[:, None], prefix_k[:, None], prefix_v[:, None], None,
                           None, attn.scaling)
        a = torch.cat([a_prefix[:, 0].permute(2, 0, 1, 3).reshape(n_prefix, -1), a])
    tokens = tokens + attn.o_proj(a)
    return tokens + layer.mlp(layer.post_attention_layernorm(tokens))


def _last_layer(layer: nn.Module, tokens: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, n_prefix: int,
                n_own: int, key_mask: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`_layer` for each event's last position only, [B, D]: keys and values from every token, but the query,
    attention (the matmul one), o projection and MLP on one token per event. A head on the last position needs
    nothing more from the last layer, which then costs a small part of a full one."""
    attn = layer.self_attn
    n_events, d = (tokens.shape[0] - n_prefix) // n_own, attn.head_dim
    x, (k_own, v_own), (prefix_k, prefix_v) = _keys_values(layer, tokens, cos, sin, n_prefix, n_own)

    def last(a: torch.Tensor) -> torch.Tensor:  # each event's last own position, [B, ...]
        return a[n_prefix:].view(n_events, n_own, *a.shape[1:])[:, -1]

    q = attn.q_proj(last(x)).view(n_events, k_own.shape[2], -1, d)
    q = q * last(cos)[:, None, None] + _rotate_half(q) * last(sin)[:, None, None]
    # one query per event: the matmul attention, [G, B, R, 1, d]
    a = _attend(q.permute(1, 0, 2, 3)[:, :, :, None], k_own.permute(2, 0, 1, 3), v_own.permute(2, 0, 1, 3),
                prefix_k, prefix_v, attn.scaling, key_mask)
    out = last(tokens) + attn.o_proj(a[:, :, :, 0].permute(1, 0, 2, 3).reshape(n_events, -1))
    return out + layer.mlp(layer.post_attention_layernorm(out))


#: query and key block of the FlexAttention mask (the kernel's tile sizes must divide it)
FLEX_BLOCK_SIZE = 128


@lru_cache(maxsize=16)
def _document_mask_mod(n_prefix: int, padded_prefix: int, n_own: int) -> Any:
    """Mask of query token q (event q // n_own) and key kv: the prefix's real keys, and its own event's keys up to
    itself.  One function object per shape, so compiled graphs are reused."""

    def mask_mod(batch: Any, head: Any, q_idx: Any, kv_idx: Any) -> Any:
        own = kv_idx - padded_prefix
        same_event = (own // n_own == q_idx // n_own) & (own <= q_idx) & (kv_idx >= padded_prefix)
        return (kv_idx < n_prefix) | same_event

    return mask_mod


def _key_masked_mod(n_prefix: int, padded_prefix: int, n_own: int, key_mask: torch.Tensor) -> Any:
    """:func:`_document_mask_mod` that also drops the own keys ``key_mask`` [B, T] marks False (one per batch)."""
    document = _document_mask_mod(n_prefix, padded_prefix, n_own)
    keys = key_mask.reshape(-1)

    def mask_mod(batch: Any, head: Any, q_idx: Any, kv_idx: Any) -> Any:
        return document(batch, head, q_idx, kv_idx) & ((kv_idx < padded_prefix)
                                                       | keys[(kv_idx - padded_prefix).clamp(min=0)])

    return mask_mod


def with_key_mask(block_mask: Any, n_prefix: int, n_own: int, key_mask: torch.Tensor) -> Any:
    """``block_mask`` (from :func:`document_block_mask`) whose events see only the own keys ``key_mask`` marks: the
    same blocks (an empty key inside a block is masked element-wise), another mask function."""
    from torch.nn.attention.flex_attention import BlockMask

    padded_prefix = -(-n_prefix // FLEX_BLOCK_SIZE) * FLEX_BLOCK_SIZE
    m = block_mask
    return BlockMask(m.seq_lengths, m.kv_num_blocks, m.kv_indices, None, None, m.q_num_blocks, m.q_indices, None,
                     None, m.BLOCK_SIZE, _key_masked_mod(n_prefix, padded_prefix, n_own, key_mask))


def document_block_mask(n_prefix: int, n_events: int, n_own: int, device: torch.device | str,
                        backward: bool = True) -> Any:
    """FlexAttention block mask of ``n_events`` sequences of ``n_own`` tokens laid end to end after a prefix of
    ``n_prefix`` tokens (zero-padded to whole blocks) that all of them see.

    Built from its closed form (no dense mask): query block i sees the prefix's blocks and the own-key blocks from
    the one holding its first event's first token up to itself.  ``backward`` adds the transposed (key-block) lists
    that gradients need; the prefix's blocks are seen by every query block, so these are as wide as the number of
    query blocks.  Inductor's CPU kernel wants the forward lists as wide as the number of key blocks."""
    from torch.nn.attention.flex_attention import BlockMask

    size = FLEX_BLOCK_SIZE
    n_tokens = n_events * n_own
    prefix_blocks = -(-n_prefix // size)
    padded_prefix = prefix_blocks * size
    n_blocks = -(-n_tokens // size)
    block = torch.arange(n_blocks, device=device)
    first = (block * size // n_own * n_own) // size  # own-key block of the query block's first event start
    count = prefix_blocks + block - first + 1  # own-key blocks first .. block (causal: none after the query block)
    width = prefix_blocks + (n_blocks if torch.device(device).type == "cpu" else int((block - first).max()) + 1)
    col = torch.arange(width, device=device)
    kv_indices = torch.where(col < prefix_blocks, col, prefix_blocks + first[:, None] + col - prefix_blocks)
    kv_indices = torch.where(col < count[:, None], kv_indices, 0)
    q_count = q_indices = None
    if backward:
        # own-key block j is seen by query blocks j .. (last i with first[i] <= j); the prefix's by all
        upto = torch.searchsorted(first.contiguous(), block, right=True) - 1
        own_count = upto - block + 1
        col = torch.arange(n_blocks, device=device)
        own_rows = torch.where(col < own_count[:, None], block[:, None] + col, 0)
        q_indices = torch.cat([col.expand(prefix_blocks, -1), own_rows])
        q_count = torch.cat([torch.full((prefix_blocks,), n_blocks, device=device), own_count])
        q_count, q_indices = q_count[None, None].int(), q_indices[None, None].int()
    return BlockMask((n_tokens, padded_prefix + n_tokens), count[None, None].int(), kv_indices[None, None].int(),
                     None, None, q_count, q_indices, None, None, (size, size),
                     _document_mask_mod(n_prefix, padded_prefix, n_own))


@cache
def _compiled_layer_function(mode: str, last: bool = False) -> Any:
    """:func:`_layer` (``last``: :func:`_last_layer`) through ``torch.compile`` in ``mode``: one compiled function
    (one graph) for every layer.

    Static shapes (``dynamic=False``): each batch shape gets its own graph, never a shape-generic one.  A process sees
    few shapes (loops pad their last batch), static graphs run faster, and a graph compiled for a batch size is
    found again by the next process that scores at that size (a shape-generic one, made at a process's second batch
    size, is not)."""
    return torch.compile(_last_layer if last else _layer, mode=mode, dynamic=False)


ATTENTION_KINDS = ("matmul", "flex")


def attention_for_batch(attention: str, compiled: bool, n_tokens: int) -> str:
    """The attention that runs for a batch of ``n_tokens`` event tokens: ``attention``, except compiled FlexAttention
    with fewer tokens than one query block, which runs as ``"matmul"`` (the same function).  Below one block Inductor
    lowers FlexAttention to its flex-decoding kernel, which (torch 2.11, bf16, Hopper) failed to lower at 100 tokens
    and gave wrong hidden states at 12."""
    if attention == "flex" and compiled and n_tokens < FLEX_BLOCK_SIZE:
        return "matmul"
    return attention


def forward_with_shared_prefix(decoder: nn.Module, prefix_embeds: torch.Tensor, embeds: torch.Tensor,
                               compiled: bool = False, attention: str = "matmul",
                               cuda_graphs: bool = False, key_mask: torch.Tensor | None = None,
                               last_only: bool = False) -> torch.Tensor:
    """Final hidden states [B, T, D] of ``prefix + embeds[b]`` for each b, at the positions of ``embeds`` (with
    ``last_only``, [B, 1, D] at the last: the last layer then runs its query, attention, o projection and MLP on that
    position alone, as a head on the last position needs).

    Args:
        decoder: a decoder body for which :func:`supports_shared_prefix` holds (no LM head).
        prefix_embeds: [1, P, D] input embeddings of the shared prefix.
        embeds: [B, T, D] input embeddings of each sequence's own tokens.
        compiled: run the layers through ``torch.compile`` (one graph for all layers).
        attention: ``"matmul"`` or ``"flex"`` (module docstring; small compiled batches: :func:`attention_for_batch`).
        cuda_graphs: with ``compiled``, replay the layers from CUDA graphs (``torch.compile`` mode
            ``reduce-overhead``): no per-kernel launch cost, which is what small GPU batches wait on.  Each call
            starts a new CUDA-graph step, so a call's backward must run before the next call.
        key_mask: [B, T] bool, the own tokens the others may attend to (False: an empty slot, as a padding
            ``attention_mask`` of the full sequence; its own hidden state is computed but seen by no other token).
            Compiled, it runs the matmul attention.
    """
    if attention not in ATTENTION_KINDS:
        raise ValueError(f"attention: expected one of {ATTENTION_KINDS}, got {attention!r}")
    mode = "reduce-overhead" if cuda_graphs else "default"
    layer_fn = _compiled_layer_function(mode) if compiled else _layer
    last_fn = _compiled_layer_function(mode, last=True) if compiled else _last_layer
    layers = decoder.layers[: decoder.config.num_hidden_layers]
    (n_events, n_own), n_prefix = embeds.shape[:2], prefix_embeds.shape[1]
    device = embeds.device
    attention = attention_for_batch(attention, compiled, n_events * n_own)
    if key_mask is not None and compiled:
        attention = "matmul"  # FlexAttention would need a mask function per batch: compiled anew for every batch
    block_mask, last_key_mask = None, key_mask  # the last positions' attention is the matmul one: it needs the mask
    if attention == "flex":
        block_mask = _cached_block_mask(n_prefix, n_events, n_own, device, torch.is_grad_enabled())
        if key_mask is not None:
            block_mask = with_key_mask(block_mask, n_prefix, n_own, key_mask)
            key_mask = None  # held by the block mask
    dim = embeds.shape[2]
    positions = torch.cat([torch.arange(n_prefix, device=device),
                           torch.arange(n_prefix, n_prefix + n_own, device=device).repeat(n_events)])[None]
    cos, sin = (c[0] for c in decoder.rotary_emb(embeds, position_ids=positions))
    # one residual stream for the prefix's tokens and the batch's, [P + B*T, D]
    tokens = torch.cat([prefix_embeds.reshape(n_prefix, dim).to(embeds.dtype), embeds.reshape(n_events * n_own, dim)])
    if compiled and cuda_graphs:
        torch.compiler.cudagraph_mark_step_begin()  # a new forward: the previous one's replayed outputs are done
    for layer in layers[:-1] if last_only else layers:
        tokens = layer_fn(layer, tokens, cos, sin, n_prefix, n_own, block_mask, key_mask)
    if last_only:
        return decoder.norm(last_fn(layers[-1], tokens, cos, sin, n_prefix, n_own, last_key_mask)[:, None])
    return decoder.norm(tokens[n_prefix:].view(n_events, n_own, dim))


@lru_cache(maxsize=8)
def _cached_block_mask(n_prefix: int, n_events: int, n_own: int, device: torch.device, backward: bool) -> Any:
    """:func:`document_block_mask`, kept for the few batch shapes a run sees (full batches, a last one)."""
    return document_block_mask(n_prefix, n_events, n_own, device, backward)
