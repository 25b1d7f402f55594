"""CUDA path (skipped without a GPU): auto = NF4 double-quant with bf16 compute, kbit preparation, LoRA training
through inputs_embeds with checkpointing, adapters round trip on the GPU."""

from __future__ import annotations

import bitsandbytes as bnb
import pytest
import torch
from llm_helpers import embed, embed_dtype, hidden_states

from hybridjet.llm import describe, load_adapter, load_backbone, save_adapter

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def test_auto_is_nf4_dq_bf16_and_trains(tiny_llama, tmp_path):
    bb = load_backbone(tiny_llama, lora="all-linear", gradient_checkpointing=True)
    assert bb.quantization == "nf4-dq" and bb.dtype == torch.bfloat16 and bb.device.type == "cuda"
    q = [m for m in bb.model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(q) == 14 and all(m.weight.device.type == "cuda" for m in q)
    assert q[0].weight.quant_state.nested  # double quantization
    # on CUDA the frozen norms and embeddings stay in the compute dtype (upcast_frozen=None): soft tokens are cast
    # to embed_dtype
    assert embed_dtype(bb) == torch.bfloat16
    before = {n: p.detach().clone() for n, p in bb.model.named_parameters()}
    opt = torch.optim.AdamW(bb.trainable_parameters(), lr=1e-2)
    bb.model.train()
    ids = bb.tokenizer(["jet 1523 GeV", "qcd"], return_tensors="pt", padding=True)
    soft = torch.randn(2, 3, bb.hidden_size, device="cuda", requires_grad=True)
    emb = torch.cat([soft.to(embed_dtype(bb)), embed(bb, ids.input_ids)], dim=1)
    mask = torch.cat([torch.ones(2, 3, dtype=torch.long), ids.attention_mask], dim=1)
    h = hidden_states(bb, emb, mask)
    assert h.shape == (2, emb.shape[1], bb.hidden_size) and h.device.type == "cuda"
    h[:, -1].float().pow(2).sum().backward()
    assert soft.grad is not None and soft.grad.abs().sum() > 0
    opt.step()
    changed = {n for n, p in bb.model.named_parameters() if not torch.equal(before[n], p.detach())}
    assert changed and all("lora_" in n for n in changed)
    report = describe(bb)
    assert report.device.startswith("cuda") and report.quantization == "nf4-dq"
    out = save_adapter(bb, tmp_path / "ad")
    bb.model.eval()
    with torch.no_grad():
        ref = bb.model(input_ids=ids.input_ids.cuda()).logits
    again = load_adapter(tiny_llama, out)
    with torch.no_grad():
        got = again.model(input_ids=ids.input_ids.cuda()).logits
    torch.testing.assert_close(got.float(), ref.float(), atol=2e-2, rtol=2e-2)


def test_bf16_unquantized_with_fp32_soft_tokens(tiny_llama):
    bb = load_backbone(tiny_llama, quantization="none", lora="qkv", gradient_checkpointing=True)
    assert bb.dtype == torch.bfloat16 and embed_dtype(bb) == torch.bfloat16
    bb.model.train()
    x = torch.randn(2, 4, bb.hidden_size, requires_grad=True)  # fp32, on the CPU: moved and cast
    h = hidden_states(bb, x, torch.ones(2, 4, dtype=torch.long))
    h.float().sum().backward()
    assert x.grad is not None and all(p.grad is not None for p in bb.trainable_parameters())


def test_bare_cuda_means_this_ranks_gpu(monkeypatch):
    from hybridjet.llm.backbone import resolve_device

    monkeypatch.setenv("LOCAL_RANK", "1")
    assert resolve_device("cuda") == torch.device("cuda", 1 % torch.cuda.device_count())
    monkeypatch.delenv("LOCAL_RANK")
    assert resolve_device(None) == torch.device("cuda", torch.cuda.current_device())


def test_dense_copy_of_a_4bit_model_on_the_gpu(tiny_llama):
    from hybridjet.llm.dense import densify, quantized_layer_count

    bb = load_backbone(tiny_llama, lora="attn")
    ids = torch.tensor([[1, 5, 9, 13, 2, 7]], device="cuda")
    model = bb.model.eval()
    with torch.no_grad():
        expected = model(input_ids=ids).logits.float()
        dense = densify(model, torch.bfloat16)
        got = dense(input_ids=ids).logits.float()
    assert quantized_layer_count(dense) == 0 and next(dense.parameters()).dtype == torch.bfloat16
    assert (got - expected).abs().max() < 5e-2 * expected.abs().max()


@pytest.mark.parametrize("compiled", [False, True])
def test_offloaded_checkpoints_match_on_the_gpu(tiny_llama, compiled, monkeypatch):
    """checkpoint_offload on CUDA (pinned host copies of the checkpointed inputs), eager and with the decoder layers
    compiled as text SFT compiles them: the same gradients as checkpointing on the GPU."""
    import hybridjet.llm.offload
    from hybridjet.llm.backbone import decoder_of

    monkeypatch.setattr(hybridjet.llm.offload, "MIN_OFFLOAD_BYTES", 1)  # the tiny model's tensors are small

    grads = {}
    for offload in (False, True):
        torch.manual_seed(0)
        bb = load_backbone(tiny_llama, quantization="none", lora="qkv", gradient_checkpointing=True,
                           checkpoint_offload=offload)
        if compiled:
            for layer in decoder_of(bb.model).layers:
                layer.compile(dynamic=True)
        bb.model.train()
        x = torch.randn(2, 64, bb.hidden_size, generator=torch.Generator().manual_seed(1)).cuda().requires_grad_()
        hidden_states(bb, x, torch.ones(2, 64, dtype=torch.long)).float().pow(2).mean().backward()
        grads[offload] = [x.grad] + [p.grad for p in bb.trainable_parameters()]
        if offload:
            assert decoder_of(bb.model).saved_offload.offloaded >= 2  # at least each layer's input
    for a, b in zip(grads[True], grads[False], strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("nested", [False, True])
def test_nf4_dequantized_in_torch_matches_the_cuda_kernel(nested):
    import bitsandbytes.functional as bnbf

    from hybridjet.llm.nf4 import _state_args, dequantize_nf4

    weight = torch.randn(1536, 576, device="cuda", dtype=torch.bfloat16) * 0.02
    packed, state = bnbf.quantize_4bit(weight, blocksize=64, compress_statistics=nested, quant_type="nf4")
    expected = bnbf.dequantize_4bit(packed, state)
    got = torch.compile(dequantize_nf4)(packed, *_state_args(state))
    torch.testing.assert_close(got, expected)  # Inductor may fuse the nested scales' multiply-add (one rounding)


def test_compiled_layers_with_graph_nf4_train_like_bitsandbytes(tiny_llama):
    from hybridjet.llm.backbone import decoder_of
    from hybridjet.runtime import Runtime, load_llm

    results = {}
    for dequant in ("bitsandbytes", "graph"):
        torch.manual_seed(0)
        bb = load_llm(str(tiny_llama), None, Runtime(nf4_dequant=dequant), full=False)
        for layer in decoder_of(bb.model).layers:
            layer.compile(dynamic=True)
        x = torch.randn(2, 32, bb.hidden_size, device="cuda", requires_grad=True)
        with torch.autocast("cuda", torch.bfloat16):
            hidden_states(bb, x, torch.ones(2, 32, dtype=torch.long)).float().pow(2).mean().backward()
        results[dequant] = x.grad
    torch.testing.assert_close(results["graph"], results["bitsandbytes"], rtol=2e-2, atol=2e-3)
