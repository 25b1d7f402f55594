#!/usr/bin/env python
"""Data-pipeline benchmark, side by side in one run.

1. Pythia 8 generation rate (accepted events/s per core, after the 1.2 TeV jet trigger) for QCD and W'->XY.
2. Clustering throughput on an LHCO-layout file built from those events (each event re-used with a random
   rotation in phi, so multiplicities and jet structure are realistic): the vectorised fastjet path vs a
   per-event Python loop (one ClusterSequence per event), and the full ``cluster`` command (reading, tau_N and
   writing included) with 1 and 2 workers.
3. The time for an LHCO-sized file (1.1M events), extrapolated from the measured per-event rate, and from the
   CPU time (this process + its workers), i.e. what the same work takes when each worker gets an idle core.

Usage: python scripts/bench_cluster.py [--events 50000] [--gen-events 300] [--loop-events 2000]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

LHCO_EVENTS = 1_100_000


def _tiled_file(sources: list[Path], out: Path, n_events: int, seed: int) -> float:
    from hybridjet.data.lhco import N_FEATURE_COLUMNS, LHCOWriter, read_lhco

    rows = []
    for path in sources:
        import pandas as pd

        rows.append(pd.read_hdf(path).values)
    base = np.concatenate(rows)
    rng = np.random.default_rng(seed)
    with LHCOWriter(out, n_events, labelled=True) as writer:
        for s in range(0, n_events, 5000):
            k = min(5000, n_events - s)
            block = base[rng.integers(0, len(base), k)].copy()
            phi = block[:, 2:N_FEATURE_COLUMNS:3]
            shift = rng.uniform(-np.pi, np.pi, (k, 1))
            pt = block[:, 0:N_FEATURE_COLUMNS:3]
            block[:, 2:N_FEATURE_COLUMNS:3] = np.where(pt > 0, (phi + shift + np.pi) % (2 * np.pi) - np.pi, 0.0)
            writer.append(block)
    import awkward as ak

    return float(ak.mean(ak.num(read_lhco(out, 0, 2000).particles)))


def _time_lhco_sized(tmp: Path, chunk_size: int) -> None:
    """Write an LHCO-sized file (tiled, phi-rotated generated events) and time the real command on it."""
    import subprocess
    import sys

    big = tmp / "lhco_sized.h5"
    t = time.perf_counter()
    mean_mult = _tiled_file([tmp / "qcd.h5", tmp / "wprime.h5"], big, LHCO_EVENTS, seed=2)
    print(f"\n== LHCO-sized file: {LHCO_EVENTS:,} events ({big.stat().st_size / 1e9:.1f} GB, "
          f"{mean_mult:.0f} particles/event) written in {time.perf_counter() - t:.0f} s")
    cmd = [sys.executable, "-m", "hybridjet.cli", "cluster", str(big), "--out", str(tmp / "lhco_jets.h5"),
           "--workers", "2", "--chunk-size", str(chunk_size), "--no-progress"]
    t = time.perf_counter()
    subprocess.run(cmd, check=True)
    seconds = time.perf_counter() - t
    print(f"  MEASURED 'hybridjet cluster --workers 2' end to end (reading included): {seconds / 60:.1f} min "
          f"= {LHCO_EVENTS / seconds:.0f} events/s   (load average now: {_load()})")


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the worker processes), user + system."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _load() -> str:
    """The 1/5/15-minute load averages: how busy the shared machine was."""
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=50_000, help="events in the clustering benchmark file")
    parser.add_argument("--gen-events", type=int, default=300, help="events generated per process")
    parser.add_argument("--loop-events", type=int, default=2_000, help="events for the vectorised-vs-loop comparison")
    parser.add_argument("--chunk-size", type=int, default=5_000)
    parser.add_argument("--lhco-size", action="store_true",
                        help="instead of extrapolating: write a 1.1M-event LHCO file (18 GB) and time "
                             "'hybridjet cluster --workers 2' on it end to end")
    args = parser.parse_args()

    from hybridjet.data.cluster import cluster, cluster_particles, cluster_particles_loop
    from hybridjet.data.generate import QCD_PTHAT_MIN, generate
    from hybridjet.data.lhco import read_lhco

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU(s), python {platform.python_version()}, "
          f"load average {_load()}")
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        print(f"\n== generation (Pythia 8, 13 TeV, MPI off, trigger: anti-kT R=1.0 jet pT>1.2 TeV |eta|<2.5), "
              f"{args.gen_events} accepted events each, 1 worker")
        gen = {}
        for process in ("qcd", "wprime"):
            s = generate(process, args.gen_events, 7, tmp / f"{process}.h5", progress=False)
            gen[process] = s
            extra = f", pTHatMin={QCD_PTHAT_MIN:.0f} GeV" if process == "qcd" else ""
            print(f"  {process:<7} {s.events_per_s:8.1f} accepted events/s/core   trigger efficiency "
                  f"{100 * s.trigger_efficiency:5.1f}%   ({s.n_generated} generated, {s.seconds:.1f} s{extra})")
        print(f"  ratio wprime/qcd accepted rate: {gen['wprime'].events_per_s / gen['qcd'].events_per_s:.2f}")

        if args.lhco_size:
            _time_lhco_sized(tmp, args.chunk_size)
            return
        bench = tmp / "bench.h5"
        mean_mult = _tiled_file([tmp / "qcd.h5", tmp / "wprime.h5"], bench, args.events, seed=1)
        print(f"\n== clustering (anti-kT R=1.0, 2 leading jets, min pT 20 GeV); input: {args.events} events "
              f"tiled from the generated ones with random phi rotations, {mean_mult:.0f} particles/event on average")

        events = read_lhco(bench, 0, args.loop_events)
        cluster_particles(events.particles[:50])  # warm-up (imports, banner)
        t = time.perf_counter()
        cluster_particles(events.particles, with_tau=False)
        vec_rate = len(events) / (time.perf_counter() - t)
        t = time.perf_counter()
        cluster_particles(events.particles, with_tau=True)
        vec_tau_rate = len(events) / (time.perf_counter() - t)
        t = time.perf_counter()
        cluster_particles_loop(events.particles)
        loop_rate = len(events) / (time.perf_counter() - t)
        print(f"  {args.loop_events} events in memory, jets only:")
        print(f"    per-event Python loop (one ClusterSequence per event) {loop_rate:9.0f} events/s")
        print(f"    vectorised (one ClusterSequence per chunk)            {vec_rate:9.0f} events/s   "
              f"x{vec_rate / loop_rate:.1f} vs loop")
        print(f"    vectorised + tau1..3 (exclusive-kT axes)              {vec_tau_rate:9.0f} events/s")

        rates = {}
        cpu_rates = {}
        for workers in (1, 2):
            cpu0 = _cpu_seconds()
            s = cluster(bench, tmp / f"jets{workers}.h5", workers=workers, chunk_size=args.chunk_size, progress=False)
            cpu = _cpu_seconds() - cpu0
            rates[workers] = s.events_per_s
            cpu_rates[workers] = s.n_events / cpu
            print(f"  'hybridjet cluster' end to end (read + cluster + tau + write), {workers} worker(s): "
                  f"{s.events_per_s:8.0f} events/s  ({s.n_events} events in {s.seconds:.1f} s; "
                  f"{cpu:.1f} CPU s = {cpu_rates[workers]:.0f} events per CPU second)")
        print(f"  2 workers / 1 worker: x{rates[2] / rates[1]:.2f}   (load average now: {_load()})")
        print(f"\n== LHCO-sized file ({LHCO_EVENTS:,} events), EXTRAPOLATED from the measured per-event rates above:")
        for workers, rate in rates.items():
            print(f"  {workers} worker(s): {LHCO_EVENTS / rate / 60:6.1f} min  (= {LHCO_EVENTS:,} / {rate:.0f} events/s)")
        for workers, cpu_rate in cpu_rates.items():
            print(f"  {workers} worker(s) given {workers} idle core(s), from the CPU time: "
                  f"{LHCO_EVENTS / (workers * cpu_rate) / 60:6.1f} min  (= {LHCO_EVENTS:,} / ({workers} x {cpu_rate:.0f}))")
        # reading alone, to show its share
        t = time.perf_counter()
        n_read = sum(len(c) for c in __import__("hybridjet.data.lhco", fromlist=["iter_lhco"]).iter_lhco(bench, 10_000))
        read_rate = n_read / (time.perf_counter() - t)
        print(f"  (reading alone: {read_rate:.0f} events/s -> {LHCO_EVENTS / read_rate / 60:.1f} min of it for 1.1M "
              f"events; the real file is 17 GB uncompressed, disk speed may dominate)")


if __name__ == "__main__":
    main()
