"""LoRA presets: which linear layers of a Llama-style decoder get adapters, and the peft config for them."""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from typing import Any

from hybridjet.errors import HybridjetError
from hybridjet.llm.families import LLAMA_TARGETS, lora_targets

#: preset name -> target module names in Llama's naming (each family's own: :mod:`hybridjet.llm.families`)
PRESETS: dict[str, tuple[str, ...]] = LLAMA_TARGETS


@dataclass
class LoraSpec:
    """A LoRA setup: a ``preset`` (qkv, attn, all-linear) or explicit ``target_modules``, rank and scaling."""

    preset: str | None = "qkv"
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] | None = field(default=None)

    def __post_init__(self) -> None:
        if self.target_modules is None:
            if self.preset not in PRESETS:
                raise HybridjetError(
                    f"unknown LoRA preset {self.preset!r}: expected one of {', '.join(PRESETS)} "
                    "or an explicit target_modules list"
                )
        else:
            if isinstance(self.target_modules, str):
                self.target_modules = [self.target_modules]
            self.target_modules = [str(m) for m in self.target_modules]
            if not self.target_modules:
                raise HybridjetError("LoRA target_modules is empty")
        if int(self.r) <= 0:
            raise HybridjetError(f"LoRA rank r must be positive, got {self.r}")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise HybridjetError(f"LoRA dropout must be in [0, 1), got {self.dropout}")

    @property
    def modules(self) -> list[str]:
        """The module names that receive adapters (a preset's in Llama's naming until :meth:`for_model_type`)."""
        if self.target_modules is not None:
            return list(self.target_modules)
        return list(PRESETS[str(self.preset)])

    def for_model_type(self, model_type: str | None) -> LoraSpec:
        """This setup with a preset's layers named as the family of ``model_type`` names them (Phi-3's fused
        ``qkv_proj``, ...); explicit ``target_modules`` stay as given."""
        if self.target_modules is not None:
            return self
        return dataclasses.replace(self, target_modules=list(lora_targets(str(self.preset), model_type)))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description."""
        return asdict(self)

    def peft_config(self) -> Any:
        """The ``peft.LoraConfig`` for a causal LM."""
        from peft import LoraConfig, TaskType

        return LoraConfig(
            r=int(self.r),
            lora_alpha=int(self.alpha),
            lora_dropout=float(self.dropout),
            target_modules=self.modules,
            bias="none",
            task_type=TaskType.CAUSAL_LM,
        )


def as_lora_spec(lora: str | LoraSpec | dict[str, Any] | list[str] | None) -> LoraSpec | None:
    """Normalise the ``lora`` argument: a preset name, a :class:`LoraSpec`, a dict of its fields, a list of
    module names, or None (no adapters)."""
    if lora is None or lora is False:
        return None
    if isinstance(lora, LoraSpec):
        return lora
    if isinstance(lora, str):
        if lora.lower() in ("none", ""):
            return None
        if lora in PRESETS:
            return LoraSpec(preset=lora)
        if "," in lora:
            return LoraSpec(preset=None, target_modules=[m.strip() for m in lora.split(",") if m.strip()])
        raise HybridjetError(
            f"unknown LoRA preset {lora!r}: expected one of {', '.join(PRESETS)} or comma-separated module names"
        )
    if isinstance(lora, (list, tuple)):
        return LoraSpec(preset=None, target_modules=list(lora))
    if isinstance(lora, dict):
        allowed = {"preset", "r", "alpha", "dropout", "target_modules"}
        unknown = set(lora) - allowed
        if unknown:
            raise HybridjetError(
                f"unknown LoRA setting(s) {', '.join(sorted(unknown))}: expected {', '.join(sorted(allowed))}"
            )
        spec = dict(lora)
        if spec.get("target_modules") is not None and "preset" not in spec:
            spec["preset"] = None
        return LoraSpec(**spec)
    raise HybridjetError(f"lora must be a preset name, a LoraSpec, a dict or None, got {type(lora).__name__}")
