"""``hybridjet score`` (a finished run's probabilities for jets.h5 files) and ``hybridjet compare`` (metrics table
and ROC plots of several runs scored on the same events). Handlers import their work lazily: ``--help`` stays fast."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``score`` and ``compare`` subcommands."""
    _register_score(subparsers)
    p = subparsers.add_parser(
        "compare",
        help="Compare runs (scores.h5 + metrics.json): metrics table, JSON, ROC plots",
        description=(
            "Compare classifier runs scored on the same events: AUC with a bootstrap interval, accuracy, "
            "background rejection 1/eps_B at eps_S = 0.3 and 0.5, max SIC, cost. Writes comparison.md, "
            "comparison.json, roc.png (rejection vs signal efficiency), roc_tpr_fpr.png, roc_sic.png (rejection "
            "and SIC side by side) and scores.png (each run's score for signal and background) into --out, in a HEP "
            "style (--style)."
        ),
    )
    p.add_argument(
        "run_dirs", nargs="+", metavar="RUN_DIR", help="run directories holding scores.h5 (+ metrics.json)"
    )
    p.add_argument("--split", default="test", help="split of scores.h5 to compare (default: test)")
    p.add_argument("--out", default="report", help="output directory (default: report/)")
    p.add_argument(
        "--bootstrap",
        type=int,
        default=200,
        metavar="N",
        help="bootstrap resamples for the 68%% AUC interval; 0 skips it (default: 200)",
    )
    p.add_argument("--common-events", action="store_true",
                   help="compare on the events every run scored (a run scored on a subset of the others' events); "
                        "without it, runs scored on different events are refused")
    p.add_argument("--reference", default=None, metavar="NAME",
                   help="the run whose AUC gap to each other run gets a paired bootstrap interval (default: the first)")
    p.add_argument("--min-eff-b", type=float, default=1e-4, metavar="F",
                   help="runs scored on a resonance search's signal region: SIC only over cuts keeping eps_B >= F "
                        "(default 1e-4)")
    p.add_argument("--style", default=None, metavar="STYLE",
                   help="the figures' style: hep (mplhep's ROOT-like, the default), ATLAS, CMS, LHCb, ALICE, DUNE "
                        "(each also labels the panels '<experiment> Simulation'), or plain (matplotlib's own)")
    p.add_argument("--min-background", type=float, default=0.0, metavar="N",
                   help="... and keeping at least N background events (default 0)")
    p.set_defaults(handler=_compare)


def _compare(args: argparse.Namespace) -> int:
    from pathlib import Path

    from hybridjet.errors import HybridjetError
    from hybridjet.eval.compare import MAX_BOOTSTRAP, compare_runs
    from hybridjet.eval.sic import SicFloor

    if not 0 <= args.bootstrap <= MAX_BOOTSTRAP:
        raise HybridjetError(f"--bootstrap: expected an integer in [0, {MAX_BOOTSTRAP:,}]; got {args.bootstrap}")
    try:
        floor = SicFloor(args.min_eff_b, args.min_background)
    except HybridjetError as err:
        raise HybridjetError(str(err).replace("evaluation.min_eff_b", "--min-eff-b")
                             .replace("evaluation.min_background", "--min-background")) from None
    report = compare_runs(args.run_dirs, split=args.split, out=args.out, n_boot=args.bootstrap,
                          reference=args.reference, sic_floor=floor, common_events=args.common_events,
                          style=args.style)
    print(report.table())
    print(report.notes())
    out = Path(args.out)
    names = ("comparison.md", "comparison.json", "roc.png", "roc_tpr_fpr.png", "roc_sic.png", "scores.png") + \
        (("sic.png",) if report.sic_curves else ())
    print(f"wrote {', '.join(str(out / n) for n in names)}")
    return 0


