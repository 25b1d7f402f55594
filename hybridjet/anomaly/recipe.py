"""``hybridjet anomaly``: a weakly supervised resonance search end to end.

Pools of signal and background jets (read, or generated with Pythia 8 and clustered) → regions on m_jj → the pools
cut into data, an idealized reference and a truth test set → per injected S/B and seed the data and its k-fold
files for each label mode → every (method, mode, S/B, seed) trained through the package's recipes and scored →
seed ensembles → the report (table, JSON, figures). Every setting and input is checked before training starts;
a (method, mode, S/B, seed) already trained with the same settings is reused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from hybridjet.anomaly.config import Method, SearchConfig
from hybridjet.anomaly.jobs import KfoldTask, run_tasks, start_grid
from hybridjet.anomaly.kfold import Scored, evaluate_split, fold_datamodule
from hybridjet.data.injection import (
    AnomalySample,
    Partition,
    Pools,
    inject,
    injected_signal_counts,
    partition,
)
from hybridjet.data.sources import DataSource
from hybridjet.data.store import write_jets
from hybridjet.data.weak import LABEL_MODES, FoldFiles, fold_numbers, write_fold_files
from hybridjet.errors import HybridjetError
from hybridjet.eval.search_report import notes, ordering, summarize, table, write_search_report
from hybridjet.eval.sic import SicFloor, sic_curve, thin
from hybridjet.io_utils import lock_folder, strict_json
from hybridjet.run import RUN_LOCK
from hybridjet.rundir import RunDir
from hybridjet.train.methods import check_backbones


def load_pools(cfg: SearchConfig, progress: bool = True) -> Pools:
    """The signal and background pools the config names (generated first when it says so)."""
    return DataSource(cfg.jets, cfg.signal, cfg.background, cfg.generate).pools(progress)


def check_search(cfg: SearchConfig, pools: Pools) -> Partition:
    """Every check that needs the events, before anything is written: the regions against the data's m_jj, the
    samples each mode and the evaluation need, an injectable signal at every S/B; returns the partition."""
    mjj = np.concatenate([pools.signal_mjj, pools.background_mjj])
    needs = {need for mode in cfg.modes for need in LABEL_MODES[mode].needs}
    cfg.regions.check(mjj, need_sidebands="sidebands" in needs)
    part = partition(pools, cfg.regions, cfg.background_fractions, cfg.test_signal_fraction, cfg.sample_seed,
                     cfg.supervised_signal_fraction)
    if "reference" in needs and len(part.reference) == 0:
        raise HybridjetError("sample.background_fractions: the reference share holds no signal-region background; "
                             "expected a reference fraction > 0 for the idealized mode")
    if cfg.eval_split == "test" and len(np.unique(part.test.label)) < 2:
        raise HybridjetError("sample: the test set holds one class only (signal-region signal from "
                             "test_signal_fraction, background from the third background fraction); expected both "
                             "for evaluation.split: test")
    n_bkg_sr = int(cfg.regions.in_signal_region(part.data_background_mjj).sum())
    for sb in cfg.s_over_b:
        n_sr, _ = injected_signal_counts(part, sb)
        fold_numbers(n_bkg_sr + n_sr, cfg.folds, 0)  # as many folds as signal-region events at most
    return part


def pools_key(pools: Pools) -> str:
    """A digest of the pools' events (ids, m_jj), so that runs trained on other events of the same files are
    not reused."""
    digest = hashlib.sha256()
    for arrays, mjj in ((pools.signal, pools.signal_mjj), (pools.background, pools.background_mjj)):
        digest.update(np.ascontiguousarray(arrays.event_id, np.int64).tobytes())
        digest.update(np.ascontiguousarray(mjj, np.float32).tobytes())
    return digest.hexdigest()[:16]


def _fingerprint(cfg: SearchConfig, method: Method, s_over_b: float, seed: int, data_key: str = "") -> str:
    """What one trained (method, mode, S/B, seed) depends on: the events (``data_key``), the data, sample,
    injection, features, folds and ensemble settings, this method's settings, S/B and seed — not the other methods,
    S/B values or seeds, nor where the report goes or how it is evaluated."""
    same = dataclasses.replace(cfg, report="", methods=(method,), s_over_b=(s_over_b,), seeds=(seed,), modes=(),
                               ensemble_seeds=False, eval_split="test", floor=SicFloor())
    settings = dataclasses.asdict(same)
    del settings["reported_only"]  # what a run reports, not how it trains (and runs from before the field match)
    settings["methods"] = [method.record()]
    for m in settings["methods"]:
        if m["kind"] is None:
            del m["kind"]  # not a variant: the fingerprint of before variants existed
    text = strict_json({"config": settings, "events": data_key}, None)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _finished(run_dir: Path, fingerprint: str, cfg: SearchConfig) -> dict[str, Any] | None:
    """The metrics of a run trained with the same settings, if there is one, evaluated again (the floor may have
    changed) from its scores."""
    try:
        metrics = RunDir(run_dir).read_metrics()
        if metrics.get("fingerprint") != fingerprint:
            return None
        metrics["search"] = {split: evaluate_split(Scored(*_arrays(run_dir, split)), cfg.floor)
                             for split in metrics.get("search", {})}
    except (OSError, ValueError, HybridjetError):
        return None
    return metrics


def _arrays(run_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    scores = RunDir(run_dir).read_scores(split)
    return scores.event_id, scores.score.astype(np.float64), scores.label


def _seed_ensemble(records: list[dict[str, Any]], run_dir: Path, cfg: SearchConfig) -> dict[str, Any]:
    """The mean of the seeds' probabilities, per split whose events every seed scored (the data split only when
    the injected data is the same for every seed); written like a seed's run."""
    first = records[0]
    splits: dict[str, Any] = {}
    for split in ("data", "test"):
        if split == "data" and cfg.resample_injection:
            continue
        sets = [RunDir(r["run_dir"]).read_scores(split) for r in records]
        orders = [np.argsort(s.event_id) for s in sets]
        ids = sets[0].event_id[orders[0]]
        if split == "test" and not all(np.array_equal(s.event_id[o], ids) for s, o in zip(sets, orders, strict=True)):
            continue
        mean = np.mean([s.score[o].astype(np.float64) for s, o in zip(sets, orders, strict=True)], axis=0)
        label = sets[0].label[orders[0]]
        RunDir(run_dir).write_scores(split, ids, mean, label, {**sets[0].attrs, "seeds": len(records)},
                                     sets[0].split_attrs)
        splits[split] = evaluate_split(Scored(ids, mean, label), cfg.floor)
    metrics = {**{k: first[k] for k in ("method", "label_mode", "s_over_b", "counts")},
               "name": first["name"].rsplit("/", 1)[0] + "/ensemble", "model": first["model"], "seed": "ensemble",
               "seeds": [r["seed"] for r in records], "search": splits, "run_dir": str(run_dir)}
    RunDir(run_dir).write_metrics(metrics)
    return metrics


