#!/usr/bin/env python
"""GPU throughput and memory of the hybrid classifier vs the text-prompt baseline, side by side in one run.

    python scripts/bench_gpu.py --data data/demo/jets.h5 --model smollm2 [--sections hybrid text variants profile llama3b]

For each model and batch size: training events/s and tokens/s (forward + backward + AdamW step, timed by
``scripts/throughput.py measure``), scoring events/s and tokens/s (no grad), peak GPU memory
(``torch.cuda.max_memory_allocated``) and a model-FLOPs-utilisation estimate:

    MFU = events/s x processed tokens/event x (6 for training, 2 for scoring) x non-embedding parameters / peak

(peak: the GPU's dense bf16 rate, 989 TFLOP/s for H100/H200 SXM; ``--peak-tflops`` overrides). Processed tokens are
what the LLM runs per event: for the hybrid with the cached prefix the soft tokens and the question (the prefix runs
once per batch), for the text baseline the prompt's real (non-padding) tokens (+ the answer tokens in training).

Sections (``--sections``, in this order):
  hybrid     hybrid training+scoring at ``--hybrid-batches``; scoring alone at ``--hybrid-score-batches``
  text       text baseline training+scoring at ``--text-batches``; scoring alone at ``--text-score-batches``
  variants   one change at a time on the hybrid at ``--variant-batch``: no cached prefix, bf16 autocast,
             LoRA dropout 0, text baseline formatting from GPU tensors (the old per-number host syncs)
  profile    torch.profiler of hybrid training and scoring steps: kernels per step, GPU-busy fraction, top kernels
  cudagraph  hybrid scoring replayed from a captured CUDA graph (launch overhead removed): the launch-free ceiling
  llama3b    hybrid training on a random-weight Llama-3.2-3B-shaped model in NF4 at ``--llama3b-batch``: peak memory
  compile    eager vs compiled decoder layers (``torch_compile``), prefix per event vs shared, GPU product settings
             (bf16 frozen base, autocast), training at ``--compile-batches``; dense scoring at the scoring batches
  bf16base   the frozen base kept in bf16 instead of peft's fp32 upcast of norms and embeddings
  dense      hybrid scoring with the 4-bit base + LoRA vs densified for inference (dequantized once, LoRA merged),
             then the dense model replayed from a CUDA graph
Results are printed as they come and appended as JSON lines to ``--out-json``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from throughput import measure  # noqa: E402

from hybridjet.data.datamodule import JetDataModule  # noqa: E402
from hybridjet.train.classifiers import (
    HybridClassifier,  # noqa: E402
    TextPromptClassifier,  # noqa: E402
)

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0}
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
#: untimed steps before each measurement (``--warmup``): a compiled model compiles its forward at the first
#: step, its backward and CUDA-graph recording at the second (H100, SmolLM2 NF4, batch 4096: 6.2 s, 8.2 s, then
#: 121 ms per step), so one warm-up step left a compilation inside the timed window
WARMUP = 3
SECTIONS = ("hybrid", "text", "variants", "profile", "llama3b", "cudagraph", "compile", "bf16base", "dense")


# ---------------------------------------------------------------- helpers

def device_name() -> str:
    return torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"


def peak_flops(override: float | None) -> float:
    if override:
        return override * 1e12
    name = device_name()
    for key, tflops in PEAK_BF16_TFLOPS.items():
        if key in name:
            return tflops * 1e12
    return float("nan")


def nonembedding_params(model: Any) -> int:
    """Parameters of the transformer layers (attention + MLP matrices), from the config: NF4 storage packs two
    values per byte, so counting stored elements would halve them."""
    lm = model.net.llm.get_base_model() if hasattr(model.net.llm, "get_base_model") else model.net.llm
    c = lm.config
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    attn = c.hidden_size * head_dim * (2 * c.num_attention_heads + 2 * c.num_key_value_heads)
    mlp = 3 * c.hidden_size * c.intermediate_size
    return c.num_hidden_layers * (attn + mlp)


def processed_tokens(model: Any, batch: dict[str, torch.Tensor], train: bool) -> float:
    """Tokens the LLM runs per event (see the module docstring)."""
    if isinstance(model, HybridClassifier):
        net = model.net
        if net.llm is None:
            return 0.0
        if net.policy.shares_prefix(len(batch['label']), model.device):
            return float(net.config.n_soft_tokens + len(net.suffix_ids))
        return float(net.sequence_length)
    enc = model.net._encode(batch, with_answer=train)
    return float(enc["attention_mask"].sum()) / len(batch["label"])


def sample_batches(dm: JetDataModule, batch_size: int, n: int, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """``n`` batches of real training events drawn with replacement (batches larger than the file are fine)."""
    tensors = dm.splits["train"].tensors
    total = len(tensors["label"])
    g = torch.Generator().manual_seed(seed + batch_size)
    rows = torch.randint(total, (n, batch_size), generator=g)
    return [{k: v[r] for k, v in tensors.items()} for r in rows]


def reset_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_gb() -> float:
    return torch.cuda.max_memory_allocated() / 1e9 if torch.cuda.is_available() else float("nan")


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def time_scoring(model: Any, batches: list[dict[str, torch.Tensor]]) -> float:
    """Scoring events/s (no grad) after ``WARMUP`` untimed batches, each batch synchronised like ``measure``."""
    batches = [{k: v.to(model.device) for k, v in b.items()} for b in batches]
    model.eval()
    n, seconds = 0, 0.0
    with torch.no_grad():
        for i, batch in enumerate(batches):
            sync()
            start = time.perf_counter()
            model.score(batch)
            sync()
            if i >= WARMUP:
                n, seconds = n + len(batch["label"]), seconds + time.perf_counter() - start
    return n / max(seconds, 1e-9)


class Recorder:
    def __init__(self, path: str | None, peak: float) -> None:
        self.path, self.peak, self.rows = path, peak, []

    def add(self, **row: Any) -> None:
        row.setdefault("device", device_name())
        self.rows.append(row)
        if self.path:
            with open(self.path, "a") as fh:
                fh.write(json.dumps(row, default=float) + "\n")
        if "error" in row:
            print(f"{row['section']:9s} {row['name']:26s} batch {row.get('batch', 0):6d}  ERROR {row['error']}", flush=True)
        elif "train_ev_s" in row or "score_ev_s" in row:
            print(self.line(row), flush=True)

    def mfu(self, events_per_s: float, tokens: float, params: int, factor: int) -> float:
        return events_per_s * tokens * factor * params / self.peak

    @staticmethod
    def line(r: dict[str, Any]) -> str:
        def f(key: str, fmt: str) -> str:
            v = r.get(key)
            return format(v, fmt) if isinstance(v, (int, float)) else "-"

        return (f"{r['section']:9s} {r['name']:26s} batch {r.get('batch', 0):6d}  tok/ev {f('tokens_train', '5.1f')}/"
                f"{f('tokens_score', '5.1f')}  train {f('train_ev_s', '9.0f')} ev/s {f('train_tok_s', '10.0f')} tok/s "
                f"MFU {f('train_mfu', '5.1%')}  score {f('score_ev_s', '9.0f')} ev/s {f('score_tok_s', '10.0f')} tok/s "
                f"MFU {f('score_mfu', '5.1%')}  peak {f('peak_gb', '6.2f')} GB")


def run_measure(rec: Recorder, section: str, name: str, model: Any, batches: list[dict[str, torch.Tensor]],
                params: int, autocast: bool = False, pipelined: bool = False, **extra: Any) -> dict[str, Any]:
    """Training + scoring via ``measure`` (optionally under bf16 autocast, optionally pipelined: one host
    synchronisation for all timed steps), with memory and MFU."""
    reset_memory()
    ctx = torch.autocast(DEVICE, dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
    with ctx:
        r = measure(model, batches, warmup=WARMUP, pipelined=pipelined)
    tt, ts = processed_tokens(model, batches[0], True), processed_tokens(model, batches[0], False)
    row = dict(section=section, name=name, batch=len(batches[0]["label"]), tokens_train=tt, tokens_score=ts,
               train_ev_s=r.train_events_per_s, train_tok_s=r.train_events_per_s * tt,
               train_mfu=rec.mfu(r.train_events_per_s, tt, params, 6),
               score_ev_s=r.infer_events_per_s, score_tok_s=r.infer_events_per_s * ts,
               score_mfu=rec.mfu(r.infer_events_per_s, ts, params, 2), peak_gb=peak_gb(),
               sequence_length=getattr(model.net, "sequence_length", None), **extra)
    rec.add(**row)
    return row


def run_scoring(rec: Recorder, section: str, name: str, model: Any, batches: list[dict[str, torch.Tensor]],
                params: int, **extra: Any) -> dict[str, Any]:
    reset_memory()
    ev = time_scoring(model, batches)
    ts = processed_tokens(model, batches[0], False)
    row = dict(section=section, name=name, batch=len(batches[0]["label"]), tokens_score=ts, score_ev_s=ev,
               score_tok_s=ev * ts, score_mfu=rec.mfu(ev, ts, params, 2), peak_gb=peak_gb(), **extra)
    rec.add(**row)
    return row


def parse_kw(items: list[str]) -> dict[str, Any]:
    """``KEY=JSON`` command-line items as keyword arguments."""
    return {k: json.loads(v) for k, v in (item.split("=", 1) for item in items)}


def make_hybrid(args: argparse.Namespace, dm: JetDataModule, model: str | None = None, **kw: Any) -> HybridClassifier:
    torch.manual_seed(0)
    kw = {**parse_kw(args.hybrid_kw), **kw}
    clf = HybridClassifier.from_settings(model=model or args.model, quantization=args.quantization, dtype=args.dtype,
                           lora=args.lora, n_soft_tokens=args.n_soft_tokens, **kw).to(DEVICE)
    clf.normalizer, clf.feature_set = dm.normalizer, dm.feature_set
    clf.build(dm.n_features)
    return clf


def make_text(args: argparse.Namespace, **kw: Any) -> TextPromptClassifier:
    torch.manual_seed(0)
    return TextPromptClassifier.from_settings(model=args.text_model or args.model, quantization=args.quantization, dtype=args.dtype,
                                lora=args.lora, **kw).to(DEVICE)


def free(*models: Any) -> None:
    for m in models:
        del m
    reset_memory()


# ---------------------------------------------------------------- sections

def section_hybrid(args, dm, rec) -> None:
    clf = make_hybrid(args, dm)
    params = nonembedding_params(clf)
    lm = clf.net.llm.get_base_model() if hasattr(clf.net.llm, "get_base_model") else clf.net.llm
    attn = getattr(lm.config, "_attn_implementation", "?")
    print(f"hybrid: {params / 1e6:.1f} M non-embedding parameters, attention '{attn}', sequence "
          f"{clf.net.sequence_length} tokens (prefix {len(clf.net.prefix_ids)}, soft {args.n_soft_tokens}, question "
          f"{len(clf.net.suffix_ids)})", flush=True)
    for b in args.hybrid_batches:
        run_measure(rec, "hybrid", "hybrid", clf, sample_batches(dm, b, args.steps + WARMUP), params, attention=attn,
                    autocast=args.autocast)
    for b in args.hybrid_score_batches:
        run_scoring(rec, "hybrid", "hybrid (scoring only)", clf, sample_batches(dm, b, args.steps + WARMUP), params)
    free(clf)


def section_text(args, dm, rec) -> None:
    clf = make_text(args)
    params = nonembedding_params(clf)
    for b in args.text_batches:
        run_measure(rec, "text", f"text ({args.formatter})", clf, sample_batches(dm, b, args.steps + WARMUP), params,
                    autocast=args.autocast)
    for b in args.text_score_batches:
        run_scoring(rec, "text", f"text ({args.formatter}, scoring only)", clf, sample_batches(dm, b, args.steps + WARMUP),
                    params)
    free(clf)


def section_variants(args, dm, rec) -> None:
    b = args.variant_batch
    batches = sample_batches(dm, b, args.steps + WARMUP)
    clf = make_hybrid(args, dm)
    params = nonembedding_params(clf)
    run_measure(rec, "variants", "hybrid baseline (repeat)", clf, batches, params)
    clf.net.set_runtime(clf.net.runtime.replace(cache_prefix=False))
    run_measure(rec, "variants", "hybrid no cached prefix", clf, batches, params)
    clf.net.set_runtime(clf.net.runtime.replace(cache_prefix=True))
    run_measure(rec, "variants", "hybrid bf16 autocast", clf, batches, params, autocast=True)
    free(clf)
    clf = make_hybrid(args, dm, lora_dropout=0.0)
    run_measure(rec, "variants", "hybrid LoRA dropout 0", clf, batches, params)
    run_measure(rec, "variants", "hybrid dropout0+autocast", clf, batches, params, autocast=True)
    free(clf)
    # the text baseline formats numbers from the batch: from GPU tensors every number is a host sync (the
    # formatter called directly, as TextPromptClassifier.prompts did before it moved the fields to the CPU once)
    tb = args.text_batches[-1]
    text = make_text(args)
    tbatches = sample_batches(dm, tb, args.steps + WARMUP)
    gpu = [{k: v.to(text.device) for k, v in x.items()} for x in tbatches]
    t0 = time.perf_counter()
    for x in gpu:
        [text.net.format_event(x, i) for i in range(tb)]
    sync()
    on_gpu = (time.perf_counter() - t0) / len(gpu)
    t0 = time.perf_counter()
    for x in gpu:
        text.net.prompts(x)
    on_cpu = (time.perf_counter() - t0) / len(gpu)
    rec.add(section="variants", name="text prompt formatting", batch=tb, format_ms_gpu_tensors=1e3 * on_gpu,
            format_ms_prompts=1e3 * on_cpu)
    print(f"  text formatting per batch of {tb}: {1e3 * on_gpu:.1f} ms number by number from GPU tensors, "
          f"{1e3 * on_cpu:.1f} ms through prompts() (fields copied to the CPU once)", flush=True)
    free(text)


def _kernel_stats(prof: Any) -> tuple[int, float]:
    """(kernels, total kernel µs) of a profile."""
    from torch.autograd import DeviceType

    n, us = 0, 0.0
    for e in prof.events():
        if getattr(e, "device_type", None) == DeviceType.CUDA:
            n += 1
            us += e.device_time_total if hasattr(e, "device_time_total") else e.cuda_time_total
    return n, us


def section_profile(args, dm, rec, out_dir: Path | None) -> None:
    from torch.profiler import ProfilerActivity, profile

    b = args.variant_batch
    batches = [{k: v.to(DEVICE) for k, v in x.items()} for x in sample_batches(dm, b, 4)]
    kw = parse_kw(args.profile_kw)
    tag = "".join(f"_{k}-{v}" for k, v in kw.items()) + ("_dense" if args.profile_dense else "")
    clf = make_hybrid(args, dm, **kw)
    opt = torch.optim.AdamW([p for p in clf.parameters() if p.requires_grad], lr=1e-5)
    if args.profile_dense:
        clf.eval()
        clf.densify_for_inference()
    autocast = torch.autocast(DEVICE, dtype=torch.bfloat16, enabled=not kw.get("upcast_frozen", True))

    def train_step(x):
        with autocast:
            loss = clf.loss(x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def score_step(x):
        with torch.no_grad(), autocast:
            clf.score(x)

    steps = (("score", score_step),) if args.profile_dense else (("train", train_step), ("score", score_step))
    for kind, step in steps:
        clf.train(kind == "train")
        step(batches[0])
        sync()
        t0 = time.perf_counter()
        for x in batches[1:]:
            step(x)
        sync()
        wall = (time.perf_counter() - t0) / 3
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            for x in batches[1:]:
                step(x)
            sync()
        n, us = _kernel_stats(prof)
        busy = us / 3 / 1e6 / wall
        rec.add(section="profile", name=f"hybrid {kind} step{tag}", batch=b, kernels_per_step=n / 3,
                gpu_kernel_ms_per_step=us / 3 / 1e3, wall_ms_per_step=wall * 1e3, gpu_busy=busy)
        print(f"  hybrid{tag} {kind} batch {b}: {n / 3:.0f} kernels/step, GPU kernel time {us / 3 / 1e3:.1f} ms of "
              f"{wall * 1e3:.1f} ms wall per step (busy {busy:.0%})", flush=True)
        sort = "self_cuda_time_total"
        try:
            table = prof.key_averages().table(sort_by="self_device_time_total", row_limit=18)
        except Exception:  # older torch
            table = prof.key_averages().table(sort_by=sort, row_limit=18)
        if out_dir:
            (out_dir / f"profile_hybrid_{kind}_b{b}{tag}.txt").write_text(table)
        print("\n".join(table.splitlines()[:args.profile_rows]), flush=True)
    free(clf)


def graph_scoring(clf: Any, feats: list[torch.Tensor]) -> tuple[float, float]:
    """Events/s of scoring ``feats[1:]`` replayed from one captured CUDA graph, and the largest logit difference
    to the eager forward (capture can fail: host syncs inside the forward, non-capturable kernels)."""
    static = feats[0].clone()
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s), torch.no_grad():
        for _ in range(3):
            clf(static)
    torch.cuda.current_stream().wait_stream(s)
    graph = torch.cuda.CUDAGraph()
    with torch.no_grad(), torch.cuda.graph(graph):
        out = clf(static)
    static.copy_(feats[1])
    graph.replay()
    sync()
    with torch.no_grad():
        ref = clf(feats[1])
    err = float((out - ref).abs().max())
    n, seconds = 0, 0.0
    for f in feats[1:]:
        sync()
        t0 = time.perf_counter()
        static.copy_(f)
        graph.replay()
        sync()
        n, seconds = n + len(f), seconds + time.perf_counter() - t0
    del graph
    return n / seconds, err


def record_graph(rec, section: str, name: str, clf: Any, feats: list[torch.Tensor], params: int) -> bool:
    b = len(feats[0])
    try:
        ev, err = graph_scoring(clf, feats)
    except Exception as exc:
        rec.add(section=section, name=name, batch=b, error=f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
        return False
    ts = processed_tokens(clf, {"label": feats[0]}, False)
    rec.add(section=section, name=name, batch=b, tokens_score=ts, score_ev_s=ev, score_tok_s=ev * ts,
            score_mfu=rec.mfu(ev, ts, params, 2), peak_gb=peak_gb(), max_abs_diff=err)
    return True


def section_cudagraph(args, dm, rec) -> None:
    clf = make_hybrid(args, dm)
    params = nonembedding_params(clf)
    clf.eval()
    for b in args.hybrid_score_batches:
        feats = [x["features"].to("cuda") for x in sample_batches(dm, b, args.steps + WARMUP)]
        if not record_graph(rec, "cudagraph", "hybrid scoring, CUDA graph", clf, feats, params):
            break
    free(clf)


def section_dense(args, dm, rec) -> None:
    """Scoring with the 4-bit base + LoRA as trained vs densified for inference (base dequantized once, LoRA
    merged: ``densify_for_inference``), same weights, same batches; then the dense model from a CUDA graph."""
    clf = make_hybrid(args, dm)
    params = nonembedding_params(clf)
    clf.eval()
    torch.manual_seed(1)
    with torch.no_grad():  # LoRA B starts at zero: make the adapter non-trivial so the merge is exercised
        for name, p in clf.net.llm.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.02)
    sets = {b: sample_batches(dm, b, args.steps + WARMUP) for b in args.hybrid_score_batches}
    probe = sets[min(sets)][0]["features"].to(DEVICE)
    with torch.no_grad():
        before = clf(probe).float()
    for batches in sets.values():
        run_scoring(rec, "dense", "hybrid scoring, 4-bit + LoRA", clf, batches, params)
    clf.densify_for_inference()
    with torch.no_grad():
        diff = float((clf(probe).float() - before).abs().max())
    for batches in sets.values():
        run_scoring(rec, "dense", "hybrid scoring, dense merged", clf, batches, params, max_abs_logit_diff=diff)
    for batches in sets.values():
        feats = [x["features"].to(DEVICE) for x in batches]
        record_graph(rec, "dense", "hybrid scoring, dense merged + CUDA graph", clf, feats, params)
    free(clf)


def compile_counts() -> str:
    c = torch._dynamo.utils.counters
    return f"graphs {c['stats'].get('unique_graphs', 0)}, recompiles {sum(c['recompiles'].values())}"


def first_calls(clf: HybridClassifier, batch: dict[str, torch.Tensor], train: bool = True) -> float:
    """Seconds of one training step's forward+backward and one scoring call: where compilation happens."""
    feats = batch["features"].to(DEVICE)
    sync()
    t0 = time.perf_counter()
    if train:
        clf.train()
        with torch.autocast(DEVICE, dtype=torch.bfloat16):
            clf(feats).float().sum().backward()
        clf.zero_grad(set_to_none=True)
    clf.eval()
    with torch.no_grad(), torch.autocast(DEVICE, dtype=torch.bfloat16, enabled=train):
        clf(feats)
    sync()
    return time.perf_counter() - t0