def _register_score(subparsers: Any) -> None:
    """Add the ``score`` subcommand."""
    p = subparsers.add_parser(
        "score",
        help="Score jets.h5 files with a finished run (safetensors + JSON), writing scores.h5",
        description=(
            "Load a run directory with from_pretrained (no pickles: weights.safetensors + model.json), score every "
            "event of one or more jets.h5 files in chunks (bounded memory) and write event_id, score (signal "
            "probability) and label into a split of an HDF5 scores file per input, atomically. Several files in one "
            "call load the model and compile it once (on a GPU that saves ~25 s per file). Unlike 'hybridjet "
            "predict' it needs no config or Lightning checkpoint, so it works on runs someone sent you."
        ),
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a finished hybridjet run directory (hybrid, ablation, text or gbdt)")
    p.add_argument("jets", metavar="EVENTS", nargs="+",
                   help="jets.h5 files from 'hybridjet cluster', or ROOT files (.root) with a tree of events holding a "
                        "jet collection (--tree, --fields)")
    p.add_argument("--out", required=True,
                   help="scores file to write: .h5 (its other splits are kept), or a table, .parquet or .root (a "
                        "TTree 'scores': event_id, label and a column per run; scoring the same events with another "
                        "run adds its column)")
    p.add_argument("--column", default=None, help="a table's column for this run's scores (default: the run "
                                                  "directory's name)")
    p.add_argument("--tree", default="Events", help="the tree of a ROOT input (default: Events)")
    p.add_argument("--fields", default="nanoaod", metavar="PRESET|YAML",
                   help="where a ROOT input's jets are: nanoaod (FatJet_pt ... tau1..3, nPFCand, event; the default), "
                        "delphes (FatJet.PT ... Tau), or a YAML mapping of hybridjet.JetFields' fields")
    p.add_argument("--split", default=None,
                   help="split name inside the scores file, for one input (default: all; with several inputs each "
                        "file's split is its name without .h5)")
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

    from hybridjet.api import load_run
    from hybridjet.data.store import (
        check_unique_ids,
        constituents_per_jet,
        count_jets_events,
        jets_per_event,
        read_event_ids,
    )
    from hybridjet.errors import HybridjetError
    from hybridjet.eval.score_tables import (
        TABLE_WHAT,
        check_table_column,
        check_table_events,
        check_table_output,
        column_name,
        is_score_table,
        table_kind,
        write_score_table,
    )
    from hybridjet.eval.scores import SCORES_WHAT, data_identity, is_scores_file, write_scores
    from hybridjet.io_utils import check_writable
    from hybridjet.llm.backbone import resolve_device
    from hybridjet.quiet import quiet_third_party
    from hybridjet.run import scoring_inputs

    quiet_third_party(progress_bars=args.progress)
    if args.batch_size is not None and args.batch_size < 1:
        raise HybridjetError(f"--batch-size: expected a positive integer, got {args.batch_size}")
    table = table_kind(args.out)
    splits = _splits_of(args.jets, args.split)
    if table is not None and len(args.jets) > 1:
        raise HybridjetError(f"--out: a {table} table holds the events of one input; expected one EVENTS file (or an "
                             ".h5 scores file, a split per input)")
    # every input and the output checked before the model loads and anything is written
    if table is not None:
        column = column_name(args.run_dir, args.column)
        check_writable(args.out, inputs=tuple(args.jets), replaces=is_score_table, what=TABLE_WHAT)
        check_table_output(args.out)
    else:
        check_writable(args.out, inputs=tuple(args.jets), replaces=is_scores_file, what=SCORES_WHAT)
    inputs = scoring_inputs(args.run_dir)
    sources: list[Any] = []
    event_ids = None
    for jets in args.jets:
        if Path(jets).suffix.lower() == ".root":
            source, event_ids = _root_source(jets, args.tree, args.fields, inputs)
            sources.append(source)
            continue
        count_jets_events(jets)
        inputs.check_n_jets(jets_per_event(jets), jets, constituents_per_jet(jets))
        check_unique_ids(jets)
        sources.append(jets)
        event_ids = read_event_ids(jets)
    if table is not None:  # a table of other events, or a column of another run, is refused now, not after scoring
        check_table_events(args.out, event_ids)
        check_table_column(args.out, column, str(Path(args.run_dir).resolve()))
    device = None
    if args.device:
        try:
            device = resolve_device(args.device)
        except HybridjetError as err:
            raise HybridjetError(f"--device: {err}") from None
    started = time.perf_counter()
    clf = load_run(args.run_dir, model=args.model, dense=args.dense)
    if device is not None and hasattr(clf, "to"):
        clf = clf.to(device)
    where = getattr(clf, "device", "cpu")
    print(f"loaded {args.run_dir} ({type(clf).__name__}{', dense' if args.dense else ''}, {where}) in "
          f"{time.perf_counter() - started:.1f} s", flush=True)
    for jets, source, split in zip(args.jets, sources, splits, strict=True):
        started = time.perf_counter()
        event_id, score, label = _score_file(clf, source, args.batch_size, args.progress)
        seconds = time.perf_counter() - started
        if table is not None:
            write_score_table(args.out, event_id, label, column, score, str(Path(args.run_dir).resolve()))
            where = f"{args.out} [column {column}]"
        else:
            out = write_scores(args.out, split=split, event_id=event_id, score=score, label=label,
                               attrs={"model": clf.model_kind, "score_kind": "probability",
                                      "run": str(Path(args.run_dir)), "dense": bool(args.dense)},
                               split_attrs=data_identity(jets))
            where = f"{out} [{split}]"
        print(f"scored {len(score):,} events of {jets} in {seconds:.1f} s "
              f"({len(score) / max(seconds, 1e-9):,.0f} events/s) -> {where}", flush=True)
    if getattr(clf, "compiled_artifacts_read", 0):
        print(f"compiled kernels: {clf.compiled_artifacts_read} artifacts read from this machine's cache", flush=True)
    if getattr(clf, "compiled_artifacts_kept", None) is not None:
        print(f"compiled kernels kept in {clf.compiled_artifacts_kept} (the next load on this GPU kind reads them)",
              flush=True)
    return 0


def _root_source(path: str, tree: str, fields: str, inputs: Any) -> tuple[Any, Any]:
    """A ROOT input as :class:`RootEvents` and its events' ids, its tree and every branch the run needs checked
    (no jet read)."""
    from hybridjet.data.columnar import RootEvents, check_root_events, parse_fields
    from hybridjet.data.features import get_feature_set

    source = RootEvents(path, tree, parse_fields(fields))
    inputs.refuse_jets_only(f"{path}:{tree}")
    record = get_feature_set(inputs.feature_set)
    return source, check_root_events(source, record.needs_tau, record.needs_particle_count)


def _score_file(clf: Any, jets: Any, batch_size: int | None, progress: bool) -> tuple[Any, Any, Any]:
    """``(event_id, score, label)`` arrays of every event of ``jets`` (a path or :class:`RootEvents`), in file
    order."""
    import numpy as np

    ids, scores, labels = [np.zeros(0, np.int64)], [np.zeros(0, np.float32)], [np.zeros(0, np.int8)]
    for batch, probs in clf.iter_probabilities(jets, batch_size, progress):
        ids.append(batch["event_id"].numpy())
        scores.append(probs)
        labels.append(batch["label"].numpy().astype(np.int8))
    return np.concatenate(ids), np.concatenate(scores), np.concatenate(labels)


def _splits_of(inputs: list[str], split: str | None) -> list[str]:
    """The scores-file split of each input: ``split`` (default ``all``) for one file, file names for several."""
    from pathlib import Path

    from hybridjet.errors import HybridjetError

    if len(inputs) == 1:
        return [split or "all"]
    if split is not None:
        raise HybridjetError("--split: names the split of one input; with several, each file's split is its name")
    names = [Path(jets).name.removesuffix(".h5").removesuffix(".root") for jets in inputs]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise HybridjetError(f"JETS_H5: several inputs would share the split {repeated[0]!r} (their file names); "
                             "score them in separate calls or rename them")
    return names
