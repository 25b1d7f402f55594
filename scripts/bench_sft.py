"""Text SFT throughput and memory: hybridjet's training path against the plain transformers + peft loop a user would
otherwise write (the seeds' setup), on the same records, model, LoRA and batches in the same order, side by side.

    python scripts/bench_sft.py --model smollm2=/root/models/smollm2-random --batch 32 [--model llama3b=... --batch 8]
        [--systems plain hybridjet] [--steps 8] [--warmup 3] [--max-tokens 2048] [--out results.json]

Each (model, system) runs in a fresh process (the first model trained in a process runs slower; a fresh process per
row and untimed warm-up steps keep compilation and allocator growth out of the timed window). Both systems: the base
in NF4 with double quantization (bf16 compute) on CUDA, LoRA r16 on every linear layer, AdamW, bf16 autocast on a
bf16 GPU; records of uniformly 100 to ``--max-tokens`` tokens, the first fifth of each a prompt (not learned).

- ``plain``: right-padded batches, ``model(input_ids, attention_mask, labels)`` with transformers' own loss and
  SDPA attention, ``loss.backward()``, ``optimizer.step()`` — the seeds' notebooks' loop.
- ``trl-packed``: TRL's ``SFTTrainer`` with ``packing=True`` (best-fit decreasing, padding-free rows of
  ``--max-tokens``), completion-only loss, the same LoRA and learning rate (needs ``trl`` and ``datasets``:
  ``pip install trl==1.16.0``); TRL makes its own batches of packed rows.
- ``unsloth`` / ``unsloth-packed``: Unsloth's ``FastLanguageModel`` in 4-bit (``load_in_4bit``), LoRA r16 on the
  seven projections (alpha 16, dropout 0: its fused path; ``--lora-dropout`` sets every row's) and its ``SFTTrainer`` as its notebooks set it up
  (``adamw_8bit``, its gradient checkpointing — ``"unsloth"``, offloaded, unless ``--unsloth-checkpointing`` says
  otherwise —, padding-free batches by default; ``-packed``: ``packing=True``), labels masked on the prompt. It runs
  offline (``HF_HUB_OFFLINE``, no statistics) from the folder ``UNSLOTH_SITE`` names
  (``scripts/device/prepare_unsloth.sh``: its pins, trl 1.15 and datasets < 5, are not TRL's row's), in a process
  that never imports hybridjet's trainer first; a model that fell back to 16 bits is refused.
- ``hybridjet``: :class:`hybridjet.text.sft.TextSFT` under a Lightning ``Trainer`` with its defaults (packed rows
  where exact, the chunked loss, token-weighted steps), fed the same batches, its decoder layers not compiled;
  ``hybridjet-compiled`` the same with ``torch_compile`` (its decoder layers compiled: the default on CUDA).

Prints per row: learned-record tokens/s (non-padding tokens), peak GPU memory, padding fraction, MFU (model FLOPs
per token 4N + attention, N the non-embedding parameters: forward 2N, backward to the activations 2N, the frozen
weights get no gradient; over 989 TFLOP/s bf16 dense for an H200), and the ratios hybridjet/plain.
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
from typing import Any

import memory_peak
import numpy as np

PEAK_FLOPS = {"H200": 989e12, "H100": 989e12}


def make_records(tokenizer: Any, n: int, min_tokens: int, max_tokens: int, seed: int) -> list[Any]:
    """``n`` encoded records of uniformly min..max tokens (random ids of the tokenizer's ordinary vocabulary), the
    first fifth of each a prompt whose labels are not learned."""
    from hybridjet.text.dataset import IGNORE_INDEX, Encoded

    rng = np.random.default_rng(seed)
    special = set(tokenizer.all_special_ids)
    vocab = np.array([i for i in range(min(tokenizer.vocab_size, 49152)) if i not in special])
    records = []
    for i in range(n):
        length = int(rng.integers(min_tokens, max_tokens + 1))
        ids = rng.choice(vocab, size=length).tolist()
        prompt = length // 5
        records.append(Encoded(ids, [IGNORE_INDEX] * prompt + ids[prompt:], f"r{i}"))
    return records


def file_records(tokenizer: Any, path: str, n: int, max_tokens: int) -> list[Any]:
    """``n`` records of a text file (completion format: the whole text learned), cycled when the file has fewer."""
    from hybridjet.text.dataset import encode_examples
    from hybridjet.text.formats import read_examples

    examples, _ = read_examples(path, format="completion")
    encoded = encode_examples(examples, tokenizer, max_length=max_tokens)
    return [encoded[i % len(encoded)] for i in range(n)]


def batch_order(n: int, batch: int, seed: int) -> list[np.ndarray]:
    """The batches both systems train on, in order (hybridjet's own epoch-0 order)."""
    from hybridjet.data.batches import EpochBatches

    return EpochBatches(n, batch, seed, lambda rows: rows).epoch_batches(0)


def nonembedding_params(model: Any) -> int:
    """Parameters of the transformer layers, from the config (NF4 packs two values per byte)."""
    c = model.config
    head = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    attn = c.hidden_size * head * (2 * c.num_attention_heads + 2 * c.num_key_value_heads)
    return c.num_hidden_layers * (attn + 3 * c.hidden_size * c.intermediate_size)


def worker(args: argparse.Namespace) -> dict[str, Any]:
    """One (model, system) row, in this process."""
    if args.system.startswith("unsloth"):
        _import_unsloth()  # before transformers, trl, peft: it patches them on import
    import torch

    from hybridjet.llm.backbone import load_tokenizer

    tokenizer = load_tokenizer(args.model_path)
    n = (args.warmup + args.steps) * args.batch
    records = (file_records(tokenizer, args.data, n, args.max_tokens) if args.data
               else make_records(tokenizer, n, args.min_tokens, args.max_tokens, args.seed))
    order = batch_order(n, args.batch, args.seed)
    torch.cuda.reset_peak_memory_stats() if torch.cuda.is_available() else None
    reporting = bool(args.memory_report) and torch.cuda.is_available()
    if reporting:
        memory_peak.start_recording()
    run = {"plain": run_plain, "trl-packed": run_trl, "unsloth": run_unsloth,
           "unsloth-packed": run_unsloth}.get(args.system, run_hybridjet)
    times, tokens, padding, model = run(args, records, order)
    timed = slice(args.warmup, None)
    seconds, n_tokens = float(np.sum(times[timed])), float(np.sum(tokens[timed]))
    peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan")
    if reporting:
        memory_peak.write_report(f"{args.memory_report}.{args.system}.txt")
    params = nonembedding_params(model)
    c = model.config
    mean_len = float(np.mean([len(r) for r in records]))
    flops_per_token = 4 * params + 4 * c.num_hidden_layers * c.hidden_size * mean_len  # attention: QK^T and AV, fwd+bwd
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    peak_flops = next((v for k, v in PEAK_FLOPS.items() if k in device), None)
    rate = n_tokens / seconds
    return {"model": args.model_name, "system": args.system, "batch": args.batch, "tokens_per_s": rate,
            "peak_gib": peak, "padding": float(np.mean(padding[timed])), "step_s": seconds / args.steps,
            "mfu": rate * flops_per_token / peak_flops if peak_flops else None, "device": device,
            "steps": args.steps, "warmup": args.warmup, "mean_record_tokens": mean_len,
            "packed": getattr(args, "packed", False), "attention": args.attention,
            "losses": getattr(args, "losses", [])}


def dropout(args: argparse.Namespace, default: float = 0.05) -> float:
    """The LoRA dropout of a row: ``--lora-dropout`` for every system when given, else the system's own (peft's
    0.05 for plain, TRL and hybridjet; 0 for Unsloth, its fused path)."""
    return default if args.lora_dropout is None else args.lora_dropout


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def run_plain(args: argparse.Namespace, records: list[Any], order: list[np.ndarray]) -> tuple[Any, Any, Any, Any]:
    """The seeds' loop: padded batches, transformers' loss, backward, AdamW."""
    import torch

    from hybridjet.llm.backbone import load_backbone
    from hybridjet.text.dataset import SFTCollator, pad_token_id

    bb = load_backbone(args.model_path, quantization=args.quantization, lora={"preset": "all-linear", "r": 16,
                                                                               "alpha": 32, "dropout": dropout(args)})
    model = bb.model
    model.train()
    collate = SFTCollator(pad_token_id(bb.tokenizer))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr, weight_decay=0.0)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=torch.cuda.is_available())
    times, tokens, padding = [], [], []
    args.losses = []
    for rows in order:
        batch = collate([records[i] for i in rows])
        tokens.append(int(batch["attention_mask"].sum()))
        padding.append(1.0 - float(batch["attention_mask"].float().mean()))
        batch = {k: v.to(bb.device) for k, v in batch.items()}
        _sync()
        start = time.perf_counter()
        with autocast:
            loss = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                         labels=batch["labels"]).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        _sync()
        times.append(time.perf_counter() - start)
        args.losses.append(float(loss))
    return np.array(times), np.array(tokens), np.array(padding), bb.causal_lm