def _curve(record: dict[str, Any], split: str, cfg: SearchConfig) -> tuple[np.ndarray, np.ndarray] | None:
    scores = RunDir(record["run_dir"]).read_scores(split)
    if len(np.unique(scores.label)) < 2:
        return None
    eff_s, _, sic = sic_curve(scores.label, scores.score, cfg.floor)
    return thin(eff_s, sic)


def write_files(cfg: SearchConfig, part: Partition) -> tuple[Path | None, dict[tuple[float, int], Any]]:
    """The test set and, per (S/B, seed), the injected data's k-fold files; every training file's data module is
    built once here, so that a mode that cannot train (one class in a split) fails before any training."""
    files = Path(cfg.out) / "files"
    test = None
    if len(part.test):
        test = files / "test.h5"
        write_jets(test, part.test, attrs={"content": "truth-labelled signal-region test set"})
    out: dict[tuple[float, int], Any] = {}
    for sb in cfg.s_over_b:
        for seed in cfg.seeds:
            sample: AnomalySample = inject(part, sb, cfg.injection_seed + (seed if cfg.resample_injection else 0))
            folds: list[FoldFiles] = write_fold_files(sample, cfg.modes, cfg.folds, seed,
                                                      files / f"sb{sb:g}" / f"seed{seed}")
            for fold in folds:
                for mode, path in fold.train.items():
                    try:
                        first = cfg.methods[0]
                        fold_datamodule(path, first, first.feature_set(cfg.feature_set), cfg.split, seed)
                    except HybridjetError as err:
                        raise HybridjetError(f"mode {mode} at S/B {sb:g}, seed {seed}, fold {fold.fold}: {err}; "
                                             "inject more signal or use fewer folds") from None
            out[(sb, seed)] = (sample.counts(), folds)
    return test, out


