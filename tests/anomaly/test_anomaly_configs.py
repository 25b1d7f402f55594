"""The shipped resonance-search configs load, and the GPU size is what the issue asks for."""

from pathlib import Path

import pytest

from hybridjet.anomaly.config import load_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize("name", ["anomaly_demo.yaml", "anomaly_demo_gpu.yaml", "anomaly_gpu.yaml"])
def test_search_config_loads_with_every_mode(name):
    cfg = load_config(CONFIGS / name)
    assert set(cfg.modes) == {"supervised", "idealized", "cwola"} and cfg.generate is not None
    data, reference, test = cfg.background_fractions
    # the idealized reference holds more background than the data: its detector is then not starved against
    # CWoLa, whose sidebands hold the data share of the sideband background
    assert reference > data and test > 0


def test_gpu_size_has_the_lhco_grid_and_at_least_300k_background_events():
    cfg = load_config(CONFIGS / "anomaly_gpu.yaml")
    assert cfg.generate.background_events >= 300_000
    assert {0.001, 0.005, 0.01} <= set(cfg.s_over_b)
    assert {m.classifier for m in cfg.methods} == {"gbdt", "ablation", "hybrid"}
    variant = {m.name: m for m in cfg.methods}["hybrid_long"]  # the hybrid with the ablation's training budget
    ablation = {m.name: m for m in cfg.methods}["ablation"]
    assert (variant.epochs, variant.early_stopping_patience) == (ablation.epochs, ablation.early_stopping_patience)
