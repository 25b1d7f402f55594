"""NF4 linear layers whose dequantization is written in torch operations, so that ``torch.compile`` traces it into
the layer's graph (``runtime.nf4_dequant: graph``).

bitsandbytes' ``Linear4bit`` reaches its CUDA kernels through Python: every call of a compiled layer leaves the
graph for its ``gemm_4bit`` operator (the double-quantized scales dequantized, the weight dequantized, a matmul),
about a quarter of a millisecond of host time per projection on an H100, which a host-bound step (an 8B model at
small batches) pays seven times per layer, forward, recompute and backward. Here the same arithmetic — each byte two
4-bit codes (the high nibble first) looked up in the NF4 table and scaled by their block's absmax, itself decoded
from 8 bits when double-quantized — is plain indexing and multiplication: Inductor fuses it into one kernel inside
the compiled layer, and the matmul follows as in any graph. The values are bitwise those of bitsandbytes'
``dequantize_4bit`` (tested). The backward dequantizes again instead of keeping the dense weight, as bitsandbytes
does; the frozen weight gets no gradient.
"""

from __future__ import annotations

from typing import Any

import torch

NF4_DEQUANTS = ("bitsandbytes", "graph")


def dequantize_nf4(packed: torch.Tensor, absmax: torch.Tensor, code: torch.Tensor, blocksize: int,
                   shape: torch.Size, dtype: torch.dtype, nested: tuple[torch.Tensor, torch.Tensor, int,
                                                                        torch.Tensor] | None = None) -> torch.Tensor:
    """The dense weight of a bitsandbytes NF4 tensor: ``packed`` uint8 codes (two per byte), ``absmax`` per block of
    ``blocksize`` values, ``code`` the 16-value table; ``nested`` = (8-bit code table, absmax, blocksize, offset) of
    double-quantized scales."""
    flat = packed.reshape(-1)
    codes = torch.stack((flat >> 4, flat & 15), dim=1).reshape(-1).long()
    scales = absmax
    if nested is not None:
        inner_code, inner_absmax, inner_blocksize, offset = nested
        blocks = torch.arange(absmax.numel(), device=absmax.device) // inner_blocksize
        scales = inner_code[absmax.long()] * inner_absmax[blocks] + offset
    values = code[codes].view(-1, blocksize) * scales.float()[:, None]
    return values.view(shape).to(dtype)


def _state_args(state: Any) -> tuple[Any, ...]:
    """``dequantize_nf4``'s arguments after ``packed``, from a bitsandbytes ``QuantState``."""
    nested = None
    if state.nested:
        nested = (state.state2.code, state.state2.absmax, state.state2.blocksize, state.offset)
    return state.absmax, state.code, state.blocksize, state.shape, state.dtype, nested


class _NF4Matmul(torch.autograd.Function):
    """``x @ W.T`` with ``W`` dequantized in the forward and again in the backward (never saved)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, packed: torch.Tensor, *state: Any) -> torch.Tensor:
        ctx.save_for_backward(packed)
        ctx.state = state
        return x @ dequantize_nf4(packed, *state).to(x.dtype).t()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        (packed,) = ctx.saved_tensors
        grad_x = grad @ dequantize_nf4(packed, *ctx.state).to(grad.dtype) if ctx.needs_input_grad[0] else None
        return (grad_x, None) + (None,) * len(ctx.state)


def in_graph_supported(module: Any) -> bool:
    """Whether a bitsandbytes ``Linear4bit`` can dequantize in torch: NF4, uint8 storage, whole blocks, the
    standard layout (not bitsandbytes' CPU inference packing), a frozen weight."""
    weight = getattr(module, "weight", None)
    state = getattr(weight, "quant_state", None)
    return (state is not None and state.quant_type == "nf4" and weight.dtype == torch.uint8
            and not getattr(state, "packing_format_for_cpu", False) and not weight.requires_grad
            and state.shape.numel() % state.blocksize == 0)


def graph_nf4_class() -> type:
    """The ``Linear4bit`` subclass whose forward dequantizes in torch (made on first use: bitsandbytes is optional)."""
    global _GRAPH_CLASS
    if _GRAPH_CLASS is None:
        import bitsandbytes as bnb

        class GraphNF4Linear(bnb.nn.Linear4bit):
            """bitsandbytes' NF4 linear layer, dequantized by :func:`dequantize_nf4` (same weights, same values)."""

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                if not in_graph_supported(self):  # e.g. bitsandbytes repacked the weight for CPU inference
                    return super().forward(x)
                dtype = x.dtype
                x = x.to(self.compute_dtype) if self.compute_dtype is not None else x
                out = _NF4Matmul.apply(x, self.weight, *_state_args(self.weight.quant_state))
                if self.bias is not None:
                    out = out + self.bias.to(out.dtype)
                return out.to(dtype)

        _GRAPH_CLASS = GraphNF4Linear
    return _GRAPH_CLASS


_GRAPH_CLASS: type | None = None


def dequantize_in_graph(model: torch.nn.Module) -> int:
    """Switch every supported NF4 ``Linear4bit`` under ``model`` to :func:`graph_nf4_class` in place (the same
    module, weights and state dict; ``isinstance`` checks still see a ``Linear4bit``). Returns how many."""
    try:
        import bitsandbytes as bnb
    except ImportError:
        return 0
    switched = 0
    for module in model.modules():
        if type(module) is bnb.nn.Linear4bit and in_graph_supported(module):
            module.__class__ = graph_nf4_class()
            switched += 1
    return switched
