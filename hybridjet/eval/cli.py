"""``hybridjet compare``: metrics table and ROC plots of several runs scored on the same events."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``compare`` subcommand."""
    p = subparsers.add_parser(
        "compare",
        help="Compare runs (scores.h5 + metrics.json): metrics table, JSON, ROC plots",
        description=(
            "Compare classifier runs scored on the same events: AUC with a bootstrap interval, accuracy, "
            "background rejection 1/eps_B at eps_S = 0.3 and 0.5, max SIC, cost. Writes comparison.md, "
            "comparison.json, roc.png (rejection vs signal efficiency) and roc_tpr_fpr.png into --out."
        ),
    )
    p.add_argument(
        "run_dirs", nargs="+", metavar="RUN_DIR", help="run directories holding scores.h5 (+ metrics.json)"
    )
    p.add_argument("--split", default="test", help="split of scores.h5 to compare (default: test)")
    p.add_argument("--out", default="report", help="output directory (default: report/)")
    p.add_argument(
        "--bootstrap",
        type=int,
        default=200,
        metavar="N",
        help="bootstrap resamples for the 68%% AUC interval; 0 skips it (default: 200)",
    )
    p.set_defaults(handler=_compare)


def _compare(args: argparse.Namespace) -> int:
    from pathlib import Path

    from hybridjet.errors import HybridjetError
    from hybridjet.eval.compare import compare_runs

    if args.bootstrap < 0:
        raise HybridjetError(f"--bootstrap must be >= 0; got {args.bootstrap}")
    report = compare_runs(args.run_dirs, split=args.split, out=args.out, n_boot=args.bootstrap)
    print(report.table())
    print(report.notes())
    out = Path(args.out)
    names = ("comparison.md", "comparison.json", "roc.png", "roc_tpr_fpr.png")
    print(f"wrote {', '.join(str(out / n) for n in names)}")
    return 0
