"""``hybridjet anomaly``: the weakly supervised resonance search of a config (heavy imports inside the handler)."""

from __future__ import annotations

import argparse
import math
from typing import Any

_EPILOG = """examples:
  hybridjet anomaly -c configs/anomaly_demo.yaml                 # CPU demo: trees + ablation, a few minutes
  hybridjet anomaly -c configs/anomaly_demo.yaml --check         # check settings and inputs, train nothing
  hybridjet anomaly -c configs/anomaly_gpu.yaml --methods gbdt hybrid --seeds 0 1 2 3 4
  hybridjet anomaly -c configs/anomaly_gpu.yaml --methods hybrid --jobs 6   # six trainings at once on one GPU
Signal region, sidebands, injected S/B, label modes (supervised, idealized, cwola), methods (gbdt, ablation,
hybrid, and named variants of them such as hybrid_long: {method: hybrid, epochs: 30}), folds, seeds, ensembles
and the SIC floor are set in the config; the flags override a few of them. Writes the runs under OUT/runs and
the report (anomaly.md, anomaly.json, max_sic_vs_sb.png, sic_sb*.png) into REPORT; a (method, mode, S/B, seed)
already trained with the same settings is reused."""


def register(subparsers: Any) -> None:
    """Add ``hybridjet anomaly``."""
    p = subparsers.add_parser(
        "anomaly", help="Weakly supervised resonance search: inject signal, CWoLa / idealized / supervised, max SIC",
        description="Weakly supervised resonance search against signal injection, end to end.", epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-c", "--config", required=True, metavar="YAML", help="the search's config (configs/anomaly_demo.yaml)")
    p.add_argument("--out", default=None, help="where files and runs go (default: the config's out)")
    p.add_argument("--report", default=None, help="where the report goes (default: the config's report)")
    p.add_argument("--methods", nargs="+", default=None, metavar="METHOD",
                   help="train only these of the config's methods (gbdt, ablation, hybrid, or a variant's name); the "
                        "report also shows the other methods' runs already trained with the same settings")
    p.add_argument("--modes", nargs="+", default=None, metavar="MODE", help="label modes (supervised idealized cwola)")
    p.add_argument("--s-over-b", nargs="+", type=float, default=None, metavar="X",
                   help="injected S/B values in the signal region, e.g. 0.002 0.005 0.01")
    p.add_argument("--seeds", nargs="+", type=int, default=None, metavar="S", help="training seeds")
    add_execution_arguments(p, "train N (method, mode, S/B, seed) at once, each in a process of its own with its "
                               "own copy of the model (on a GPU one small model leaves most of it unused); default 1")
    p.set_defaults(handler=_anomaly)


def add_execution_arguments(p: argparse.ArgumentParser, jobs_help: str) -> None:
    """The options of a grid of trainings (a resonance search, a study): ``--jobs``, ``--scheduler``, ``--check``,
    ``--no-progress``."""
    p.add_argument("--jobs", type=int, default=1, metavar="N", help=jobs_help)
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="train on an existing dask.distributed cluster (tcp://host:8786; dask-jobqueue for SLURM): "
                        "each training a task on a worker, the out folder and data on a file system they share")
    p.add_argument("--check", action="store_true", help="check the settings and the inputs, then stop")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")


def _anomaly(args: argparse.Namespace) -> int:
    from hybridjet.anomaly.config import load_config
    from hybridjet.anomaly.recipe import run_search
    from hybridjet.data.weak import check_modes
    from hybridjet.errors import HybridjetError

    cfg = load_config(args.config)
    methods = reported_only = None
    if args.methods is not None:
        have = {m.name: m for m in cfg.methods}
        missing = [m for m in args.methods if m not in have]
        if missing:
            raise HybridjetError(f"--methods: {missing[0]!r} is not among the config's methods ({', '.join(have)})")
        methods = tuple(have[m] for m in dict.fromkeys(args.methods))  # a name given twice trains once
        reported_only = tuple(m for m in cfg.methods if m.name not in args.methods)
    if args.s_over_b is not None and any(not 0 < x < math.inf for x in args.s_over_b):
        raise HybridjetError(f"--s-over-b: expected positive ratios, got {args.s_over_b}")
    if args.jobs < 1:
        raise HybridjetError(f"--jobs: expected an integer >= 1, got {args.jobs}")
    if args.seeds is not None and any(s < 0 for s in args.seeds):
        raise HybridjetError(f"--seeds: expected integers >= 0, got {args.seeds}")
    modes = None if args.modes is None else check_modes(args.modes, "--modes")
    cfg = cfg.with_overrides(out=args.out, report=args.report, methods=methods, reported_only=reported_only, modes=modes,
                             s_over_b=None if args.s_over_b is None else tuple(args.s_over_b),
                             seeds=None if args.seeds is None else tuple(args.seeds))
    if args.scheduler is not None and args.jobs != 1:
        raise HybridjetError("--scheduler: the cluster's workers train the runs; expected no --jobs with it")
    run_search(cfg, progress=args.progress, check_only=args.check, jobs=args.jobs, scheduler=args.scheduler)
    return 0
