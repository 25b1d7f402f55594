#!/usr/bin/env python
"""Data-parallel scaling of hybrid and text SFT training: the same Lightning ``fit`` on 1 and on N devices, side by side.

    python scripts/bench_ddp.py --data jets.h5 --model smollm2 --devices 1 2 --batch-size 1024 --steps 60
    python scripts/bench_ddp.py --task text --model /root/models/smollm2-random --devices 1 2 --batch-size 8 \
        --steps 12 --warmup 4 [--max-tokens 2048] [--checkpointing 0.4] [--text-args '{"torch_compile": false}']

``--task text``: :class:`hybridjet.text.sft.TextSFT` with the product's defaults (packed rows where exact,
token-weighted steps, LoRA all-linear r16) on random-id records of ``--min-tokens``-``--max-tokens`` tokens (the
first fifth a prompt, not learned), ``--batch-size`` records per rank and step through the product's
``TextDataModule`` (its own sharding across ranks); tokens/s counts every rank's learned-record tokens.

Each device count runs in a fresh process (``--worker``): a Lightning ``Trainer(strategy="ddp", devices=N)`` fits a
``HybridClassifier`` (NF4 + LoRA on CUDA) for ``--steps`` optimizer steps at ``--batch-size`` events per rank (the
effective batch grows with N, as under ``hybridjet fit --trainer.devices N``). Rank 0 times the steps after
``--warmup`` with CUDA synchronisation (DDP's gradient all-reduce makes every step global), records peak GPU memory
and the device each rank's LLM weights sit on, and prints one JSON line. The parent prints events/s per device count
and the speed-up over one device; efficiency = speed-up / N. Each row also holds every timed step's duration and
the events/s of the median step (what a long epoch approaches when a short data set's epoch ends cost extra).

``--profile-steps K`` also profiles K steps after the timed ones in every rank (torch.profiler, CPU + CUDA) and
records, per rank, the step's wall time, the CUDA device the rank's kernels ran on and how busy each GPU was (the
union of its kernel intervals over the wall time), plus the ops with the most self CUDA and self CPU time
(``--profile-dir``). ``--per-rank-inductor-cache`` gives every rank its own TorchInductor cache folder (the ranks
otherwise share one and may read each other's compiled code).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _busy_fraction(intervals: list[tuple[float, float]], wall_us: float) -> float:
    """Share of ``wall_us`` covered by the union of kernel ``intervals`` (µs)."""
    busy, end = 0.0, float("-inf")
    for start, stop in sorted(intervals):
        if stop > end:
            busy += stop - max(start, end)
            end = stop
    return busy / wall_us if wall_us > 0 else 0.0


def _profile_summary(prof: Any, wall_s: float, steps: int, rank: int, out_dir: str | None) -> dict[str, Any]:
    """Where this rank's kernels ran and how busy each GPU was, from a finished ``torch.profiler`` run."""
    from collections import defaultdict

    import torch

    kernels: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for event in prof.events():
        if event.device_type == torch.autograd.DeviceType.CUDA:
            kernels[event.device_index].append((event.time_range.start, event.time_range.end))
    wall_us = wall_s * 1e6
    summary = {
        "rank": rank,
        "current_device": torch.cuda.current_device() if torch.cuda.is_available() else "cpu", "profiled_steps": steps,
        "step_ms": round(wall_s / steps * 1e3, 2),
        "kernels_per_step_by_gpu": {str(d): len(v) // steps for d, v in sorted(kernels.items())},
        "gpu_busy_by_gpu": {str(d): round(_busy_fraction(v, wall_us), 3) for d, v in sorted(kernels.items())},
    }
    if out_dir:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        table = prof.key_averages()
        text = (table.table(sort_by="self_device_time_total", row_limit=25) + "\n"
                + table.table(sort_by="self_cpu_time_total", row_limit=25))
        (Path(out_dir) / f"rank{rank}.txt").write_text(json.dumps(summary) + "\n" + text)
    return summary


def worker(args: argparse.Namespace) -> None:
    if args.per_rank_inductor_cache:  # before torch is imported: the folder is read once
        rank = os.environ.get("LOCAL_RANK", "0")
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = f"{args.per_rank_inductor_cache}/rank{rank}"
    import lightning as L
    import torch

    import hybridjet.quiet  # noqa: F401
    from hybridjet.data.datamodule import JetDataModule
    from hybridjet.train.classifiers import HybridClassifier

    class StepTimer(L.Callback):
        def __init__(self) -> None:
            self.marks: list[float] = []
            self.llm_device = -1

        def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            # where this rank's 4-bit weights live while training (Lightning moves the module to CPU at teardown)
            quantized = [p.device for p in pl_module.parameters() if p.dtype == torch.uint8]
            self.llm_device = quantized[0].index if quantized and quantized[0].type == "cuda" else -1

            self.profile: dict[str, Any] = {}
            self._prof: Any = None
            self._prof_start = 0.0

        def on_train_batch_end(self, trainer: L.Trainer, *_: Any) -> None:
            step = trainer.global_step
            if step >= args.warmup:
                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                if step <= args.steps - args.profile_steps:
                    self.marks.append(time.perf_counter())
            if args.profile_steps and step == args.steps - args.profile_steps:
                self._prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU,
                                                                torch.profiler.ProfilerActivity.CUDA])
                self._prof.__enter__()
                self._prof_start = time.perf_counter()
            elif self._prof is not None and step == args.steps:
                wall = time.perf_counter() - self._prof_start
                self._prof.__exit__(None, None, None)
                self.profile = _profile_summary(self._prof, wall, args.profile_steps, trainer.global_rank,
                                                args.profile_dir)
                self._prof = None

    if args.no_optimize_ddp:  # compiled graphs are not split at DDP's gradient-bucket boundaries (pytorch#111279)
        import torch._dynamo

        torch._dynamo.config.optimize_ddp = False
    L.seed_everything(0, verbose=False)
    dm = JetDataModule(args.data, batch_size=args.batch_size, eval_batch_size=args.batch_size, seed=0,
                       split=(0.8, 0.1, 0.1))
    clf = HybridClassifier.from_settings(model=args.model, lora="attn", n_soft_tokens=8, **args.hybrid_args)  # product defaults
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
    if timer.profile:
        print("PROFILE " + json.dumps(timer.profile), flush=True)
    if trainer.global_rank == 0:
        steps = len(timer.marks) - 1
        gaps = [b - a for a, b in zip(timer.marks[:-1], timer.marks[1:], strict=True)]
        seconds = timer.marks[-1] - timer.marks[0]
        events = steps * args.batch_size * trainer.world_size
        print("RESULT " + json.dumps({
            "devices": trainer.world_size, "batch_per_rank": args.batch_size, "timed_steps": steps,
            "seconds": round(seconds, 3), "train_events_per_s": round(events / seconds, 1),
            "median_step_events_per_s": round(args.batch_size * trainer.world_size / statistics.median(gaps), 1),
            "step_ms": [round(g * 1e3, 1) for g in gaps],
            "peak_gpu_gib_per_rank": [round(p, 2) for p in peaks], "llm_weights_on_cuda": devices,
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
            "hybrid_args": args.hybrid_args, "optimize_ddp": not args.no_optimize_ddp,
            "per_rank_inductor_cache": bool(args.per_rank_inductor_cache),
        }), flush=True)