#: the prompt's question around the soft tokens (no suffix: the product's default): ``-middle`` the event inside
#: the question (the default before 2026-11-22's third session), ``-qfirst`` only the chat template's closing tokens
#: after the event, ``-last`` (no slot) nothing after it
PROMPT_VARIANTS: dict[str, dict[str, Any]] = {
    "": {}, "-middle": {"question": "Event: <<EVENT>>\nSignal or background?"},
    "-qfirst": {"question": "Signal or background? Event: <<EVENT>>"}, "-last": {"question": "Signal or background?"},
}
_EXECUTION_VARIANTS: dict[str, dict[str, Any]] = {
    "event-eager": {"cache_prefix": False, "torch_compile": False},
    "event-compiled": {"cache_prefix": False, "torch_compile": True},
    "shared-eager": {"cache_prefix": True, "torch_compile": False, "prefix_attention": "matmul"},
    "shared-compiled": {"cache_prefix": True, "torch_compile": True, "prefix_attention": "matmul"},
    "shared-flex": {"cache_prefix": True, "torch_compile": True, "prefix_attention": "flex"},
    "shared-auto": {"cache_prefix": True, "torch_compile": True, "prefix_attention": "auto"},
}
#: compile-section variants: HybridClassifier arguments (prefix per event or shared, eager or compiled, attention,
#: prompt), e.g. ``shared-flex-qfirst``
COMPILE_VARIANTS: dict[str, dict[str, Any]] = {
    name + suffix: {**kw, **prompt}
    for name, kw in _EXECUTION_VARIANTS.items() for suffix, prompt in PROMPT_VARIANTS.items()
}


