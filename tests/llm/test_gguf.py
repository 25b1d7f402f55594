"""The embedded SmolLM2 default: GGUF -> HF cache conversion, cache verification and repair, tokenizer fidelity,
and one real generation in NF4 on CPU."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

from hybridjet.llm.files import SOURCE_JSON, sha256_file
from hybridjet.llm.gguf_cache import cache_problem, converted_dir, ensure_converted
from hybridjet.llm.resolve import default_gguf_path, is_default_alias, resolve_model


def _digest(smollm2_path: Path) -> str:
    return json.loads((smollm2_path / SOURCE_JSON).read_text())["sha256"]


def _linked_copy(src: Path, root: Path, digest: str) -> Path:
    """A cache dir under ``root`` whose files are hard links of ``src`` (only unlink/rewrite them, never edit)."""
    dst = converted_dir(default_gguf_path(), root, digest)
    shutil.copytree(src, dst, copy_function=os.link)
    return dst


def test_aliases_and_gguf_location():
    assert all(is_default_alias(a) for a in ("smollm2", "SmolLM2-135M-Instruct", "default"))
    assert not is_default_alias("smollm")
    gguf = default_gguf_path()
    assert gguf.suffix == ".gguf" and gguf.stat().st_size > 50_000_000


def test_cache_layout_and_identity(smollm2_path):
    ident = resolve_model("smollm2")
    assert Path(ident.path) == smollm2_path and ident.format == "gguf"
    assert ident.sha256 == sha256_file(default_gguf_path()) == _digest(smollm2_path)
    for name in ("config.json", "model.safetensors", "tokenizer.json", SOURCE_JSON):
        assert (smollm2_path / name).is_file()
    assert cache_problem(smollm2_path, ident.sha256) is None
    config = json.loads((smollm2_path / "config.json").read_text())
    assert "quantization_config" not in config and config["model_type"] == "llama"


def test_tokenizer_fidelity(smollm2_path):
    tok = AutoTokenizer.from_pretrained(smollm2_path)
    for text, digits in (("1523", ["1", "5", "2", "3"]), ("0.42", ["0", ".", "4", "2"])):
        ids = tok(text, add_special_tokens=False).input_ids
        assert tok.convert_ids_to_tokens(ids) == digits
    ids = tok(" 2024 GeV", add_special_tokens=False).input_ids
    assert tok.convert_ids_to_tokens(ids)[:5] == ["Ġ", "2", "0", "2", "4"]
    assert tok.decode(ids) == " 2024 GeV"
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert "<|im_start|>user\nhi<|im_end|>" in text and text.endswith("<|im_start|>assistant\n")
    assert tok.bos_token == "<|im_start|>" and tok.eos_token == "<|im_end|>" and tok.eos_token_id != tok.bos_token_id
    assert tok.pad_token == "<|endoftext|>" and tok.pad_token_id == 0
    assert tok("x").input_ids == tok("x", add_special_tokens=False).input_ids  # no bos added


@pytest.mark.parametrize("damage", ["missing", "truncated", "hash", "header", "in-place"])
def test_damaged_cache_is_detected(smollm2_path, tmp_path, damage):
    digest = _digest(smollm2_path)
    d = _linked_copy(smollm2_path, tmp_path, digest)
    assert cache_problem(d, digest) is None
    if damage == "missing":
        (d / "tokenizer.json").unlink()
    elif damage == "truncated":
        (d / "config.json").unlink()
        (d / "config.json").write_text("{")
    elif damage == "hash":
        assert cache_problem(d, "0" * 64) == "source sha256 mismatch"
        return
    elif damage == "in-place":  # 50 MB of random bytes written inside the weights: same size, NaNs when loaded
        weights = d / "model.safetensors"
        weights.unlink()
        shutil.copy2(smollm2_path / weights.name, weights)  # an own copy: the linked files are never edited
        assert cache_problem(d, digest) is None
        with open(weights, "r+b") as fh:
            fh.seek(weights.stat().st_size // 4)
            fh.write(os.urandom(50_000_000))
        assert "model.safetensors" in (cache_problem(d, digest) or "")
        return
    else:  # same size, garbage header
        size = (d / "model.safetensors").stat().st_size
        (d / "model.safetensors").unlink()
        with open(d / "model.safetensors", "wb") as fh:
            fh.write(b"\xff" * 16)
            fh.truncate(size)
    assert cache_problem(d, digest) is not None


@pytest.mark.slow
def test_partial_cache_is_rebuilt(smollm2_path, tmp_path):
    digest = _digest(smollm2_path)
    d = _linked_copy(smollm2_path, tmp_path, digest)
    (d / "model.safetensors").unlink()
    path, got = ensure_converted(default_gguf_path(), tmp_path)
    assert path == d and got == digest and cache_problem(d, digest) is None
    assert not list(d.parent.glob(".*tmp"))


@pytest.mark.slow
def test_smollm2_nf4_generates(smollm2_path):
    from hybridjet.llm import load_backbone

    bb = load_backbone("smollm2", quantization="nf4", device="cpu")
    assert bb.quantization == "nf4" and bb.identity.format == "gguf"
    tok = bb.tokenizer
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France? Answer in one word."}],
        add_generation_prompt=True, return_tensors="pt", return_dict=True,
    )
    with torch.no_grad():
        out = bb.model.generate(**prompt, max_new_tokens=8, do_sample=False)
    answer = tok.decode(out[0, prompt["input_ids"].shape[1]:], skip_special_tokens=True)
    assert answer.strip() and "<|im_start|>" not in answer and "one word" not in answer
    assert "Paris" in answer


def test_special_tokens_follow_the_gguf_metadata(tiny_llama):
    """transformers 5.17 converts SmolLM2's GGUF with eos = bos = <|im_start|>: the GGUF's ids must win."""
    from hybridjet.llm.gguf_tokenizer import check_tokenizer, repair_tokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_llama))
    tok.eos_token = tok.bos_token
    meta = {"tokenizer.ggml.eos_token_id": 2, "tokenizer.ggml.bos_token_id": 1}
    assert "eos token equal to bos ('<|im_start|>')" in check_tokenizer(tok, meta, smollm=True)
    repairs, _ = repair_tokenizer(tok, meta, smollm=True)
    assert tok.eos_token == "<|im_end|>" and tok.bos_token == "<|im_start|>"
    assert any(r.startswith("eos_token") for r in repairs) and not any(r.startswith("bos_token") for r in repairs)