def text_worker(args: argparse.Namespace) -> None:
    """One device count of text SFT in this process (one process per rank under DDP)."""
    import tempfile

    import lightning as L
    import torch

    import hybridjet.quiet  # noqa: F401
    from hybridjet.llm.lora import LoraSpec
    from hybridjet.runtime import Runtime
    from hybridjet.text.datamodule import TextDataModule
    from hybridjet.text.dataset import SFTDataset
    from hybridjet.text.sft import TextSFT
    from hybridjet.train.callbacks import default_precision
    from hybridjet.train.optim import OptimizerSettings

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_sft import make_records

    class TokenTimer(L.Callback):
        def __init__(self) -> None:
            self.marks: list[float] = []
            self.tokens: list[int] = []
            self.losses: list[float] = []

        def on_train_batch_start(self, trainer: L.Trainer, pl_module: Any, batch: dict[str, Any], *_: Any) -> None:
            n = batch["n_tokens"] if "n_tokens" in batch else batch["attention_mask"].sum()
            self.tokens.append(int(n))

        def on_train_batch_end(self, trainer: L.Trainer, *_: Any) -> None:
            self.losses.append(float(trainer.callback_metrics.get("train_loss", float("nan"))))
            if trainer.global_step >= args.warmup:
                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                self.marks.append(time.perf_counter())

    L.seed_everything(0, verbose=False)
    fraction = args.checkpointing
    model = TextSFT(model=args.model, lora=LoraSpec("all-linear", r=16, alpha=32),
                    runtime=Runtime(gradient_checkpointing=fraction >= 1 or fraction, **args.text_args),
                    optim=OptimizerSettings(warmup_steps=0, scheduler="constant"))
    records = make_records(model.tokenizer, args.steps * args.batch_size * args.devices, args.min_tokens,
                           args.max_tokens, seed=0)
    timer = TokenTimer()
    with tempfile.TemporaryDirectory() as tmp:
        dm = TextDataModule(train_path=os.path.join(tmp, "unused.jsonl"), batch_size=args.batch_size, val_ratio=0.0,
                            max_length=args.max_tokens)
        dm.datasets = {"train": SFTDataset(records)}  # the benchmark's records, the product's batches
        trainer = L.Trainer(
            max_steps=args.steps, devices=args.devices, strategy="ddp" if args.devices > 1 else "auto",
            accelerator=args.accelerator, precision=default_precision(), limit_val_batches=0,
            num_sanity_val_steps=0, enable_checkpointing=False, logger=False, enable_progress_bar=False,
            enable_model_summary=False, callbacks=[timer], default_root_dir=tmp,
        )
        trainer.fit(model, datamodule=dm)
    here = trainer.strategy.root_device
    timed = sum(timer.tokens[args.warmup:args.steps])
    tokens = trainer.strategy.all_gather(torch.tensor([timed], device=here)).flatten().tolist()
    peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else 0.0
    peaks = trainer.strategy.all_gather(torch.tensor([peak], device=here)).flatten().tolist()
    if trainer.global_rank == 0:
        seconds = timer.marks[-1] - timer.marks[0]
        gaps = [b - a for a, b in zip(timer.marks[:-1], timer.marks[1:], strict=True)]
        print("RESULT " + json.dumps({
            "task": "text", "devices": trainer.world_size, "batch_per_rank": args.batch_size,
            "timed_steps": len(gaps), "seconds": round(seconds, 3), "tokens_per_s": round(sum(tokens) / seconds, 1),
            "tokens_per_rank": tokens, "step_ms": [round(g * 1e3, 1) for g in gaps],
            "losses": [round(x, 4) for x in timer.losses], "packed": dm.packs,
            "peak_gpu_gib_per_rank": [round(p, 2) for p in peaks],
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu", "text_args": args.text_args,
            "checkpointing": args.checkpointing, "max_tokens": args.max_tokens,
        }), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=["hybrid", "text"], default="hybrid")
    parser.add_argument("--data", default=None, help="jets.h5 (the hybrid task)")
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
    parser.add_argument("--profile-steps", type=int, default=0,
                        help="profile this many steps after the timed ones in every rank (0: none)")
    parser.add_argument("--profile-dir", default=None, help="each rank's op tables go here (rank<N>.txt)")
    parser.add_argument("--per-rank-inductor-cache", default=None, metavar="DIR",
                        help="every rank compiles into DIR/rank<N> instead of the shared TorchInductor cache")
    parser.add_argument("--max-tokens", type=int, default=2048, help="text: longest record, tokens")
    parser.add_argument("--min-tokens", type=int, default=100, help="text: shortest record, tokens")
    parser.add_argument("--checkpointing", type=float, default=0.0, help="text: fraction of layers checkpointed")
    parser.add_argument("--text-args", type=json.loads, default={},
                        help='text: more runtime settings of TextSFT, JSON, e.g. {"torch_compile": false}')
    parser.add_argument("--accelerator", default="auto", help="text: Lightning accelerator (cpu: gloo ranks)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.task == "hybrid" and not args.data:
        parser.error("--data: the hybrid task needs a jets.h5 file")
    if args.worker:
        args.devices = args.devices[0]
        try:
            return text_worker(args) if args.task == "text" else worker(args)
        finally:
            import torch

            # every rank leaves the process group before the interpreter exits: gloo's threads still running at exit
            # aborted a rank once ("terminate called without an active exception"), after its work was done
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                torch.distributed.barrier()
                torch.distributed.destroy_process_group()

    rows = []
    for n in args.devices:
        cmd = [sys.executable, __file__, "--worker", "--task", args.task, "--model", args.model, "--devices", str(n),
               "--batch-size", str(args.batch_size), "--steps", str(args.steps), "--warmup", str(args.warmup),
               "--hybrid-args", json.dumps(args.hybrid_args), "--profile-steps", str(args.profile_steps),
               "--max-tokens", str(args.max_tokens), "--min-tokens", str(args.min_tokens),
               "--checkpointing", str(args.checkpointing), "--text-args", json.dumps(args.text_args),
               "--accelerator", args.accelerator]
        cmd += ["--data", args.data] if args.data else []
        cmd += ["--no-optimize-ddp"] if args.no_optimize_ddp else []
        cmd += ["--profile-dir", f"{args.profile_dir}/devices{n}"] if args.profile_dir else []
        cmd += ["--per-rank-inductor-cache", args.per_rank_inductor_cache] if args.per_rank_inductor_cache else []
        out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
        if out.returncode != 0 or line is None:
            sys.exit(f"bench_ddp: {n} device(s) failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
        rows.append(json.loads(line[len("RESULT "):]))
        rows[-1]["profile"] = [json.loads(x[len("PROFILE "):]) for x in out.stdout.splitlines()
                               if x.startswith("PROFILE ")]
        print(json.dumps(rows[-1]), flush=True)
    rate, label = ("tokens_per_s", "tokens/s") if args.task == "text" else ("train_events_per_s", "train ev/s")
    base = rows[0][rate] / rows[0]["devices"]
    print(f"\n{'devices':>7} {label:>11} {'speed-up':>9} {'efficiency':>10} {'peak GiB/rank':>14}")
    for r in rows:
        speedup = r[rate] / rows[0][rate]
        eff = r[rate] / (base * r["devices"])
        print(f"{r['devices']:>7} {r[rate]:>11,.0f} {speedup:>8.2f}x {eff:>10.0%} "
              f"{max(r['peak_gpu_gib_per_rank']):>14.2f}")
    if args.task == "text":
        for r in rows:
            print(f"loss per step, {r['devices']} device(s): {' '.join(f'{x:.3f}' for x in r['losses'])}")
    if args.out_json:
        with open(args.out_json, "a") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
