"""The hybrid's last decoder layer run for the last position alone (what its head reads) against the full last
layer (what it ran before), side by side on the same decoder and inputs.

    python scripts/bench_last_layer.py [--layers 8] [--batch 16] [--own 140] [--prefix 30] [--device cuda]
        [--dtype bf16] [--repeats 6]

A random-weight decoder of SmolLM2-135M's dimensions (hidden 576, MLP 1536, 9 heads, 3 key/value heads) with
``--layers`` layers runs ``forward_with_shared_prefix`` without gradients on ``--batch`` events of ``--own`` tokens
after a shared prefix of ``--prefix`` tokens (the particle hybrid at 64 constituents per jet: ~140 own tokens). The
two variants alternate, one warm-up call each outside the timed window; the best of ``--repeats`` is kept. Prints
both times, the ratio, and the largest difference of the last position's hidden states.
"""

from __future__ import annotations

import argparse
import time

import torch

from hybridjet.llm.shared_prefix import forward_with_shared_prefix

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--own", type=int, default=140)
    parser.add_argument("--prefix", type=int, default=30)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp32")
    parser.add_argument("--repeats", type=int, default=6)
    args = parser.parse_args()

    from transformers import LlamaConfig, LlamaModel

    torch.manual_seed(0)
    config = LlamaConfig(hidden_size=576, intermediate_size=1536, num_hidden_layers=args.layers,
                         num_attention_heads=9, num_key_value_heads=3, vocab_size=64, max_position_embeddings=1024)
    dtype = DTYPES[args.dtype]
    decoder = LlamaModel(config).to(args.device, dtype).eval()
    prefix = torch.randn(1, args.prefix, 576, device=args.device, dtype=dtype)
    own = torch.randn(args.batch, args.own, 576, device=args.device, dtype=dtype)

    def run(last_only: bool) -> torch.Tensor:
        with torch.no_grad():
            out = forward_with_shared_prefix(decoder, prefix, own, last_only=last_only)[:, -1]
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        return out

    outputs = {last: run(last) for last in (False, True)}  # warm-up, and the values compared
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(args.repeats):
        for last in (False, True):
            start = time.perf_counter()
            run(last)
            times[last].append(time.perf_counter() - start)
    full, last = min(times[False]), min(times[True])
    difference = (outputs[True].float() - outputs[False].float()).abs().max().item()
    print(f"{args.layers} layers (SmolLM2 dimensions), {args.dtype} on {args.device}, batch {args.batch} x {args.own} own "
          f"+ {args.prefix} prefix tokens: full last layer {full * 1e3:.1f} ms, last position only {last * 1e3:.1f} ms, "
          f"x{full / last:.3f}; largest difference {difference:.2e}")


if __name__ == "__main__":
    main()
