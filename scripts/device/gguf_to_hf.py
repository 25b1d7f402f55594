#!/usr/bin/env python
"""Turn the staged SmolLM2 GGUF into a local HF directory on the device machine, bypassing hybridjet's GGUF cache.

    python scripts/device/gguf_to_hf.py "$SMOLLM2_GGUF" "$SMOLLM2_CFG" /root/models/smollm2-gguf

Why: on the device image (transformers 5.17.0) ``hybridjet.llm.resolve_model(<.gguf>)`` refused its own conversion
("converted tokenizer fails checks: eos token missing or equal to bos"; transformers 5.23.0 here converts it fine).
The weights are dequantized by transformers' GGUF loader, as the cache does, and saved as fp32 safetensors (tied
``lm_head`` left out); config and tokenizer files are the ones hybridjet converted and verified on the CPU machine
(``.stage/smollm2_cfg`` inside ``deps.tar.xz``). The run records this directory's sha256, not the GGUF's.

Since 2026-11-22 hybridjet's own conversion takes eos/bos from the GGUF metadata and converts under transformers
5.17 too (checked on the CPU machine with transformers 5.17.0, and on the device on 2026-11-22): this script is
no longer needed; `--model "$SMOLLM2_GGUF"` converts into $HYBRIDJET_CACHE.
"""

import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

if __name__ == "__main__":
    gguf, cfg, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    if (out / "model.safetensors").exists():
        print(f"{out}: exists, reused")
        sys.exit(0)
    out.mkdir(parents=True, exist_ok=True)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    for f in cfg.iterdir():
        shutil.copy(f, out / f.name)
    print(f"{out}: {sum(v.numel() for v in state.values()):,} parameters from {gguf.name}")
