"""hybridjet: collider events as soft prompts for 4-bit LoRA LLMs, compared with text prompts and classical baselines."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public API, imported lazily so that ``import hybridjet`` and the CLI stay fast.
_LAZY = {
    "HybridClassifier": "hybridjet.train.classifiers",
    "TextPromptClassifier": "hybridjet.train.classifiers",
    "EventClassifier": "hybridjet.train.classifiers",
    "HybridConfig": "hybridjet.models.hybrid",
    "TextPromptConfig": "hybridjet.models.text_prompt",
    "Runtime": "hybridjet.runtime",
    "Optimization": "hybridjet.train.optim",
    "GradientBoostedTrees": "hybridjet.models.classical",
    "load_run": "hybridjet.api",
    "TextModel": "hybridjet.text.api",
    "evaluate": "hybridjet.eval.compare",
    "load_backbone": "hybridjet.llm.backbone",
    "JetDataset": "hybridjet.data.dataset",
    "HybridjetError": "hybridjet.errors",
    "AwkwardEvents": "hybridjet.data.columnar",
    "RootEvents": "hybridjet.data.columnar",
    "JetFields": "hybridjet.data.columnar",
    "export_onnx": "hybridjet.deploy.onnx_export",
}

if TYPE_CHECKING:  # pragma: no cover
    from hybridjet.errors import HybridjetError  # noqa: F401


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hybridjet' has no attribute {name!r}")


__all__ = sorted(_LAZY) + ["__version__"]
