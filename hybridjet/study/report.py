"""A study's report: per (method, N) the median and 68% band over seeds of AUC, 1/ε_B at ε_S = 0.3 and 0.5 and max
SIC; per control and N the paired AUC gap to the reference method (mean over the seeds both trained, with its paired
95% bootstrap interval over seeds and test events — each resample draws the seeds and the events, the same events
for both methods —, the interval over the test events alone, and the band of the seeds' own gaps); the
learning-curve figures; ``study.md`` and ``study.json``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from hybridjet.eval.metrics import mean_paired_auc_gap
from hybridjet.eval.sic import band
from hybridjet.io_utils import atomic_path, write_json
from hybridjet.rundir import RunDir

METRICS = {"auc": "AUC", "rejection_at_0.3": "1/ε_B at ε_S = 0.3", "rejection_at_0.5": "1/ε_B at ε_S = 0.5",
           "max_sic": "max SIC"}
GAP_BOOTSTRAP = 200


def summarize(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (method, N), in the methods' and sizes' order: seeds, and each metric's median and band."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault((r["method"], r["n"]), []).append(r)
    return [{"method": method, "n": n, "seeds": len(group),
             **{key: band([g["test"].get(key) for g in group]) for key in METRICS}}
            for (method, n), group in groups.items()]


def auc_gaps(records: list[dict[str, Any]], reference: str | None, n_boot: int = GAP_BOOTSTRAP
             ) -> list[dict[str, Any]]:
    """Per control and N: the reference's AUC minus the control's over the seeds both trained (mean; paired 95%
    interval over seeds and test events, and over the test events alone; median and 68% band of the seeds' own
    gaps)."""
    if reference is None:
        return []
    by_key = {(r["method"], r["n"], r["seed"]): r for r in records}
    cache: dict[str, Any] = {}

    def scores(record: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if record["run_dir"] not in cache:
            s = RunDir(record["run_dir"]).read_scores("test")
            order = np.argsort(s.event_id)
            cache[record["run_dir"]] = (s.event_id[order], s.label[order], s.score[order].astype(np.float64))
        return cache[record["run_dir"]]

    out = []
    methods = list(dict.fromkeys(r["method"] for r in records))
    for method in (m for m in methods if m != reference):
        for n in sorted({r["n"] for r in records if r["method"] == method}):
            seeds = sorted(s for (m, size, s) in by_key if m == method and size == n and (reference, n, s) in by_key)
            if not seeds:
                continue
            pairs = [(scores(by_key[(reference, n, s)]), scores(by_key[(method, n, s)])) for s in seeds]
            ids, labels = pairs[0][0][0], pairs[0][0][1]
            if not all(np.array_equal(a[0], ids) and np.array_equal(b[0], ids) for a, b in pairs):
                continue  # not the same test events (cannot happen within one study)
            ref, other = [a[2] for a, _ in pairs], [b[2] for _, b in pairs]
            gap, lo, hi = mean_paired_auc_gap(labels, ref, other, n_boot, resample_pairs=True)
            _, events_lo, events_hi = mean_paired_auc_gap(labels, ref, other, n_boot)
            per_seed = [by_key[(reference, n, s)]["test"]["auc"] - by_key[(method, n, s)]["test"]["auc"]
                        for s in seeds]
            out.append({"reference": reference, "control": method, "n": n, "seeds": len(seeds), "gap": gap,
                        "lo": lo, "hi": hi, "events_lo": events_lo, "events_hi": events_hi, "level": 0.95,
                        "seed_band": band(per_seed)})
    return out


def _fmt(b: dict[str, float], digits: int = 4) -> str:
    if not math.isfinite(b.get("median", math.nan)):
        return "–"
    fmt = (lambda x: f"{x:.{digits}f}") if digits else (lambda x: f"{x:.3g}")
    return f"{fmt(b['median'])} [{fmt(b['lo'])}, {fmt(b['hi'])}]"


def markdown(name: str, rows: list[dict[str, Any]], gaps: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    """The report as markdown: the learning curves' table and the gaps' table."""
    lines = [f"# Study {name}", "",
             f"Test set: {meta['n_test']:,} events ({meta['n_test_signal']:,} signal); validation "
             f"{meta['n_val']:,}; features {meta['features']}{_own_features(meta)}. Median [68% band] over seeds.", "",
             "| method | N | seeds | AUC | 1/ε_B @ ε_S=0.3 | 1/ε_B @ ε_S=0.5 | max SIC |", "|:---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['n']:,} | {r['seeds']} | {_fmt(r['auc'])} | "
                     f"{_fmt(r['rejection_at_0.3'], 0)} | {_fmt(r['rejection_at_0.5'], 0)} | {_fmt(r['max_sic'], 0)} |")
    if gaps:
        lines += ["", f"AUC gap: {gaps[0]['reference']} minus each control, the mean over the seeds both trained. "
                  "Its 95% interval is a paired bootstrap that draws the seeds and the test events in every resample "
                  "(the same events for both methods): it holds the spread between trainings as well as the test "
                  "set's; the interval over the test events alone says only how sure the gap is for these very "
                  "models. Above zero: the reference is better.", "",
                  "| control | N | seeds | Δ AUC | 95% CI (seeds + events) | excludes 0 | 95% CI (events) | "
                  "seeds' gaps [68% band] |", "|:---|---:|---:|---:|---:|:---|---:|---:|"]
        for g in gaps:
            sign = "above" if g["lo"] > 0 else "below" if g["hi"] < 0 else "no"
            lines.append(f"| {g['control']} | {g['n']:,} | {g['seeds']} | {g['gap']:+.4f} | "
                         f"[{g['lo']:+.4f}, {g['hi']:+.4f}] | {sign} | [{g['events_lo']:+.4f}, "
                         f"{g['events_hi']:+.4f}] | {_fmt(g['seed_band'])} |")
    return "\n".join(lines) + "\n"


def write_report(cfg: Any, records: list[dict[str, Any]], test_file: Path, seconds: float
                 ) -> tuple[dict[str, Path], list[dict[str, Any]]]:
    """Write ``study.md``, ``study.json``, ``learning_curves.png`` and ``auc_gaps.png`` into ``cfg.report``; print
    the table; returns the paths and the summary rows."""
    from hybridjet.data.store import read_labels
    from hybridjet.eval import plots

    rows = summarize(records)
    reference = cfg.reference if any(r["method"] == cfg.reference for r in records) else None
    gaps = auc_gaps(records, reference)
    labels = read_labels(test_file)
    meta = {"name": cfg.name, "n_test": int(len(labels)), "n_test_signal": int((labels == 1).sum()),
            "n_val": cfg.val_events, "features": cfg.feature_set,
            "method_features": {m.name: m.features for m in cfg.methods if m.features}, "sizes": list(cfg.sizes),
            "seconds": seconds,
            "reference": reference, "budget": vars(cfg.budget)}
    out = Path(cfg.report)
    paths = {"markdown": out / "study.md", "json": out / "study.json"}
    text = markdown(cfg.name, rows, gaps, meta)
    with atomic_path(paths["markdown"], suffix=".md") as tmp:
        tmp.write_text(text)
    series = {label: {m: [{**r[key], "n": r["n"]} for r in rows if r["method"] == m]
                      for m in dict.fromkeys(r["method"] for r in rows)} for key, label in METRICS.items()
              if key != "rejection_at_0.3"}
    write_json(paths["json"], {"meta": meta, "summary": rows, "gaps": gaps, "curves": series, "runs": records})
    with plots.plot_style(plots.default_style()):
        paths["curves"] = plots.plot_learning_curves(series, out / "learning_curves.png",
                                                     f"{cfg.name}: median and 68% band over seeds, "
                                                     f"{meta['n_test']:,} test events")
        if gaps:
            by_control: dict[str, list[dict[str, Any]]] = {}
            for g in gaps:
                by_control.setdefault(g["control"], []).append(g)
            paths["gaps"] = plots.plot_auc_gaps(by_control, reference, out / "auc_gaps.png", cfg.name)
    print("\n" + text)
    return paths, rows


def _own_features(meta: dict[str, Any]) -> str:
    """`` (gbdt: substructure)``: the methods that read a feature set of their own."""
    own = meta.get("method_features") or {}
    return f" ({', '.join(f'{name}: {features}' for name, features in own.items())})" if own else ""
