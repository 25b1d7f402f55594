"""A text run on disk: ``adapter/`` (peft, safetensors), ``tokenizer/`` (with chat template), ``text_config.yaml``."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from hybridjet.errors import InputFileError
from hybridjet.io_utils import atomic_dir, atomic_path
from hybridjet.llm.adapters import save_adapter

TEXT_CONFIG = "text_config.yaml"
ADAPTER_DIR = "adapter"
TOKENIZER_DIR = "tokenizer"


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def save_text_run(
    backbone: Any,
    run_dir: str | Path,
    data_settings: Mapping[str, Any],
    model_settings: Mapping[str, Any],
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write the adapter, the tokenizer (chat template included) and ``text_config.yaml`` into ``run_dir``."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_adapter(backbone, run_dir / ADAPTER_DIR)
    tokenizer = backbone.tokenizer
    with atomic_dir(run_dir / TOKENIZER_DIR, replaces=lambda _: True) as tmp:  # the run's own folder
        tokenizer.save_pretrained(str(tmp))
        if getattr(tokenizer, "chat_template", None):
            (tmp / "chat_template.jinja").write_text(str(tokenizer.chat_template), encoding="utf-8")
    identity = backbone.identity.to_dict() if hasattr(backbone.identity, "to_dict") else str(backbone.identity)
    config = {
        "kind": "hybridjet-text-sft",
        "model": model_settings.get("model", identity.get("name") if isinstance(identity, dict) else None),
        "base_identity": identity,
        "quantization": backbone.quantization,
        "lora": backbone.lora.to_dict() if backbone.lora is not None else None,
        "system_prompt": data_settings.get("system_prompt"),
        "data": dict(data_settings),
        "template": {
            "has_chat_template": bool(getattr(tokenizer, "chat_template", None)),
            "eos_token": tokenizer.eos_token,
            "pad_token": tokenizer.pad_token,
            "file": f"{TOKENIZER_DIR}/chat_template.jinja",
        },
        "train": dict(model_settings),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        **dict(extra or {}),
    }
    with atomic_path(run_dir / TEXT_CONFIG) as tmp:
        tmp.write_text(yaml.safe_dump(_plain(config), sort_keys=False), encoding="utf-8")
    return run_dir


def read_text_config(run_dir: str | Path) -> dict[str, Any]:
    """The ``text_config.yaml`` of a text run (clear error when it is not one)."""
    run_dir = Path(run_dir)
    path = run_dir / TEXT_CONFIG
    if not run_dir.is_dir():
        raise InputFileError(run_dir, "no such run directory")
    if not path.is_file():
        raise InputFileError(run_dir, f"not a text run (no {TEXT_CONFIG}; train one with 'hybridjet sft fit')")
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise InputFileError(path, f"invalid YAML: {str(exc).splitlines()[0]}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(path, f"cannot be read ({getattr(exc, 'strerror', None) or exc})") from None
    if not isinstance(config, dict) or config.get("kind") != "hybridjet-text-sft":
        raise InputFileError(path, "not a hybridjet text run config")
    if not (run_dir / ADAPTER_DIR).is_dir():
        raise InputFileError(run_dir, f"the run has no {ADAPTER_DIR}/ directory")
    return config
