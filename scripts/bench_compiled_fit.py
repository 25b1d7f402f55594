#!/usr/bin/env python
"""A compiled hybrid's fit with and without padding each epoch's shorter last batch, side by side.

    python scripts/bench_compiled_fit.py --data data/demo/jets.h5 --model /path/to/llama-dir --epochs 2

Each variant runs in a fresh process with its own empty TorchInductor cache (nothing compiled by the other can be
reused): ``Trainer.fit`` + test of a ``HybridClassifier.from_settings(torch_compile=True)``; ``--no-pad`` makes
``pads_partial_batches`` false, as before the padding existed. Prints wall time, dynamo's count of compiled graphs
and the batch sizes the model scored, then the ratio. On a CPU this checks the mechanism (compilation is C++ there);
on a GPU it measures what an epoch's end costs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def worker(args: argparse.Namespace) -> None:
    import lightning as L
    import torch._dynamo

    import hybridjet.quiet  # noqa: F401
    from hybridjet.data.datamodule import JetDataModule
    from hybridjet.train.classifiers import HybridClassifier
    from hybridjet.train.recipes import train_classifier

    L.seed_everything(0, verbose=False)
    model = HybridClassifier.from_settings(model=args.model, torch_compile=True, **args.hybrid_args)
    if args.no_pad:
        model.pads_partial_batches = lambda: False
    sizes: set[int] = set()
    score = model.score
    model.score = lambda batch: sizes.add(len(batch["features"])) or score(batch)
    data = JetDataModule(args.data, batch_size=args.batch_size, eval_batch_size=args.eval_batch_size,
                         max_train_events=args.train_events, max_eval_events=args.eval_events)
    start = time.perf_counter()
    metrics = train_classifier(model, data, args.run_dir, max_epochs=args.epochs, progress=False)
    print("RESULT " + json.dumps({
        "padded": not args.no_pad, "seconds": round(time.perf_counter() - start, 1),
        "compiled_graphs": torch._dynamo.utils.counters["stats"]["unique_graphs"],
        "batch_sizes_scored": sorted(sizes), "test_auc": round(metrics["test_auc"], 4),
    }), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--eval-batch-size", type=int, default=64)
    parser.add_argument("--train-events", type=int, default=300, help="training events (choose a shorter last batch)")
    parser.add_argument("--eval-events", type=int, default=200, help="validation and test events each")
    parser.add_argument("--hybrid-args", type=json.loads, default={"quantization": "none", "dtype": "fp32"},
                        help="HybridClassifier arguments, JSON")
    parser.add_argument("--no-pad", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--run-dir", help=argparse.SUPPRESS)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for pad in (True, False):
            name = "padded" if pad else "unpadded"
            cmd = [sys.executable, __file__, "--worker", "--run-dir", f"{tmp}/{name}/run", *sys.argv[1:]]
            cmd += [] if pad else ["--no-pad"]
            env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": f"{tmp}/{name}/inductor", "PYTHONUNBUFFERED": "1"}
            out = subprocess.run(cmd, capture_output=True, text=True, env=env)
            line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
            if out.returncode != 0 or line is None:
                sys.exit(f"bench_compiled_fit: the {name} fit failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
            rows.append(json.loads(line[len("RESULT "):]))
            print(json.dumps(rows[-1]), flush=True)
    padded, unpadded = rows
    print(f"padded {padded['seconds']} s, {padded['compiled_graphs']} graphs; unpadded {unpadded['seconds']} s, "
          f"{unpadded['compiled_graphs']} graphs: padded fit x{unpadded['seconds'] / padded['seconds']:.2f} faster")


if __name__ == "__main__":
    main()
