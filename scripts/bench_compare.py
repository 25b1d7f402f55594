"""Hybrid vs text-prompt baseline, side by side in one run: training and scoring events/s, tokens per event.

    .venv/bin/python scripts/bench_compare.py --data data/demo/jets.h5 [--model smollm2] [--dtype bf16]

Both models get the same LLM, LoRA preset, events and batch size; the ratio hybrid/text is printed.
"""

from __future__ import annotations

import argparse
import platform

import lightning as L
import torch
from throughput import measure

from hybridjet.data.datamodule import JetDataModule
from hybridjet.train.classifiers import HybridClassifier, TextPromptClassifier


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data/demo/jets.h5")
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--quantization", default="auto")
    parser.add_argument("--dtype", default=None)
    parser.add_argument("--lora", default="attn")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--batches", type=int, default=5, help="timed batches (+1 warm-up)")
    args = parser.parse_args()

    L.seed_everything(0, verbose=False)
    dm = JetDataModule(args.data, batch_size=args.batch_size)
    dm.setup("fit")
    loader = iter(dm.train_dataloader())
    batches = [next(loader) for _ in range(args.batches + 1)]
    print(f"device: {'cuda ' + torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor() or 'cpu'}"
          f", torch threads {torch.get_num_threads()}, model {args.model}, quantization {args.quantization}, "
          f"dtype {args.dtype or 'auto'}, lora {args.lora}, batch {args.batch_size}")
    results = {}
    for name, cls in (("hybrid", HybridClassifier), ("text", TextPromptClassifier)):
        model = cls(model=args.model, quantization=args.quantization, dtype=args.dtype, lora=args.lora)
        if isinstance(model, HybridClassifier):
            model.normalizer, model.feature_set = dm.normalizer, dm.feature_set
            model.build(dm.n_features)
        results[name] = measure(model, batches)
        r = results[name]
        print(f"{name:7s} tokens/event {r.tokens_per_event:6.1f}   train {r.train_events_per_s:8.1f} events/s "
              f"({r.train_tokens_per_s:8.0f} tokens/s)   score {r.infer_events_per_s:8.1f} events/s "
              f"({r.infer_tokens_per_s:8.0f} tokens/s)", flush=True)
        del model
    h, t = results["hybrid"], results["text"]
    print(f"ratio hybrid/text: train x{h.train_events_per_s / t.train_events_per_s:.2f}, "
          f"score x{h.infer_events_per_s / t.infer_events_per_s:.2f}, "
          f"tokens/event x{h.tokens_per_event / t.tokens_per_event:.2f}")


if __name__ == "__main__":
    main()
