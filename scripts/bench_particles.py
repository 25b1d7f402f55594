"""Throughput on jet constituents: the hybrid on particles against ParT, ParticleNet and Deep Sets, side by side in
one run on the same batches: training and scoring events/s, peak memory, under bf16 autocast on a GPU (as the
recipe trains), fp32 on a CPU; warm-up batches (and the compilation of the hybrid's layers, on a GPU as the recipe
runs them) outside the timed window. ``--dense`` adds the hybrid scored as ``hybridjet score --dense`` does: the
4-bit base dequantized once to bf16, LoRA merged.

    .venv/bin/python scripts/bench_particles.py --data data/study_gpu/qcd_jets_c32.h5 --batch-size 256 \
        [--methods hybrid part particlenet deepsets] [--model smollm2] [--score-batch-size 4096] [--dense]

A method named hybrid<anything> is the hybrid with its own settings, e.g. ``--methods hybrid hybrid_l8 part
--settings '{"hybrid_l8": {"llm_layers": 8}}'``.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json

import lightning as L
import torch
from throughput import measure, measure_scoring

from hybridjet.data.datamodule import JetDataModule
from hybridjet.train.classifiers import HybridClassifier, PeerClassifier
from hybridjet.train.methods import PEER_METHODS


def build(method: str, dm: JetDataModule, model: str, settings: dict, eager: bool) -> HybridClassifier | PeerClassifier:
    """A classifier of ``method`` built for the data module's particles features, on the GPU if there is one."""
    if method in PEER_METHODS:
        clf = PeerClassifier.from_settings(architecture=method, **settings)
    else:
        clf = HybridClassifier.from_settings(model=model, **({"torch_compile": False} if eager else {}), **settings)
    clf.normalizer, clf.feature_set = dm.normalizer, dm.feature_set
    clf.build(dm.n_features)
    return clf.to("cuda") if torch.cuda.is_available() else clf


def take_batches(dm: JetDataModule, n: int) -> list[dict[str, torch.Tensor]]:
    """``n`` training batches of ``dm``, its epochs repeated where one has fewer (large scoring batches)."""
    batches: list[dict[str, torch.Tensor]] = []
    while len(batches) < n:
        before = len(batches)
        batches += itertools.islice(dm.train_dataloader(), n - len(batches))
        if len(batches) == before:
            raise SystemExit(f"{dm.data}: no full batch of {dm.batch_size} events in the training split")
    return batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="a jets.h5 file with constituents (cluster --constituents P)")
    parser.add_argument("--methods", nargs="+", default=["hybrid", "part", "particlenet", "deepsets"])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--score-batch-size", type=int, default=None, help="scoring batch (default: --batch-size)")
    parser.add_argument("--batches", type=int, default=8, help="timed batches")
    parser.add_argument("--warmup", type=int, default=3,
                        help="untimed batches: compiled layers compile the forward at the first, the backward and "
                             "the CUDA graphs at the second")
    parser.add_argument("--dense", action="store_true", help="also score the hybrid densified (bf16, LoRA merged)")
    parser.add_argument("--eager", action="store_true", help="the hybrid's layers uncompiled (default: the recipe's)")
    parser.add_argument("--settings", default="{}", help="JSON of per-method settings, e.g. '{\"part\": {\"width\": 64}}'")
    args = parser.parse_args()
    per_method = json.loads(args.settings)
    unknown = [m for m in args.methods if m not in PEER_METHODS and not m.startswith("hybrid")]
    if unknown:
        parser.error(f"--methods: {unknown[0]}: expected hybrid<name> or one of {', '.join(PEER_METHODS)}")

    dm = JetDataModule(args.data, feature_set="particles", batch_size=args.batch_size, split=(0.9, 0.05, 0.05))
    dm.setup("fit")
    cuda = torch.cuda.is_available()
    device = torch.cuda.get_device_name() if cuda else f"CPU, {torch.get_num_threads()} threads"
    print(f"{device}; {args.data}: {dm.n_features} features ({dm.normalizer.names[-1]} last); batch "
          f"{args.batch_size}, scoring batch {args.score_batch_size or args.batch_size}", flush=True)
    n = args.batches + args.warmup
    batches = take_batches(dm, n)
    score_batches = batches
    if args.score_batch_size:
        dm.batch_size = args.score_batch_size
        score_batches = take_batches(dm, n)
    results = {}
    for method in args.methods:
        L.seed_everything(0, verbose=False)
        clf = build(method, dm, args.model, per_method.get(method, {}), args.eager)
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        autocast = torch.autocast("cuda", torch.bfloat16) if cuda else contextlib.nullcontext()
        params = sum(p.numel() for p in clf.parameters() if p.requires_grad)
        with autocast:
            train = measure(clf, batches, warmup=args.warmup, pipelined=cuda)
        peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")
        score, score_peak = train.infer_events_per_s, peak
        if args.score_batch_size:  # scoring only at its own batch size: no training step at that size
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            with autocast:
                score = measure_scoring(clf, score_batches, warmup=args.warmup, pipelined=cuda)
            score_peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")
        results[method] = (train.train_events_per_s, score)
        seq = getattr(clf.net, "sequence_length", 0) or clf.net.inputs.n_particles
        print(f"{method:12s} sequence {seq:4d}  trainable {params / 1e6:7.2f} M  train {train.train_events_per_s:10,.0f}"
              f" events/s  score {score:10,.0f} events/s  peak {peak:6.2f} GiB training, {score_peak:6.2f} scoring",
              flush=True)
        if args.dense and method.startswith("hybrid"):
            clf.densify_for_inference(torch.bfloat16 if cuda else torch.float32)
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            with autocast:
                dense = measure_scoring(clf, score_batches, warmup=args.warmup, pipelined=cuda)
            peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")
            results[f"{method}-dense"] = (float("nan"), dense)
            print(f"{method + '-dense':12s} sequence {seq:4d}  scoring only{'':31s} score {dense:10,.0f} events/s  "
                  f"peak {peak:6.2f} GiB", flush=True)
        del clf
    peers = {m: r for m, r in results.items() if not m.startswith("hybrid")}
    for hybrid, (train, score) in results.items():
        if hybrid.startswith("hybrid") and not hybrid.endswith("-dense"):
            dense = results.get(f"{hybrid}-dense")
            for method, (peer_train, peer_score) in peers.items():
                extra = f", dense score x{dense[1] / peer_score:.2f}" if dense else ""
                print(f"{hybrid} / {method}: train x{train / peer_train:.2f}, score x{score / peer_score:.2f}{extra}")


if __name__ == "__main__":
    main()
