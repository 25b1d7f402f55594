"""``hybridjet model prepare|info|export``: the LLM backbone from the command line (heavy imports lazily)."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``model`` command group."""
    model = subparsers.add_parser("model", help="LLM backbone: prepare the cached default, show info, export merges")
    sub = model.add_subparsers(dest="model_command", metavar="ACTION")
    model.set_defaults(handler=lambda args: (model.print_help(), 2)[1])

    prep = sub.add_parser("prepare", help="Convert the default GGUF (or a .gguf/dir) into the HF cache ahead of time")
    prep.add_argument("name", nargs="?", default="smollm2", help="model alias, .gguf file or HF dir (default smollm2)")
    prep.add_argument("--cache-dir", default=None, help="cache root (default $HYBRIDJET_CACHE or ~/.cache/hybridjet)")
    prep.add_argument("--rebuild", action="store_true", help="convert again even if the cache is valid")
    prep.set_defaults(handler=_prepare)

    info = sub.add_parser("info", help="Load a backbone and print parameters, trainable share and weight memory")
    info.add_argument("name", nargs="?", default="smollm2", help="model alias, .gguf file or HF dir")
    info.add_argument("--quantization", default="auto", choices=["auto", "nf4", "nf4-dq", "int8", "none"])
    info.add_argument("--lora", default=None, help="LoRA preset (qkv, attn, all-linear) or comma-separated modules")
    info.add_argument("--dtype", default=None, help="compute dtype: fp32, bf16, fp16 (default by device)")
    info.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda when available)")
    info.add_argument("--cache-dir", default=None)
    info.add_argument("--json", action="store_true", help="print JSON instead of a table")
    info.set_defaults(handler=_info)

    exp = sub.add_parser("export", help="Merge a LoRA adapter into an unquantized copy of its base and save it")
    exp.add_argument("--base", required=True, help="base model alias, .gguf file or HF dir")
    exp.add_argument("--adapter", required=True, help="adapter directory written by save_adapter")
    exp.add_argument("--out", required=True, help="output HF directory")
    exp.add_argument("--dtype", default="fp32", choices=["fp32", "bf16", "fp16"])
    exp.add_argument("--cache-dir", default=None)
    exp.set_defaults(handler=_export)


def _prepare(args: argparse.Namespace) -> int:
    from hybridjet.llm.resolve import resolve_model

    ident = resolve_model(args.name, cache_dir=args.cache_dir, rebuild=args.rebuild)
    print(ident.path)
    print(f"source {ident.source} sha256 {ident.sha256}")
    return 0


def _info(args: argparse.Namespace) -> int:
    from hybridjet.llm.backbone import load_backbone
    from hybridjet.llm.report import describe

    bb = load_backbone(
        args.name, quantization=args.quantization, lora=args.lora, dtype=args.dtype, device=args.device,
        cache_dir=args.cache_dir,
    )
    from hybridjet.text.packing import packing_is_exact

    report = describe(bb)
    exact, why = packing_is_exact(bb.model, bb.tokenizer)
    report.fast_paths["packed text rows (sft)"] = ("yes: " if exact else "no: ") + why
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.table())
    return 0


def _export(args: argparse.Namespace) -> int:
    from hybridjet.llm.adapters import merge_and_export

    out = merge_and_export(args.base, args.adapter, args.out, dtype=args.dtype, cache_dir=args.cache_dir)
    print(out)
    return 0
