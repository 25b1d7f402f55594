"""Every learned token weighs the same in a text SFT step, whatever the micro-batching and the number of ranks: the
gradient of one batch of 4 examples of very different lengths equals that of 2 accumulated batches of 2 and that
of 2 gloo ranks taking 2 each."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("loader", ["module", "plain"])
def test_gradient_is_the_same_for_one_batch_accumulation_and_two_ranks(tiny_llama, tmp_path, loader):
    """``plain``: batches from a user's own DataLoader (before: batch 4 and 2 x 2 accumulated differed by 92%, the
    weighting lived in the package's data module); ``module``: TextDataModule's."""
    data = tmp_path / "qa.jsonl"
    answers = ["Yes.", "A jet is a spray of hadrons " * 6, "The W boson has a mass of about 80 GeV " * 20,
               "Quarks hadronise " * 60]
    data.write_text("".join(json.dumps({"question": f"Question {i}?", "answer": a}) + "\n"
                            for i, a in enumerate(answers)))
    grads = {}
    for name, batch, accumulate, devices in (("one", 4, 1, 1), ("accumulated", 2, 2, 1), ("ranks", 2, 1, 2)):
        out = tmp_path / f"{name}.safetensors"
        result = subprocess.run([sys.executable, str(ROOT / "tests" / "text" / "sft_grad_probe.py"), str(tiny_llama),
                                 str(data), str(out), str(batch), str(accumulate), str(devices), loader],
                                capture_output=True, text=True, timeout=600, cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
        grads[name] = load_file(out)
    reference = grads["one"]
    assert reference and all(torch.isfinite(g).all() for g in reference.values())
    for name in ("accumulated", "ranks"):
        assert grads[name].keys() == reference.keys()
        for key, grad in reference.items():
            diff = (grads[name][key] - grad).norm() / grad.norm().clamp(min=1e-12)
            assert diff < 1e-5, f"{name}: {key} differs by {float(diff):.2e} (relative norm)"
