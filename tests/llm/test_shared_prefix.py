import pytest
import torch

from hybridjet.llm.backbone import decoder_of, load_backbone
from hybridjet.llm.shared_prefix import (
    _document_mask_mod,
    attention_for_batch,
    document_block_mask,
    forward_with_shared_prefix,
    supports_shared_prefix,
)


def _nudged_decoder(tiny_llama, quantization="none"):
    model = load_backbone(str(tiny_llama), quantization=quantization, dtype="fp32",  # fp32 on GPU machines too
                          lora={"preset": "attn", "dropout": 0.0}).model
    torch.manual_seed(0)
    with torch.no_grad():  # LoRA B starts at zero: make the adapter part of the function under test
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1)
    return model, decoder_of(model)


def _inputs(decoder, batch=3, n_prefix=5, n_own=4):
    torch.manual_seed(1)
    width = decoder.config.hidden_size
    device = next(decoder.parameters()).device
    return torch.randn(1, n_prefix, width, device=device), torch.randn(batch, n_own, width, device=device)


@pytest.mark.parametrize("quantization", ["none", "nf4"])
def test_shared_prefix_reproduces_the_full_sequence(tiny_llama, quantization):
    model, decoder = _nudged_decoder(tiny_llama, quantization)
    assert supports_shared_prefix(decoder)
    prefix, own = _inputs(decoder)
    full_input = torch.cat([prefix.expand(len(own), -1, -1), own], dim=1)
    with torch.no_grad():
        full = decoder(inputs_embeds=full_input, use_cache=False).last_hidden_state[:, prefix.shape[1]:]
        shared = forward_with_shared_prefix(decoder, prefix, own)
    assert shared.shape == own.shape
    tolerance = 1e-5 if quantization == "none" else 2e-2  # bitsandbytes' kernels round to bf16
    torch.testing.assert_close(shared.float(), full.float(), atol=tolerance, rtol=tolerance)


@pytest.mark.parametrize("family", ["qwen2", "mistral"])
def test_shared_prefix_reproduces_other_supported_families(family):
    """Qwen2 (q/k/v biases) and Mistral decoders, random weights: the same hidden states as the full sequence."""
    import transformers

    name = {"qwen2": "Qwen2", "mistral": "Mistral"}[family]
    config = getattr(transformers, f"{name}Config")(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                                     num_attention_heads=4, num_key_value_heads=2, vocab_size=64,
                                                     max_position_embeddings=64)
    torch.manual_seed(0)
    decoder = getattr(transformers, f"{name}Model")(config).eval()
    assert supports_shared_prefix(decoder)
    prefix, own = _inputs(decoder)
    with torch.no_grad():
        full = decoder(inputs_embeds=torch.cat([prefix.expand(len(own), -1, -1), own], dim=1),
                       use_cache=False).last_hidden_state[:, prefix.shape[1]:]
        torch.testing.assert_close(forward_with_shared_prefix(decoder, prefix, own), full, atol=1e-5, rtol=1e-5)


