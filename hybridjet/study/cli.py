"""``hybridjet study``: learning curves of a config's methods (heavy imports inside the handler)."""

from __future__ import annotations

import argparse
from typing import Any

from hybridjet.anomaly.cli import add_execution_arguments

_EPILOG = """examples:
  hybridjet study -c configs/study_demo.yaml                  # CPU: trees, encoder alone, hybrid and its controls
  hybridjet study -c configs/study_demo.yaml --check          # check settings and inputs, train nothing
  hybridjet study -c configs/study_gpu.yaml --methods hybrid hybrid_random --jobs 6   # six at once on one GPU
Every method trains at every training size N on the same fixed validation and test sets, with several seeds
(more at small N) and a budget per N (enough optimiser steps at small N, early stopping on the validation loss).
Writes the runs under OUT/runs/<method>/n<N>/seed<s> and the report (study.md, study.json, learning_curves.png,
auc_gaps.png) into REPORT; a (method, N, seed) already trained with the same settings is reused."""


def register(subparsers: Any) -> None:
    """Add ``hybridjet study``."""
    p = subparsers.add_parser(
        "study", help="Learning curves: every method and control at training sizes N, AUC gaps to the hybrid",
        description="Learning curves of classifiers and of the controls that separate the pretrained LLM's "
                    "contribution (random weights, frozen, no LLM, trees), with paired AUC gaps.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-c", "--config", required=True, metavar="YAML", help="the study's config (configs/study_demo.yaml)")
    p.add_argument("--out", default=None, help="where files and runs go (default: the config's out)")
    p.add_argument("--report", default=None, help="where the report goes (default: the config's report)")
    p.add_argument("--methods", nargs="+", default=None, metavar="METHOD",
                   help="train only these of the config's methods; the report also shows the others' finished runs")
    p.add_argument("--sizes", nargs="+", type=int, default=None, metavar="N", help="training sizes")
    p.add_argument("--features", default=None, metavar="SET",
                   help="the inputs instead of the config's (fourvec, substructure, highlevel, ...); the runs and "
                        "report of other inputs need their own --out and --report")
    add_execution_arguments(p, "train N runs at once, each in a process of its own (default 1)")
    p.set_defaults(handler=_study)


def _study(args: argparse.Namespace) -> int:
    from hybridjet import checks
    from hybridjet.errors import HybridjetError
    from hybridjet.study.config import load_config
    from hybridjet.study.recipe import run_study

    cfg = load_config(args.config)
    names = [m.name for m in cfg.methods]
    if args.methods is not None:
        missing = [m for m in args.methods if m not in names]
        if missing:
            raise HybridjetError(f"--methods: {missing[0]!r} is not among the config's methods ({', '.join(names)})")
    for n in args.sizes or ():
        checks.integer("--sizes", n, 20)
    checks.integer("--jobs", args.jobs, 1)
    if args.features is not None:
        check_features_override(cfg, args.features, args.out, args.report)
    cfg = cfg.with_overrides(out=args.out, report=args.report, train_only=None if args.methods is None else
                             tuple(dict.fromkeys(args.methods)),
                             sizes=None if args.sizes is None else tuple(sorted(set(args.sizes))),
                             feature_set=args.features)
    if args.scheduler is not None and args.jobs != 1:
        raise HybridjetError("--scheduler: the cluster's workers train the runs; expected no --jobs with it")
    run_study(cfg, progress=args.progress, check_only=args.check, jobs=args.jobs, scheduler=args.scheduler)
    return 0


def check_features_override(cfg: Any, features: str, out: str | None, report: str | None) -> None:
    """One line when ``--features`` names no feature set, lacks folders of its own (the config's runs and report
    are for the config's inputs), or is one a method cannot read."""
    from pathlib import Path

    from hybridjet.data.features import FEATURE_SETS
    from hybridjet.errors import HybridjetError

    if features not in FEATURE_SETS:
        raise HybridjetError(f"--features: expected one of {', '.join(FEATURE_SETS)}, got {features!r}")
    if features == cfg.feature_set:
        return
    for flag, given, own in (("--out", out, cfg.out), ("--report", report, cfg.report)):
        if given is None or Path(given).resolve() == Path(own).resolve():
            raise HybridjetError(f"--features {features}: the config's {flag[2:]} ({own}) holds its "
                                 f"{cfg.feature_set} results; expected {flag} of another folder with it")
    for method in cfg.methods:
        method.check_features(features)
