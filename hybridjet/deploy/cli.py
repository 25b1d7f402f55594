"""``hybridjet export-onnx``: a finished run as one ONNX model (heavy imports inside the handler)."""

from __future__ import annotations

import argparse
from typing import Any

_EPILOG = """examples:
  hybridjet export-onnx runs/demo/gbdt --out gbdt.onnx
  hybridjet export-onnx runs/demo/hybrid --out hybrid.onnx      # the LLM dense, float32, LoRA merged
The model takes raw event features, float32 [N, F] (the run's feature set, hybridjet.data.features.event_features;
their names and order are in the model's metadata, hybridjet.features), and gives the signal probability [N]. The
trees, the encoder-only ablation and the hybrid export; the text baseline does not (ONNX has no tokenizer)."""


def register(subparsers: Any) -> None:
    """Add ``hybridjet export-onnx``."""
    p = subparsers.add_parser(
        "export-onnx", help="Export a finished run (trees, ablation, hybrid) as an ONNX model",
        description="Export a finished run as one ONNX model, its normalisation inside, and check it against the "
                    "run with onnxruntime.", epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", metavar="RUN_DIR", help="a finished hybridjet run directory (gbdt, ablation, hybrid)")
    p.add_argument("--out", required=True, metavar="FILE.onnx", help="the ONNX file to write")
    p.add_argument("--model", default=None, help="base LLM path, when the run's recorded one is not on this machine")
    p.set_defaults(handler=_export)


def _export(args: argparse.Namespace) -> int:
    from hybridjet.deploy.onnx_export import export_onnx
    from hybridjet.quiet import quiet_third_party

    quiet_third_party(progress_bars=False)
    done = export_onnx(args.run_dir, args.out, model=args.model)
    print(f"exported {args.run_dir} ({done.kind}, {len(done.features)} {done.feature_set} features) -> {done.path}")
    if done.max_abs_diff is not None:
        print(f"onnxruntime reproduces the run's probabilities to {done.max_abs_diff:.1e} on 256 sampled inputs")
    return 0
