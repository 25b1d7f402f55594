"""Hybrid classifier throughput: training and scoring events/s and sequence length per event, across batch sizes,
with and without the cached prefix, side by side in one run; ``--questions`` adds prompt layouts (e.g. the question
before the event slot, so fewer positions run per event after the cached prefix).

    .venv/bin/python scripts/bench_hybrid.py --data data/demo/jets.h5 [--model smollm2] [--dtype bf16]
    .venv/bin/python scripts/bench_hybrid.py --dtypes bf16 --batch-sizes 32 \
        --questions "Event: <<EVENT>>\nSignal or background?" "Signal or background? Event: <<EVENT>>"
"""

from __future__ import annotations

import argparse

import lightning as L
import torch
from throughput import measure

from hybridjet.data.datamodule import JetDataModule
from hybridjet.models.prompt import DEFAULT_HYBRID_QUESTION
from hybridjet.train.classifiers import HybridClassifier


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data/demo/jets.h5")
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--quantization", default="auto")
    parser.add_argument("--dtypes", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--batches", type=int, default=4, help="timed batches (+1 warm-up)")
    parser.add_argument("--questions", nargs="+", default=[DEFAULT_HYBRID_QUESTION],
                        help="prompt questions to compare (an <<EVENT>> slot, or none: soft tokens last; '\\n' for a "
                             "newline)")
    args = parser.parse_args()

    dm = JetDataModule(args.data, batch_size=max(args.batch_sizes))
    dm.setup("fit")
    print(f"torch threads {torch.get_num_threads()}, cuda {torch.cuda.is_available()}, model {args.model}, "
          f"quantization {args.quantization}")
    for dtype in args.dtypes:
        for question in (q.replace("\\n", "\n") for q in args.questions):
            L.seed_everything(0, verbose=False)
            model = HybridClassifier.from_settings(model=args.model, quantization=args.quantization, dtype=dtype, question=question)
            model.normalizer, model.feature_set = dm.normalizer, dm.feature_set
            model.build(dm.n_features)
            print(f"question {question!r}: {len(model.net.prefix_ids)} prefix + {model.net.config.n_soft_tokens} soft + "
                  f"{len(model.net.suffix_ids)} suffix positions", flush=True)
            for batch_size in args.batch_sizes:
                dm.batch_size = batch_size
                loader = iter(dm.train_dataloader())
                batches = [next(loader) for _ in range(args.batches + 1)]
                row = []
                for cache_prefix in (False, True):
                    model.net.set_runtime(model.net.runtime.replace(cache_prefix=cache_prefix))
                    r = measure(model, batches)
                    row.append(r)
                    print(f"dtype {dtype:5s} batch {batch_size:4d} cache_prefix {cache_prefix!s:5s} "
                          f"sequence {model.net.sequence_length} tokens/event: train {r.train_events_per_s:8.1f} "
                          f"events/s, score {r.infer_events_per_s:8.1f} events/s", flush=True)
                print(f"  cached/full prefix: train x{row[1].train_events_per_s / row[0].train_events_per_s:.2f}, "
                      f"score x{row[1].infer_events_per_s / row[0].infer_events_per_s:.2f}")

if __name__ == "__main__":
    main()
