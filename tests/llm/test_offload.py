"""What a checkpointed decoder saves for its backward, waiting in host memory (runtime.checkpoint_offload): the same
gradients, the layer inputs moved and the parameters not, compiled layers left whole (no graph break)."""

from __future__ import annotations

import pytest
import torch
from llm_helpers import hidden_states

from hybridjet.llm import LoraSpec, load_backbone
from hybridjet.llm.backbone import decoder_of
from hybridjet.llm.offload import HostOffload, offload_saved_activations


def _grads(tiny_llama, offload: bool, compiled: bool) -> tuple[int, list[torch.Tensor]]:
    torch.manual_seed(0)
    bb = load_backbone(tiny_llama, quantization="none", lora=LoraSpec("all-linear", r=4, alpha=8, dropout=0.0),
                       gradient_checkpointing=True, device="cpu")  # the CPU plays the device (GPU: test_cuda.py)
    with torch.no_grad():
        for name, p in bb.model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(2)) * 0.05)
    decoder = decoder_of(bb.model)
    # on this CPU machine the "device" is the CPU itself: every hidden state above 0 bytes goes through the copy
    hooks = offload_saved_activations(decoder, device_type="cpu", pin=False) if offload else None
    if hooks is not None:
        hooks.min_bytes = 1
    if compiled:
        for layer in decoder.layers:
            layer.compile(dynamic=True)
    bb.model.train()
    x = torch.randn(2, 6, bb.hidden_size, generator=torch.Generator().manual_seed(1), requires_grad=True)
    (hidden_states(bb, x, torch.ones(2, 6, dtype=torch.long))[:, -1] ** 2).sum().backward()
    return (hooks.offloaded if hooks else 0), [x.grad] + [p.grad for p in bb.trainable_parameters()]


def test_offloaded_activations_give_the_same_gradients(tiny_llama):
    _, plain = _grads(tiny_llama, offload=False, compiled=False)
    moved, offloaded = _grads(tiny_llama, offload=True, compiled=False)
    assert moved >= 2  # at least each checkpointed layer's input
    for a, b in zip(offloaded, plain, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.slow
def test_offload_keeps_compiled_layers_whole(tiny_llama):
    """transformers' offload enters save_on_cpu inside each layer, where Dynamo breaks the graph; this one does not."""
    import torch._dynamo
    import torch._dynamo.utils

    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    _, plain = _grads(tiny_llama, offload=False, compiled=False)
    moved, compiled = _grads(tiny_llama, offload=True, compiled=True)
    assert moved >= 2
    assert not torch._dynamo.utils.counters["graph_break"]
    for a, b in zip(compiled, plain, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_parameters_small_tensors_and_other_devices_stay():
    layer = torch.nn.Linear(1024, 1024)
    hooks = HostOffload(layer, device_type="cpu", pin=False, min_bytes=1 << 20)
    assert hooks.pack(layer.weight) is layer.weight  # 4 MiB, but a parameter
    small = torch.randn(16)
    assert hooks.pack(small) is small
    big = torch.randn(512, 1024)
    packed = hooks.pack(big)
    assert packed is not big and hooks.offloaded == 1
    restored = HostOffload.unpack(packed)
    assert torch.equal(restored, big) and restored.stride() == big.stride()
    transposed = torch.randn(1024, 512).t()  # dense, not contiguous: strides kept
    assert HostOffload.unpack(hooks.pack(transposed)).stride() == transposed.stride()
    meta = HostOffload(layer, device_type="cuda")
    assert meta.pack(big) is big  # a CPU tensor is not the device's to offload