def _fmt(x: Any) -> str:
    return "–" if x is None or not np.isfinite(x) else f"{x:.2f}"


def _print_run(name: str, metrics: dict[str, Any], seconds: float) -> None:
    got = "  ".join(f"{s} {_fmt(metrics['search'][s].get('max_sic'))}" for s in ("test", "data")
                    if s in metrics["search"])
    spent = f"{seconds:.0f} s"
    if "fit_time_s" in metrics:  # trained now or in an earlier run of this version
        spent += f": fit {metrics['fit_time_s']:.0f} + score {metrics['score_time_s']:.0f}"
        if metrics.get("models_reused"):
            spent += f"; {metrics['models_reused']} fold models from an earlier try"
    print(f"  {name:32s} max SIC {got}  [{spent}]", flush=True)


def run_search(cfg: SearchConfig, progress: bool = True, check_only: bool = False, jobs: int = 1,
               scheduler: str | None = None) -> dict[str, Any]:
    """Run the whole search, training ``jobs`` (method, mode, S/B, seed) at a time; returns ``{"rows": summary
    rows, "records": per-seed records, "paths": report}``."""
    started = start_grid(cfg.out, jobs, progress, "resonance search")
    pools = load_pools(cfg, progress)
    part = check_search(cfg, pools)
    check_backbones(cfg.methods)
    print(f"pools: {len(pools.signal):,} signal, {len(pools.background):,} background events; data background in "
          f"the regions {len(part.data_background):,}, reference {len(part.reference):,}, test "
          f"{int((part.test.label == 1).sum()):,} signal + {int((part.test.label == 0).sum()):,} background", flush=True)
    if check_only:
        return {"rows": [], "records": [], "paths": {}}
    lock = lock_folder(cfg.out, RUN_LOCK, "running a resonance search into it")  # its fold files are rewritten
    try:
        return _search(cfg, pools, part, progress, jobs, started, scheduler)
    finally:
        os.close(lock)


