import pytest
import torch

from hybridjet.llm.backbone import load_backbone
from hybridjet.llm.dense import densify, quantized_layer_count


def _nudge_lora(model):
    """LoRA B starts at zero (a no-op update): give it values so the merge is actually exercised."""
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)


@pytest.mark.parametrize("quantization", ["none", "nf4", "int8"])
def test_dense_copy_computes_the_same_function(tiny_llama, quantization):
    plain = load_backbone(str(tiny_llama), quantization=quantization).model.eval()
    ids = torch.tensor([[1, 5, 9, 13, 2, 7]], device=plain.device)  # the loader puts models on CUDA when there is one
    with torch.no_grad():
        without_lora = plain(input_ids=ids).logits
    model = load_backbone(str(tiny_llama), quantization=quantization, lora="attn").model.eval()
    _nudge_lora(model)
    with torch.no_grad():
        expected = model(input_ids=ids).logits.float()  # also lets bitsandbytes repack its CPU weights first
    dense = densify(model, torch.float32)
    assert quantized_layer_count(dense) == 0
    assert not any("lora_" in n for n, _ in dense.named_parameters())
    assert not any(p.requires_grad for p in dense.parameters())
    with torch.no_grad():
        got = dense(input_ids=ids).logits.float()
    lora_effect = (expected - without_lora.float()).abs().max()
    error = (got - expected).abs().max()
    # bitsandbytes' kernels compute in bf16: allow their rounding, far below what the adapter changes
    assert error < (1e-4 if quantization == "none" and ids.device.type == "cpu" else 2e-2)
    assert error < 0.1 * lora_effect


def test_dense_copy_after_training_holds_no_gradients(tiny_llama):
    """A model densified right after a training step (a benchmark, a notebook) drops the adapters' gradients: on a
    GPU with CUDA graphs they are graph outputs that the dtype cast must not touch."""
    model = load_backbone(str(tiny_llama), quantization="none", lora="attn").model.train()
    ids = torch.tensor([[1, 5, 9, 13, 2, 7]], device=model.device)
    model(input_ids=ids).logits.float().sum().backward()
    assert any(p.grad is not None for p in model.parameters())
    dense = densify(model, torch.bfloat16)
    assert all(p.grad is None for p in dense.parameters())


@pytest.mark.parametrize("double_quant", [False, True])
def test_dense_weight_of_a_4bit_layer_repacked_for_the_cpu(double_quant):
    """bitsandbytes repacks a 4-bit weight for its AVX512 kernel at the first no-grad forward on a CPU; the dense copy
    must still be the weight the layer computes with (wider than one quantization block: the absmax layout shows)."""
    import bitsandbytes as bnb

    from hybridjet.llm.dense import _dense_linear

    torch.manual_seed(0)
    source = torch.nn.Linear(256, 64)
    layer = bnb.nn.Linear4bit(256, 64, compute_dtype=torch.float32, quant_type="nf4",
                              compress_statistics=double_quant)
    layer.weight = bnb.nn.Params4bit(source.weight.data.clone(), requires_grad=False, quant_type="nf4",
                                     compress_statistics=double_quant)
    layer.bias = torch.nn.Parameter(source.bias.data.clone())
    layer = layer.to("cpu").eval()
    x = torch.randn(5, 256)
    with torch.no_grad():
        before = _dense_linear(layer, torch.float32)(x)
        expected = layer(x)  # repacks the weight where the CPU has AVX512-BF16
        after = _dense_linear(layer, torch.float32)(x)
        again = layer(x)  # the live layer is left as it was
    assert (after - before).abs().max() < 2e-2 * before.abs().max()
    assert (after - expected).abs().max() < 2e-2 * expected.abs().max()
    assert torch.equal(again, expected)


def test_dense_copy_keeps_the_adapter_a_branch_in_half_precision(tiny_llama):
    """A bf16 weight cannot hold a small LoRA update: merged only in fp32."""
    for dtype, merged in ((torch.bfloat16, False), (torch.float32, True)):
        model = load_backbone(str(tiny_llama), quantization="nf4", lora="attn").model.eval()
        _nudge_lora(model)
        dense = densify(model, dtype)
        assert quantized_layer_count(dense) == 0
        assert any("lora_" in n for n, _ in dense.named_parameters()) is not merged
        assert {p.dtype for p in dense.parameters()} == {dtype}


def test_a_dense_copy_fits_when_it_takes_at_most_half_the_free_memory(tiny_llama):
    from hybridjet.llm.dense import dense_copy_fits, dense_weight_bytes

    model = load_backbone(str(tiny_llama), quantization="nf4", lora="attn").model
    import bitsandbytes as bnb

    layers = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    need = dense_weight_bytes(model, torch.bfloat16)
    assert layers and need == sum(m.in_features * m.out_features for m in layers) * 2
    assert dense_copy_fits(model, torch.bfloat16, torch.device("cpu"), free=2 * need)
    assert not dense_copy_fits(model, torch.bfloat16, torch.device("cpu"), free=2 * need - 1)
    unquantized = load_backbone(str(tiny_llama), quantization="none", lora="attn").model
    assert dense_weight_bytes(unquantized, torch.float32) == 0
    assert not dense_copy_fits(unquantized, torch.float32, torch.device("cpu"), free=1 << 40)  # nothing to gain


def test_no_dense_copy_where_fp32_cannot_merge_the_adapter(tiny_llama):
    from hybridjet.llm.dense import dense_copy_fits

    model = load_backbone(str(tiny_llama), quantization="nf4", lora={"target_modules": ["q_proj", "embed_tokens"]},
                          dtype="fp32").model
    assert not dense_copy_fits(model, torch.float32, torch.device("cpu"), free=1 << 40)  # an embedding's LoRA
    assert dense_copy_fits(model, torch.bfloat16, torch.device("cpu"), free=1 << 40)  # stays a branch in bf16