def test_shared_prefix_gradients_match_the_full_sequence(tiny_llama):
    model, decoder = _nudged_decoder(tiny_llama)
    prefix, own = _inputs(decoder)
    prefix.requires_grad_(True)
    lora = {n: p for n, p in model.named_parameters() if "lora_" in n}

    def grads(hidden):
        model.zero_grad()
        prefix.grad = None
        (hidden[:, -1] ** 2).sum().backward()
        return {n: p.grad.clone() for n, p in lora.items()}, prefix.grad.clone()

    n_prefix = prefix.shape[1]
    full = decoder(inputs_embeds=torch.cat([prefix.expand(len(own), -1, -1), own], dim=1), use_cache=False)
    expected, expected_prefix = grads(full.last_hidden_state[:, n_prefix:])
    got, got_prefix = grads(forward_with_shared_prefix(decoder, prefix, own))
    assert any(g.abs().max() > 0 for g in expected.values())
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(got_prefix, expected_prefix, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("masked", [False, True])
def test_last_only_gives_the_last_positions_and_their_gradients(tiny_llama, masked):
    """``last_only`` (the hybrid's path: its head reads the last position): the last layer run for one position per
    event gives the full forward's last hidden states and the same gradients (LoRA, prefix, own tokens), with empty
    own slots too."""
    model, decoder = _nudged_decoder(tiny_llama)
    prefix, own = _inputs(decoder, batch=6, n_prefix=5, n_own=7)
    prefix.requires_grad_(True)
    own.requires_grad_(True)
    key_mask = None
    if masked:
        torch.manual_seed(2)
        key_mask = (torch.rand(own.shape[:2]) < 0.6).to(own.device)
        key_mask[:, 0] = key_mask[:, -1] = True
    lora = {n: p for n, p in model.named_parameters() if "lora_" in n}

    def run(last_only):
        model.zero_grad()
        prefix.grad = own.grad = None
        hidden = forward_with_shared_prefix(decoder, prefix, own, key_mask=key_mask, last_only=last_only)
        (hidden[:, -1] ** 2).sum().backward()
        grads = {n: p.grad.clone() for n, p in lora.items()} | {"prefix": prefix.grad.clone(), "own": own.grad.clone()}
        return hidden.detach(), grads

    full, expected = run(False)
    last, got = run(True)
    assert last.shape == (len(own), 1, own.shape[2])
    torch.testing.assert_close(last, full[:, -1:], atol=1e-5, rtol=1e-4)
    assert all(g.abs().max() > 0 for g in expected.values())
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], atol=1e-5, rtol=1e-4)


def test_other_architectures_are_not_claimed():
    from transformers import GPT2Config, GPT2Model

    gpt2 = GPT2Model(GPT2Config(n_layer=1, n_head=2, n_embd=16, vocab_size=32, n_positions=16))
    assert not supports_shared_prefix(gpt2)


def test_compiled_layers_share_one_graph_and_match_eager(tiny_llama):
    """``compiled=True`` (the GPU default of the hybrid): the layer function compiles once for all layers."""
    import torch._dynamo

    model, decoder = _nudged_decoder(tiny_llama)
    assert len(decoder.layers) > 1
    prefix, own = _inputs(decoder)
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    with torch.no_grad():
        eager = forward_with_shared_prefix(decoder, prefix, own)
        compiled = forward_with_shared_prefix(decoder, prefix, own, compiled=True)
    torch.testing.assert_close(compiled, eager, atol=1e-5, rtol=1e-4)
    # one graph (prefix and batch in one pass per layer), whatever the layer count
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 1
    with torch.no_grad():  # the last layer on the last positions: one graph more, the same values
        last = forward_with_shared_prefix(decoder, prefix, own, compiled=True, last_only=True)
    torch.testing.assert_close(last, eager[:, -1:], atol=1e-5, rtol=1e-4)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 2


def test_compiled_layers_keep_static_graphs_one_per_batch_size(tiny_llama):
    """Three batch sizes, three static graphs: never the shape-generic graph torch switches to by default at a
    second size (which a new process scoring at one size cannot reuse, and which runs slower)."""
    import torch._dynamo

    model, decoder = _nudged_decoder(tiny_llama)
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    with torch.no_grad():
        for batch in (3, 5, 7):
            prefix, own = _inputs(decoder, batch=batch)
            compiled = forward_with_shared_prefix(decoder, prefix, own, compiled=True)
            torch.testing.assert_close(compiled, forward_with_shared_prefix(decoder, prefix, own), atol=1e-5, rtol=1e-4)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 3


def _block_sets(num, idx, full_num=None, full_idx=None):
    rows = []
    for i in range(num.shape[-1]):
        blocks = set(idx[0, 0, i, : num[0, 0, i]].tolist())
        if full_num is not None:
            blocks |= set(full_idx[0, 0, i, : full_num[0, 0, i]].tolist())
        rows.append(blocks)
    return rows


@pytest.mark.parametrize(("n_prefix", "n_events", "n_own"),
                         [(30, 37, 14), (5, 3, 4), (128, 20, 19), (129, 50, 7), (3, 9, 200)])