def run_hybridjet(args: argparse.Namespace, records: list[Any], order: list[np.ndarray]) -> tuple[Any, Any, Any, Any]:
    """TextSFT under a Lightning Trainer with its defaults, on the same batches in the same order."""
    import lightning as L
    import torch

    from hybridjet.llm.lora import LoraSpec
    from hybridjet.runtime import Runtime
    from hybridjet.text.datamodule import LoaderSettings, TextDataModule
    from hybridjet.text.dataset import SFTDataset
    from hybridjet.text.packing import padding_fraction
    from hybridjet.text.sft import TextSFT
    from hybridjet.train.callbacks import default_precision
    from hybridjet.train.optim import OptimizerSettings

    profiler = StepProfiler(args)

    class Timer(L.Callback):
        def __init__(self) -> None:
            self.times: list[float] = []
            self.losses: list[float] = []
            self.tokens: list[int] = []
            self.padding: list[float] = []

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            self.tokens.append(int(batch["n_tokens"]) if "n_tokens" in batch else int(batch["attention_mask"].sum()))
            self.padding.append(padding_fraction(batch))
            profiler.begin()
            _sync()
            self.start = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            _sync()
            self.times.append(time.perf_counter() - self.start)
            profiler.end()
            self.losses.append(float(trainer.callback_metrics.get("train_loss", float("nan"))))

    class FixedOrder(TextDataModule):
        """The benchmark's batches, in its order (instead of the module's own permutation)."""

        def train_dataloader(self) -> Any:
            collate = self.collator("right")
            batches = [collate([records[i] for i in rows]) for rows in order]
            return torch.utils.data.DataLoader(batches, batch_size=None, collate_fn=lambda batch: batch)

    model = TextSFT(model=args.model_path, lora=LoraSpec("all-linear", r=16, alpha=32, dropout=dropout(args)),
                    runtime=Runtime(quantization=args.quantization, torch_compile=args.system == "hybridjet-compiled",
                                    gradient_checkpointing=args.checkpointing >= 1 or args.checkpointing,
                                    checkpoint_offload=args.checkpoint_offload, nf4_dequant=args.nf4_dequant),
                    optim=OptimizerSettings(optimizer=args.optimizer, lr=args.lr, warmup_steps=0,
                                            scheduler="constant"),
                    attention=args.attention or "auto")
    with tempfile.TemporaryDirectory() as tmp:
        dm = FixedOrder(train_path=os.path.join(tmp, "unused.jsonl"), batch_size=args.batch, val_ratio=0.0,
                        max_length=args.max_tokens, loading=LoaderSettings(
                            packing=None if args.packing else False, pack_tokens=args.pack_tokens))
        dm.datasets = {"train": SFTDataset(records)}
        timer = Timer()
        trainer = L.Trainer(max_steps=len(order), precision=default_precision(), limit_val_batches=0,
                            num_sanity_val_steps=0, logger=False, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False, callbacks=[timer],
                            default_root_dir=tmp)
        dm.attach_tokenizer(model.tokenizer)
        trainer.fit(model, datamodule=dm)
    args.packed, args.losses = dm.packs, timer.losses
    return np.array(timer.times), np.array(timer.tokens), np.array(timer.padding), model.backbone.causal_lm


