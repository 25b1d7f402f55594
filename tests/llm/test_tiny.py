"""The tiny test model: tokenizer conventions (digits, ChatML, special tokens) and determinism."""

from __future__ import annotations

import hashlib

from transformers import AutoTokenizer

from hybridjet.llm.testing import make_tiny_llama


def test_tiny_tokenizer_conventions(tiny_llama):
    tok = AutoTokenizer.from_pretrained(tiny_llama)
    ids = tok("1523", add_special_tokens=False).input_ids
    assert tok.convert_ids_to_tokens(ids) == ["1", "5", "2", "3"]
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>" and tok.bos_token == "<|im_start|>"
    assert len({tok.eos_token_id, tok.pad_token_id, tok.bos_token_id}) == 3
    text = tok.apply_chat_template([{"role": "user", "content": "mass 512.3?"}], tokenize=False,
                                   add_generation_prompt=True)
    assert text.endswith("<|im_start|>assistant\n") and "<|im_start|>user\nmass 512.3?<|im_end|>" in text
    chat_ids = tok(text, add_special_tokens=False).input_ids
    assert chat_ids.count(tok.convert_tokens_to_ids("<|im_start|>")) == 2
    assert 300 <= len(tok) <= 500


def test_tiny_is_small_and_deterministic(tiny_llama, tmp_path):
    total = sum(f.stat().st_size for f in tiny_llama.iterdir())
    assert total < 1_000_000
    again = make_tiny_llama(tmp_path / "again")
    for name in ("model.safetensors", "tokenizer.json"):
        digest = [hashlib.sha256((d / name).read_bytes()).hexdigest() for d in (tiny_llama, again)]
        assert digest[0] == digest[1], name
