import math
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from throughput import measure  # noqa: E402

from hybridjet.train.classifiers import HybridClassifier


@pytest.mark.parametrize("pipelined", [False, True])
def test_measure_times_real_training_steps(tiny_llama, pipelined):
    torch.manual_seed(0)
    model = HybridClassifier.from_settings(model=str(tiny_llama), quantization="none")
    model.build(5)
    batches = [{"features": torch.randn(4, 5), "label": torch.tensor([0, 1, 0, 1])} for _ in range(3)]
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    result = measure(model, batches, pipelined=pipelined)
    assert math.isfinite(result.train_events_per_s) and result.train_events_per_s > 0
    assert math.isfinite(result.infer_events_per_s) and result.infer_events_per_s > 0
    assert result.tokens_per_event == model.net.sequence_length
    changed = [n for n, p in model.named_parameters() if p.requires_grad and not torch.equal(p, before[n])]
    assert any(n.startswith("net.encoder.") for n in changed)  # the optimiser stepped
