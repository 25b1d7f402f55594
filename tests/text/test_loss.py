"""The memory-safe token loss equals the full-logits loss (value and gradients), on padded, packed, LoRA and
softcapped and scaled models (tiny random Llama, Qwen2, Mistral, Gemma2, Cohere, Granite; fp32 on CPU)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from hybridjet.errors import HybridjetError
from hybridjet.llm.backbone import decoder_of, load_backbone
from hybridjet.text import loss as loss_module
from hybridjet.text.dataset import IGNORE_INDEX, LEARNED_INDEX, Encoded, SFTCollator, next_token_targets
from hybridjet.text.loss import (
    LogitPost,
    chunked_cross_entropy,
    fused_head_problem,
    logit_post,
    token_loss_sum,
)
from hybridjet.text.packing import PackedCollator

TOL = {"atol": 1e-5, "rtol": 1e-5}
VOCAB = 96


def tiny_model(family: str, seed: int = 0, **overrides: Any) -> Any:
    """A tiny random causal LM of ``family`` (fp32, eval mode: no dropout)."""
    from transformers import (
        AutoModelForCausalLM,
        CohereConfig,
        Gemma2Config,
        GraniteConfig,
        LlamaConfig,
        MistralConfig,
        Qwen2Config,
    )

    common = dict(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=128, pad_token_id=0,
    )
    configs = {
        "llama": lambda: LlamaConfig(**common, tie_word_embeddings=True),
        "qwen2": lambda: Qwen2Config(**common, tie_word_embeddings=False),
        "mistral": lambda: MistralConfig(**common, sliding_window=3),
        "gemma2": lambda: Gemma2Config(
            **common, head_dim=8, sliding_window=3, final_logit_softcapping=2.0, attn_logit_softcapping=20.0,
            initializer_range=0.2,  # logits of a few units: the cap of 2 changes them
        ),
        "cohere": lambda: CohereConfig(**common, logit_scale=0.5),
        "granite": lambda: GraniteConfig(**common, logits_scaling=4.0),
    }
    config = configs[family]()
    for key, value in overrides.items():
        setattr(config, key, value)
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config).to(torch.float32).eval()


def padded_batch(
    seed: int = 1, lengths: tuple[int, ...] = (11, 7, 9), prompt: int = 3
) -> dict[str, torch.Tensor]:
    """Right-padded rows: a prompt (not learned), a response (learned), padding (pad id 0, not learned)."""
    gen = torch.Generator().manual_seed(seed)
    width = max(lengths)
    ids = torch.zeros(len(lengths), width, dtype=torch.long)
    mask = torch.zeros_like(ids)
    labels = torch.full_like(ids, IGNORE_INDEX)
    for row, n in enumerate(lengths):
        ids[row, :n] = torch.randint(1, VOCAB, (n,), generator=gen)
        mask[row, :n] = 1
        labels[row, prompt:n] = ids[row, prompt:n]
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def reference_loss(model: Any, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The plain full-logits computation (the former ``token_loss_sum``)."""
    mask = batch["attention_mask"]
    logits = model(input_ids=batch["input_ids"], attention_mask=mask, use_cache=False).logits
    labels = batch["labels"][:, 1:].masked_fill(mask[:, 1:] == 0, IGNORE_INDEX)
    total = F.cross_entropy(
        logits[:, :-1].float().reshape(-1, logits.size(-1)), labels.reshape(-1), ignore_index=IGNORE_INDEX,
        reduction="sum",
    )
    return total, (labels != IGNORE_INDEX).sum()


def loss_and_grads(
    model: Any, fn: Any
) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor], list[Any]]:
    """Loss, count, gradients of the trainable parameters, and of the input embeddings and of the decoder's
    output hidden states (the head's inputs)."""
    model.zero_grad(set_to_none=True)
    kept: list[torch.Tensor] = []

    def keep(_module: Any, _args: Any, out: Any) -> None:
        tensor = out if isinstance(out, torch.Tensor) else out.last_hidden_state
        if tensor.requires_grad:
            tensor.retain_grad()
        else:  # frozen embeddings (LoRA): their output becomes a leaf that collects its gradient
            tensor.requires_grad_(True)
        kept.append(tensor)

    modules = (model.get_input_embeddings(), decoder_of(model))
    hooks = [module.register_forward_hook(keep) for module in modules]
    try:
        total, count = fn()
        total.backward()
    finally:
        for hook in hooks:
            hook.remove()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.requires_grad}
    return total.detach(), count, grads, [t.grad for t in kept]


