#!/usr/bin/env python
"""Inference at LHCO scale: score a 1.1M-event jets.h5 with ``HybridClassifier.predict_proba`` end to end.

    python scripts/device/score_lhco.py --data data/demo/jets.h5 --model /root/models/smollm2-gguf [--events 1100000]

Trains a small hybrid run on ``--data`` (1 epoch: the weights' quality is not the point), writes an LHCO-sized
jets.h5 by tiling those events, then times loading the run and scoring every event from the file (chunked reads),
and reports peak host memory (bounded: the file is read 100k events at a time). ``--modes adapter dense`` scores the
same file twice, side by side: with the 4-bit base + LoRA as trained, and densified for inference
(``from_pretrained(..., dense=True)``: base dequantized once, LoRA merged), and prints the speed-up and the largest
score difference between the two.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch

from hybridjet.data.store import JetArrays, count_jets_events, read_jets, write_jets
from hybridjet.models import scoring
from hybridjet.models.compile_cache import COMPILE_CACHE_DIR
from hybridjet.models.datamodule import JetDataModule
from hybridjet.models.hybrid import HybridClassifier
from hybridjet.models.train import train_classifier


def tile(source: Path, out: Path, n_events: int) -> None:
    """An n_events jets.h5 made of repeated copies of ``source``'s events (new event ids)."""
    a = read_jets(source)
    reps = -(-n_events // len(a))
    idx = np.tile(np.arange(len(a)), reps)[:n_events]
    big = a.subset(idx)
    write_jets(out, JetArrays(big.jets, big.jet_mask, big.n_particles, big.tau, big.label,
                              np.arange(n_events, dtype=np.int64), dict(a.attrs)), attrs={"source": str(source)})


def serial_chunks(model, path, total):
    """The file reader without the background thread: read, features, score, read, ..."""
    for start in range(0, total, scoring.CHUNK_EVENTS):
        yield scoring.read_chunk(model, path, start, total)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data/demo/jets.h5")
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--events", type=int, default=1_100_000)
    parser.add_argument("--batch-size", type=int, default=16384)
    parser.add_argument("--work", default="/root/score_lhco")
    parser.add_argument("--modes", nargs="+", default=["adapter", "dense"], choices=["adapter", "dense", "dense-serial"],
                        help="dense-serial: dense, with the file read chunk after chunk in the scoring thread (as "
                             "before the background reader), for a side-by-side comparison")
    parser.add_argument("--hybrid-args", type=json.loads, default={},
                        help='HybridClassifier arguments of the trained run, JSON, e.g. {"upcast_frozen": true}')
    parser.add_argument("--load-args", type=json.loads, default={},
                        help='from_pretrained overrides when scoring, JSON, e.g. {"prefix_attention": "matmul"}')
    parser.add_argument("--reuse", action="store_true",
                        help="reuse the run and the big file of an earlier call in --work (time scoring only)")
    parser.add_argument("--compile-times", action="store_true", help="print torch.compile's time per phase")
    parser.add_argument("--cache-counters", action="store_true",
                        help="print the compile caches' hits and misses (Inductor FX graphs, AOTAutograd) per pass, "
                             "the graphs Dynamo built and the run's kept artifact files")
    args = parser.parse_args()
    work = Path(args.work)
    big = work / "lhco_jets.h5"
    if not (args.reuse and (work / "run" / "model.json").exists() and big.exists()):
        L.seed_everything(0, verbose=False)
        t = time.perf_counter()
        clf = HybridClassifier(model=args.model, run_name="hybrid-lhco", **args.hybrid_args)
        train_classifier(clf, JetDataModule(args.data, batch_size=256), work / "run", max_epochs=1, progress=False)
        print(f"trained a 1-epoch hybrid run in {time.perf_counter() - t:.0f} s", flush=True)
        del clf
        torch.cuda.empty_cache()
        t = time.perf_counter()
        tile(Path(args.data), big, args.events)
        print(f"wrote {count_jets_events(big):,} events to {big} ({big.stat().st_size / 1e6:.0f} MB) in "
              f"{time.perf_counter() - t:.0f} s", flush=True)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    results = {}
    background_chunks = scoring._file_chunks
    if args.cache_counters:
        torch._dynamo.utils.counters.clear()  # the passes' own, not the training's
    for mode in args.modes:
        scoring._file_chunks = serial_chunks if mode == "dense-serial" else background_chunks
        t0 = time.perf_counter()
        loaded = HybridClassifier.from_pretrained(work / "run", model=args.model, dense=mode != "adapter",
                                                  **args.load_args).to(device)
        t1 = time.perf_counter()
        scores = loaded.predict_proba(big, batch_size=args.batch_size)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t2 = time.perf_counter()
        peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
        results.setdefault(mode, (scores, len(scores) / (t2 - t1)))
        print(f"[{mode}] scored {len(scores):,} events: load run {t1 - t0:.1f} s, read + features + score "
              f"{t2 - t1:.1f} s = {len(scores) / (t2 - t1):,.0f} events/s; end to end {t2 - t0:.1f} s; peak host RSS "
              f"{peak_rss:.1f} GB; finite {np.isfinite(scores).all()}", flush=True)
        if args.compile_times:
            print(torch._dynamo.utils.compile_times(repr="str", aggregate=True), flush=True)
        if args.cache_counters:
            counters = torch._dynamo.utils.counters
            kept = sorted(p.name for p in (work / "run" / COMPILE_CACHE_DIR).glob("*/*.bin"))
            print(f"[{mode}] inductor {dict(counters['inductor'])} aot_autograd {dict(counters['aot_autograd'])} "
                  f"graphs {counters['stats'].get('unique_graphs', 0)}; run keeps {kept}", flush=True)
            counters.clear()
        del loaded
        torch.cuda.empty_cache()
    if "adapter" in results and "dense" in results:
        (a, ra), (d, rd) = results["adapter"], results["dense"]
        print(f"dense / adapter scoring: x{rd / ra:.2f} events/s; max |score difference| {np.abs(a - d).max():.2e}",
              flush=True)

if __name__ == "__main__":
    main()
