#!/usr/bin/env python
"""``hybridjet anomaly --jobs N`` against one training at a time: the same part of a search, side by side in one run.

    python scripts/bench_anomaly_jobs.py -c configs/anomaly_demo.yaml --methods ablation --jobs 1 2
    python3 scripts/bench_anomaly_jobs.py -c configs/anomaly_gpu.yaml --methods hybrid --s-over-b 0.001 \
        --seeds 0 1 --jobs 1 6          # on a GPU

Each job count is ``hybridjet anomaly`` in a fresh process with its own out and report folders under ``--work``
(so nothing is reused; the events are read from the config's data, which must exist: run the search once
first, or a generation would be timed with the first count), timed end to end (imports, fold files, training,
scoring, report). The script prints the wall time of each, the speed-up over the first count, and the
largest difference in max SIC median between the reports (float sums may differ with the threads per process).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path


def run_search(args: argparse.Namespace, jobs: int) -> tuple[float, dict[tuple, float]]:
    """Wall seconds of the search with ``jobs`` and its max SIC medians by (method, mode, S/B)."""
    work = Path(args.work) / f"jobs{jobs}"
    shutil.rmtree(work, ignore_errors=True)
    cmd = [sys.executable, "-m", "hybridjet.cli", "anomaly", "-c", args.config, "--out", str(work / "out"),
           "--report", str(work / "report"), "--no-progress", "--jobs", str(jobs)]
    for flag, values in (("--methods", args.methods), ("--modes", args.modes), ("--s-over-b", args.s_over_b),
                         ("--seeds", args.seeds)):
        if values:
            cmd += [flag, *map(str, values)]
    started = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    rows = json.loads((work / "report" / "anomaly.json").read_text())["rows"]
    return seconds, {(r["method"], r["label_mode"], r["s_over_b"]): (r.get("max_sic") or {}).get("median")
                     for r in rows}


def main() -> None:
    from hybridjet.anomaly.config import load_config

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-c", "--config", required=True)
    p.add_argument("--methods", nargs="+")
    p.add_argument("--modes", nargs="+")
    p.add_argument("--s-over-b", nargs="+", type=float)
    p.add_argument("--seeds", nargs="+", type=int)
    p.add_argument("--jobs", nargs="+", type=int, default=[1, 2])
    p.add_argument("--work", default="runs/bench_anomaly_jobs")
    args = p.parse_args()
    gen = load_config(args.config).generate
    if gen is not None and not all((Path(gen.dir) / f"{n}_jets.h5").exists() for n in ("wprime", "qcd")):
        sys.exit(f"{args.config}: the events in {gen.dir} are not made yet; run `hybridjet anomaly -c {args.config}` "
                 "once first (a generation would be timed with the first job count)")
    results = {jobs: run_search(args, jobs) for jobs in args.jobs}
    base_seconds, base_sic = results[args.jobs[0]]
    for jobs, (seconds, sic) in results.items():
        both = [k for k in base_sic if sic.get(k) is not None and base_sic[k] is not None]
        gap = max((abs(sic[k] - base_sic[k]) for k in both), default=0.0)
        unmatched = len(set(sic) ^ set(base_sic)) + sum(1 for k in base_sic if k in sic and k not in both)
        print(f"--jobs {jobs}: {seconds:7.1f} s  x{base_seconds / seconds:.2f} against --jobs {args.jobs[0]}  "
              f"({len(sic)} rows, largest max SIC median difference {gap:.3f}"
              + (f", {unmatched} rows without a pair" if unmatched else "") + ")", flush=True)


if __name__ == "__main__":
    main()
