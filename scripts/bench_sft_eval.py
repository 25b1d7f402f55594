"""Generation speed of ``hybridjet sft eval`` on a GPU against the same command's default on a CPU, side by side in one
run on one machine.

    python scripts/bench_sft_eval.py --run runs/evalbench --data examples/data/physics_qa.jsonl [--model PATH]
        [--cases loaded:64 dense:64 dense:256 dense-static:256] [--gpu-examples 512] [--cpu-examples 48]
        [--cpu-threads 2] [--max-new-tokens 64] [--stop-at-eos] [--out results.json]

Greedy answers of the run's adapter to the file's prompts, cycled to ``--gpu-examples`` (``--cpu-examples`` on the
CPU). Every answer is ``--max-new-tokens`` long (no stop at the end-of-turn token, unless ``--stop-at-eos``): with
repeated prompts side by side in a batch, stopping would favour the larger batches, whose rows then stop together.
Each case is ``TextModel.generate_batch``, the path of ``sft eval``: ``loaded`` the run as loaded (on a GPU the NF4
base + adapter), ``dense`` a dense copy (``sft eval``'s GPU default), ``dense-static`` the same with
``--static-cache``; the number after the colon is the batch. The CPU reference is what ``sft eval`` does by default on
a CPU (batch 8; a dense copy where :func:`hybridjet.llm.dense.dense_copy_fits` says so, i.e. for a quantized model) in
a fresh process with ``--cpu-threads`` threads (2: the dev machine's cores). A case's first pass is what a user sees
(compilation included, for the static cache); static cases run a second, warm pass. Prints examples/s and generated
tokens/s per case and each GPU case over the CPU reference.
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

MODES = ("loaded", "dense", "dense-static")


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


def timed_pass(tm: Any, prompts: list[Any], batch: int, args: argparse.Namespace, static: bool) -> dict[str, float]:
    """One generation pass over ``prompts``: examples/s and generated tokens/s."""
    import torch

    fixed = 0 if args.stop_at_eos else args.max_new_tokens
    if tm.device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    answers = tm.generate_batch(prompts, max_new_tokens=args.max_new_tokens, batch_size=batch, static_cache=static,
                                min_new_tokens=fixed)
    if tm.device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    tokens = sum(len(ids) for ids in tm.tokenizer(answers, add_special_tokens=False)["input_ids"])
    return {"seconds": seconds, "examples_per_s": len(prompts) / seconds, "tokens_per_s": tokens / seconds}


def run_cases(args: argparse.Namespace, tm: Any, cases: list[tuple[str, int]], n: int) -> list[dict[str, Any]]:
    """All ``cases`` on the loaded run ``tm``, the ``loaded`` ones before the in-place densification."""
    device = tm.device.type
    prompts = prompts_of(tm, args.data, n)
    tm.generate_batch(prompts[:2], max_new_tokens=4, batch_size=2)  # device and kernel initialisation, untimed
    rows = []
    for mode, batch in sorted(cases, key=lambda c: c[0] != "loaded"):
        row: dict[str, Any] = {"device": device, "mode": mode, "batch": batch, "examples": n}
        try:
            if mode != "loaded":
                tm.densify_for_inference()
            static = mode == "dense-static"
            row.update(timed_pass(tm, prompts, batch, args, static))
            if static:
                row["warm"] = timed_pass(tm, prompts, batch, args, static)
        except Exception as exc:  # a case that fails (out of memory, a compile error) is reported, the rest run
            row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def cpu_reference(args: argparse.Namespace) -> dict[str, Any]:
    """The CPU reference row, from a fresh process without CUDA (an ``error`` row if it failed)."""
    cmd = [sys.executable, __file__, "--run", args.run, "--data", args.data, "--cpu-only",
           "--cpu-examples", str(args.cpu_examples), "--cpu-threads", str(args.cpu_threads),
           "--max-new-tokens", str(args.max_new_tokens), *(["--stop-at-eos"] if args.stop_at_eos else []),
           *(["--model", args.model] if args.model else [])]
    done = subprocess.run(cmd, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""}, capture_output=True, text=True)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
        return {"device": "cpu", "mode": "default", "batch": 8, "examples": args.cpu_examples,
                "error": f"exit {done.returncode}: {tail[0]}"[:300]}
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--model", default=None, help="the base model's path here, if not the run's recorded one")
    p.add_argument("--cases", nargs="+", type=parse_case,
                   default=[parse_case(c) for c in ("loaded:64", "dense:64", "dense:256", "dense-static:256")])
    p.add_argument("--gpu-examples", type=int, default=512)
    p.add_argument("--cpu-examples", type=int, default=48)
    p.add_argument("--cpu-threads", type=int, default=2)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--stop-at-eos", action="store_true", help="answers stop at the end-of-turn token (as sft eval)")
    p.add_argument("--out", default=None)
    p.add_argument("--cpu-only", action="store_true", help=argparse.SUPPRESS)  # the CPU reference's own process
    args = p.parse_args(argv)

    import torch

    if args.cpu_only:
        from hybridjet.llm.dense import dense_copy_fits

        torch.set_num_threads(args.cpu_threads)
        tm = load(args.run, args.model, "cpu")
        mode = "dense" if dense_copy_fits(tm.model, tm.backbone.dtype, tm.device) else "loaded"  # as sft eval
        run_cases(args, tm, [(mode, 8)], args.cpu_examples)
        return 0
    rows = []
    if torch.cuda.is_available():
        print(f"GPU: {torch.cuda.get_device_name()}, max_new_tokens {args.max_new_tokens}"
              + (", stopping at EOS" if args.stop_at_eos else ", fixed-length answers"), flush=True)
        rows = run_cases(args, load(args.run, args.model, "cuda"), args.cases, args.gpu_examples)
    cpu = cpu_reference(args)
    rows.append(cpu)
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2))
    ref = cpu.get("examples_per_s")
    print(f"\n{'device':<6} {'mode':<13} {'batch':>5} {'examples':>8} {'ex/s':>8} {'tok/s':>8} {'warm ex/s':>10} "
          f"{'x CPU':>7} {'warm x CPU':>10}")
    for r in rows:
        if "error" in r:
            print(f"{r['device']:<6} {r['mode']:<13} {r['batch']:>5} {r['examples']:>8} failed: {r['error']}")
            continue
        warm = r.get("warm", {}).get("examples_per_s")
        ratio = f"{r['examples_per_s'] / ref:.1f}" if ref else "-"
        warm_ratio = f"{warm / ref:.1f}" if warm and ref else "-"
        print(f"{r['device']:<6} {r['mode']:<13} {r['batch']:>5} {r['examples']:>8} {r['examples_per_s']:>8.2f} "
              f"{r['tokens_per_s']:>8.1f} {(f'{warm:.2f}' if warm else '-'):>10} {ratio:>7} {warm_ratio:>10}")
    print(f"x CPU: examples/s over the CPU reference's ({args.cpu_threads} threads, batch 8, sft eval's CPU default)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
