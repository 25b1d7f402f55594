"""LoRA adapters tied to their base model: save, load (refusing another base), merge and export.

An adapter directory holds peft's ``adapter_config.json`` + ``adapter_model.safetensors`` and
``base_model.json`` (the base :class:`~hybridjet.llm.resolve.ModelIdentity`, the LoRA spec and the
quantization it was trained with).  The base is matched by sha256 of its source weights.
"""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from pathlib import Path
from typing import Any

from hybridjet import __version__
from hybridjet.errors import HybridjetError, InputFileError
from hybridjet.io_utils import atomic_dir, check_folder_replaceable
from hybridjet.llm.backbone import Backbone, enable_checkpointing, load_backbone
from hybridjet.llm.lora import LoraSpec
from hybridjet.llm.resolve import resolve_model

BASE_JSON = "base_model.json"


def save_adapter(backbone: Any, directory: str | os.PathLike[str]) -> Path:
    """Write the LoRA adapter of ``backbone`` (safetensors) and ``base_model.json`` into ``directory``."""
    if backbone.lora is None or not hasattr(backbone.model, "peft_config"):
        raise HybridjetError("this backbone has no LoRA adapter to save (load it with lora=...)")
    directory = Path(directory)
    with atomic_dir(directory, replaces=is_adapter_dir, what="an adapter folder hybridjet wrote") as tmp:
        backbone.model.save_pretrained(str(tmp), safe_serialization=True)
        meta = {
            "base": backbone.identity.to_dict(),
            "lora": backbone.lora.to_dict(),
            "quantization": backbone.quantization,
            "dtype": str(backbone.dtype).removeprefix("torch."),
            "hybridjet_version": __version__,
        }
        (tmp / BASE_JSON).write_text(json.dumps(meta, indent=2) + "\n")
    return directory


def is_adapter_dir(directory: Path) -> bool:
    """Whether ``directory`` holds an adapter :func:`save_adapter` wrote (which a new save may replace)."""
    return (directory / "adapter_config.json").is_file() and "base" in json.loads((directory / BASE_JSON).read_text())


def is_export_dir(directory: Path) -> bool:
    """Whether ``directory`` holds a merged model :func:`merge_and_export` wrote (which a new export may replace)."""
    return "merged_from" in json.loads((directory / BASE_JSON).read_text())


