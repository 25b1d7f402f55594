"""NF4 dequantized in torch operations (runtime.nf4_dequant: graph): bitwise bitsandbytes' values, the same
forward and gradients through a LoRA model, no dense weight kept for the backward."""

from __future__ import annotations

import bitsandbytes as bnb
import bitsandbytes.functional as bnbf
import pytest
import torch
from llm_helpers import hidden_states

from hybridjet.llm import LoraSpec, load_backbone
from hybridjet.llm.nf4 import (
    _state_args,
    dequantize_in_graph,
    dequantize_nf4,
    graph_nf4_class,
    in_graph_supported,
)


@pytest.mark.parametrize("nested", [False, True])
@pytest.mark.parametrize("shape", [(96, 128), (576, 1536), (1000, 192)])
def test_dequantize_nf4_is_bitwise_bitsandbytes(shape, nested):
    torch.manual_seed(0)
    weight = torch.randn(*shape, dtype=torch.bfloat16) * 0.02
    packed, state = bnbf.quantize_4bit(weight, blocksize=64, compress_statistics=nested, quant_type="nf4")
    expected = bnbf.dequantize_4bit(packed, state)
    got = dequantize_nf4(packed, *_state_args(state))
    assert got.dtype == expected.dtype and got.shape == expected.shape
    assert torch.equal(got, expected)


def _run(tiny_llama, quantization: str, graph: bool) -> tuple[int, torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    torch.manual_seed(0)
    bb = load_backbone(tiny_llama, quantization=quantization, lora=LoraSpec("all-linear", r=4, alpha=8, dropout=0.0),
                       device="cpu")  # fp32 compute: the comparison is exact (the GPU's: test_cuda.py)
    with torch.no_grad():
        for name, p in bb.model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(3)) * 0.05)
    switched = dequantize_in_graph(bb.model) if graph else 0
    bb.model.train()
    x = torch.randn(2, 5, bb.hidden_size, generator=torch.Generator().manual_seed(1), requires_grad=True)
    h = hidden_states(bb, x, torch.ones(2, 5, dtype=torch.long))
    h.float().pow(2).mean().backward()
    return switched, h.detach(), x.grad, [p.grad for p in bb.trainable_parameters()]


@pytest.mark.parametrize("quantization", ["nf4", "nf4-dq"])
def test_graph_dequant_trains_like_bitsandbytes(tiny_llama, quantization):
    n, h_bnb, gx_bnb, g_bnb = _run(tiny_llama, quantization, graph=False)
    switched, h, gx, g = _run(tiny_llama, quantization, graph=True)
    assert n == 0 and switched == 14  # 2 layers x 7 projections, every one switched
    torch.testing.assert_close(h, h_bnb, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gx, gx_bnb, rtol=1e-5, atol=1e-6)
    assert len(g) == len(g_bnb) > 0
    for a, b in zip(g, g_bnb, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_the_backward_keeps_no_dense_weight():
    """Only the input and the packed weight wait for the backward: a dense copy per layer would undo 4 bits."""
    layer = bnb.nn.Linear4bit(256, 512, bias=False, compute_dtype=torch.float32, quant_type="nf4")
    layer.weight = bnb.nn.Params4bit(torch.randn(512, 256) * 0.02, requires_grad=False, quant_type="nf4")
    layer.weight = layer.weight._quantize("cpu") if hasattr(layer.weight, "_quantize") else layer.weight
    layer.__class__ = graph_nf4_class()
    assert in_graph_supported(layer)
    saved: list[torch.Size] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved.append(t.shape)
        return t

    x = torch.randn(3, 256, requires_grad=True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = layer(x)
    out.sum().backward()
    assert x.grad is not None and x.grad.shape == x.shape
    assert torch.Size([512, 256]) not in saved


def test_runtime_nf4_dequant_reaches_the_loaded_model(tiny_llama):
    from hybridjet.errors import HybridjetError
    from hybridjet.runtime import Runtime, load_llm

    bb = load_llm(str(tiny_llama), LoraSpec("attn"), Runtime(quantization="nf4", nf4_dequant="graph"))
    kinds = {type(m).__name__ for m in bb.model.modules() if isinstance(m, bnb.nn.Linear4bit)}
    assert kinds == {"GraphNF4Linear"}
    plain = load_llm(str(tiny_llama), LoraSpec("attn"), Runtime(quantization="nf4"))
    assert {type(m).__name__ for m in plain.model.modules() if isinstance(m, bnb.nn.Linear4bit)} == {"Linear4bit"}
    with pytest.raises(HybridjetError, match="runtime.nf4_dequant: expected one of bitsandbytes, graph"):
        Runtime(nf4_dequant="triton")


def test_load_backbone_refuses_bad_settings_before_looking_for_the_model(tmp_path):
    from hybridjet.errors import HybridjetError
    from hybridjet.llm.backbone import load_backbone

    missing = tmp_path / "no-such-model"  # checked first, the model would be "not found"
    with pytest.raises(HybridjetError, match="nf4_dequant: expected one of bitsandbytes, graph, got 'triton'"):
        load_backbone(missing, nf4_dequant="triton")
    with pytest.raises(HybridjetError, match="checkpoint_offload: .* needs gradient_checkpointing"):
        load_backbone(missing, checkpoint_offload=True)
