"""The benchmark shapes of the seeds' models (scripts/device/make_random_model.py): their parameter counts are the
real models' (Llama-3.2-3B 3.21 B, Llama-3.1-8B 8.03 B), counted on the meta device (nothing allocated)."""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from hybridjet.llm.testing import LLAMA_31_8B_SHAPE, LLAMA_32_3B_SHAPE


@pytest.mark.parametrize(("shape", "billions"), [(LLAMA_32_3B_SHAPE, 3.21), (LLAMA_31_8B_SHAPE, 8.03)])
def test_shapes_have_the_real_models_parameter_counts(shape, billions):
    with torch.device("meta"):
        model = LlamaForCausalLM(LlamaConfig(**shape))
    assert sum(p.numel() for p in model.parameters()) / 1e9 == pytest.approx(billions, abs=0.01)
