"""Which model architectures can come in, asked of the installed transformers: GGUF ``general.architecture``
values its GGUF loader reads (as llama.cpp spells them), and the HF ``model_type`` values with a causal-LM class.

A file of any other architecture is refused before any work, in one line naming it and what is supported.
"""

from __future__ import annotations

import json
import os
import re
from functools import cache
from pathlib import Path
from typing import Any

from hybridjet.errors import HybridjetError, InputFileError

# GGUF architectures transformers reads that are not causal LMs (encoder-decoders), and mapping keys that are not
# architectures
_NOT_CAUSAL = {"general", "tokenizer", "t5", "t5encoder", "umt5"}


def _transformers_version() -> str:
    import transformers

    return str(transformers.__version__)


@cache
def gguf_architectures() -> tuple[str, ...]:
    """The GGUF ``general.architecture`` values transformers' GGUF loader turns into a causal LM, sorted."""
    import gguf

    names: set[str] = set()
    try:  # the per-architecture config keys of the loader (transformers 5.x)
        from transformers.integrations.ggml import GGUF_CONFIG_MAPPING

        names |= set(GGUF_CONFIG_MAPPING)
    except ImportError:
        pass
    try:  # architectures of the newer loader path (transformers >= 5.2x)
        from transformers.integrations.gguf import GGUF_ARCHS

        names |= set(GGUF_ARCHS)
    except (ImportError, AttributeError):
        pass
    spelled = set(gguf.MODEL_ARCH_NAMES.values())  # llama.cpp's spellings: qwen2moe for qwen2_moe, gpt-oss ...
    out = set()
    for name in names - _NOT_CAUSAL:
        out |= {n for n in (name, name.replace("_", ""), name.replace("_", "-")) if n in spelled}
    return tuple(sorted(out))


def check_gguf_architecture(path: str | os.PathLike[str], architecture: object) -> None:
    """Raise :class:`HybridjetError` (one line) unless ``architecture`` (a GGUF file's) is one transformers reads."""
    supported = gguf_architectures()
    if architecture is None:
        raise InputFileError(path, "the GGUF file names no general.architecture")
    if architecture not in supported:
        raise HybridjetError(
            f"{path}: GGUF architecture {architecture!r} cannot be loaded: transformers {_transformers_version()}'s "
            f"GGUF loader reads {', '.join(supported)}"
        )


@cache
def causal_lm_model_types() -> tuple[str, ...]:
    """The HF ``model_type`` values that ``AutoModelForCausalLM`` has a class for, sorted."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    return tuple(sorted(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES))


def check_hf_architecture(directory: str | os.PathLike[str]) -> None:
    """Raise :class:`HybridjetError` (one line) unless the HF directory's ``config.json`` names a model type with a
    causal-LM class in transformers (a repository with its own code, ``auto_map``, is let through: loading it
    needs ``trust_remote_code``)."""
    config_file = Path(directory) / "config.json"
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputFileError(config_file, f"unreadable ({type(exc).__name__})") from None
    if not isinstance(config, dict):
        raise InputFileError(config_file, "not a JSON object")
    if "auto_map" in config:
        return
    model_type = config.get("model_type")
    if not model_type:
        raise InputFileError(config_file, "names no model_type")
    supported = causal_lm_model_types()
    if model_type not in supported:
        raise HybridjetError(
            f"{directory}: model type {model_type!r} has no causal-LM class in transformers "
            f"{_transformers_version()} (it has {len(supported)}: {', '.join(supported)})"
        )
    check_config_against_weights(Path(directory), config)


def check_config_against_weights(directory: Path, config: dict[str, Any]) -> None:
    """Refuse a ``config.json`` whose sizes the weights do not hold (a model is built from the config before the
    weights load, so a config declaring a million layers would allocate them): the layer count and the embedding's
    shape are compared with the safetensors headers (read without the tensors)."""
    from safetensors import safe_open

    text = config.get("text_config") if isinstance(config.get("text_config"), dict) else config
    layers: set[int] = set()
    embedding = None
    for path in sorted(directory.glob("*.safetensors")):
        try:
            with safe_open(str(path), framework="numpy") as fh:
                for key in fh.keys():
                    match = re.search(r"layers\.(\d+)\.", key)
                    if match:
                        layers.add(int(match.group(1)))
                    if key.endswith("embed_tokens.weight"):
                        embedding = tuple(fh.get_slice(key).get_shape())
        except Exception as exc:  # safetensors' own errors: a damaged header
            raise InputFileError(path, f"unreadable safetensors header ({str(exc).splitlines()[0][:120]})") from None
    config_file = directory / "config.json"
    declared = text.get("num_hidden_layers")
    if layers and isinstance(declared, int) and declared > max(layers) + 1:
        raise InputFileError(config_file, f"num_hidden_layers {declared:,}, but the weights hold {max(layers) + 1} "
                                          "layers; expected the config the weights were saved with")
    hidden, vocab = text.get("hidden_size"), text.get("vocab_size")
    if embedding is not None and isinstance(hidden, int) and isinstance(vocab, int) and (vocab, hidden) != embedding:
        raise InputFileError(config_file, f"vocab_size {vocab:,} and hidden_size {hidden:,}, but the embedding "
                                          f"weights are {embedding}; expected the config the weights were saved with")
