#!/usr/bin/env python
"""Data-parallel scaling of hybrid training: the same Lightning ``fit`` on 1 and on N devices, side by side.

    python scripts/bench_ddp.py --data jets.h5 --model smollm2 --devices 1 2 --batch-size 1024 --steps 60

Each device count runs in a fresh process (``--worker``): a Lightning ``Trainer(strategy="ddp", devices=N)`` fits a
``HybridClassifier`` (NF4 + LoRA on CUDA) for ``--steps`` optimizer steps at ``--batch-size`` events per rank (the
effective batch grows with N, as under ``hybridjet fit --trainer.devices N``). Rank 0 times the steps after
``--warmup`` with CUDA synchronisation (DDP's gradient all-reduce makes every step global), records peak GPU memory
and the device each rank's LLM weights sit on, and prints one JSON line. The parent prints events/s per device count
and the speed-up over one device; efficiency = speed-up / N.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def worker(args: argparse.Namespace) -> None:
    import lightning as L
    import torch

    import hybridjet.quiet  # noqa: F401
    from hybridjet.models.datamodule import JetDataModule
    from hybridjet.models.hybrid import HybridClassifier

    class StepTimer(L.Callback):
        def __init__(self) -> None:
            self.marks: list[float] = []
            self.llm_device = -1

        def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            # where this rank's 4-bit weights live while training (Lightning moves the module to CPU at teardown)
            quantized = [p.device for p in pl_module.parameters() if p.dtype == torch.uint8]
            self.llm_device = quantized[0].index if quantized and quantized[0].type == "cuda" else -1

        def on_train_batch_end(self, trainer: L.Trainer, *_: Any) -> None:
            if trainer.global_step >= args.warmup:
                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                self.marks.append(time.perf_counter())

    if args.no_optimize_ddp:  # compiled graphs are not split at DDP's gradient-bucket boundaries (pytorch#111279)
        import torch._dynamo

        torch._dynamo.config.optimize_ddp = False
    L.seed_everything(0, verbose=False)
    dm = JetDataModule(args.data, batch_size=args.batch_size, eval_batch_size=args.batch_size, seed=0,
                       split=(0.8, 0.1, 0.1))
    clf = HybridClassifier(model=args.model, lora="attn", n_soft_tokens=8, **args.hybrid_args)  # product defaults
    timer = StepTimer()
    trainer = L.Trainer(
        max_steps=args.steps, devices=args.devices, strategy="ddp" if args.devices > 1 else "auto",
        limit_val_batches=0, num_sanity_val_steps=0, enable_checkpointing=False, logger=False,
        enable_progress_bar=False, enable_model_summary=False, gradient_clip_val=1.0, callbacks=[timer],
    )
    trainer.fit(clf, datamodule=dm)
    peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else 0.0
    here = trainer.strategy.root_device  # the module itself is back on the CPU after fit
    peaks = trainer.strategy.all_gather(torch.tensor([peak], device=here)).flatten().tolist()
    devices = trainer.strategy.all_gather(torch.tensor([timer.llm_device], device=here)).flatten().tolist()
    if trainer.global_rank == 0:
        steps = len(timer.marks) - 1
        seconds = timer.marks[-1] - timer.marks[0]
        events = steps * args.batch_size * trainer.world_size
        print("RESULT " + json.dumps({
            "devices": trainer.world_size, "batch_per_rank": args.batch_size, "timed_steps": steps,
            "seconds": round(seconds, 3), "train_events_per_s": round(events / seconds, 1),
            "peak_gpu_gib_per_rank": [round(p, 2) for p in peaks], "llm_weights_on_cuda": devices,
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
            "hybrid_args": args.hybrid_args, "optimize_ddp": not args.no_optimize_ddp,
        }), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch-size", type=int, default=1024, help="events per rank and step")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=10, help="steps not timed")
    parser.add_argument("--out-json", default=None, help="append the result rows here")
    parser.add_argument("--hybrid-args", type=json.loads, default={},
                        help='HybridClassifier arguments, JSON, e.g. {"torch_compile": false}')
    parser.add_argument("--no-optimize-ddp", action="store_true",
                        help="torch._dynamo.config.optimize_ddp = False in every rank (compiled layers only)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        args.devices = args.devices[0]
        return worker(args)

    rows = []
    for n in args.devices:
        cmd = [sys.executable, __file__, "--worker", "--data", args.data, "--model", args.model, "--devices", str(n),
               "--batch-size", str(args.batch_size), "--steps", str(args.steps), "--warmup", str(args.warmup),
               "--hybrid-args", json.dumps(args.hybrid_args)] + (["--no-optimize-ddp"] if args.no_optimize_ddp else [])
        out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
        if out.returncode != 0 or line is None:
            sys.exit(f"bench_ddp: {n} device(s) failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
        rows.append(json.loads(line[len("RESULT "):]))
        print(json.dumps(rows[-1]), flush=True)
    base = rows[0]["train_events_per_s"] / rows[0]["devices"]
    print(f"\n{'devices':>7} {'train ev/s':>11} {'speed-up':>9} {'efficiency':>10} {'peak GiB/rank':>14}")
    for r in rows:
        speedup = r["train_events_per_s"] / rows[0]["train_events_per_s"]
        eff = r["train_events_per_s"] / (base * r["devices"])
        print(f"{r['devices']:>7} {r['train_events_per_s']:>11,.0f} {speedup:>8.2f}x {eff:>10.0%} "
              f"{max(r['peak_gpu_gib_per_rank']):>14.2f}")
    if args.out_json:
        with open(args.out_json, "a") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