def section_compile(args, dm, rec) -> None:
    """Eager vs compiled (``torch_compile``: each decoder layer), prefix per event vs shared (``cache_prefix``):
    training and scoring with the GPU product settings (bf16 frozen base, bf16 autocast) at ``--compile-batches``;
    then dense scoring at ``--hybrid-score-batches``."""
    chosen = {v: COMPILE_VARIANTS[v] for v in args.compile_variants}
    for variant, kw in chosen.items():
        torch._dynamo.reset()
        torch._dynamo.utils.counters.clear()
        clf = make_hybrid(args, dm, upcast_frozen=False, lora_dropout=0.0, cuda_graphs=args.cuda_graphs, **kw)
        params = nonembedding_params(clf)
        for b in args.compile_batches:
            try:
                batches = sample_batches(dm, b, args.steps + WARMUP)
                first = first_calls(clf, batches[0])
                run_measure(rec, "compile", variant, clf, batches, params, autocast=True, first_calls_s=first,
                            dynamo=compile_counts())
                if args.pipelined:
                    run_measure(rec, "compile", variant + " pipelined", clf, batches, params, autocast=True,
                                pipelined=True)
            except Exception as exc:
                rec.add(section="compile", name=variant, batch=b, error=f"{type(exc).__name__}: {str(exc)[:300]}")
                break
        free(clf)
    for variant, kw in chosen.items():
        if variant == "event-eager":
            continue
        torch._dynamo.reset()
        torch._dynamo.utils.counters.clear()
        clf = make_hybrid(args, dm, upcast_frozen=False, **kw)
        params = nonembedding_params(clf)
        clf.eval()
        clf.densify_for_inference()
        for b in args.hybrid_score_batches:
            try:
                batches = sample_batches(dm, b, args.steps + WARMUP)
                first = first_calls(clf, batches[0], train=False)
                run_scoring(rec, "compile", f"dense {variant}", clf, batches, params, first_calls_s=first,
                            dynamo=compile_counts())
            except Exception as exc:
                rec.add(section="compile", name=f"dense {variant}", batch=b,
                        error=f"{type(exc).__name__}: {str(exc)[:300]}")
                break
        free(clf)