def run_trl(args: argparse.Namespace, records: list[Any], order: list[np.ndarray]) -> tuple[Any, Any, Any, Any]:
    """TRL's ``SFTTrainer`` with packing (best-fit decreasing into rows of ``--max-tokens``, padding-free, as its
    documentation recommends), the same model, LoRA, learning rate and records, fed in the benchmark's order; TRL
    forms its own batches of ``--batch`` packed rows, so the records are given twice to fill ``len(order)`` steps."""
    import torch
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from hybridjet.llm.backbone import load_backbone
    from hybridjet.text.dataset import IGNORE_INDEX

    bb = load_backbone(args.model_path, quantization=args.quantization, lora={"preset": "all-linear", "r": 16,
                                                                               "alpha": 32, "dropout": dropout(args)})
    rows = [records[i] for _ in range(2) for batch in order for i in batch]
    data = Dataset.from_dict({"input_ids": [r.input_ids for r in rows],
                              "completion_mask": [[int(t != IGNORE_INDEX) for t in r.labels] for r in rows]})

    timer = step_timer()
    bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    with tempfile.TemporaryDirectory() as tmp:
        config = SFTConfig(output_dir=tmp, per_device_train_batch_size=args.batch, max_length=args.max_tokens,
                           packing=True, completion_only_loss=True, learning_rate=args.lr, weight_decay=0.0,
                           lr_scheduler_type="constant", warmup_steps=0, max_steps=len(order), logging_steps=1,
                           save_strategy="no", report_to="none", bf16=bf16, use_cpu=not torch.cuda.is_available(),
                           dataloader_num_workers=0, include_num_input_tokens_seen="non_padding",
                           gradient_checkpointing=False, disable_tqdm=True, seed=args.seed)
        trainer = SFTTrainer(model=bb.model, args=config, train_dataset=data, processing_class=bb.tokenizer,
                             callbacks=[timer])
        trainer.train()
    args.packed, args.losses = True, timer.losses
    return np.array(timer.times), np.array(timer.tokens), np.zeros(len(timer.times)), bb.causal_lm


