"""``TextSFT(runtime=Runtime(torch_compile=True))``: compiled decoder layers give the uncompiled loss and LoRA gradients on packed
rows of changing length (dynamic shapes: no recompilation per length)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hybridjet.text.dataset import encode_examples, pad_token_id
from hybridjet.text.formats import Example
from hybridjet.text.loss import token_loss_sum
from hybridjet.text.packing import PackedCollator


def _loss_and_grads(model, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    total, count = token_loss_sum(model.model, batch)
    loss = total / count
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.model.named_parameters() if p.grad is not None}


@pytest.mark.slow
def test_compiled_layers_match_eager_on_packed_rows(tiny_llama: Path) -> None:
    from hybridjet.llm.lora import LoraSpec
    from hybridjet.runtime import Runtime
    from hybridjet.text.sft import TextSFT

    def build(compiled: bool) -> TextSFT:
        torch.manual_seed(0)
        return TextSFT(model=str(tiny_llama), lora=LoraSpec("all-linear", dropout=0.0),
                       runtime=Runtime(quantization="none", dtype="fp32", torch_compile=compiled))

    eager, compiled = build(False), build(True)
    compiled.load_state_dict(eager.state_dict())
    layers = compiled.model.base_model.model.model.layers
    assert not any(getattr(layer, "_compiled_call_impl", None) for layer in layers)  # the packing check runs eager
    for module in (eager, compiled):
        module.on_fit_start()  # where fitting compiles
    assert all(getattr(layer, "_compiled_call_impl", None) is not None for layer in layers)
    device = next(eager.model.parameters()).device
    tol = {"atol": 1e-5, "rtol": 1e-4} if device.type == "cpu" else {"atol": 1e-4, "rtol": 1e-3}
    tok = eager.tokenizer
    collate = PackedCollator(pad_token_id(tok), row_tokens=4096)
    for n in (3, 5):  # two row lengths: the second must not need its own graph to be right
        examples = [Example(messages=[{"role": "user", "content": "pT of the leading jet? " * (i + 1)},
                                      {"role": "assistant", "content": f"{1000 + 97 * i} GeV. " * (2 * i + 1)}],
                            source=f"r{i}") for i in range(n)]
        batch = {k: v.to(device) for k, v in collate(encode_examples(examples, tok, max_length=1024)).items()}
        want_loss, want_grads = _loss_and_grads(eager, batch)
        got_loss, got_grads = _loss_and_grads(compiled, batch)
        torch.testing.assert_close(got_loss, want_loss, **tol)
        assert got_grads.keys() == want_grads.keys() and want_grads
        for name, grad in want_grads.items():
            torch.testing.assert_close(got_grads[name], grad, **tol, msg=name)


def test_the_default_compiles_on_cuda_only(tiny_llama: Path) -> None:
    from hybridjet.runtime import Runtime, compiles_by_default
    from hybridjet.text.sft import TextSFT

    module = TextSFT(model=str(tiny_llama), runtime=Runtime(quantization="none", dtype="fp32"))
    assert module.runtime.torch_compile is None
    module.on_fit_start()
    layers = module.model.base_model.model.model.layers
    compiled = [getattr(layer, "_compiled_call_impl", None) is not None for layer in layers]
    assert compiled == [compiles_by_default(next(module.model.parameters()).device)] * len(layers)
