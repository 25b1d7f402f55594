"""The LLM backbone: loading (GGUF default or local HF dir), 4-bit quantization, LoRA, adapters, reports.

Imports are lazy so that ``import hybridjet.llm`` (and the CLI) stays fast; see :mod:`hybridjet.llm.backbone`.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "load_backbone": "hybridjet.llm.backbone",
    "Backbone": "hybridjet.llm.backbone",
    "FAMILIES": "hybridjet.llm.families",
    "Family": "hybridjet.llm.families",
    "LoraSpec": "hybridjet.llm.lora",
    "PRESETS": "hybridjet.llm.lora",
    "ModelIdentity": "hybridjet.llm.resolve",
    "resolve_model": "hybridjet.llm.resolve",
    "describe": "hybridjet.llm.report",
    "ModelReport": "hybridjet.llm.report",
    "save_adapter": "hybridjet.llm.adapters",
    "load_adapter": "hybridjet.llm.adapters",
    "merge_and_export": "hybridjet.llm.adapters",
    "make_tiny_llama": "hybridjet.llm.testing",
    "make_family_gguf": "hybridjet.llm.tiny_gguf",
    "render_chat": "hybridjet.llm.chat",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'hybridjet.llm' has no attribute {name!r}")