def _search(cfg: SearchConfig, pools: Pools, part: Partition, progress: bool, jobs: int,
            started: float, scheduler: str | None = None) -> dict[str, Any]:
    """:func:`run_search` past its checks, holding the search folder's lock."""
    test, prepared = write_files(cfg, part)
    data_key = pools_key(pools)
    slots: list[dict[str, Any] | None] = []  # every run's metrics in the grid's order, once trained
    pending: list[tuple[int, KfoldTask]] = []  # (its slot, the task)
    untrained: list[tuple[int, str, Path, str]] = []  # reported-only runs not finished yet: (slot, name, dir, fingerprint)
    for (sb, seed), (counts, folds) in prepared.items():
        print(f"S/B {100 * sb:.3g}% seed {seed}: {counts['n_signal_sr']} signal + {counts['n_background_sr']} "
              f"background in the signal region (S/√B {counts['s_over_sqrt_b']:.2f})", flush=True)
        for method in cfg.methods + cfg.reported_only:
            for mode in cfg.modes:
                name = f"{method.name}/{mode}/sb{sb:g}/seed{seed}"
                fingerprint = _fingerprint(cfg, method, sb, seed, data_key)
                run_dir = Path(cfg.out) / "runs" / name
                info = {"name": name, "method": method.name, "s_over_b": sb, "counts": counts,
                        "fingerprint": fingerprint, "run_dir": str(run_dir), **{k: counts[k] for k in
                                                                                 ("n_signal_sr", "n_background_sr")}}
                t = time.perf_counter()
                metrics = _finished(run_dir, fingerprint, cfg)
                if metrics is None and method in cfg.reported_only:
                    untrained.append((len(slots), name, run_dir, fingerprint))  # looked for again after training
                    slots.append(None)
                    continue
                if metrics is None:
                    pending.append((len(slots), KfoldTask(method, mode, tuple(folds), test, run_dir, seed,
                                                            method.feature_set(cfg.feature_set), cfg.split,
                                                            method.models_per_fold or cfg.per_fold,
                                                            cfg.ensemble_folds, cfg.floor, info)))
                    slots.append(None)
                    continue
                slots.append(metrics)
                _print_run(name, metrics, time.perf_counter() - t)
    if pending:
        print(f"training {len(pending)} (method, mode, S/B, seed), {min(jobs, len(pending))} at a time", flush=True)
        trained = run_tasks([task for _, task in pending], jobs, scheduler=scheduler,
                            on_done=lambda task, metrics, seconds: _print_run(task.info["name"], metrics, seconds))
        for (slot, _), metrics in zip(pending, trained, strict=True):
            slots[slot] = metrics
    missing = []
    for slot, name, run_dir, fingerprint in untrained:  # finished meanwhile, e.g. brought back from another machine
        t = time.perf_counter()
        slots[slot] = _finished(run_dir, fingerprint, cfg)
        if slots[slot] is None:
            missing.append(name)
        else:
            _print_run(name, slots[slot], time.perf_counter() - t)
    if missing:
        print(f"not in the report (not trained with these settings, not asked for with --methods): "
              f"{len(missing)} runs, e.g. {missing[0]}", flush=True)
    records = [r for r in slots if r is not None]
    curves: dict[float, dict[str, Any]] = {sb: {} for sb in cfg.s_over_b}
    if cfg.ensemble_seeds and len(cfg.seeds) > 1:
        for key in dict.fromkeys((r["method"], r["label_mode"], r["s_over_b"]) for r in list(records)):
            group = [r for r in records if (r["method"], r["label_mode"], r["s_over_b"]) == key]
            if len(group) < len(cfg.seeds):
                continue  # a reported-only method with some seeds finished: no ensemble beside full ones
            run_dir = Path(cfg.out) / "runs" / group[0]["name"].rsplit("/", 1)[0] / "ensemble"
            records.append(_seed_ensemble(group, run_dir, cfg))
    for r in records:  # one curve per (method, mode, S/B): the seed ensemble's, else the first seed's
        name = f"{r['method']} {r['label_mode']}"
        if cfg.eval_split in r["search"] and (r["seed"] == "ensemble" or name not in curves[r["s_over_b"]]):
            curve = _curve(r, cfg.eval_split, cfg)
            if curve is not None:
                curves[r["s_over_b"]][name] = curve
    meta = {"config": dataclasses.asdict(cfg), "seconds": time.perf_counter() - started}
    paths = write_search_report(cfg.report, records, cfg.eval_split, curves, meta)
    rows = summarize(records, cfg.eval_split)
    print("\n" + table(rows) + "\n" + notes(rows, ordering(rows), cfg.eval_split))
    print(f"report: {', '.join(str(p) for p in paths.values())}  [{time.perf_counter() - started:.0f} s]")
    return {"rows": rows, "records": records, "paths": paths}
