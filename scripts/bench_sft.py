"""Tokens/s of LoRA SFT training steps (forward + backward + AdamW) for several quantizations, side by side.

    .venv/bin/python scripts/bench_sft.py [--model smollm2] [--quantization none nf4] [--steps 5] [--batch-size 4]

Batches are real templated examples from examples/data/physics_qa.jsonl (padding excluded from the token count).
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def bench(model: str, quantization: str, lora: str, steps: int, batch_size: int, device: str) -> dict[str, float]:
    """Time ``steps`` training steps after one warm-up step; returns tokens/s and s/step."""
    from hybridjet.llm.backbone import load_backbone
    from hybridjet.text.dataset import SFTCollator, encode_examples, pad_token_id
    from hybridjet.text.formats import read_examples
    from hybridjet.text.loss import token_loss_sum

    bb = load_backbone(model, quantization=quantization, lora=lora, device=device)
    examples, _ = read_examples(ROOT / "examples" / "data" / "physics_qa.jsonl")
    encoded = encode_examples(examples, bb.tokenizer, max_length=256)
    collate = SFTCollator(pad_token_id(bb.tokenizer))
    batches = [collate(encoded[i : i + batch_size]) for i in range(0, len(encoded) - batch_size + 1, batch_size)]
    params = [p for p in bb.model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    bb.model.train()

    def step(batch: dict[str, torch.Tensor]) -> int:
        batch = {k: v.to(bb.device) for k, v in batch.items()}
        total, count = token_loss_sum(bb.model, batch)
        (total / count).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return int(batch["attention_mask"].sum())

    step(batches[0])
    tokens = 0
    start = time.perf_counter()
    for i in range(steps):
        tokens += step(batches[(i + 1) % len(batches)])
    elapsed = time.perf_counter() - start
    return {"tokens_per_s": tokens / elapsed, "s_per_step": elapsed / steps, "tokens": tokens}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2")
    p.add_argument("--quantization", nargs="+", default=["none", "nf4"])
    p.add_argument("--lora", default="qkv")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"model {args.model}, lora {args.lora}, batch {args.batch_size}, {args.steps} timed steps")
    print(f"{'quantization':<14}{'tokens/s':>12}{'s/step':>10}")
    for q in args.quantization:
        try:
            r = bench(args.model, q, args.lora, args.steps, args.batch_size, args.device)
        except Exception as exc:  # report a backend that cannot run here, and go on
            print(f"{q:<14}{'failed: ' + str(exc).splitlines()[0][:80]:>22}")
            continue
        print(f"{q:<14}{r['tokens_per_s']:>12.1f}{r['s_per_step']:>10.2f}", flush=True)


if __name__ == "__main__":
    main()
