#!/usr/bin/env python
"""Quality at scale: train the hybrid, the text baseline, gradient-boosted trees and the no-LLM ablation on one
jets.h5 with identical splits, then ``hybridjet compare`` them on the held-out test split, plus the paired
bootstrap of the AUC gaps (hybrid - other on the same resampled events), every model through the package's one
recipe entry point (:func:`hybridjet.train.methods.train_model`).

    python scripts/device/quality.py --data /root/data/full/jets.h5 --model /root/stage/SmolLM2-135M-Instruct.Q4_1.gguf \\
        --runs /root/runs/full --out report/full --models gbdt ablation hybrid text --text-train-events 30000

Sizes follow ``configs/demo.yaml`` scale ``full`` (split 0.6/0.1/0.3, seed 0, epochs, batch sizes, LoRA attn, 8 soft
tokens) unless overridden. Runs that already hold ``scores.h5`` are reused (so the work can be split over calls).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--runs", default="runs/full")
    parser.add_argument("--out", default="report/full")
    parser.add_argument("--models", nargs="+", default=["gbdt", "ablation", "hybrid", "text"],
                        choices=["gbdt", "ablation", "hybrid", "hybrid-skip", "text", "text-predecessor"])
    parser.add_argument("--feature-set", default="fourvec", choices=["fourvec", "substructure"])
    parser.add_argument("--suffix", default="", help="appended to run names (e.g. -sub)")
    parser.add_argument("--epochs", type=json.loads, default=None, help='JSON, e.g. {"hybrid": 3}')
    parser.add_argument("--batch-size", type=json.loads, default=None, help='JSON, e.g. {"hybrid": 256}')
    parser.add_argument("--hybrid-args", type=json.loads, default={},
                        help='JSON of HybridClassifier.from_settings options for hybrid and ablation, e.g. {"periodic_sigma": 0.3}')
    parser.add_argument("--text-train-events", type=int, default=30000, help="training subset of the text baseline")
    parser.add_argument("--predecessor-eval-events", type=int, default=None,
                        help="text-predecessor is a subset run: its own test scores are not compared")
    parser.add_argument("--compare-only", action="store_true")
    parser.add_argument("--precision", default=None, help="Lightning Trainer precision for LLM runs, e.g. bf16-mixed")
    parser.add_argument("--no-cache-prefix", dest="cache_prefix", action="store_false",
                        help="hybrid: always run the prefix per event (default: shared where faster)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from hybridjet.data.datamodule import JetDataModule
    from hybridjet.demo import demo_config, demo_method
    from hybridjet.eval.compare import compare_runs
    from hybridjet.train.methods import Method, train_model

    cfg = demo_config("full")
    cfg["epochs"] = {**cfg["epochs"], "text-predecessor": 1, "hybrid-skip": cfg["epochs"]["hybrid"],
                     **(args.epochs or {})}
    batch = {**cfg["batch_size"], "text-predecessor": 32, **(args.batch_size or {})}
    cfg["batch_size"] = batch
    trainer = {"checkpoint_every_n_steps": 10**9, **({"precision": args.precision} if args.precision else {})}
    runs = Path(args.runs)
    for kind in args.models:
        name = kind + args.suffix
        run_dir = runs / name
        if (run_dir / "scores.h5").exists() or args.compare_only:
            print(f"{name}: reusing {run_dir}", flush=True)
            continue
        t = time.perf_counter()
        b = batch.get(kind.split("-")[0], 64)
        max_train = args.text_train_events if kind.startswith("text") else cfg["max_train_events"]
        max_eval = args.predecessor_eval_events if kind == "text-predecessor" else cfg["max_eval_events"]
        dm = JetDataModule(args.data, feature_set=args.feature_set, split=tuple(cfg["split"]), seed=args.seed,
                           batch_size=b, eval_batch_size=4 * b, max_train_events=max_train, max_eval_events=max_eval)
        method = demo_method(cfg, kind.split("-")[0], args.model)
        settings = dict(method.model)
        if kind.startswith("text"):
            # the predecessor's own figure of merit was the accuracy of generated answers: measured too
            settings.update(formatter="predecessor" if kind == "text-predecessor" else "compact", max_length=1024,
                            generate_eval=kind == "text-predecessor")
            settings.pop("cache_prefix", None)
        elif kind != "gbdt":
            settings.update(head_skip=kind == "hybrid-skip", cache_prefix=None if args.cache_prefix else False,
                            **args.hybrid_args)
        method = Method(name, settings, epochs=cfg["epochs"].get(kind, method.epochs), batch_size=b,
                        trainer={} if kind == "gbdt" else trainer, kind=kind.split("-")[0])
        metrics = train_model(method, dm, run_dir, args.seed)
        auc = metrics["test"]["auc"] if kind == "gbdt" else metrics["test_auc"]
        print(f"{name}: test AUC {auc:.4f}  [{time.perf_counter() - t:.0f} s]", flush=True)

    compared = [runs / (k + args.suffix) for k in args.models if k != "text-predecessor"
                and (runs / (k + args.suffix) / "scores.h5").exists()]
    names = {json.loads((d / "metrics.json").read_text())["name"]: d for d in compared}
    ref = next((n for n in names if n.startswith("hybrid")), None)
    report = compare_runs(compared, split="test", out=args.out, reference=ref)
    print(report.table())
    predecessor = runs / ("text-predecessor" + args.suffix)
    if (predecessor / "scores.h5").exists():
        metrics = json.loads((predecessor / "metrics.json").read_text())
        test, gen = metrics["test"], metrics.get("generation")
        line = f"{metrics['name']}: test AUC {test['auc']:.4f} ({test['n_events']} events)"
        if gen:
            line += f", generated-answer accuracy {gen['accuracy']:.4f} ({gen['unparseable']} unparseable of {gen['n']})"
        print(line)
        # every compared run against the predecessor's format, on the predecessor's test subset
        for name, d in names.items():
            subset = compare_runs([d, predecessor], split="test", out=Path(args.out, f"vs_predecessor_{name}"),
                                  reference=name, common_events=True)
            print(subset.gap_table())


if __name__ == "__main__":
    main()