def read_adapter_meta(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``base_model.json`` of an adapter directory (user errors when missing or malformed)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise InputFileError(directory, "no such adapter directory")
    for name in ("adapter_config.json", BASE_JSON):
        if not (directory / name).is_file():
            raise InputFileError(directory, f"not a hybridjet adapter directory (no {name})")
    meta = _json_object(directory / BASE_JSON)
    if not isinstance(meta.get("base"), dict) or not isinstance(meta["base"].get("sha256"), str):
        raise InputFileError(directory / BASE_JSON, "expected a JSON object with base.sha256")
    config = _json_object(directory / "adapter_config.json")
    rank, alpha = config.get("r"), config.get("lora_alpha")
    if isinstance(rank, bool) or not isinstance(rank, int) or not 1 <= rank <= MAX_RANK:
        raise InputFileError(directory / "adapter_config.json", f"r {rank!r}; expected a LoRA rank in 1..{MAX_RANK}")
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not alpha > 0:
        raise InputFileError(directory / "adapter_config.json", f"lora_alpha {alpha!r}; expected a number > 0")
    weights = directory / "adapter_model.safetensors"
    try:
        from safetensors import safe_open

        with safe_open(str(weights), framework="pt") as fh:
            fh.keys()
    except OSError as exc:
        raise InputFileError(weights, f"cannot be read ({exc.strerror or exc})") from None
    except Exception as exc:  # safetensors' own errors: a damaged header
        raise InputFileError(weights, f"not a readable safetensors file ({str(exc).splitlines()[0][:120]})") from None
    return meta


#: the largest LoRA rank an adapter may record (a size read from a file, bounded before peft allocates it)
MAX_RANK = 4096


def _json_object(path: Path) -> dict[str, Any]:
    """A JSON object read from ``path``, or one line naming it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputFileError(path, f"cannot be read ({exc.strerror or exc})") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputFileError(path, f"not valid JSON ({str(exc).splitlines()[0][:120]})") from None
    if not isinstance(data, dict):
        raise InputFileError(path, f"expected a JSON object, found {type(data).__name__}")
    return data


def check_same_base(identity: Any, meta: dict[str, Any], adapter_dir: str | os.PathLike[str]) -> None:
    """Refuse an adapter trained on another base model."""
    base = meta["base"]
    if base["sha256"] != identity.sha256:
        raise HybridjetError(
            f"{adapter_dir}: adapter was trained on {base.get('name')} (sha256 {base['sha256'][:12]}), "
            f"not on {identity.name} (sha256 {identity.sha256[:12]})"
        )


def load_adapter(
    backbone_or_name: Any,
    directory: str | os.PathLike[str],
    trainable: bool = False,
    **load_kwargs: Any,
) -> Any:
    """Attach a saved adapter to a backbone without LoRA (or to the model named, loaded with ``load_kwargs``);
    returns the :class:`~hybridjet.llm.backbone.Backbone` with the ``PeftModel``."""
    from peft import PeftModel

    meta = read_adapter_meta(directory)
    if isinstance(backbone_or_name, Backbone):
        backbone = backbone_or_name
        check_same_base(backbone.identity, meta, directory)
        if backbone.lora is not None or hasattr(backbone.model, "peft_config"):
            raise HybridjetError("load_adapter needs a backbone loaded without lora=")
    else:
        check_same_base(resolve_model(backbone_or_name, cache_dir=load_kwargs.get("cache_dir")), meta, directory)
        load_kwargs.pop("lora", None)
        backbone = load_backbone(backbone_or_name, **load_kwargs)
    model = backbone.model
    if trainable and backbone.quantization != "none":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    with warnings.catch_warnings():  # peft probes deprecated transformers properties
        warnings.simplefilter("ignore", FutureWarning)
        model = PeftModel.from_pretrained(model, str(directory), is_trainable=trainable)
    if backbone.gradient_checkpointing:
        enable_checkpointing(model)
    spec = LoraSpec(**meta["lora"]) if isinstance(meta.get("lora"), dict) else None
    return dataclasses.replace(backbone, model=model, lora=spec)


def merge_and_export(
    name_or_path: str | os.PathLike[str],
    adapter_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    dtype: str = "fp32",
    cache_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """Merge an adapter into an unquantized (``dtype`` fp32 or bf16) copy of its base; save an HF directory
    (model + tokenizer + ``base_model.json`` naming base and adapter) at ``out_dir``."""

    if str(dtype).lower() not in ("fp32", "float32", "bf16", "bfloat16", "fp16", "float16"):
        raise HybridjetError(f"export dtype must be fp32, bf16 or fp16, got {dtype!r}")
    meta = read_adapter_meta(adapter_dir)
    inputs = (adapter_dir, *((name_or_path,) if Path(name_or_path).exists() else ()))
    what = "a merged model hybridjet exported"
    check_folder_replaceable(out_dir, is_export_dir, what, inputs)  # before the base loads
    bb = load_adapter(name_or_path, adapter_dir, quantization="none", dtype=dtype, device="cpu", cache_dir=cache_dir)
    merged = bb.model.merge_and_unload()
    out_dir = Path(out_dir)
    with atomic_dir(out_dir, is_export_dir, what, inputs) as tmp:
        merged.save_pretrained(str(tmp), safe_serialization=True)
        bb.tokenizer.save_pretrained(str(tmp))
        info = {"merged_from": {"base": meta["base"], "adapter": str(Path(adapter_dir).resolve()),
                                "lora": meta.get("lora"), "dtype": str(bb.dtype).removeprefix("torch.")}}
        (tmp / BASE_JSON).write_text(json.dumps(info, indent=2) + "\n")
    return out_dir
