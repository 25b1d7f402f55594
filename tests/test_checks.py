"""Range checks of settings (``hybridjet.checks``) and their use by the settings users give."""

from __future__ import annotations

import math

import pytest

from hybridjet import checks
from hybridjet.errors import HybridjetError


@pytest.mark.parametrize(("check", "args"), [
    (checks.positive, ("lr", 0)), (checks.positive, ("lr", -0.1)), (checks.positive, ("lr", math.inf)),
    (checks.positive, ("lr", True)), (checks.non_negative, ("weight_decay", -1)),
    (checks.fraction, ("warmup_fraction", 1.5)), (checks.fraction, ("dropout", 1.0, False)),
    (checks.integer, ("max_epochs", 0)), (checks.integer, ("n", 5, 1, 4)), (checks.integer, ("n", 2.0)),
    (checks.fractions_summing_to_one, ("split", [0.5, 0.1, 0.1], 3, "train, val, test")),
    (checks.fractions_summing_to_one, ("split", [0.8, 0.3, -0.1], 3, "train, val, test")),
])
def test_settings_that_cannot_be_meant_are_one_line_naming_them(check, args):
    with pytest.raises(HybridjetError) as info:
        check(*args)
    assert str(info.value).startswith(f"{args[0]}: expected") or "must sum to 1" in str(info.value)
    assert "\n" not in str(info.value)


def test_the_settings_that_can_be_meant_pass():
    checks.positive("lr", 1e-12)
    checks.fraction("warmup_fraction", 1.0)
    checks.fraction("dropout", 0.0, include_one=False)
    checks.integer("early_stopping_patience", None, 0, optional=True)
    assert checks.fractions_summing_to_one("split", (0.7, 0.2, 0.1), 3, "") == (0.7, 0.2, 0.1)
    checks.training_budget({"max_epochs": -1, "max_steps": 10})


@pytest.mark.parametrize("budget", [{"max_epochs": 0}, {"max_epochs": -3}, {"max_steps": 0}, {"min_epochs": -1},
                                    {"val_check_interval": 0}])
def test_a_budget_of_no_training_is_refused(budget):
    with pytest.raises(HybridjetError, match=f"trainer.{next(iter(budget))}: expected"):
        checks.training_budget(budget)


def test_optimization_and_architecture_settings_are_checked_when_made():
    """Before: a negative learning rate trained (encoder_lr -0.01 to AUC 0.088), a dropout of 2 raised in torch."""
    from hybridjet import HybridConfig
    from hybridjet.train.optim import Optimization

    for settings, name in (({"encoder_lr": -0.01}, "optim.encoder_lr"), ({"lr": 0}, "optim.lr"),
                           ({"weight_decay": -1}, "optim.weight_decay"),
                           ({"warmup_fraction": 1.5}, "optim.warmup_fraction")):
        with pytest.raises(HybridjetError, match=name):
            Optimization(**settings)
    for settings, name in (({"dropout": 2.0}, "dropout"), ({"n_soft_tokens": 10**9}, "n_soft_tokens"),
                           ({"lora_dropout": 1.0}, "lora_dropout"), ({"lora_r": 0}, "lora_r")):
        with pytest.raises(HybridjetError, match=name):
            HybridConfig(**settings)


@pytest.mark.parametrize(("text", "needle"), [("", "found an empty file"), ("x: [\n", "not valid YAML at line 2"),
                                              ("- 1\n", "found list")])
def test_a_config_file_that_is_not_a_mapping_is_one_line_naming_it(tmp_path, text, needle):
    """Before: an empty config file said 'Unexpected config:' without the file's name."""
    config = tmp_path / "c.yaml"
    config.write_text(text)
    with pytest.raises(HybridjetError, match=needle) as info:
        checks.config_files(["fit", "-c", str(config)])
    assert str(info.value).startswith(str(config))