class StepProfiler:
    """``torch.profiler`` over the timed steps (``--profile PREFIX``): the kernels that took the GPU's time, written
    as a table to ``PREFIX.<system>.txt`` after the last step (nothing without ``--profile``)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.prefix, self.system, self.warmup = args.profile, args.system, args.warmup
        self.total, self.step, self.profiler = args.warmup + args.steps, 0, None

    def begin(self) -> None:
        if self.prefix and self.step == self.warmup:
            import torch

            activities = [torch.profiler.ProfilerActivity.CPU]
            if torch.cuda.is_available():
                activities.append(torch.profiler.ProfilerActivity.CUDA)
            self.profiler = torch.profiler.profile(activities=activities)
            self.profiler.start()

    def end(self) -> None:
        self.step += 1
        if self.profiler is not None and self.step == self.total:
            self.profiler.stop()
            stats = self.profiler.key_averages()
            sorts = ["self_cuda_time_total", "self_cpu_time_total"] if "CUDA" in str(self.profiler.activities) \
                else ["self_cpu_time_total"]  # what the GPU ran, then what kept the host busy
            tables = [f"sorted by {k}\n" + stats.table(sort_by=k, row_limit=50, max_name_column_width=90) for k in sorts]
            Path(f"{self.prefix}.{self.system}.txt").write_text("\n".join(tables))
            self.profiler = None


def step_timer(profiler: StepProfiler | None = None) -> Any:
    """A transformers ``TrainerCallback`` timing each optimiser step (synchronised) and counting its non-padding input
    tokens and its logged loss: how the TRL and Unsloth rows are measured."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.times: list[float] = []
            self.tokens: list[int] = []
            self.losses: list[float] = []
            self.seen = 0

        def on_step_begin(self, targs, state, control, **kwargs) -> None:
            if profiler is not None:
                profiler.begin()
            _sync()
            self.start = time.perf_counter()

        def on_step_end(self, targs, state, control, **kwargs) -> None:
            _sync()
            self.times.append(time.perf_counter() - self.start)
            if profiler is not None:
                profiler.end()
            self.tokens.append(int(state.num_input_tokens_seen) - self.seen)
            self.seen = int(state.num_input_tokens_seen)

        def on_log(self, targs, state, control, logs=None, **kwargs) -> None:
            if logs and "loss" in logs:
                self.losses.append(float(logs["loss"]))

    return StepTimer()


UNSLOTH_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def _import_unsloth() -> None:
    """Import Unsloth offline, from ``UNSLOTH_SITE`` first on the path, its compiled cache in a temporary folder."""
    site = os.environ.get("UNSLOTH_SITE")
    if site:
        sys.path.insert(0, site)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("UNSLOTH_DISABLE_STATISTICS", "1")
    os.environ.setdefault("UNSLOTH_COMPILE_LOCATION", tempfile.mkdtemp(prefix="unsloth_cc_"))
    import unsloth  # noqa: F401