def section_bf16base(args, dm, rec) -> None:
    """The frozen base kept in bf16: peft's k-bit preparation upcasts norms and embeddings to fp32, which makes the
    residual stream, attention and the LoRA products fp32 (profile: fp32 attention and GEMM kernels, casts)."""
    clf = make_hybrid(args, dm)
    params = nonembedding_params(clf)
    for p in clf.net.llm.parameters():
        if not p.requires_grad and p.dtype == torch.float32:
            p.data = p.data.to(torch.bfloat16)
    for b in (args.variant_batch, 4096):
        batches = sample_batches(dm, b, args.steps + WARMUP)
        run_measure(rec, "bf16base", "hybrid bf16 base", clf, batches, params)
        run_measure(rec, "bf16base", "hybrid bf16 base+autocast", clf, batches, params, autocast=True)
    for b in args.hybrid_score_batches:
        run_scoring(rec, "bf16base", "hybrid bf16 base (scoring)", clf, sample_batches(dm, b, args.steps + WARMUP), params)
    free(clf)


def section_llama3b(args, dm, rec) -> None:
    if not args.llama3b:
        print("llama3b: no --llama3b model directory given, skipped")
        return
    reset_memory()
    t0 = time.perf_counter()
    clf = make_hybrid(args, dm, model=args.llama3b)
    load_s = time.perf_counter() - t0
    weights_gb = torch.cuda.memory_allocated() / 1e9
    params = nonembedding_params(clf)
    print(f"llama3b: loaded in {load_s:.0f} s, {params / 1e9:.2f} B non-embedding parameters, "
          f"{weights_gb:.2f} GB allocated after load", flush=True)
    for gc_on in (False, True):
        if gc_on:
            from hybridjet.llm.backbone import enable_checkpointing

            enable_checkpointing(clf.net.llm)
        try:
            run_measure(rec, "llama3b", "hybrid Llama-3.2-3B-shaped" + (" +ckpt" if gc_on else ""), clf,
                        sample_batches(dm, args.llama3b_batch, args.steps + WARMUP), params, weights_gb=weights_gb,
                        gradient_checkpointing=gc_on)
        except torch.OutOfMemoryError as exc:
            rec.add(section="llama3b", name="hybrid Llama-3.2-3B-shaped", batch=args.llama3b_batch, error=str(exc)[:200])
        if not args.llama3b_checkpointing:
            break
    free(clf)


