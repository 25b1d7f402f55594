"""load_backbone on a local HF dir: quantization, LoRA presets, hidden states without the LM head, training."""

from __future__ import annotations

import bitsandbytes as bnb
import pytest
import torch
from llm_helpers import embed, embed_dtype, hidden_states

from hybridjet.errors import HybridjetError
from hybridjet.llm import LoraSpec, load_backbone
from hybridjet.llm.backbone import decoder_of
from hybridjet.llm.lora import as_lora_spec


def _lora_names(model):
    return sorted(n for n, p in model.named_parameters() if p.requires_grad)


def test_load_plain(tiny_llama):
    bb = load_backbone(tiny_llama, quantization="auto", device="cpu")
    assert bb.quantization == "none" and bb.dtype == torch.float32 and bb.device.type == "cpu"
    assert bb.hidden_size == 64 and bb.identity.format == "hf" and len(bb.identity.sha256) == 64
    assert not bb.trainable_parameters()
    ids = bb.tokenizer(["1523 GeV", "hi"], return_tensors="pt", padding=True)
    emb = embed(bb, ids.input_ids)
    assert emb.shape == (2, ids.input_ids.shape[1], 64)
    h = decoder_of(bb.model)(inputs_embeds=emb, attention_mask=ids.attention_mask).last_hidden_state
    assert h.shape == emb.shape
    # the decoder's last hidden state is what the LM head projects
    logits = bb.model(input_ids=ids.input_ids, attention_mask=ids.attention_mask).logits
    torch.testing.assert_close(bb.causal_lm.lm_head(h), logits, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("preset,expected", [
    ("qkv", {"q_proj", "k_proj", "v_proj"}),
    ("attn", {"q_proj", "k_proj", "v_proj", "o_proj"}),
    ("all-linear", {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}),
])
def test_lora_presets(tiny_llama, preset, expected):
    bb = load_backbone(tiny_llama, quantization="none", lora=preset)
    names = _lora_names(bb.model)
    assert names and all("lora_" in n for n in names)
    assert {n.split(".")[-4] for n in names} == expected


def test_lora_spec_forms():
    assert as_lora_spec(None) is None
    assert as_lora_spec("attn").modules == ["q_proj", "k_proj", "v_proj", "o_proj"]
    spec = as_lora_spec({"preset": "qkv", "r": 4, "alpha": 8})
    assert spec.r == 4 and spec.modules == ["q_proj", "k_proj", "v_proj"]
    assert as_lora_spec({"target_modules": ["o_proj"]}).modules == ["o_proj"]
    assert as_lora_spec(["up_proj", "down_proj"]).modules == ["up_proj", "down_proj"]
    for bad in ("attention", {"rank": 4}, 3):
        with pytest.raises(HybridjetError):
            as_lora_spec(bad)
    with pytest.raises(HybridjetError):
        LoraSpec(r=0)


def test_lora_unknown_module_is_user_error(tiny_llama):
    with pytest.raises(HybridjetError, match="not_a_layer"):
        load_backbone(tiny_llama, quantization="none", lora=["not_a_layer"])


def test_nf4_train_step_updates_only_lora(tiny_llama):
    torch.manual_seed(0)
    bb = load_backbone(tiny_llama, quantization="nf4", lora=LoraSpec("all-linear", r=4, alpha=8, dropout=0.0),
                       gradient_checkpointing=True)
    assert bb.quantization == "nf4"
    linear4 = [m for m in bb.model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(linear4) == 2 * 7
    before = {n: p.detach().clone() for n, p in bb.model.named_parameters()}
    trainable = bb.trainable_parameters()
    opt = torch.optim.AdamW(trainable, lr=1e-2)
    bb.model.train()
    ids = bb.tokenizer(["the jet mass is 512.3 GeV"], return_tensors="pt")
    inputs_embeds = embed(bb, ids.input_ids).detach().requires_grad_(True)
    out = bb.model(inputs_embeds=inputs_embeds, attention_mask=ids.attention_mask, labels=ids.input_ids)
    out.loss.backward()
    assert inputs_embeds.grad is not None and inputs_embeds.grad.abs().sum() > 0
    opt.step()
    changed = {n for n, p in bb.model.named_parameters() if not torch.equal(before[n], p.detach())}
    assert changed and all("lora_" in n for n in changed)
    # only lora_B starts at zero, so after one step every lora_B has moved
    assert {n for n in changed if "lora_B" in n} == {n for n in before if "lora_B" in n}
    quant_state_unchanged = [m.weight for m in linear4]
    assert all(w.__class__.__name__ == "Params4bit" for w in quant_state_unchanged)


@pytest.mark.parametrize("quantization", ["none", "nf4-dq"])
def test_checkpointing_grads_reach_inputs_embeds(tiny_llama, quantization):
    bb = load_backbone(tiny_llama, quantization=quantization, lora="qkv", gradient_checkpointing=True)
    dec = decoder_of(bb.model)
    assert any(getattr(m, "gradient_checkpointing", False) for m in dec.modules())
    bb.model.train()
    x = torch.randn(2, 6, bb.hidden_size, requires_grad=True)
    mask = torch.ones(2, 6, dtype=torch.long)
    mask[1, :2] = 0
    h = hidden_states(bb, x, mask)
    (h[:, -1] ** 2).sum().backward()
    assert x.grad is not None and x.grad[0].abs().sum() > 0
    assert all(p.grad is not None for p in bb.trainable_parameters())


def test_bad_arguments(tiny_llama, tmp_path):
    with pytest.raises(HybridjetError, match="quantization"):
        load_backbone(tiny_llama, quantization="nf3")
    with pytest.raises(HybridjetError, match="dtype"):
        load_backbone(tiny_llama, dtype="fp8")
    with pytest.raises(HybridjetError, match="no such model"):
        load_backbone(tmp_path / "missing")
    with pytest.raises(HybridjetError, match="config.json"):
        load_backbone(tmp_path)


def test_hub_id_fails_fast(tmp_path, monkeypatch):
    import time

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    t0 = time.monotonic()
    with pytest.raises(HybridjetError, match="local"):
        load_backbone("HuggingFaceTB/SmolLM2-360M-Instruct")
    assert time.monotonic() - t0 < 10


def test_int8_and_bf16_forward(tiny_llama):
    bb = load_backbone(tiny_llama, quantization="int8", device="cpu")
    assert bb.quantization == "int8"
    assert any(isinstance(m, bnb.nn.Linear8bitLt) for m in bb.model.modules())
    ids = bb.tokenizer(["12 GeV"], return_tensors="pt").input_ids
    assert torch.isfinite(bb.model(input_ids=ids).logits).all()
    bf = load_backbone(tiny_llama, quantization="none", dtype="bf16")
    assert embed_dtype(bf) == torch.bfloat16
    x = torch.randn(1, 3, bf.hidden_size, requires_grad=True)  # fp32 soft tokens are cast
    h = hidden_states(bf, x)
    assert h.dtype == torch.bfloat16
    h.float().sum().backward()
    assert x.grad is not None


def test_frozen_params_can_stay_in_the_compute_dtype(tiny_llama):
    import torch

    from hybridjet.llm.backbone import load_backbone

    upcast = load_backbone(str(tiny_llama), quantization="nf4", lora="attn", dtype="bf16")  # default off CUDA
    kept = load_backbone(str(tiny_llama), quantization="nf4", lora="attn", dtype="bf16", upcast_frozen=False)
    assert embed_dtype(upcast) == torch.float32 and embed_dtype(kept) == torch.bfloat16
    frozen = {p.dtype for p in kept.model.parameters() if not p.requires_grad}
    assert torch.float32 not in frozen
    ids = kept.tokenizer(["jet 1523 GeV"], return_tensors="pt")
    kept.model.train()
    h = hidden_states(kept, embed(kept, ids.input_ids), ids.attention_mask)
    h.float().pow(2).mean().backward()
    assert all(p.grad is not None for p in kept.model.parameters() if p.requires_grad)


def test_frozen_embeddings_kept_in_the_compute_dtype_never_pass_through_fp32(tiny_llama):
    """Before: peft's preparation upcast the embeddings and norms to fp32 and hybridjet cast them back, every fp32
    copy alive at once: on a GPU a transient +2 GiB at Llama-3.1-8B's shape, the peak of a whole text SFT run."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    from hybridjet.llm.backbone import load_backbone

    class Fp32CopyShapes(TorchDispatchMode):
        """The shapes of every bf16/fp16 tensor copied to fp32 while active."""

        def __init__(self) -> None:
            super().__init__()
            self.shapes: list[tuple[int, ...]] = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if (func is torch.ops.aten._to_copy.default and out.dtype == torch.float32
                    and args[0].dtype in (torch.bfloat16, torch.float16)):
                self.shapes.append(tuple(out.shape))
            return out

    with Fp32CopyShapes() as copies:
        bb = load_backbone(str(tiny_llama), quantization="nf4", lora="attn", dtype="bf16", upcast_frozen=False)
    embeddings = tuple(bb.model.get_input_embeddings().weight.shape)
    assert embeddings not in copies.shapes
    assert bb.model.get_input_embeddings().weight.dtype == torch.bfloat16


def test_a_config_declaring_more_than_its_weights_hold_is_one_line(tiny_llama, tmp_path):
    """Before: num_hidden_layers 1e6 in a copy of a 2-layer model built a million layers (killed after 60 s)."""
    import json
    import shutil

    from hybridjet.errors import InputFileError

    for key, value, needle in (("num_hidden_layers", 1_000_000, "the weights hold 2 layers"),
                               ("hidden_size", 4096, "but the embedding weights are")):
        copy = tmp_path / key
        shutil.copytree(tiny_llama, copy)
        config = json.loads((copy / "config.json").read_text())
        config[key] = value
        (copy / "config.json").write_text(json.dumps(config))
        with pytest.raises(InputFileError, match=needle):
            load_backbone(copy, quantization="none")


def _checkpointed_grads(tiny_llama, offload: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
    torch.manual_seed(0)
    bb = load_backbone(tiny_llama, quantization="none", lora=LoraSpec("qkv", r=4, alpha=8, dropout=0.0),
                       gradient_checkpointing=True, checkpoint_offload=offload)
    assert bb.checkpoint_offload is offload
    _nudge_lora_b(bb)
    bb.model.train()
    x = torch.randn(2, 6, bb.hidden_size, generator=torch.Generator().manual_seed(1), requires_grad=True)
    (hidden_states(bb, x, torch.ones(2, 6, dtype=torch.long))[:, -1] ** 2).sum().backward()
    return x.grad, [p.grad for p in bb.trainable_parameters()]


def _nudge_lora_b(bb) -> None:
    with torch.no_grad():
        for name, p in bb.model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(2)) * 0.05)


def test_offloaded_checkpoints_give_the_same_gradients(tiny_llama):
    """checkpoint_offload on a machine without a GPU: nothing to offload, the same training (transformers' own
    offload, tried first, asked for pinned memory there and failed)."""
    x_plain, plain = _checkpointed_grads(tiny_llama, offload=False)
    x_off, off = _checkpointed_grads(tiny_llama, offload=True)
    torch.testing.assert_close(x_off, x_plain)
    assert len(off) == len(plain) > 0
    for a, b in zip(off, plain, strict=True):
        torch.testing.assert_close(a, b)


def test_offload_without_checkpointing_is_one_line(tiny_llama):
    from hybridjet.runtime import Runtime

    with pytest.raises(HybridjetError, match="needs runtime.gradient_checkpointing"):
        Runtime(checkpoint_offload=True)
    with pytest.raises(HybridjetError, match="needs gradient_checkpointing"):
        load_backbone(tiny_llama, quantization="none", checkpoint_offload=True)
    assert Runtime(gradient_checkpointing=0.5, checkpoint_offload=True).checkpoint_offload
