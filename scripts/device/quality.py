#!/usr/bin/env python
"""Quality at scale: train the hybrid, the text baseline, gradient-boosted trees and the no-LLM ablation on one
jets.h5 with identical splits, then ``hybridjet compare`` them on the held-out test split, plus the paired
bootstrap of the AUC gaps (hybrid - other on the same resampled events).

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

import numpy as np


def paired_gaps(report_dirs: dict[str, Path], ref: str, n_boot: int = 200, seed: int = 0) -> dict[str, dict]:
    """AUC(ref) - AUC(other) with a 95% paired bootstrap over the test events both scored (a run evaluated on a
    subset, ``text-predecessor``, is compared on that subset: events matched by id); ``hybridjet compare`` does
    the same for runs scored on the same events."""
    from hybridjet.eval.metrics import paired_auc_gap
    from hybridjet.eval.scores import read_scores

    sets = {}
    for name, d in report_dirs.items():
        s = read_scores(d / "scores.h5", "test")
        order = np.argsort(s.event_id, kind="stable")
        sets[name] = (s.event_id[order], s.label[order].astype(int), s.score[order])
    ids_ref, y_ref, a_ref = sets[ref]
    out = {}
    for name, (ids_o, _labels, b_all) in sets.items():
        if name == ref:
            continue
        common, in_ref, in_other = np.intersect1d(ids_ref, ids_o, assume_unique=True, return_indices=True)
        if len(common) == 0:
            continue
        gap, lo, hi = paired_auc_gap(y_ref[in_ref], a_ref[in_ref], b_all[in_other], n_boot=n_boot, seed=seed)
        out[f"{ref} - {name}"] = {"auc_gap": gap, "ci95": [lo, hi], "n_boot": n_boot, "n_events": int(len(common))}
    return out


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

    import lightning as L

    from hybridjet.data.datamodule import JetDataModule
    from hybridjet.demo import demo_config
    from hybridjet.eval.compare import compare_runs
    from hybridjet.train.classifiers import HybridClassifier, TextPromptClassifier
    from hybridjet.train.recipes import train_classifier, train_gbdt

    cfg = demo_config("full")
    cache_prefix = None if args.cache_prefix else False  # None: shared where it is faster (HybridClassifier)
    epochs = {**cfg["epochs"], "text-predecessor": 1, **(args.epochs or {})}
    batch = {**cfg["batch_size"], "text-predecessor": 32, **(args.batch_size or {})}
    runs = Path(args.runs)
    summary = {}
    for kind in args.models:
        name = kind + args.suffix
        run_dir = runs / name
        if (run_dir / "scores.h5").exists() or args.compare_only:
            print(f"{name}: reusing {run_dir}", flush=True)
            continue
        t = time.perf_counter()
        L.seed_everything(args.seed, verbose=False)
        b = batch.get(kind.split("-")[0], 64)
        max_train = args.text_train_events if kind.startswith("text") else cfg["max_train_events"]
        max_eval = args.predecessor_eval_events if kind == "text-predecessor" else cfg["max_eval_events"]
        dm = JetDataModule(args.data, feature_set=args.feature_set, split=tuple(cfg["split"]), seed=args.seed,
                           batch_size=b, eval_batch_size=4 * b, max_train_events=max_train, max_eval_events=max_eval)
        if kind == "gbdt":
            auc = train_gbdt(dm, run_dir, seed=args.seed)["test"]["auc"]
        else:
            if kind.startswith("text"):
                # the predecessor's own figure of merit was the accuracy of generated answers: measured too
                predecessor = kind == "text-predecessor"
                clf = TextPromptClassifier.from_settings(
                    model=args.model, lora=cfg["lora"], dtype=cfg["dtype"], run_name=name,
                    formatter="predecessor" if predecessor else "compact", max_length=1024, generate_eval=predecessor)
            else:
                clf = HybridClassifier.from_settings(
                    model=args.model, lora=cfg["lora"], dtype=cfg["dtype"], n_soft_tokens=cfg["n_soft_tokens"],
                    use_llm=kind.startswith("hybrid"), head_skip=kind == "hybrid-skip", cache_prefix=cache_prefix,
                    run_name=name, **args.hybrid_args)
            auc = train_classifier(clf, dm, run_dir, max_epochs=epochs.get(kind, epochs[kind.split("-")[0]]),
                                   progress=False,
                                   checkpoint_every_n_steps=10**9,
                                   **({"precision": args.precision} if args.precision else {}))["test_auc"]
        seconds = time.perf_counter() - t
        summary[name] = {"test_auc": auc, "seconds": seconds}
        print(f"{name}: test AUC {auc:.4f}  [{seconds:.0f} s]", flush=True)

    compared = [runs / (k + args.suffix) for k in args.models if k != "text-predecessor"
                and (runs / (k + args.suffix) / "scores.h5").exists()]
    report = compare_runs(compared, split="test", out=args.out)
    print(report.table())
    names = {json.loads((d / "metrics.json").read_text())["name"]: d for d in compared}
    ref = next((n for n in names if n.startswith("hybrid")), None)
    if ref:
        report_gaps(paired_gaps(names, ref), Path(args.out, "gaps.json"))
    predecessor = runs / ("text-predecessor" + args.suffix)
    if (predecessor / "scores.h5").exists():
        metrics = json.loads((predecessor / "metrics.json").read_text())
        test, gen = metrics["test"], metrics.get("generation")
        line = f"{metrics['name']}: test AUC {test['auc']:.4f} ({test['n_events']} events)"
        if gen:
            line += f", generated-answer accuracy {gen['accuracy']:.4f} ({gen['unparseable']} unparseable of {gen['n']})"
        print(line)
        # every compared run against the predecessor's format, on the predecessor's test subset
        gaps = {}
        for name, d in names.items():
            gaps.update(paired_gaps({name: d, metrics["name"]: predecessor}, name))
        report_gaps(gaps, Path(args.out, "gaps_predecessor.json"))


def report_gaps(gaps: dict[str, dict], path: Path) -> None:
    """Print the paired AUC gaps and write them as JSON to ``path``."""
    path.write_text(json.dumps(gaps, indent=1))
    for k, v in gaps.items():
        print(f"{k}: AUC gap {v['auc_gap']:+.4f}  95% paired bootstrap [{v['ci95'][0]:+.4f}, {v['ci95'][1]:+.4f}]"
              f"  ({v['n_events']} test events)")


if __name__ == "__main__":
    main()