def assert_matches_reference(model: Any, batch: dict[str, torch.Tensor], chunk_tokens: int) -> None:
    ref_total, ref_count, ref_grads, ref_inner = loss_and_grads(model, lambda: reference_loss(model, batch))
    total, count, grads, inner = loss_and_grads(
        model, lambda: token_loss_sum(model, batch, chunk_tokens=chunk_tokens, fused="none")
    )
    assert total.dtype == torch.float32 and count.dtype == torch.int64
    assert int(count) == int(ref_count)
    torch.testing.assert_close(total, ref_total, **TOL)
    assert grads.keys() == ref_grads.keys() and grads
    for name, grad in grads.items():
        torch.testing.assert_close(grad, ref_grads[name], **TOL, msg=lambda m, n=name: f"{n}: {m}")
    assert len(inner) == len(ref_inner) == 2  # input embeddings, decoder output
    for grad, ref in zip(inner, ref_inner, strict=True):
        assert grad is not None and grad.abs().sum() > 0
        torch.testing.assert_close(grad, ref, **TOL)


# ------------------------------------------------------------------------------ equality with the full logits


@pytest.mark.parametrize("family", ["llama", "qwen2", "mistral", "gemma2"])
@pytest.mark.parametrize("chunk_tokens", [1, 5, 7, 4096])
def test_matches_full_logits_padded(family: str, chunk_tokens: int) -> None:
    model = tiny_model(family)
    model.requires_grad_(True)
    batch = padded_batch()
    n = int((next_token_targets(batch) != IGNORE_INDEX).sum())
    assert n == 18 and n % 5 and n % 7  # 5, 7: smaller than N, not divisors; 1: one row per chunk
    assert_matches_reference(model, batch, chunk_tokens)


@pytest.mark.parametrize("chunk_tokens", [4, 4096])
def test_matches_full_logits_lora_backbone(tiny_llama: Path, chunk_tokens: int) -> None:
    model = load_backbone(tiny_llama, quantization="none", lora="attn", device="cpu").model  # PeftModel, eval mode
    for name, p in model.named_parameters():
        if "lora_B" in name:  # peft starts B at zero; a non-zero adapter makes the comparison meaningful
            torch.nn.init.normal_(p.data, std=0.05)
    assert_matches_reference(model, padded_batch(seed=2), chunk_tokens)  # ids < VOCAB: inside its vocabulary
    assert all("lora_" in name for name, p in model.named_parameters() if p.requires_grad)


def test_lora_on_the_lm_head_uses_the_chunked_path() -> None:
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "lm_head"])
    model = get_peft_model(tiny_model("qwen2"), config)
    model.eval()
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p.data, std=0.05)
    head = model.get_output_embeddings()
    assert fused_head_problem(head) is not None  # Liger would see only the base weight: never used
    assert any("lm_head" in name for name, p in model.named_parameters() if p.requires_grad)
    assert_matches_reference(model, padded_batch(seed=3), chunk_tokens=5)


# ----------------------------------------------------------------------------------------------- softcapping


