"""``hybridjet score``: score a jets.h5 file with a finished run directory, writing scores.h5."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``score`` subcommand."""
    p = subparsers.add_parser(
        "score",
        help="Score a jets.h5 file with a finished run (safetensors + JSON), writing scores.h5",
        description=(
            "Load a run directory with from_pretrained (no pickles: weights.safetensors + model.json), score every "
            "event of a jets.h5 file in chunks (bounded memory) and write event_id, score (signal probability) and "
            "label into one split of an HDF5 scores file, atomically. Unlike 'hybridjet predict' it needs no config "
            "or Lightning checkpoint, so it works on runs someone sent you."
        ),
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a finished hybridjet run directory (hybrid, ablation or text)")
    p.add_argument("jets", metavar="JETS_H5", help="jets.h5 from 'hybridjet cluster'")
    p.add_argument("--out", required=True, help="scores file to write (its other splits are kept)")
    p.add_argument("--split", default="all", help="split name inside the scores file (default: all)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="events per forward pass (default: 16384 for the hybrid on a GPU, else 256)")
    p.add_argument("--model", default=None, help="base LLM path, when the run's recorded one is not on this machine")
    p.add_argument("--dense", action="store_true",
                   help="dequantize the 4-bit base once and merge LoRA before scoring (faster on a GPU)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: where the run loads)")
    p.add_argument("--progress", action="store_true", help="show a progress bar")
    p.set_defaults(handler=_score)


def _score(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    import numpy as np

    from hybridjet.errors import HybridjetError, InputFileError
    from hybridjet.eval.scores import write_scores
    from hybridjet.models.base import EventClassifier
    from hybridjet.quiet import quiet_third_party

    quiet_third_party(progress_bars=args.progress)
    if args.batch_size is not None and args.batch_size < 1:
        raise HybridjetError(f"--batch-size: expected a positive integer, got {args.batch_size}")
    if not Path(args.jets).is_file():
        raise InputFileError(args.jets, "no such jets.h5 file")
    started = time.perf_counter()
    clf = EventClassifier.from_pretrained(args.run_dir, model=args.model, dense=args.dense)
    if args.device:
        clf = clf.to(args.device)
    loaded = time.perf_counter()
    print(f"loaded {args.run_dir} ({type(clf).__name__}{', dense' if args.dense else ''}, {clf.device}) in "
          f"{loaded - started:.1f} s", flush=True)
    started = loaded
    ids, labels, scores = [], [], []
    for batch, probs in clf.iter_probabilities(args.jets, args.batch_size, args.progress):
        scores.append(probs)
        ids.append(batch["event_id"].numpy())
        labels.append(batch["label"].numpy())
    score = np.concatenate(scores) if scores else np.zeros(0, np.float32)
    seconds = time.perf_counter() - started
    out = write_scores(args.out, split=args.split, event_id=np.concatenate(ids) if ids else np.zeros(0, np.int64),
                       score=score, label=(np.concatenate(labels) if labels else np.zeros(0)).astype(np.int8),
                       attrs={"model": clf.model_kind, "score_kind": "probability", "run": str(Path(args.run_dir)),
                              "dense": bool(args.dense)})
    print(f"scored {len(score):,} events in {seconds:.1f} s ({len(score) / max(seconds, 1e-9):,.0f} events/s) "
          f"-> {out} [{args.split}]")
    return 0
