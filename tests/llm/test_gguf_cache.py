"""The GGUF -> HF model cache on a tiny GGUF file: conversion, content verification, concurrent preparation and
bad input, through the library and the ``hybridjet model`` command."""

from __future__ import annotations

import json

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from hybridjet.llm.gguf_cache import cache_problem, ensure_converted
from hybridjet.llm.resolve import SOURCE_JSON


def test_tiny_gguf_converts_to_the_same_model(tiny_gguf, tiny_llama, tmp_path):
    path, digest = ensure_converted(tiny_gguf, tmp_path)
    assert cache_problem(path, digest) is None
    assert json.loads((path / SOURCE_JSON).read_text())["name"] == "tiny-llama"
    ids = torch.tensor([[5, 17, 33, 2, 40]])
    with torch.no_grad():
        want = AutoModelForCausalLM.from_pretrained(tiny_llama).eval()(ids).logits
        got = AutoModelForCausalLM.from_pretrained(path).eval()(ids).logits
    torch.testing.assert_close(got, want)  # q/k permutation undone, tied embedding kept
    tok = AutoTokenizer.from_pretrained(path)
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"  # GGUF pad == eos repaired