def test_document_block_mask_lists_exactly_the_blocks_torch_finds(n_prefix, n_events, n_own):
    """The closed-form block lists (forward and backward) equal those of torch's dense ``create_block_mask``."""
    from torch.nn.attention.flex_attention import create_block_mask

    mine = document_block_mask(n_prefix, n_events, n_own, "cpu", backward=True)
    n_tokens = n_events * n_own
    padded = mine.seq_lengths[1] - n_tokens
    assert padded % 128 == 0 and padded >= n_prefix
    dense = create_block_mask(_document_mask_mod(n_prefix, padded, n_own), 1, 1, n_tokens, padded + n_tokens,
                              device="cpu", BLOCK_SIZE=128)
    assert _block_sets(mine.kv_num_blocks, mine.kv_indices) == _block_sets(
        dense.kv_num_blocks, dense.kv_indices, dense.full_kv_num_blocks, dense.full_kv_indices)
    assert _block_sets(mine.q_num_blocks, mine.q_indices) == _block_sets(
        dense.q_num_blocks, dense.q_indices, dense.full_q_num_blocks, dense.full_q_indices)


def test_flex_attention_reproduces_the_full_sequence(tiny_llama):
    """``attention="flex"`` (eager FlexAttention on the CPU, forward only there): same hidden states."""
    model, decoder = _nudged_decoder(tiny_llama)
    prefix, own = _inputs(decoder, batch=11, n_prefix=6, n_own=5)
    with torch.no_grad():
        full = decoder(inputs_embeds=torch.cat([prefix.expand(len(own), -1, -1), own], dim=1),
                       use_cache=False).last_hidden_state[:, prefix.shape[1]:]
        flex = forward_with_shared_prefix(decoder, prefix, own, attention="flex")
        last = forward_with_shared_prefix(decoder, prefix, own, attention="flex", last_only=True)
    torch.testing.assert_close(flex, full, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(last, full[:, -1:], atol=1e-5, rtol=1e-4)


def test_compiled_flex_below_one_query_block_runs_the_matmul_attention():
    assert attention_for_batch("flex", compiled=True, n_tokens=100) == "matmul"  # flex-decoding kernel: not used
    assert attention_for_batch("flex", compiled=True, n_tokens=128) == "flex"
    assert attention_for_batch("flex", compiled=False, n_tokens=12) == "flex"  # eager FlexAttention is right
    assert attention_for_batch("matmul", compiled=True, n_tokens=1 << 16) == "matmul"


def test_unknown_attention_is_refused(tiny_llama):
    model, decoder = _nudged_decoder(tiny_llama)
    prefix, own = _inputs(decoder)
    with pytest.raises(ValueError, match="attention"):
        forward_with_shared_prefix(decoder, prefix, own, attention="sdpa")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="FlexAttention gradients need a GPU")
def test_compiled_flex_attention_matches_matmul_with_gradients(tiny_llama):
    """The GPU default (compiled, FlexAttention): hidden states and LoRA gradients as the matmul attention's."""
    model, decoder = _nudged_decoder(tiny_llama)
    model.cuda()
    prefix, own = (x.cuda() for x in _inputs(decoder, batch=37, n_prefix=9, n_own=14))
    lora = {n: p for n, p in model.named_parameters() if "lora_" in n}

    def run(**kw):
        model.zero_grad()
        hidden = forward_with_shared_prefix(decoder, prefix, own, **kw)
        (hidden[:, -1] ** 2).sum().backward()
        return hidden.detach(), {n: p.grad.clone() for n, p in lora.items()}

    expected, expected_grads = run(attention="matmul")
    got, got_grads = run(attention="flex", compiled=True)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-3)
    for name in expected_grads:
        torch.testing.assert_close(got_grads[name], expected_grads[name], atol=1e-4, rtol=1e-3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="compiled FlexAttention in bf16 needs a GPU")
