#!/usr/bin/env python
"""Write a random-weight Hugging Face model directory of a given shape, for speed and memory benchmarks
(throughput and memory do not depend on the weight values).

    python scripts/device/make_random_model.py --shape smollm2 --tokenizer .stage/smollm2_cfg --out /root/models/smollm2-random
    python scripts/device/make_random_model.py --shape llama3b --tokenizer .stage/smollm2_cfg --out /root/models/llama3b-random
    python scripts/device/make_random_model.py --shape llama8b --tokenizer .stage/smollm2_cfg --out /root/models/llama8b-random

``smollm2``: SmolLM2-135M's own ``config.json`` (read from the tokenizer folder, which holds the converted model's
config and tokenizer files). ``llama3b``: Llama-3.2-3B's shape (hidden 3072, 28 layers, 24 heads, 8 kv heads,
intermediate 8192, vocabulary 128256, tied embeddings), ``llama8b``: Llama-3.1-8B's (hidden 4096, 32 layers, 32
heads, 8 kv heads, intermediate 14336, vocabulary 128256, untied; 16 GB in bf16), with the SmolLM2 tokenizer (its ids are < 49152, so any
prompt is valid input for the larger vocabulary). Weights are drawn on the GPU when there is one (seconds), in bf16,
and saved as safetensors; ``hybridjet.llm.load_backbone(out, quantization="nf4")`` then loads them like any model.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from hybridjet.llm.testing import LLAMA_31_8B_SHAPE, LLAMA_32_3B_SHAPE

SPECIAL = {"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0}
SHAPES = {"llama3b": {**LLAMA_32_3B_SHAPE, **SPECIAL}, "llama8b": {**LLAMA_31_8B_SHAPE, **SPECIAL}}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json",
                   "generation_config.json")


def make(shape: str, tokenizer_dir: Path, out: Path, seed: int = 0) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    if (out / "config.json").exists() and list(out.glob("*.safetensors")):
        print(f"{out}: exists, reused")
        return out
    if shape == "smollm2":
        config = LlamaConfig(**{k: v for k, v in json.loads((tokenizer_dir / "config.json").read_text()).items()
                                if not k.startswith("_") and k not in ("architectures", "transformers_version")})
    elif shape in SHAPES:
        config = LlamaConfig(**SHAPES[shape])
    else:
        raise SystemExit(f"unknown shape {shape!r}")
    config.architectures = ["LlamaForCausalLM"]
    torch.manual_seed(seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    t0 = time.perf_counter()
    with torch.device(device):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    n = sum(p.numel() for p in model.parameters())
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    for name in TOKENIZER_FILES:
        if (tokenizer_dir / name).exists():
            shutil.copy(tokenizer_dir / name, tmp / name)
    del model
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    print(f"{out}: random {shape} ({n / 1e6:.1f} M parameters, bf16) written in {time.perf_counter() - t0:.1f} s")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=("smollm2", *SHAPES), required=True)
    parser.add_argument("--tokenizer", type=Path, required=True, help="folder with config.json + tokenizer files")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    make(args.shape, args.tokenizer, args.out, args.seed)


if __name__ == "__main__":
    main()
