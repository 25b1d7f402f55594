"""The settings of ``hybridjet study`` (``configs/study_*.yaml``), every one checked with a one-line error before
any event is read or generated. ``configs/study_demo.yaml`` documents each section and its defaults."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hybridjet import checks
from hybridjet.data.features import FEATURE_SETS
from hybridjet.data.sources import Generate, parse_data_source
from hybridjet.errors import HybridjetError
from hybridjet.train.methods import Method, parse_method

_SECTIONS: dict[str, tuple[str, ...]] = {
    "sample": ("test_events", "val_events", "signal_fraction", "seed"),
    "curve": ("sizes", "seeds", "small_size", "seeds_small"),
    "budget": ("min_steps", "max_epochs", "patience", "min_batch"),
}
_TOP = ("name", "out", "report", "data", "features", "sample", "curve", "budget", "methods", "reference")


@dataclass(frozen=True)
class Budget:
    """How long a net trains at a training size N: at least ``min_steps`` optimiser steps (small N: many epochs),
    at most ``max_epochs``, stopping once the validation loss has not improved for ``patience`` validations; the
    batch at N is the method's, but no more than N / 8 (at least ``min_batch``), so that an epoch has 8 steps."""

    min_steps: int = 300
    max_epochs: int = 200
    patience: int = 8
    min_batch: int = 16

    def batch_size(self, method: Method, n: int) -> int:
        """The training batch of ``method`` at N events."""
        return max(min(method.batch_size, n // 8), min(self.min_batch, n))

    def epochs(self, method: Method, n: int) -> int:
        """The epochs of ``method`` at N events: its own, more where they give fewer than ``min_steps`` steps."""
        steps_per_epoch = math.ceil(n / self.batch_size(method, n))
        return min(self.max_epochs, max(method.epochs, math.ceil(self.min_steps / steps_per_epoch)))


@dataclass(frozen=True)
class StudyConfig:
    """Everything ``hybridjet study`` does (see ``configs/study_demo.yaml``)."""

    name: str = "study"
    out: str = "runs/study"
    report: str = "report/study"
    jets: str | None = None
    signal: str | None = None
    background: str | None = None
    generate: Generate | None = None
    feature_set: str = "fourvec"
    test_events: int = 2000
    val_events: int = 500
    signal_fraction: float = 0.5
    sample_seed: int = 0
    sizes: tuple[int, ...] = (100, 300, 1000)
    seeds: int = 2
    small_size: int = 3000
    seeds_small: int = 5
    budget: Budget = field(default_factory=Budget)
    methods: tuple[Method, ...] = (Method("gbdt"),)
    reference: str | None = None
    train_only: tuple[str, ...] | None = None  # a --methods subset: the others' finished runs are only reported

    def seeds_at(self, n: int) -> tuple[int, ...]:
        """The training seeds at size N: ``seeds_small`` of them up to ``small_size``, ``seeds`` above."""
        return tuple(range(self.seeds_small if n <= self.small_size else self.seeds))

    def with_overrides(self, **changes: Any) -> StudyConfig:
        """A copy with the given fields replaced (the CLI's flags), ``None`` values ignored."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


def parse_config(raw: Any) -> StudyConfig:
    """A :class:`StudyConfig` from the YAML's mapping, every setting checked."""
    parts = checks.sections(raw, _TOP, _SECTIONS)
    data = parse_data_source(raw.get("data"))
    sample, curve, budget_raw = parts["sample"], parts["curve"], parts["budget"]
    name = raw.get("name", "study")
    if not isinstance(name, str) or not name or "/" in name:
        raise HybridjetError(f"name: expected a name without '/', got {name!r}")
    features = raw.get("features", "fourvec")
    if features not in FEATURE_SETS:
        raise HybridjetError(f"features: expected one of {', '.join(FEATURE_SETS)}, got {features!r}")
    for key, low in (("test_events", 20), ("val_events", 20), ("seed", 0)):
        checks.integer(f"sample.{key}", sample.get(key, 0 if key == "seed" else 1000), low)
    fraction = sample.get("signal_fraction", 0.5)
    checks.fraction("sample.signal_fraction", fraction)
    if fraction in (0, 1):
        raise HybridjetError(f"sample.signal_fraction: expected a fraction strictly between 0 and 1, got {fraction}")
    sizes = curve.get("sizes", [100, 300, 1000])
    if not isinstance(sizes, list) or not sizes:
        raise HybridjetError(f"curve.sizes: expected a list of training sizes, got {sizes!r}")
    for n in sizes:
        checks.integer("curve.sizes", n, 20)
    for key, low in (("seeds", 1), ("small_size", 0), ("seeds_small", 1)):
        checks.integer(f"curve.{key}", curve.get(key, 1), low)
    budget = Budget(**budget_raw)
    for key, low in (("min_steps", 1), ("max_epochs", 1), ("patience", 1), ("min_batch", 1)):
        checks.integer(f"budget.{key}", getattr(budget, key), low)
    methods_raw = raw.get("methods", {"gbdt": {}})
    if not isinstance(methods_raw, dict) or not methods_raw:
        raise HybridjetError("methods: expected a mapping of method names (gbdt, ablation, hybrid or variants) to "
                             "their settings")
    methods = tuple(parse_method(name, settings) for name, settings in methods_raw.items())
    for method in methods:
        method.check_features(features)
    reference = raw.get("reference")
    names = [m.name for m in methods]
    if reference is not None and reference not in names:
        raise HybridjetError(f"reference: {reference!r} is not among the methods ({', '.join(names)})")
    return StudyConfig(
        name=name, out=str(raw.get("out", f"runs/{name}")), report=str(raw.get("report", f"report/{name}")),
        jets=data.jets, signal=data.signal, background=data.background, generate=data.generate,
        feature_set=features, test_events=sample.get("test_events", 2000), val_events=sample.get("val_events", 500),
        signal_fraction=float(fraction), sample_seed=sample.get("seed", 0), sizes=tuple(sorted(set(sizes))),
        seeds=curve.get("seeds", 2), small_size=curve.get("small_size", 3000), seeds_small=curve.get("seeds_small", 5),
        budget=budget, methods=methods, reference=reference or ("hybrid" if "hybrid" in names else None))


def load_config(path: str | Path) -> StudyConfig:
    """:func:`parse_config` of a YAML file; errors name the file."""
    return checks.load_yaml_config(path, parse_config)
