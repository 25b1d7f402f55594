"""The family registry: each LoRA preset adapts the layers the family has (Phi-3's fused ``qkv_proj`` and
``gate_up_proj`` included), and the package's other family facts come from the same record."""

from __future__ import annotations

from pathlib import Path

import pytest

from hybridjet.llm.backbone import load_backbone
from hybridjet.llm.families import FAMILIES, UNKNOWN, family_of
from hybridjet.llm.lora import PRESETS
from hybridjet.llm.testing import make_family_hf

HF_FAMILIES = [name for name, family in FAMILIES.items() if family.hf is not None]


@pytest.mark.parametrize("family", HF_FAMILIES)
def test_every_preset_adapts_the_family_s_own_layers(tiny_llama: Path, tmp_path: Path, family: str) -> None:
    path = make_family_hf(tmp_path / family, family, tiny_llama)
    for preset in PRESETS:
        bb = load_backbone(path, quantization="none", lora=preset)
        adapted = {name.split(".lora_A.")[0].rsplit(".", 1)[-1] for name, _ in bb.model.named_parameters()
                   if ".lora_A." in name}
        want = set(FAMILIES[family].lora_targets[preset])
        assert adapted == want, f"{family} {preset}: adapters on {sorted(adapted)}, want {sorted(want)}"
        assert bb.lora.modules == list(FAMILIES[family].lora_targets[preset])  # recorded as applied


def test_unlisted_model_types_get_the_fallback_record() -> None:
    assert family_of("phi3").lora_targets["qkv"] == ("qkv_proj",)
    assert family_of("a-model-type-nobody-has") is UNKNOWN and UNKNOWN.logits == "unknown"
    assert not UNKNOWN.shared_prefix
    seen = [t for family in FAMILIES.values() for t in family.model_types]
    assert len(seen) == len(set(seen)), "a model type in two records"