@pytest.mark.parametrize(("n_events", "n_own"), [(50, 2), (3, 4), (64, 2), (37, 14)])
def test_compiled_bf16_flex_scoring_matches_matmul_below_and_above_one_query_block(tiny_llama, n_events, n_own):
    """Explicit ``prefix_attention: flex`` when scoring: compiled, bf16, no gradients, with fewer event tokens than
    one 128-token query block (100, 12, 128) and more (518): the matmul attention's hidden states."""
    model, decoder = _nudged_decoder(tiny_llama)
    model.cuda().to(torch.bfloat16)
    prefix, own = (x.cuda().to(torch.bfloat16) for x in _inputs(decoder, batch=n_events, n_prefix=9, n_own=n_own))
    with torch.no_grad():
        expected = forward_with_shared_prefix(decoder, prefix, own, attention="matmul")
        got = forward_with_shared_prefix(decoder, prefix, own, attention="flex", compiled=True)
    torch.testing.assert_close(got.float(), expected.float(), atol=3e-2, rtol=3e-2)


@pytest.mark.parametrize("attention", ["matmul", "flex"])
def test_key_mask_reproduces_the_padded_full_sequence(tiny_llama, attention):
    """Empty slots inside each event's own tokens (``key_mask`` False): the hidden states of the present tokens are
    those of the full sequence with the same padding ``attention_mask``, and what fills an empty slot changes
    nothing."""
    model, decoder = _nudged_decoder(tiny_llama)
    prefix, own = _inputs(decoder, batch=6, n_prefix=5, n_own=7)
    torch.manual_seed(2)
    key_mask = (torch.rand(len(own), own.shape[1]) < 0.6).to(own.device)
    key_mask[:, 0] = True
    full_mask = torch.cat([key_mask.new_ones(len(own), prefix.shape[1]), key_mask], dim=1).long()
    with torch.no_grad():
        full = decoder(inputs_embeds=torch.cat([prefix.expand(len(own), -1, -1), own], dim=1),
                       attention_mask=full_mask, use_cache=False).last_hidden_state[:, prefix.shape[1]:]
        shared = forward_with_shared_prefix(decoder, prefix, own, attention=attention, key_mask=key_mask)
        noisy = forward_with_shared_prefix(decoder, prefix, torch.where(key_mask[..., None], own, 50.0),
                                           attention=attention, key_mask=key_mask)
        unmasked = forward_with_shared_prefix(decoder, prefix, own, attention=attention)
    torch.testing.assert_close(shared[key_mask], full[key_mask], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(noisy[key_mask], shared[key_mask], atol=1e-5, rtol=1e-4)
    assert (unmasked[key_mask] - shared[key_mask]).abs().max() > 1e-3  # the mask is what made them agree


@pytest.mark.skipif(not torch.cuda.is_available(), reason="compiled layers on the GPU")
def test_compiled_key_mask_matches_eager_with_gradients_and_one_graph(tiny_llama):
    """Empty own slots on the GPU default path (compiled layers; FlexAttention asked for, the matmul attention run):
    hidden states and LoRA gradients as eager, and a second batch's mask is the one applied without compiling
    again."""
    import torch._dynamo.utils

    model, decoder = _nudged_decoder(tiny_llama)
    model.cuda()
    prefix, own = (x.cuda() for x in _inputs(decoder, batch=37, n_prefix=9, n_own=14))
    lora = {n: p for n, p in model.named_parameters() if "lora_" in n}

    def run(key_mask, **kw):
        model.zero_grad()
        hidden = forward_with_shared_prefix(decoder, prefix, own, key_mask=key_mask, **kw)
        (hidden[:, -1] ** 2).sum().backward()
        return hidden.detach()[key_mask], {n: p.grad.clone() for n, p in lora.items()}

    graphs = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        key_mask = torch.rand(own.shape[:2], device="cuda") < 0.7
        key_mask[:, 0] = key_mask[:, -1] = True
        expected, expected_grads = run(key_mask, attention="matmul")
        got, got_grads = run(key_mask, attention="flex", compiled=True)
        graphs.append(torch._dynamo.utils.counters["stats"]["unique_graphs"])
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-3)
        for name in expected_grads:
            torch.testing.assert_close(got_grads[name], expected_grads[name], atol=1e-4, rtol=1e-3)
    assert graphs[1] == graphs[0]
