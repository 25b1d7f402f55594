"""The settings of ``hybridjet anomaly`` (``configs/anomaly*.yaml``), every one checked with a one-line error before
any event is read or generated. The YAML's sections and their defaults are documented in ``configs/anomaly_demo.yaml``."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hybridjet import checks
from hybridjet.data.features import FEATURE_SETS
from hybridjet.data.regions import Regions
from hybridjet.data.sources import Generate, parse_data_source
from hybridjet.data.weak import LABEL_MODES, check_modes
from hybridjet.errors import HybridjetError
from hybridjet.eval.sic import SicFloor
from hybridjet.train.methods import METHODS, Method, parse_method

EVAL_SPLITS = ("test", "data")

_SECTIONS: dict[str, tuple[str, ...]] = {
    "sample": ("background_fractions", "test_signal_fraction", "supervised_signal_fraction", "seed"),
    "injection": ("s_over_b", "seed", "resample"),
    "training": ("folds", "seeds", "split"),
    "ensemble": ("per_fold", "folds", "seeds"),
    "evaluation": ("split", "min_eff_b", "min_background"),
}
_TOP = ("out", "report", "data", "regions", "sample", "injection", "features", "modes", "methods", "training",
        "ensemble", "evaluation")


@dataclass(frozen=True)
class SearchConfig:
    """Everything ``hybridjet anomaly`` does (see ``configs/anomaly_demo.yaml``)."""

    out: str = "runs/anomaly"
    report: str = "report/anomaly"
    jets: str | None = None
    signal: str | None = None
    background: str | None = None
    generate: Generate | None = None
    regions: Regions = field(default_factory=Regions)
    background_fractions: tuple[float, float, float] = (0.4, 0.4, 0.2)
    test_signal_fraction: float = 0.4
    supervised_signal_fraction: float = 0.2
    sample_seed: int = 0
    s_over_b: tuple[float, ...] = (0.01,)
    injection_seed: int = 0
    resample_injection: bool = False
    feature_set: str = "highlevel"
    modes: tuple[str, ...] = tuple(LABEL_MODES)
    methods: tuple[Method, ...] = (Method("gbdt"),)
    # methods not trained in this run (a --methods subset) whose finished runs the report still shows
    reported_only: tuple[Method, ...] = ()
    folds: int = 5
    seeds: tuple[int, ...] = (0, 1, 2)
    split: tuple[float, float, float] = (0.75, 0.2, 0.05)
    per_fold: int = 1
    ensemble_folds: bool = True
    ensemble_seeds: bool = True
    eval_split: str = "test"
    floor: SicFloor = field(default_factory=SicFloor)

    def with_overrides(self, **changes: Any) -> SearchConfig:
        """A copy with the given fields replaced (the CLI's flags), ``None`` values ignored."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


def _int(value: Any, setting: str, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise HybridjetError(f"{setting}: expected an integer >= {least}, got {value!r}")
    return value


def _fraction(value: Any, setting: str, *, open_top: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or value > 1 or (open_top and value >= 1):
        raise HybridjetError(f"{setting}: expected a fraction in [0, 1{')' if open_top else ']'}, got {value!r}")
    return float(value)


def _fractions(value: Any, setting: str, labels: str) -> tuple[float, float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        raise HybridjetError(f"{setting}: expected three fractions, got {value!r}")
    out = tuple(_fraction(v, f"{setting}[{i}]") for i, v in enumerate(value))
    if out[0] <= 0 or sum(out) <= 0:
        raise HybridjetError(f"{setting}: expected the first fraction > 0, got {list(value)}")
    return checks.fractions_summing_to_one(setting, out, 3, labels)  # type: ignore[return-value]


def parse_config(raw: Any) -> SearchConfig:
    """A :class:`SearchConfig` from the YAML's mapping, every setting checked."""
    parts = checks.sections(raw, _TOP, _SECTIONS)
    data = parse_data_source(raw.get("data"))
    sample, injection, training = parts["sample"], parts["injection"], parts["training"]
    ensemble, evaluation = parts["ensemble"], parts["evaluation"]
    sb = injection.get("s_over_b", [0.01])
    sb = sb if isinstance(sb, list) else [sb]
    for v in sb:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < math.inf:
            raise HybridjetError(f"injection.s_over_b: expected positive ratios S/B in the signal region, got {v!r}")
    seeds = training.get("seeds", [0, 1, 2])
    seeds = seeds if isinstance(seeds, list) else [seeds]
    for s in seeds:
        _int(s, "training.seeds", 0)
    features = raw.get("features", "highlevel")
    if features not in FEATURE_SETS:
        raise HybridjetError(f"features: expected one of {', '.join(FEATURE_SETS)}, got {features!r}")
    modes = raw.get("modes", list(LABEL_MODES))
    weak = [m for m in modes if m != "supervised"] if isinstance(modes, list) else []
    methods_raw = raw.get("methods", {"gbdt": {}})
    if not isinstance(methods_raw, dict) or not methods_raw:
        raise HybridjetError(f"methods: expected a mapping of {', '.join(METHODS)} to their settings")
    methods = tuple(parse_method(name, settings) for name, settings in methods_raw.items())
    for method in methods:
        method.check_features(features)
        own = method.feature_set(features)
        if weak and FEATURE_SETS[own].holds_mjj:
            # the regions are cut on m_jj: a classifier told data from the sidebands (or the reference) by it
            where = "features" if own == features else f"methods.{method.name}.features"
            raise HybridjetError(f"{where}: {own} holds m_jj, the variable the signal region is cut on; the "
                                 f"{weak[0]} mode would learn the cut, not the signal: expected highlevel (or modes: "
                                 "[supervised])")
    split = _fractions(training.get("split", [0.75, 0.2, 0.05]), "training.split", "train, val, test")
    if min(split) <= 0:
        raise HybridjetError(f"training.split: expected three fractions > 0 (train, val, test), got {list(split)}")
    eval_split = evaluation.get("split", "test")
    if eval_split not in EVAL_SPLITS:
        raise HybridjetError(f"evaluation.split: expected test or data, got {eval_split!r}")
    return SearchConfig(
        out=str(raw.get("out", "runs/anomaly")), report=str(raw.get("report", "report/anomaly")),
        jets=data.jets, signal=data.signal, background=data.background, generate=data.generate,
        regions=Regions.from_config(raw.get("regions")),
        background_fractions=_fractions(sample.get("background_fractions", [0.4, 0.4, 0.2]),
                                        "sample.background_fractions", "data, reference, test"),
        test_signal_fraction=_fraction(sample.get("test_signal_fraction", 0.4), "sample.test_signal_fraction",
                                       open_top=True),
        supervised_signal_fraction=_fraction(sample.get("supervised_signal_fraction", 0.2),
                                             "sample.supervised_signal_fraction", open_top=True),
        sample_seed=_int(sample.get("seed", 0), "sample.seed", 0),
        s_over_b=tuple(float(v) for v in sb), injection_seed=_int(injection.get("seed", 0), "injection.seed", 0),
        resample_injection=bool(injection.get("resample", False)), feature_set=features,
        modes=check_modes(raw.get("modes", list(LABEL_MODES))),
        methods=methods,
        folds=_int(training.get("folds", 5), "training.folds", 2), seeds=tuple(seeds), split=split,
        per_fold=_int(ensemble.get("per_fold", 1), "ensemble.per_fold", 1),
        ensemble_folds=bool(ensemble.get("folds", True)), ensemble_seeds=bool(ensemble.get("seeds", True)),
        eval_split=eval_split,
        floor=SicFloor(evaluation.get("min_eff_b", 1e-4), evaluation.get("min_background", 0.0)),
    )


def load_config(path: str | Path) -> SearchConfig:
    """:func:`parse_config` of a YAML file; errors name the file."""
    return checks.load_yaml_config(path, parse_config)