def run_unsloth(args: argparse.Namespace, records: list[Any], order: list[np.ndarray]) -> tuple[Any, Any, Any, Any]:
    """Unsloth's QLoRA as its notebooks set it up (see the module docstring), on the same records, in the
    benchmark's order (records given twice, as for TRL: its trainer forms its own batches)."""
    import bitsandbytes as bnb
    import torch
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer
    from unsloth import FastLanguageModel

    model, tokenizer = FastLanguageModel.from_pretrained(model_name=str(Path(args.model_path).resolve()),
                                                         max_seq_length=args.max_tokens, load_in_4bit=True,
                                                         dtype=torch.bfloat16)
    if not any(isinstance(m, bnb.nn.Linear4bit) for m in model.modules()):
        raise SystemExit("unsloth: the model did not load in 4 bits (bitsandbytes unavailable to Unsloth)")
    checkpointing = {"unsloth": "unsloth", "true": True, "false": False}[args.unsloth_checkpointing]
    model = FastLanguageModel.get_peft_model(model, r=16, lora_alpha=16, lora_dropout=dropout(args, 0.0), bias="none",
                                             target_modules=UNSLOTH_TARGETS, use_gradient_checkpointing=checkpointing,
                                             random_state=args.seed)
    rows = [records[i] for _ in range(2) for batch in order for i in batch]
    data = Dataset.from_dict({"input_ids": [r.input_ids for r in rows], "labels": [r.labels for r in rows]})
    timer = step_timer(StepProfiler(args))
    packing = args.system == "unsloth-packed"
    with tempfile.TemporaryDirectory() as tmp:
        config = SFTConfig(output_dir=tmp, per_device_train_batch_size=args.batch, gradient_accumulation_steps=1,
                           max_length=args.max_tokens, packing=packing, learning_rate=args.lr, optim="adamw_8bit",
                           weight_decay=0.0, lr_scheduler_type="constant", warmup_steps=0, max_steps=len(order),
                           logging_steps=1, save_strategy="no", report_to="none", bf16=True,
                           dataloader_num_workers=0, include_num_input_tokens_seen="non_padding",
                           disable_tqdm=True, seed=args.seed, dataset_num_proc=1)
        trainer = SFTTrainer(model=model, args=config, train_dataset=data, processing_class=tokenizer,
                             callbacks=[timer])
        trainer.train()
    args.packed, args.losses = packing, timer.losses
    return np.array(timer.times), np.array(timer.tokens), np.zeros(len(timer.times)), model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", action="append", required=True, help="NAME=PATH of a model directory (repeatable)")
    p.add_argument("--batch", type=int, action="append", required=True, help="batch size per model, in --model order")
    p.add_argument("--systems", nargs="+", default=["plain", "hybridjet"], choices=["plain", "hybridjet", "hybridjet-compiled", "trl-packed", "unsloth", "unsloth-packed"],
                   help="hybridjet-compiled: hybridjet with its decoder layers compiled (torch_compile); trl-packed: "
                        "TRL's SFTTrainer with packing (needs trl, datasets); unsloth, unsloth-packed: Unsloth's "
                        "trainer (UNSLOTH_SITE)")
    p.add_argument("--unsloth-checkpointing", choices=("unsloth", "true", "false"), default="unsloth",
                   help="Unsloth's use_gradient_checkpointing (default: its own default, offloaded 'unsloth')")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--max-tokens", type=int, default=2048)
    p.add_argument("--quantization", default="auto")
    p.add_argument("--checkpointing", type=float, default=0.0,
                   help="hybridjet with gradient checkpointing on this fraction of the layers (1 = all)")
    p.add_argument("--checkpoint-offload", action="store_true",
                   help="hybridjet's checkpointed layers' inputs in pinned host memory (runtime.checkpoint_offload)")
    p.add_argument("--nf4-dequant", default="bitsandbytes", choices=("bitsandbytes", "graph"),
                   help="hybridjet's NF4 dequantization (runtime.nf4_dequant; graph: fused into compiled layers)")
    p.add_argument("--optimizer", default="adamw", choices=("adamw", "adamw8bit"),
                   help="hybridjet's optimizer (Unsloth's rows use its adamw_8bit)")
    p.add_argument("--attention", default=None, help="hybridjet's attention implementation (default: its auto)")
    p.add_argument("--min-tokens", type=int, default=100, help="the shortest record (records: uniform min..max)")
    p.add_argument("--no-packing", dest="packing", action="store_false", help="hybridjet on padded rows")
    p.add_argument("--pack-tokens", type=int, default=None, help="hybridjet's packed row length (default max)")
    p.add_argument("--label", default="hybridjet", help="the name of the hybridjet row")
    p.add_argument("--data", default=None, help="real records: a text file (completion format) instead of random ids")
    p.add_argument("--lr", type=float, default=1e-4, help="both systems' learning rate")
    p.add_argument("--lora-dropout", type=float, default=None,
                   help="every system's LoRA dropout (default: each its own, 0.05; Unsloth 0)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="write the rows as JSON")
    p.add_argument("--profile", default=None, metavar="PREFIX",
                   help="profile the timed steps of the hybridjet and Unsloth rows: PREFIX.<system>.txt (the timing "
                        "then includes the profiler's cost)")
    p.add_argument("--memory-report", default=None, metavar="PREFIX",
                   help="write what is alive at each row's peak GPU memory, by where it was allocated, to "
                        "PREFIX.<system>.txt (records every allocation: the row's speed is not comparable)")
    p.add_argument("--worker", nargs=3, metavar=("NAME", "PATH", "SYSTEM"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        args.model_name, args.model_path, args.system = args.worker
        args.batch = args.batch[0]
        print("RESULT " + json.dumps(worker(args)), flush=True)
        return
    rows = []
    for spec, batch in zip(args.model, args.batch, strict=True):
        name, path = spec.split("=", 1)
        for system in args.systems:
            cmd = [sys.executable, __file__, "--model", spec, "--batch", str(batch), "--steps", str(args.steps),
                   "--warmup", str(args.warmup), "--max-tokens", str(args.max_tokens), "--lr", str(args.lr),
                   *(["--data", args.data] if args.data else []), "--min-tokens",
                   str(args.min_tokens), "--quantization",
                   args.quantization, "--seed", str(args.seed), "--worker", name, path, system,
                   "--checkpointing", str(args.checkpointing), "--unsloth-checkpointing", args.unsloth_checkpointing,
                   "--optimizer", args.optimizer, "--nf4-dequant", args.nf4_dequant,
                   *(["--lora-dropout", str(args.lora_dropout)] if args.lora_dropout is not None else []), *(["--checkpoint-offload"] if args.checkpoint_offload else []),
                   *(["--attention", args.attention] if args.attention else []),
                   *([] if args.packing else ["--no-packing"]),
                   *(["--pack-tokens", str(args.pack_tokens)] if args.pack_tokens else []),
                   *(["--profile", args.profile] if args.profile else []),
                   *(["--memory-report", args.memory_report] if args.memory_report else [])]
            done = subprocess.run(cmd, capture_output=True, text=True)
            lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
            if done.returncode != 0 or not lines:
                print(f"{name} {system}: failed\n{done.stderr[-3000:]}", flush=True)
                continue
            row = json.loads(lines[-1][7:])
            if system == "hybridjet":
                row["system"] = args.label
            rows.append(row)
            mfu = f"{100 * row['mfu']:.1f}%" if row["mfu"] is not None else "-"
            print(f"{name:10s} batch {batch:3d} {row['system']:18s}: {row['tokens_per_s']:10,.0f} tokens/s  peak "
                  f"{row['peak_gib']:6.2f} GiB  padding {100 * row['padding']:4.1f}%  MFU {mfu}  "
                  f"({row['step_s']:.3f} s/step, {row['device']})", flush=True)
        by = {r["system"]: r for r in rows if r["model"] == name}
        for faster, slower, label in ((args.label, "plain", f"{args.label}/plain"),
                                      ("hybridjet-compiled", args.label, f"compiled/{args.label}"),
                                      ("trl-packed", "plain", "trl-packed/plain"),
                                      (args.label, "trl-packed", f"{args.label}/trl-packed"),
                                      (args.label, "unsloth", f"{args.label}/unsloth"),
                                      (args.label, "unsloth-packed", f"{args.label}/unsloth-packed"),
                                      ("hybridjet-compiled", "unsloth", "compiled/unsloth"),
                                      ("hybridjet-compiled", "unsloth-packed", "compiled/unsloth-packed")):
            if faster in by and slower in by:
                speed = by[faster]["tokens_per_s"] / by[slower]["tokens_per_s"]
                memory = by[faster]["peak_gib"] / by[slower]["peak_gib"]
                print(f"{name:10s} {label}: x{speed:.2f} tokens/s at {100 * memory:.0f}% of the peak memory",
                      flush=True)
    curves = {r["system"]: r["losses"] for r in rows if r["losses"]}
    if len(curves) > 1:
        print("loss per step (mean over its learned tokens): " + "; ".join(
            f"{k} " + " ".join(f"{v:.3f}" for v in c) for k, c in curves.items()), flush=True)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
