"""The hybrid on decoder families beyond Llama: soft tokens enter at the scale of the family's own text tokens as
the first layer sees them, and the shared-prefix fast path runs where it reproduces the family's forward, the prefix
per event elsewhere (said once), with the same scores where both run."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from hybridjet.llm.families import FAMILIES
from hybridjet.llm.testing import make_family_hf
from hybridjet.models.hybrid import HybridConfig, HybridNet
from hybridjet.runtime import Runtime

#: the registry's families that have a tiny HF fixture
HF_FAMILIES = [name for name, family in FAMILIES.items() if family.hf is not None]


@pytest.fixture(scope="module")
def families(tiny_llama, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("families")
    return {family: make_family_hf(root / family, family, tiny_llama) for family in HF_FAMILIES}


def _net(path: Path, **runtime) -> HybridNet:
    torch.manual_seed(1)
    net = HybridNet(HybridConfig(model=str(path), n_soft_tokens=3), Runtime(quantization="none", dtype="fp32",
                                                                           **runtime))
    net.build(5, "fourvec")
    return net.to("cpu").eval()  # the families' behaviour on the CPU, also on a machine with a GPU


def test_soft_tokens_start_at_the_scale_text_tokens_enter_the_decoder(families):
    """Gemma 2 scales its embedding layer's output by √hidden: calibrating on the weight table would start the soft
    tokens 8x too small for this width; they start at the scale of the prompt's own embedded tokens."""
    for family, path in families.items():
        net = _net(path)
        embed = net.llm.get_input_embeddings()
        text_rms = float(embed(net.prefix_ids).float().pow(2).mean().sqrt())
        soft = net.encoder(torch.randn(64, 5))
        soft_rms = float(soft.pow(2).mean().sqrt())
        assert 0.7 < soft_rms / text_rms < 1.4, f"{family}: soft tokens at {soft_rms:.3g}, text at {text_rms:.3g}"
        table_rms = float(embed.weight.float().pow(2).mean().sqrt())
        if family == "gemma2":
            assert net.embed_rms == pytest.approx(table_rms * 64**0.5, rel=1e-4)
        else:
            assert net.embed_rms == pytest.approx(table_rms, rel=1e-4)


def test_the_shared_prefix_runs_where_exact_and_scores_like_the_prefix_per_event(families, caplog):
    x = torch.randn(6, 5)
    for family in [f for f in families if FAMILIES[f].shared_prefix]:
        shared, per_event = _net(families[family], cache_prefix=True), _net(families[family], cache_prefix=False)
        per_event.load_state_dict(shared.state_dict())
        assert shared.policy.shares_prefix(6, torch.device("cpu"))
        with torch.no_grad():
            torch.testing.assert_close(shared(x), per_event(x), atol=1e-5, rtol=1e-4)
    with caplog.at_level(logging.WARNING, logger="hybridjet.runtime"):
        gemma = _net(families["gemma2"], cache_prefix=True)
        assert not gemma.policy.shares_prefix(6, torch.device("cpu"))
        with torch.no_grad():
            assert torch.isfinite(gemma(x)).all()
        gemma.policy.shares_prefix(8, torch.device("cpu"))
    said = [r.getMessage() for r in caplog.records if "not available for gemma2" in r.getMessage()]
    assert len(said) == 1  # once, however many batches


def test_model_info_says_family_template_tokens_and_fast_paths(families):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "hybridjet.cli", "model", "info", str(families["gemma2"])],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert "gemma2" in out and "special tokens" in out and "eos '<|im_end|>'" in out
    assert "no: the prefix runs with every event" in out  # Gemma 2 is not a family the shared path reproduces
    assert "packed text rows (sft)" in out
