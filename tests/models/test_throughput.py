import math

import pytest
import torch

from hybridjet.models.hybrid import HybridClassifier
from hybridjet.models.throughput import measure


@pytest.mark.parametrize("pipelined", [False, True])
def test_measure_times_real_training_steps(tiny_llama, pipelined):
    torch.manual_seed(0)
    model = HybridClassifier(model=str(tiny_llama), quantization="none")
    model.build(5)
    batches = [{"features": torch.randn(4, 5), "label": torch.tensor([0, 1, 0, 1])} for _ in range(3)]
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    result = measure(model, batches, pipelined=pipelined)
    assert math.isfinite(result.train_events_per_s) and result.train_events_per_s > 0
    assert math.isfinite(result.infer_events_per_s) and result.infer_events_per_s > 0
    assert result.tokens_per_event == model.sequence_length
    changed = [n for n, p in model.named_parameters() if p.requires_grad and not torch.equal(p, before[n])]
    assert any(n.startswith("encoder.") for n in changed)  # the optimiser stepped
