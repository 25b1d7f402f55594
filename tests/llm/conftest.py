"""Fixtures of the LLM tests: ``tiny_gguf``, the tiny random Llama written as a GGUF file (~400 KB, session scoped;
read-only by convention: copy it before damaging it); it converts in well under a second."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_gguf(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``tiny_llama`` HF directory as an fp32 GGUF file with SmolLM2-like tokenizer metadata."""
    from hybridjet.llm.testing import make_tiny_gguf

    return make_tiny_gguf(tmp_path_factory.mktemp("tiny_gguf") / "tiny.gguf", tiny_llama)