def test_gemma2_softcapping_matches_the_models_own_loss_and_logits() -> None:
    model = tiny_model("gemma2")
    assert logit_post(model.config) == LogitPost(softcap=2.0)
    batch = padded_batch(seed=4)
    with torch.no_grad():
        total, count = token_loss_sum(model, batch, chunk_tokens=5, fused="none")
        out = model(**batch)
        torch.testing.assert_close(total / count, out.loss, **TOL)  # transformers' own shifted mean loss
        assert out.logits.abs().max() <= 2.0  # the model's logits are capped ...
        hidden = decoder_of(model)(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        head = model.get_output_embeddings()
        capped = LogitPost(softcap=2.0).apply(head(hidden.last_hidden_state))
        torch.testing.assert_close(capped, out.logits, **TOL)
        # ... and the cap matters here: without it the loss differs
        uncapped = chunked_cross_entropy(
            head, hidden.last_hidden_state[:, :-1][next_token_targets(batch) != IGNORE_INDEX],
            next_token_targets(batch)[next_token_targets(batch) != IGNORE_INDEX],
        )
        assert abs(float(uncapped) - float(total)) > 1e-2


@pytest.mark.parametrize("family", ["cohere", "granite"])
def test_scaled_logits_match_the_models_own_loss(family: str) -> None:
    model = tiny_model(family, initializer_range=0.2)
    assert logit_post(model.config).scale == {"cohere": 0.5, "granite": 0.25}[family]
    model.requires_grad_(True)
    batch = padded_batch(seed=11)
    assert_matches_reference(model, batch, chunk_tokens=5)
    with torch.no_grad():
        total, count = token_loss_sum(model, batch, fused="none")
        torch.testing.assert_close(total / count, model(**batch).loss, **TOL)


def test_logit_post_per_model_type() -> None:
    from transformers import CohereConfig, GraniteConfig, LlamaConfig

    assert logit_post(LlamaConfig()) == LogitPost()
    assert logit_post(CohereConfig(logit_scale=0.5)) == LogitPost(scale=0.5)
    assert logit_post(GraniteConfig(logits_scaling=4.0)) == LogitPost(scale=0.25)
    assert logit_post(type("Config", (), {"model_type": "unknown-lm"})()) is None
    logits = torch.tensor([[-8.0, 0.0, 8.0]])
    expected = torch.tanh(logits * 0.25) * 2.0
    torch.testing.assert_close(LogitPost(scale=0.5, softcap=2.0).apply(logits), expected)


# ------------------------------------------------------------------------------------------------ packed rows


def test_packed_row_equals_the_examples_run_separately() -> None:
    for family in ("llama", "mistral", "gemma2"):  # mistral and gemma2: sliding-window attention (window 3)
        model = tiny_model(family)
        gen = torch.Generator().manual_seed(5)
        examples = []
        for n, prompt in ((6, 2), (9, 3)):
            ids = torch.randint(1, VOCAB, (1, n), generator=gen)
            labels = ids.clone()
            labels[:, :prompt] = IGNORE_INDEX
            examples.append({"input_ids": ids, "labels": labels, "attention_mask": torch.ones_like(ids)})
        packed = {
            "input_ids": torch.cat([e["input_ids"] for e in examples], 1),
            # the second example's first label is kept learned: its position restarts, so it is not a target
            "labels": torch.cat(
                [examples[0]["labels"], examples[1]["input_ids"][:, :1], examples[1]["labels"][:, 1:]], 1
            ),
            "position_ids": torch.cat([torch.arange(e["input_ids"].size(1))[None] for e in examples], 1),
        }
        with torch.no_grad():
            total, count = token_loss_sum(model, packed, chunk_tokens=4, fused="none")
            separate = [token_loss_sum(model, e, chunk_tokens=4, fused="none") for e in examples]
            one_sequence = packed | {"position_ids": torch.arange(15)[None]}
            unisolated, _ = token_loss_sum(model, one_sequence, fused="none")
        assert int(count) == sum(int(c) for _, c in separate) == (6 - 2) + (9 - 3)
        expected = sum(t for t, _ in separate)
        torch.testing.assert_close(total, expected, **TOL, msg=lambda m, f=family: f"{f}: {m}")
        assert abs(float(unisolated) - float(total)) > 1e-3  # attention across the examples would change it


# ---------------------------------------------------------------------------------------------------- counts


def test_count_is_the_number_of_learned_next_token_targets() -> None:
    batch = padded_batch(seed=6, lengths=(10, 4, 8), prompt=2)
    batch["labels"][0, 6] = IGNORE_INDEX  # a hole inside a response
    batch["labels"][1, 3:] = batch["input_ids"][1, 3:]  # labels on padding: masked by the attention mask
    expected = sum(
        1
        for row in range(3)
        for t in range(1, batch["input_ids"].size(1))
        if batch["labels"][row, t] != IGNORE_INDEX and batch["attention_mask"][row, t] == 1
    )
    assert expected == (8 - 1) + 2 + 6
    with torch.no_grad():
        _, count = token_loss_sum(tiny_model("llama"), batch, fused="none")
    assert int(count) == expected
    targets = next_token_targets(batch)
    assert targets.shape == (3, 9) and int((targets != IGNORE_INDEX).sum()) == expected
    assert targets[1, 3:].eq(IGNORE_INDEX).all()  # position 3 predicts token 4: padding


def collated_batches() -> list[dict[str, torch.Tensor]]:
    """The same examples through both training collators: right-padded rows and packed rows."""
    gen = torch.Generator().manual_seed(8)
    items = []
    for i, (n, prompt) in enumerate(((9, 3), (5, 1), (12, 4), (4, 2))):
        ids = torch.randint(1, VOCAB, (n,), generator=gen).tolist()
        labels = [IGNORE_INDEX] * prompt + ids[prompt:]
        items.append(Encoded(ids, labels, f"r{i}"))
    return [SFTCollator(0)(items), PackedCollator(0, row_tokens=16)(items)]


def test_the_collators_learned_index_is_the_learned_next_token_targets() -> None:
    for batch in collated_batches():
        learned = (next_token_targets(batch) != IGNORE_INDEX).nonzero()
        width = batch["input_ids"].size(1)
        assert batch[LEARNED_INDEX].tolist() == (learned[:, 0] * width + learned[:, 1]).tolist()
        assert batch[LEARNED_INDEX].numel() == (9 - 3) + (5 - 1) + (12 - 4) + (4 - 2)  # the responses' tokens


def test_the_learned_index_gives_the_loss_and_gradients_of_the_labels_bitwise() -> None:
    """The collators' host-side index (no device synchronisation) and the labels found on the device agree."""
    model = tiny_model("llama")
    model.requires_grad_(True)
    for batch in collated_batches():
        without = {k: v for k, v in batch.items() if k != LEARNED_INDEX}
        total, count, grads, inner = loss_and_grads(model, lambda b=batch: token_loss_sum(model, b, fused="none"))
        ref_total, ref_count, ref_grads, ref_inner = loss_and_grads(
            model, lambda b=without: token_loss_sum(model, b, fused="none"))
        assert int(count) == int(ref_count) == batch[LEARNED_INDEX].numel() and count.dtype == torch.int64
        assert torch.equal(total, ref_total)
        assert all(torch.equal(grads[name], ref_grads[name]) for name in grads) and grads
        assert all(torch.equal(a, b) for a, b in zip(inner, ref_inner, strict=True))


def test_nothing_learned_gives_a_zero_in_the_graph() -> None:
    model = tiny_model("llama")
    model.requires_grad_(True)
    batch = padded_batch(seed=7)
    batch["labels"].fill_(IGNORE_INDEX)
    total, count = token_loss_sum(model, batch, fused="none")
    assert int(count) == 0 and float(total.detach()) == 0.0
    total.backward()  # no error: the zero is connected to the model


# ------------------------------------------------------------------------------ memory: no full logits kept


def test_chunks_keep_no_logits_for_backward() -> None:
    torch.manual_seed(0)
    head = torch.nn.Linear(16, 500, bias=False)
    hidden = torch.randn(40, 16, requires_grad=True)
    target = torch.randint(0, 500, (40,))

    def saved_logit_elements(fn: Any) -> int:
        sizes: list[int] = []

        def pack(t: torch.Tensor) -> torch.Tensor:
            if t.dim() == 2 and t.shape == (t.size(0), 500) and t.size(0) > 1:  # [rows, V]: logits
                sizes.append(t.numel())
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            fn().backward()
        return sum(sizes)

    def plain() -> torch.Tensor:
        return F.cross_entropy(head(hidden).float(), target, reduction="sum")

    assert saved_logit_elements(plain) >= 40 * 500  # the hook sees saved logits ...
    chunked = saved_logit_elements(lambda: chunked_cross_entropy(head, hidden, target, chunk_tokens=8))
    assert chunked == 0  # ... and none from the checkpointed chunks


# -------------------------------------------------------------------------------------- fused / bad settings


def test_fused_settings() -> None:
    model = tiny_model("llama")
    batch = padded_batch(seed=8)
    with torch.no_grad():
        ref, _ = token_loss_sum(model, batch, fused="none")
        auto, _ = token_loss_sum(model, batch, fused="auto")  # CPU: the chunked path
    torch.testing.assert_close(auto, ref, **TOL)
    with pytest.raises(HybridjetError, match="fused='liger' cannot be used: the model is on cpu") as err:
        token_loss_sum(model, batch, fused="liger")
    assert "\n" not in str(err.value)
    with pytest.raises(HybridjetError, match="unknown fused loss 'triton'"):
        token_loss_sum(model, batch, fused="triton")
    with pytest.raises(HybridjetError, match="chunk_tokens must be positive"):
        token_loss_sum(model, batch, chunk_tokens=0)
    assert fused_head_problem(model.get_output_embeddings()) is None
    quantized = torch.nn.Linear(4, 4, bias=False)
    quantized.weight = torch.nn.Parameter(torch.zeros(4, 4, dtype=torch.int8), requires_grad=False)
    assert "quantized" in str(fused_head_problem(quantized))


def test_unknown_model_type_falls_back_to_the_full_logits(caplog: pytest.LogCaptureFixture) -> None:
    model = tiny_model("llama")
    model.requires_grad_(True)
    model.config.model_type = "some-new-lm"  # post-processing not known here: the model's own forward is used
    batch = padded_batch(seed=9)
    with caplog.at_level("WARNING"):
        assert_matches_reference(model, batch, chunk_tokens=5)
    assert "some-new-lm" in caplog.text and "not memory-safe" in caplog.text
    with pytest.raises(HybridjetError, match="model type 'some-new-lm' is not known"):
        token_loss_sum(model, batch, fused="liger")


def fake_liger(hidden, weight, target, bias=None, ignore_index=-100, reduction="mean", softcap=None):
    """Liger's fused linear cross entropy as documented, in plain torch (Liger has no CPU kernel)."""
    logits = hidden @ weight.t() if bias is None else hidden @ weight.t() + bias
    if softcap is not None:
        logits = torch.tanh(logits / softcap) * softcap
    return F.cross_entropy(logits.float(), target, ignore_index=ignore_index, reduction=reduction)


@pytest.mark.parametrize("family, scale", [("gemma2", 1.0), ("qwen2", 0.5)])
def test_the_liger_path_passes_the_right_arguments(
    monkeypatch: pytest.MonkeyPatch, family: str, scale: float
) -> None:
    model = tiny_model(family)
    model.requires_grad_(True)
    if scale != 1.0:  # as Cohere: logits * logit_scale, folded into the fused kernel's input
        import dataclasses

        from hybridjet.llm.families import FAMILIES

        monkeypatch.setitem(FAMILIES, "qwen2", dataclasses.replace(FAMILIES["qwen2"], logits=lambda config: scale))
    calls: list[dict[str, Any]] = []

    def recording(*args: Any, **kwargs: Any) -> torch.Tensor:
        calls.append({"input": args[0], "weight": args[1], **kwargs})
        return fake_liger(*args, **kwargs)

    batch = padded_batch(seed=10)
    _, _, chunked_grads, _ = loss_and_grads(model, lambda: token_loss_sum(model, batch, fused="none"))
    chunked, _ = token_loss_sum(model, batch, chunk_tokens=3, fused="none")
    monkeypatch.setattr(loss_module, "_fused_loss", lambda fused, head, device: recording)
    total, count, grads, _ = loss_and_grads(model, lambda: token_loss_sum(model, batch, fused="auto"))
    (call,) = calls
    assert call["input"].shape == (int(count), 32) and call["weight"] is model.get_output_embeddings().weight
    assert call["reduction"] == "sum" and call["ignore_index"] == IGNORE_INDEX
    assert call["softcap"] == (2.0 if family == "gemma2" else None)
    torch.testing.assert_close(total, chunked.detach(), **TOL)
    for name, grad in grads.items():
        torch.testing.assert_close(grad, chunked_grads[name], **TOL)


def test_liger_is_chosen_only_for_a_plain_head_on_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    from peft import LoraConfig, get_peft_model

    monkeypatch.setattr(loss_module, "_liger_loss", lambda: fake_liger)  # as if liger_kernel were installed
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    plain = torch.nn.Linear(8, 16, bias=False)
    assert loss_module._fused_loss("auto", plain, cuda) is fake_liger
    assert loss_module._fused_loss("liger", plain, cuda) is fake_liger
    assert loss_module._fused_loss("none", plain, cuda) is None
    assert loss_module._fused_loss("auto", plain, cpu) is None
    lora = get_peft_model(tiny_model("qwen2"), LoraConfig(r=2, target_modules=["lm_head"]))
    assert loss_module._fused_loss("auto", lora.get_output_embeddings(), cuda) is None  # LoRA head: chunked
    with pytest.raises(HybridjetError, match="fused='liger' cannot be used: the LM head is a peft[.]"):
        loss_module._fused_loss("liger", lora.get_output_embeddings(), cuda)
    monkeypatch.setattr(loss_module, "_liger_loss", lambda: None)  # not installed
    assert loss_module._fused_loss("auto", plain, cuda) is None
    with pytest.raises(HybridjetError, match="liger_kernel is not installed"):
        loss_module._fused_loss("liger", plain, cuda)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="Liger's fused loss runs on CUDA")
@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_liger_on_cuda_matches_the_chunked_loss_and_gradients(family: str) -> None:
    pytest.importorskip("liger_kernel", reason="liger-kernel is not installed")
    model = tiny_model(family).cuda()
    model.requires_grad_(True)
    batch = {k: v.cuda() for k, v in padded_batch().items()}
    chunked = loss_and_grads(model, lambda: token_loss_sum(model, batch, fused="none"))
    liger = loss_and_grads(model, lambda: token_loss_sum(model, batch, fused="liger"))
    assert int(liger[1]) == int(chunked[1])
    torch.testing.assert_close(liger[0], chunked[0], atol=1e-4, rtol=1e-4)
    for name, grad in chunked[2].items():
        torch.testing.assert_close(liger[2][name], grad, atol=1e-4, rtol=1e-3, msg=lambda m, n=name: f"{n}: {m}")
