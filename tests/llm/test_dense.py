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
