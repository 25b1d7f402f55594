"""What the nets' architecture configs share: building one from a run's record, and their LoRA settings."""

from __future__ import annotations

import dataclasses
from typing import Any

from hybridjet import checks
from hybridjet.errors import HybridjetError
from hybridjet.llm.lora import LoraSpec, as_lora_spec
from hybridjet.llm.random_init import INITS

#: ``lora: full``: no adapters, every weight of the LLM trains (unquantized)
FULL = "full"


class ArchConfig:
    """A mixin of the frozen dataclasses that describe a net (fields ``lora``, ``lora_r``, ``lora_alpha``,
    ``lora_dropout``, ``init``, ``init_seed``, ``llm_layers`` among them)."""

    lora: str | None
    lora_r: int
    lora_alpha: int
    lora_dropout: float
    init: str
    init_seed: int
    llm_layers: int | None

    def check_backbone(self) -> None:
        """One line for backbone settings that cannot be meant: ``init`` pretrained or random (the control that
        tells pretraining from the architecture), its seed, ``llm_layers`` (the first that many decoder layers)."""
        if self.init not in INITS:
            raise HybridjetError(f"init: expected one of {', '.join(INITS)}, got {self.init!r}")
        checks.integer("init_seed", self.init_seed, 0)
        checks.integer("llm_layers", self.llm_layers, 1, 4096, optional=True)

    def backbone_settings(self) -> dict[str, Any]:
        """What :func:`hybridjet.runtime.load_llm` takes of these settings, besides the model and its LoRA."""
        return {"init": self.init, "init_seed": self.init_seed, "full": self.lora == FULL, "layers": self.llm_layers}

    def check_lora(self) -> None:
        """One line for LoRA settings that cannot be meant (checked before any model loads)."""
        checks.integer("lora_r", self.lora_r, 1, 4096)
        checks.positive("lora_alpha", self.lora_alpha)
        checks.fraction("lora_dropout", self.lora_dropout, include_one=False)

    def lora_spec(self) -> LoraSpec | None:
        """The adapters the backbone loader takes (``None``: a frozen LLM, or one trained in full)."""
        if self.lora is None or self.lora == FULL:
            return None
        return as_lora_spec({"preset": self.lora, "r": self.lora_r, "alpha": self.lora_alpha,
                             "dropout": self.lora_dropout})

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Any:
        """The config a run recorded (its fields; other keys, such as settings an older version recorded next to
        them, are left out)."""
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in record.items() if k in names})
