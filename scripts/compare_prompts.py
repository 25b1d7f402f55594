#!/usr/bin/env python
"""Hybrid quality of prompt layouts at demo scale, side by side (same events, seeds and epochs as 'hybridjet demo').

    .venv/bin/python scripts/compare_prompts.py --data data/demo/jets.h5 \\
        --questions "Signal or background? Event: <<EVENT>>" "Event: <<EVENT>>\\nSignal or background?"

For each question (an ``<<EVENT>>`` slot, or none: soft tokens last; ``\\n`` for a newline) and seed trains a
hybrid on SmolLM2 (bf16 on CPU, LoRA attn, k=8, 3 epochs, batch 32) on the demo split (60/20/20, 1,200 train /
400 test events) and prints the positions per event, best val AUC, test AUC and fit time. Speed per step:
``scripts/bench_hybrid.py --questions``.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import lightning as L

import hybridjet.quiet
from hybridjet.models.datamodule import JetDataModule
from hybridjet.models.hybrid import HybridClassifier
from hybridjet.models.train import train_classifier


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data/demo/jets.h5")
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--questions", nargs="+", required=True)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds (the split stays seed 0)")
    args = parser.parse_args()
    hybridjet.quiet.quiet_third_party(progress_bars=False)
    with tempfile.TemporaryDirectory() as work:
        runs = [(q.replace("\\n", "\n"), seed) for seed in args.seeds for q in args.questions]
        for i, (question, seed) in enumerate(runs):
            L.seed_everything(seed, verbose=False)
            dm = JetDataModule(args.data, split=(0.6, 0.2, 0.2), seed=0, batch_size=32, eval_batch_size=128,
                               max_train_events=1200, max_eval_events=400)
            clf = HybridClassifier(model=args.model, dtype="bf16", lora="attn", n_soft_tokens=8, question=question)
            started = time.perf_counter()
            m = train_classifier(clf, dm, f"{work}/{i}", max_epochs=args.epochs, progress=False,
                                 checkpoint_every_n_steps=10**9)
            print(f"seed {seed} {question!r}: {len(clf.prefix_ids)} prefix + 8 soft + {len(clf.suffix_ids)} suffix "
                  f"positions; val AUC {m['best_val_auc']:.3f}, test AUC {m['test_auc']:.3f}  "
                  f"[{time.perf_counter() - started:.0f} s]", flush=True)


if __name__ == "__main__":
    main()