def main() -> None:
    global WARMUP
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data/demo/jets.h5")
    parser.add_argument("--model", default="smollm2", help="base LLM of both models (alias, HF dir or .gguf)")
    parser.add_argument("--text-model", default=None, help="base LLM of the text baseline (default: --model)")
    parser.add_argument("--quantization", default="nf4")
    parser.add_argument("--dtype", default="bf16")
    parser.add_argument("--lora", default="attn")
    parser.add_argument("--n-soft-tokens", type=int, default=8)
    parser.add_argument("--formatter", default="compact")
    parser.add_argument("--hybrid-batches", type=int, nargs="*", default=[256, 1024, 4096])
    parser.add_argument("--hybrid-score-batches", type=int, nargs="*", default=[4096, 16384])
    parser.add_argument("--text-batches", type=int, nargs="*", default=[64, 256])
    parser.add_argument("--text-score-batches", type=int, nargs="*", default=[512])
    parser.add_argument("--variant-batch", type=int, default=1024)
    parser.add_argument("--compile-batches", type=int, nargs="*", default=[1024, 4096])
    parser.add_argument("--compile-variants", nargs="+", default=["event-eager", "event-compiled", "shared-eager",
                                                                   "shared-compiled", "shared-flex"],
                        choices=list(COMPILE_VARIANTS), metavar="VARIANT",
                        help="compile section: " + ", ".join(COMPILE_VARIANTS))
    parser.add_argument("--pipelined", action="store_true",
                        help="compile section: also time the steps with one synchronisation for all of them")
    parser.add_argument("--cuda-graphs", default=None, type=json.loads, choices=[None, True, False],
                        help="compile section: the hybrid's cuda_graphs (null = product default, true, false)")
    parser.add_argument("--autocast", action="store_true",
                        help="hybrid and text sections: train under bf16 autocast (as Lightning's bf16-mixed does)")
    parser.add_argument("--steps", type=int, default=5, help="timed batches per measurement")
    parser.add_argument("--warmup", type=int, default=WARMUP, help="untimed batches before each measurement")
    parser.add_argument("--hybrid-kw", nargs="*", default=[], metavar="KEY=JSON",
                        help='HybridClassifier arguments of every hybrid, e.g. question=\'"Signal or background? '
                             'Event: <<EVENT>>"\'')
    parser.add_argument("--profile-kw", nargs="*", default=[], metavar="KEY=JSON",
                        help="HybridClassifier arguments of the profiled model, e.g. torch_compile=true "
                             "upcast_frozen=false (then under bf16 autocast)")
    parser.add_argument("--profile-dense", action="store_true", help="profile dense scoring only")
    parser.add_argument("--profile-rows", type=int, default=14)
    parser.add_argument("--llama3b", default=None, help="HF directory of a Llama-3.2-3B-shaped model")
    parser.add_argument("--llama3b-batch", type=int, default=64)
    parser.add_argument("--llama3b-checkpointing", action="store_true", help="also with gradient checkpointing")
    parser.add_argument("--sections", nargs="+", default=["hybrid", "text", "variants", "profile", "llama3b"],
                        choices=SECTIONS)
    parser.add_argument("--peak-tflops", type=float, default=None)
    parser.add_argument("--out-json", default=None, help="append results as JSON lines here")
    parser.add_argument("--out-dir", default=None, help="profiler tables go here")
    args = parser.parse_args()
    WARMUP = args.warmup

    out_dir = Path(args.out_dir) if args.out_dir else None
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
    rec = Recorder(args.out_json, peak_flops(args.peak_tflops))
    import transformers

    print(f"device {device_name()}, torch {torch.__version__}, transformers {transformers.__version__}, "
          f"peak {rec.peak / 1e12:.0f} TFLOP/s bf16, model {args.model}, quantization {args.quantization}, "
          f"dtype {args.dtype}, lora {args.lora}, CPU affinity {len(os.sched_getaffinity(0))} cores", flush=True)
    dm = JetDataModule(args.data, batch_size=64)
    dm.setup("fit")
    started = time.perf_counter()
    for name in SECTIONS:
        if name not in args.sections:
            continue
        t0 = time.perf_counter()
        print(f"\n== {name}", flush=True)
        if name == "profile":
            section_profile(args, dm, rec, out_dir)
        else:
            globals()[f"section_{name}"](args, dm, rec)
        print(f"[{name}: {time.perf_counter() - t0:.0f} s]", flush=True)
    print(f"\n== summary ({time.perf_counter() - started:.0f} s)")
    for r in rec.rows:
        if "error" in r:
            print(f"{r['section']:9s} {r['name']:26s} batch {r.get('batch', 0):6d}  ERROR {r['error']}")
        elif "train_ev_s" in r or "score_ev_s" in r:
            print(Recorder.line(r))
    best = {k: max((r.get(f"{k}_ev_s", 0.0) for r in rec.rows if r["section"] == s), default=0.0)
            for k, s in (("train", "hybrid"), ("score", "hybrid"))}
    text = {k: max((r.get(f"{k}_ev_s", 0.0) for r in rec.rows if r["section"] == "text"), default=0.0)
            for k in ("train", "score")}
    if all(text.values()) and all(best.values()):
        print(f"best hybrid/best text: train x{best['train'] / text['train']:.1f}, "
              f"score x{best['score'] / text['score']:.1f}")


if __name__ == "__main__":
    main()
