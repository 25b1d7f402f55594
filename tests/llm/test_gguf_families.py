"""GGUF files of other families than SmolLM2's Llama (Llama 3, Mistral, Qwen2/3, Gemma 2/3, Phi-3), base and
instruct: each converts with the generic tokenizer rules, loads with ``load_backbone`` and computes what the random
model it was written from computes; what a file lacks is a note, not a failure; architectures nothing can load are
refused in one line."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

from hybridjet.errors import HybridjetError
from hybridjet.llm.backbone import decoder_of, load_backbone
from hybridjet.llm.families import FAMILIES
from hybridjet.llm.files import SOURCE_JSON
from hybridjet.llm.gguf_cache import ensure_converted
from hybridjet.llm.gguf_tokenizer import ROUND_TRIP_TEXT, check_tokenizer, is_smollm, repair_tokenizer
from hybridjet.llm.tiny_gguf import make_family_gguf

ROOT = Path(__file__).resolve().parents[2]
HYBRIDJET = [sys.executable, "-m", "hybridjet.cli"]

#: every family of the registry with a GGUF fixture, base and instruct
CASES = [(name, instruct) for name, family in FAMILIES.items() if family.gguf is not None for instruct in (True, False)]


@pytest.mark.parametrize(("family", "instruct"), CASES, ids=[f"{f}-{'instruct' if i else 'base'}" for f, i in CASES])
def test_a_family_converts_loads_and_computes_as_its_source(tmp_path: Path, family: str, instruct: bool) -> None:
    spec = FAMILIES[family].gguf
    gguf = make_family_gguf(tmp_path / f"{family}.gguf", family, instruct=instruct, reference_dir=tmp_path / "ref")
    bb = load_backbone(gguf, quantization="none", cache_dir=tmp_path / "cache")
    tok = bb.tokenizer
    source = json.loads((Path(bb.identity.path) / SOURCE_JSON).read_text())
    assert source["architecture"] == spec.arch and source["tokenizer_rules"] == "generic"
    # the tokenizer: the GGUF's specials, a pad that is not eos, its own template for instruct files only
    assert tok.eos_token == (spec.instruct_eos if instruct and spec.instruct_eos else spec.eos)
    assert tok.bos_token == spec.bos and tok.pad_token is not None and tok.pad_token_id != tok.eos_token_id
    assert tok.decode(tok(ROUND_TRIP_TEXT, add_special_tokens=False).input_ids) == ROUND_TRIP_TEXT
    # no token past the embeddings (transformers adds a GPT-2 <|endoftext|> to Llama 3's vocabulary: dropped)
    assert len(tok) == bb.input_embeddings.num_embeddings
    assert max(tok("<|endoftext|> text", add_special_tokens=False).input_ids) < len(tok)
    assert "Digits" not in repr(tok.backend_tokenizer.pre_tokenizer)  # SmolLM2's digit split is SmolLM2's only
    assert bool(tok.chat_template) == instruct
    assert any(n.startswith("no chat template") for n in source["notes"]) == (not instruct)
    # the weights: the same logits as the model the file was written from, and the decoder alone runs
    ids = tok("The jet has transverse momentum 1523 GeV.", return_tensors="pt")
    with torch.no_grad():
        want = AutoModelForCausalLM.from_pretrained(tmp_path / "ref").eval()(**ids).logits
        got = bb.model(**ids).logits
        hidden = decoder_of(bb.model)(input_ids=ids["input_ids"]).last_hidden_state
    torch.testing.assert_close(got, want)
    assert hidden.shape == (1, ids["input_ids"].shape[1], bb.hidden_size)


def test_notes_are_warned_once_at_conversion(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    gguf = make_family_gguf(tmp_path / "qwen2-base.gguf", "qwen2", instruct=False)
    with caplog.at_level(logging.WARNING):
        entry, _ = ensure_converted(gguf, tmp_path)
        ensure_converted(gguf, tmp_path)  # cached: nothing said again
    notes = json.loads((entry / SOURCE_JSON).read_text())["notes"]
    warned = [r.getMessage() for r in caplog.records if r.getMessage().startswith("hybridjet: qwen2-base.gguf: ")]
    assert notes and warned == [f"hybridjet: qwen2-base.gguf: {note}" for note in notes]
    assert any("bos == eos" in n for n in notes)  # Qwen base files state bos == eos: a note, not a failure
    repairs = json.loads((entry / SOURCE_JSON).read_text())["tokenizer_repairs"]
    assert "pad_token '<|endoftext|>' -> '<|fim_pad|>' (distinct from eos)" in repairs


def _one_token_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level tokenizer whose only special token is ``<|endoftext|>`` (bos = eos, nothing else for pad)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    backend.train_from_iterator([ROUND_TRIP_TEXT] * 4, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<|endoftext|>", eos_token="<|endoftext|>")


def test_no_distinct_pad_is_a_note_and_bos_equal_eos_only_when_the_gguf_says_so() -> None:
    tok = _one_token_tokenizer()
    meta = {"tokenizer.ggml.eos_token_id": 0, "tokenizer.ggml.bos_token_id": 0}
    repairs, notes = repair_tokenizer(tok, meta, smollm=False)
    assert tok.pad_token == tok.eos_token == "<|endoftext|>"
    assert any(n.startswith("no pad token distinct from eos") for n in notes)
    assert any(n.startswith("no chat template") for n in notes) and not repairs
    assert check_tokenizer(tok, meta) == []
    assert check_tokenizer(tok, {"tokenizer.ggml.eos_token_id": 0, "tokenizer.ggml.bos_token_id": 1}) == [
        "eos token equal to bos ('<|endoftext|>')"]


def test_smollm2_is_told_by_its_metadata_and_vocabulary(tiny_llama: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    smol = AutoTokenizer.from_pretrained(tiny_llama)
    qwen_gguf = make_family_gguf(tmp_path / "q.gguf", "qwen2")
    qwen = AutoTokenizer.from_pretrained(str(tmp_path), gguf_file=qwen_gguf.name)
    assert is_smollm({"general.basename": "smollm2"}, smol)
    assert is_smollm({"general.name": "tiny", "tokenizer.ggml.pre": "smollm"}, smol)
    assert not is_smollm({"general.name": "Qwen2.5 0.5B"}, smol)  # the vocabulary alone is not enough
    assert not is_smollm({"general.basename": "smollm2"}, qwen)  # nor the name alone


def _write_gguf(path: Path, arch: str) -> Path:
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.zeros((4, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_an_architecture_nothing_loads_is_one_line_naming_it_and_the_supported(tmp_path: Path) -> None:
    bad = _write_gguf(tmp_path / "encoder.gguf", "bert")
    cache = tmp_path / "cache"
    result = subprocess.run([*HYBRIDJET, "model", "prepare", str(bad), "--cache-dir", str(cache)],
                            capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"hybridjet: error: {bad}: GGUF architecture 'bert' "), lines
    assert all(f" {arch}," in lines[0] for arch in ("gemma3", "llama", "phi3", "qwen2", "qwen3"))
    assert not cache.exists()  # refused before any conversion work


def test_an_hf_model_type_without_a_causal_lm_is_one_line(tmp_path: Path) -> None:
    model = tmp_path / "t5-small"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "t5"}))
    (model / "model.safetensors").write_bytes(b"")
    with pytest.raises(HybridjetError, match=r"model type 't5' has no causal-LM class in transformers .*\bllama\b"):
        load_backbone(model, quantization="none")
    result = subprocess.run([*HYBRIDJET, "model", "info", str(model)], capture_output=True, text=True, timeout=300,
                            cwd=ROOT)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "model type 't5' has no causal-LM class" in result.stderr


def test_a_tokenizer_without_pad_gets_one_that_is_not_eos(tmp_path: Path) -> None:
    """The pad rule of HF directories too (``ensure_pad_token``): Llama 3 has no pad but a reserved pad token."""
    from transformers import AutoTokenizer

    from hybridjet.llm.backbone import ensure_pad_token

    gguf = make_family_gguf(tmp_path / "llama3.gguf", "llama", instruct=False)
    tok = AutoTokenizer.from_pretrained(str(tmp_path), gguf_file=gguf.name)
    assert tok.pad_token is None
    ensure_pad_token(tok)
    assert tok.pad_token == "<|finetune_right_pad_id|>"
    only_eos = _one_token_tokenizer()
    ensure_pad_token(only_eos)
    assert only_eos.pad_token == only_eos.eos_token  # nothing else in the vocabulary
