#!/usr/bin/env python
"""Encoder settings vs gradient-boosted trees, side by side on one jets.h5 (CPU-friendly: no LLM).

    python scripts/sweep_encoder.py --data data/q40k/jets.h5 --epochs 30 \\
        --variants gbdt '{"numeric_embedding": "none"}' '{"periodic_sigma": 1.0}' '{"periodic_sigma": 0.3}'

Each variant is ``gbdt`` or a JSON dict of ``HybridClassifier`` options for the no-LLM ablation (encoder + head),
trained with ``train_classifier`` on the same seeded split (60/10/30), batch size and epochs; prints the test AUC of
each. The encoder is the hybrid's own, so a setting that helps here is a candidate for the hybrid at scale.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import lightning as L

import hybridjet.quiet
from hybridjet.models.classical import train_gbdt
from hybridjet.models.datamodule import JetDataModule
from hybridjet.models.hybrid import HybridClassifier
from hybridjet.models.train import train_classifier


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--feature-set", default="fourvec", choices=["fourvec", "substructure"])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--variants", nargs="+", default=["gbdt", "{}"])
    args = parser.parse_args()
    hybridjet.quiet.quiet_third_party(progress_bars=False)
    with tempfile.TemporaryDirectory() as work:
        for i, variant in enumerate(args.variants):
            L.seed_everything(0, verbose=False)
            dm = JetDataModule(args.data, feature_set=args.feature_set, split=(0.6, 0.1, 0.3), seed=0,
                               batch_size=args.batch_size, eval_batch_size=2048)
            started = time.perf_counter()
            if variant == "gbdt":
                auc = train_gbdt(dm, f"{work}/{i}")["test"]["auc"]
            else:
                clf = HybridClassifier(use_llm=False, **json.loads(variant))
                auc = train_classifier(clf, dm, f"{work}/{i}", max_epochs=args.epochs, progress=False,
                                       checkpoint_every_n_steps=10**9)["test_auc"]
            print(f"{args.feature_set} {variant}: test AUC {auc:.4f}  [{time.perf_counter() - started:.0f} s]",
                  flush=True)


if __name__ == "__main__":
    main()
