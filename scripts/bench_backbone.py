#!/usr/bin/env python
"""Benchmark of the LLM backbone loader: load time and weight memory.

1. SmolLM2-135M-Instruct (embedded GGUF): cold load (GGUF -> HF conversion into a fresh temporary cache) vs warm
   load (from the cache, per-process hash memo cleared), for quantization none and nf4.
2. Weight memory measured from the loaded tensors (``hybridjet.llm.report.weight_memory_bytes``: parameters,
   packed 4-bit storage, quantization state, buffers): SmolLM2 in fp32, bf16, NF4, NF4 double-quant; and a
   Llama-3.2-3B-shaped model (random weights from its config) in bf16, NF4 double-quant (Linear layers replaced by
   ``bnb.nn.Linear4bit`` and quantized on the CPU, as transformers' loader does) and fp32 when it fits in RAM.

Usage: ``.venv/bin/python scripts/bench_backbone.py [--skip-3b] [--fp32-3b auto|yes|no]``
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from hybridjet.llm.testing import LLAMA_32_3B_SHAPE as LLAMA_3B  # noqa: E402


def mib(n: int) -> str:
    return f"{n / 2**20:,.1f}"


def available_bytes() -> int:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def clear_hash_memo() -> None:
    from hybridjet.llm import files as resolve

    resolve._HASH_MEMO.clear()


def bench_smollm2(rows: list[tuple[str, ...]], mem_rows: list[tuple[str, ...]]) -> None:
    import torch

    from hybridjet.llm.backbone import load_backbone
    from hybridjet.llm.report import count_parameters, weight_memory_bytes

    with tempfile.TemporaryDirectory(prefix="hybridjet-bench-") as cache:
        clear_hash_memo()
        t0 = time.perf_counter()
        bb = load_backbone("smollm2", quantization="none", device="cpu", cache_dir=cache)
        rows.append(("SmolLM2-135M", "cold (GGUF convert + load), none", f"{time.perf_counter() - t0:.1f}"))
        del bb
        gc.collect()
        for quant in ("none", "nf4"):
            clear_hash_memo()
            t0 = time.perf_counter()
            bb = load_backbone("smollm2", quantization=quant, device="cpu", cache_dir=cache)
            rows.append(("SmolLM2-135M", f"warm (cache), {quant}", f"{time.perf_counter() - t0:.1f}"))
            del bb
            gc.collect()
        for label, quant, dtype in (
            ("fp32", "none", torch.float32),
            ("bf16", "none", torch.bfloat16),
            ("NF4 (bf16 compute)", "nf4", torch.bfloat16),
            ("NF4 double-quant", "nf4-dq", torch.bfloat16),
        ):
            bb = load_backbone("smollm2", quantization=quant, dtype=dtype, device="cpu", cache_dir=cache)
            total, _ = count_parameters(bb.model)
            nbytes = weight_memory_bytes(bb.model)
            mem_rows.append(("SmolLM2-135M", label, f"{total:,}", mib(nbytes), f"{8 * nbytes / total:.2f}"))
            del bb
            gc.collect()


def quantize_linear_nf4_(model, compute_dtype, double_quant: bool) -> None:
    """Replace every nn.Linear except lm_head by a quantized bnb.nn.Linear4bit, layer by layer (in place)."""
    import bitsandbytes as bnb
    import torch

    for _name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if not isinstance(child, torch.nn.Linear) or child_name == "lm_head":
                continue
            new = bnb.nn.Linear4bit(
                child.in_features, child.out_features, bias=child.bias is not None, compute_dtype=compute_dtype,
                compress_statistics=double_quant, quant_type="nf4", device="meta",
            )
            new.weight = bnb.nn.Params4bit(
                child.weight.data, requires_grad=False, compress_statistics=double_quant, quant_type="nf4",
            ).to("cpu")
            if child.bias is not None:
                new.bias = torch.nn.Parameter(child.bias.data, requires_grad=False)
            setattr(module, child_name, new)
            del child
    gc.collect()


def bench_llama3b(mem_rows: list[tuple[str, ...]], fp32: str) -> str:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from hybridjet.llm.report import count_parameters, weight_memory_bytes

    config = LlamaConfig(**LLAMA_3B)
    notes = []
    torch.manual_seed(0)
    t0 = time.perf_counter()
    model = LlamaForCausalLM._from_config(config, dtype=torch.bfloat16)
    model.requires_grad_(False)
    build_s = time.perf_counter() - t0
    total, _ = count_parameters(model)
    nbytes = weight_memory_bytes(model)
    mem_rows.append(("Llama-3.2-3B-shaped", "bf16", f"{total:,}", mib(nbytes), f"{8 * nbytes / total:.2f}"))
    t0 = time.perf_counter()
    quantize_linear_nf4_(model, torch.bfloat16, double_quant=True)
    quant_s = time.perf_counter() - t0
    total_q, _ = count_parameters(model)
    nbytes = weight_memory_bytes(model)
    mem_rows.append(("Llama-3.2-3B-shaped", "NF4 double-quant", f"{total_q:,}", mib(nbytes),
                     f"{8 * nbytes / total_q:.2f}"))
    notes.append(f"3B: random bf16 build {build_s:.0f} s, CPU NF4 quantization of its Linear layers {quant_s:.0f} s")
    del model
    gc.collect()
    need = 4 * total + (4 << 30)
    avail = available_bytes()
    if fp32 == "yes" or (fp32 == "auto" and avail > need):
        model = LlamaForCausalLM._from_config(config, dtype=torch.float32)
        model.requires_grad_(False)
        nbytes = weight_memory_bytes(model)
        mem_rows.append(("Llama-3.2-3B-shaped", "fp32", f"{total:,}", mib(nbytes), f"{8 * nbytes / total:.2f}"))
        del model
        gc.collect()
    else:
        notes.append(f"3B fp32 skipped: needs ~{need / 2**30:.1f} GiB with margin, {avail / 2**30:.1f} GiB available")
    return "; ".join(notes)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-3b", action="store_true", help="skip the Llama-3.2-3B-shaped memory measurement")
    parser.add_argument("--fp32-3b", choices=["auto", "yes", "no"], default="auto",
                        help="build the 3B model in fp32 too (auto: only when RAM allows)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    print(f"# bench_backbone: python {platform.python_version()}, torch {torch.__version__}, "
          f"{os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d')}")
    rows: list[tuple[str, ...]] = []
    mem_rows: list[tuple[str, ...]] = []
    bench_smollm2(rows, mem_rows)
    notes = "" if args.skip_3b else bench_llama3b(mem_rows, args.fp32_3b)
    print("\n| model | load | seconds |\n|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    print("\n| model | weights | parameters | weight memory (MiB) | bits/param |\n|---|---|---|---|---|")
    for r in mem_rows:
        print("| " + " | ".join(r) + " |")
    if notes:
        print(f"\n{notes}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
