"""Generation speed of ``hybridjet sft eval`` on a GPU against the same command's default on a CPU, side by side in one
run on one machine.

    python scripts/bench_sft_eval.py --run runs/evalbench --data examples/data/physics_qa.jsonl [--model PATH]
        [--cases default:64 dense:64 dense:256 dense-static:256] [--gpu-examples 512] [--cpu-examples 48]
        [--cpu-threads 2] [--max-new-tokens 64] [--out results.json]

Greedy answers of the run's adapter to the file's prompts, cycled to ``--gpu-examples`` (``--cpu-examples`` on the
CPU): the prompts repeat, so every case sees the same length distribution. Each case is
``TextModel.generate_batch``, the path of ``sft eval``: ``default`` the run loaded as ``sft eval`` loads it (on a GPU
the NF4 base + adapter), ``dense`` ``--dense``, ``dense-static`` ``--dense --static-cache``; the number after the
colon is the batch. The CPU reference is ``sft eval``'s CPU default (the base in fp32 + adapter, batch 8) in a fresh
process with ``--cpu-threads`` threads. A case's first pass is what a user sees (compilation included, for the static cache); static cases run a
second, warm pass. Prints examples/s and generated tokens/s per case and each GPU case over the CPU reference.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

MODES = ("default", "dense", "dense-static")


def parse_case(text: str) -> tuple[str, int]:
    """``mode:batch`` -> (mode, batch)."""
    mode, _, batch = text.partition(":")
    if mode not in MODES or not batch.isdigit() or int(batch) < 1:
        raise argparse.ArgumentTypeError(f"a case is MODE:BATCH with MODE one of {', '.join(MODES)}, got {text!r}")
    return mode, int(batch)


def load(run: str, model: str | None, device: str) -> Any:
    from hybridjet.text.api import TextModel

    return TextModel.from_pretrained(run, model=model, device=device)


def prompts_of(tm: Any, data: str, n: int) -> list[Any]:
    """The file's prompts, cycled to ``n``."""
    from hybridjet.text.evaluate import _prompt_of
    from hybridjet.text.formats import read_examples

    settings = tm.config.get("data") or {}
    examples, _ = read_examples(data, format=settings.get("format") or "auto", fields=settings.get("fields") or {})
    return [_prompt_of(ex) for ex in itertools.islice(itertools.cycle(examples), n)]


def timed_pass(tm: Any, prompts: list[Any], batch: int, max_new_tokens: int, static: bool) -> dict[str, float]:
    """One generation pass over ``prompts``: examples/s and generated tokens/s."""
    import torch

    if tm.device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    answers = tm.generate_batch(prompts, max_new_tokens=max_new_tokens, batch_size=batch, static_cache=static)
    if tm.device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    tokens = sum(len(ids) for ids in tm.tokenizer(answers, add_special_tokens=False)["input_ids"])
    return {"seconds": seconds, "examples_per_s": len(prompts) / seconds, "tokens_per_s": tokens / seconds}


def run_cases(args: argparse.Namespace, device: str, cases: list[tuple[str, int]], n: int) -> list[dict[str, Any]]:
    """All ``cases`` in this process, the ``default`` ones before the in-place densification."""
    tm = load(args.run, args.model, device)
    prompts = prompts_of(tm, args.data, n)
    tm.generate_batch(prompts[:2], max_new_tokens=4, batch_size=2)  # device and kernel initialisation, untimed
    rows = []
    for mode, batch in sorted(cases, key=lambda c: c[0] != "default"):
        if mode != "default":
            tm.densify_for_inference()
        static = mode == "dense-static"
        row: dict[str, Any] = {"device": device, "mode": mode, "batch": batch, "examples": n}
        try:
            row.update(timed_pass(tm, prompts, batch, args.max_new_tokens, static))
            if static:
                row["warm"] = timed_pass(tm, prompts, batch, args.max_new_tokens, static)
        except Exception as exc:  # a case that fails (out of memory, a compile error) is reported, the rest run
            row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--model", default=None, help="the base model's path here, if not the run's recorded one")
    p.add_argument("--cases", nargs="+", type=parse_case,
                   default=[parse_case(c) for c in ("default:64", "dense:64", "dense:256", "dense-static:256")])
    p.add_argument("--gpu-examples", type=int, default=512)
    p.add_argument("--cpu-examples", type=int, default=48)
    p.add_argument("--cpu-threads", type=int, default=2)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--out", default=None)
    p.add_argument("--cpu-only", action="store_true", help=argparse.SUPPRESS)  # the CPU reference's own process
    args = p.parse_args(argv)

    if args.cpu_only:
        import torch

        torch.set_num_threads(args.cpu_threads)
        run_cases(args, "cpu", [("default", 8)], args.cpu_examples)
        return 0
    import torch

    rows = []
    if torch.cuda.is_available():
        print(f"GPU: {torch.cuda.get_device_name()}, max_new_tokens {args.max_new_tokens}", flush=True)
        rows = run_cases(args, "cuda", args.cases, args.gpu_examples)
    cmd = [sys.executable, __file__, "--run", args.run, "--data", args.data, "--cpu-only",
           "--cpu-examples", str(args.cpu_examples), "--cpu-threads", str(args.cpu_threads),
           "--max-new-tokens", str(args.max_new_tokens), *(["--model", args.model] if args.model else [])]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    cpu = json.loads(out.strip().splitlines()[-1])
    rows.append(cpu)
    print(f"\n{'device':<6} {'mode':<13} {'batch':>5} {'examples':>8} {'ex/s':>8} {'tok/s':>8} {'warm ex/s':>10} "
          f"{'x CPU':>7} {'warm x CPU':>10}")
    ref = cpu["examples_per_s"]
    for r in rows:
        if "error" in r:
            print(f"{r['device']:<6} {r['mode']:<13} {r['batch']:>5} {r['examples']:>8} failed: {r['error']}")
            continue
        warm = r.get("warm", {}).get("examples_per_s")
        print(f"{r['device']:<6} {r['mode']:<13} {r['batch']:>5} {r['examples']:>8} {r['examples_per_s']:>8.2f} "
              f"{r['tokens_per_s']:>8.1f} {(f'{warm:.2f}' if warm else '-'):>10} "
              f"{r['examples_per_s'] / ref:>7.1f} {(f'{warm / ref:.1f}' if warm else '-'):>10}")
    print(f"x CPU: examples/s over the CPU reference's ({args.cpu_threads} threads, batch 8, fp32 + adapter)")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
