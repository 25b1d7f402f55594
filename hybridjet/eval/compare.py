"""Compare classifiers on one test set: metrics table, JSON and HEP-style ROC plots."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hybridjet import checks
from hybridjet.errors import HybridjetError, InputFileError
from hybridjet.eval import metrics as M
from hybridjet.eval.sic import SicFloor, band, search_rows
from hybridjet.io_utils import atomic_path, check_writable
from hybridjet.rundir import RunDir

INFO_FIELDS = ("trainable_params", "train_time_s", "train_events_per_s", "infer_events_per_s")
#: bootstrap resamples at most (each one a pass over the test set's scores)
MAX_BOOTSTRAP = 100_000
_CURVE_POINTS = 400


@dataclass
class Report:
    """Per-model metrics (``rows``) and ROC curves of one comparison."""

    rows: list[dict[str, Any]]
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # name -> (eff_s, eff_b)
    level: float = 0.68
    n_boot: int = 200
    meta: dict[str, Any] = field(default_factory=dict)
    gaps: list[dict[str, Any]] = field(default_factory=list)  # paired AUC gaps: the reference minus each other
    sic_curves: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # name -> (eff_s, SIC)
    sic_bands: list[dict[str, Any]] = field(default_factory=list)  # max SIC over the seeds of one search setting
    # the events' labels and each model's scores, for the score distributions (not written to the JSON)
    labels: np.ndarray | None = field(default=None, repr=False)
    scores: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    # ------------------------------------------------------------------------------------------ table
    def table(self, fmt: str = "markdown") -> str:
        """The comparison as a markdown table (``fmt="markdown"``); AUC with its bootstrap interval."""
        if fmt != "markdown":
            raise HybridjetError(f"unknown table format {fmt!r}; only 'markdown' is supported")
        ci = f" [{round(100 * self.level)}% CI]" if self.n_boot else ""
        cols: list[tuple[str, Any]] = [
            ("Model", lambda r: str(r["name"])),
            (f"AUC{ci}", _fmt_auc),
            ("Accuracy", lambda r: _fmt_num(r["accuracy"], 3)),
            ("1/ε_B @ ε_S=0.3", lambda r: _fmt_rej(r["rejection_at_0.3"], r["n_background"])),
            ("1/ε_B @ ε_S=0.5", lambda r: _fmt_rej(r["rejection_at_0.5"], r["n_background"])),
            ("max SIC", lambda r: _fmt_num(r["max_sic"], 2)),
            ("N test", lambda r: f"{r['n_test']:,}"),
        ]
        extra = {
            "trainable_params": ("Trainable params", lambda r: _fmt_count(r.get("trainable_params"))),
            "train_time_s": ("Train time", lambda r: _fmt_time(r.get("train_time_s"))),
            "train_events_per_s": ("Train ev/s", lambda r: _fmt_rate(r.get("train_events_per_s"))),
            "infer_events_per_s": ("Infer ev/s", lambda r: _fmt_rate(r.get("infer_events_per_s"))),
            # runs scored on a resonance search's signal-region events (truth labels): SIC above the floor
            "max_sic_floor": ("max SIC (ε_B floor)", lambda r: _fmt_num(r.get("max_sic_floor"), 2)),
            "s_over_b": ("S/B in SR", lambda r: "–" if r.get("s_over_b") is None else f"{100 * r['s_over_b']:.3g}%"),
            "s_over_sqrt_b": ("S/√B", lambda r: _fmt_num(r.get("s_over_sqrt_b"), 2)),
            "best_s_over_sqrt_b": ("S/√B after cut", lambda r: _fmt_num(r.get("best_s_over_sqrt_b"), 2)),
        }
        for key, col in extra.items():
            if any(r.get(key) is not None for r in self.rows):
                cols.append(col)
        lines = [
            "| " + " | ".join(c[0] for c in cols) + " |",
            "|" + "|".join(":---" if i == 0 else "---:" for i in range(len(cols))) + "|",
        ]
        for r in self.rows:
            lines.append("| " + " | ".join(c[1](r) for c in cols) + " |")
        return "\n".join(lines) + "\n" + self.gap_table() + self.band_table()

    def band_table(self) -> str:
        """Max SIC above the floor over the seeds of each (method, mode, S/B) among the runs; empty without."""
        if not self.sic_bands:
            return ""
        pct = round(100 * self.level)
        lines = ["", f"| Search runs | seeds | max SIC median [{pct}% band] | S/√B | S/√B after cut |",
                 "|:---|---:|---:|---:|---:|"]
        for b in self.sic_bands:
            s = b["max_sic"]
            lines.append(f"| {b['group']} | {b['n_seeds']} | {_fmt_num(s['median'], 2)} [{_fmt_num(s['lo'], 2)}, "
                         f"{_fmt_num(s['hi'], 2)}] | {_fmt_num(b['s_over_sqrt_b'], 2)} | "
                         f"{_fmt_num(b['best_s_over_sqrt_b'], 2)} |")
        return "\n".join(lines) + "\n"

    def gap_table(self) -> str:
        """The paired AUC gaps (reference − other) as a markdown table; empty without gaps."""
        if not self.gaps:
            return ""
        level = round(100 * self.gaps[0]["level"])
        lines = ["", f"| AUC gap | Δ AUC | {level}% paired CI |", "|:---|---:|---:|"]
        for g in self.gaps:
            lines.append(f"| {g['reference']} − {g['other']} | {g['gap']:+.4f} | [{g['lo']:+.4f}, {g['hi']:+.4f}] |")
        return "\n".join(lines) + "\n"

    def notes(self) -> str:
        """One paragraph explaining the table's conventions (written under it in ``comparison.md``)."""
        parts = []
        if self.n_boot:
            parts.append(
                f"AUC interval: {round(100 * self.level)}% percentile bootstrap, {self.n_boot} resamples "
                "(signal and background resampled separately)."
            )
        parts.append(
            "1/ε_B: background rejection at the given signal efficiency, interpolated linearly on the ROC; "
            "'> N' means no background event passes (bound set by the N background events)."
        )
        parts.append(
            f"max SIC: max ε_S/√ε_B over thresholds keeping ≥ {M.DEFAULT_MIN_BACKGROUND:g} background events."
        )
        parts.append("Accuracy: score ≥ 0.5 (probabilities) or ≥ 0 (logit differences) classified as signal.")
        if self.sic_curves:
            floor = self.rows[0].get("floor_eff_b")
            parts.append(f"max SIC (ε_B floor): max ε_S/√ε_B over cuts keeping ε_B ≥ {floor:.3g}; S/B, S/√B: the "
                         "signal region's data before any cut; after cut: S/√B × max SIC.")
        if self.gaps:
            parts.append(f"AUC gap: the reference's AUC minus each other model's on the same events, with a paired "
                         f"percentile bootstrap ({self.gaps[0]['n_boot']} resamples drawing the same events for "
                         "both): far narrower than the two AUC intervals side by side.")
        if self.meta.get("data_unverified"):
            parts.append(f"Not verified to be the same data (their scores files record no data digest; matched by "
                         f"event ids only): {', '.join(self.meta['data_unverified'])}.")
        return " ".join(parts) + "\n"

    # ------------------------------------------------------------------------------------------ json
    def to_dict(self) -> dict[str, Any]:
        """Rows, thinned ROC curves and metadata as JSON-ready data (``inf`` as the string "inf")."""
        return _jsonable(
            {
                "meta": {**self.meta, "bootstrap": {"n_boot": self.n_boot, "level": self.level}},
                "rows": self.rows,
                "gaps": self.gaps,
                "sic_bands": self.sic_bands,
                "sic": {name: {"eff_s": es.tolist(), "sic": sic.tolist()} for name, (es, sic) in self.sic_curves.items()},
                "roc": {
                    name: {"eff_s": es.tolist(), "eff_b": eb.tolist()}
                    for name, (es, eb) in self.curves.items()
                },
            }
        )

    def to_json(self, path: str | os.PathLike[str] | None = None) -> str:
        """The report as JSON text; also written atomically to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"  # strict: to_dict spells out inf
        if path is not None:
            with atomic_path(path, suffix=".json") as tmp:
                tmp.write_text(text)
        return text

    # ------------------------------------------------------------------------------------------ plots
    def plot_roc(self, path: str | os.PathLike[str]) -> Path:
        """HEP-style ROC: background rejection 1/ε_B (log) versus signal efficiency ε_S; PNG written atomically."""
        from hybridjet.eval import plots

        return plots.plot_rejection(self, path)

    def plot_tpr_fpr(self, path: str | os.PathLike[str]) -> Path:
        """Plain ROC: true-positive rate versus false-positive rate with the diagonal; PNG written atomically."""
        from hybridjet.eval import plots

        return plots.plot_tpr_fpr(self, path)


# ---------------------------------------------------------------------------------------------- formatting
def _fmt_num(x: Any, digits: int) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.{digits}f}"


def _fmt_auc(r: dict[str, Any]) -> str:
    a, lo, hi = r["auc"], r.get("auc_lo"), r.get("auc_hi")
    if lo is None or hi is None or math.isnan(lo):
        return f"{a:.3f}"
    digits = 4 if (hi - lo) < 0.002 else 3
    return f"{a:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def _fmt_rej(x: float, n_bkg: int) -> str:
    if x is None or math.isnan(x):
        return "–"
    if math.isinf(x):
        return f"> {n_bkg:,}"
    return f"{x:.3g}" if x < 1000 else f"{x:,.0f}"


def _fmt_count(n: Any) -> str:
    if n is None:
        return "–"
    n = float(n)
    for div, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if n >= div:
            return f"{n / div:.3g}{unit}"
    return f"{n:.0f}"


def _fmt_rate(x: Any) -> str:
    return "–" if x is None else _fmt_count(x)


def _fmt_time(t: Any) -> str:
    if t is None:
        return "–"
    t = float(t)
    if t < 120:
        return f"{t:.3g} s"
    if t < 3600:
        return f"{t / 60:.3g} min"
    return f"{t / 3600:.3g} h"


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    return obj


def _thin_curve(
    eff_s: np.ndarray, eff_b: np.ndarray, n: int = _CURVE_POINTS
) -> tuple[np.ndarray, np.ndarray]:
    """At most ~2n ROC points, spread evenly in ε_S and logarithmically in ε_B (for plots and JSON)."""
    if len(eff_s) <= 2 * n:
        return eff_s, eff_b
    picks = [np.searchsorted(eff_s, np.linspace(0, 1, n)), [0, len(eff_s) - 1]]
    positive = eff_b[eff_b > 0]
    if positive.size:
        picks.append(np.searchsorted(eff_b, np.geomspace(positive[0], 1, n)))
    idx = np.unique(np.clip(np.concatenate(picks), 0, len(eff_s) - 1))
    return eff_s[idx], eff_b[idx]


# ---------------------------------------------------------------------------------------------- evaluate
def evaluate(
    labels: Any,
    scores: dict[str, Any],
    info: dict[str, dict[str, Any]] | None = None,
    n_boot: int = 200,
    level: float = 0.68,
    seed: int = 0,
    reference: str | None = None,
    gap_level: float = 0.95,
) -> Report:
    """Metrics of several classifiers scored on the same events, in the order of ``scores``.

    ``info[name]`` adds fields to that model's row (``trainable_params``, ``train_time_s``, ``train_events_per_s``,
    ``infer_events_per_s``, ``model`` ...); an ``info[name]["threshold"]`` overrides the accuracy threshold.
    ``n_boot=0`` skips the bootstrap interval on the AUC and the gaps. With two models or more, the AUC gap of
    ``reference`` (default: the first) to each other one, with its paired bootstrap interval at ``gap_level``.
    """
    if not scores:
        raise HybridjetError("no models to evaluate")
    checks.integer("number of bootstrap resamples", n_boot, 0, MAX_BOOTSTRAP)
    checks.fraction("gap_level", gap_level)
    checks.fraction("level", level)
    checks.integer("seed", seed, 0)
    info = info or {}
    unknown = sorted(set(info) - set(scores))
    if unknown:
        raise HybridjetError(f"info given for model(s) without scores: {', '.join(unknown)}")
    rows: list[dict[str, Any]] = []
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, s in scores.items():
        extra = dict(info.get(name, {}))
        try:
            y, sv = M.check_inputs(labels, s)
            m = M.binary_metrics(y, sv, threshold=extra.pop("threshold", None))
            lo, hi = M.bootstrap_interval("auc", y, sv, n_boot, level, seed) if n_boot else (None, None)
            eff_s, eff_b, _ = M.roc_points(y, sv)
        except HybridjetError as exc:
            raise HybridjetError(f"model {name!r}: {exc}") from exc
        row: dict[str, Any] = {"name": name, "auc": m["auc"], "auc_lo": lo, "auc_hi": hi}
        row.update({k: v for k, v in m.items() if k != "auc"})
        row["n_test"] = m["n_events"]
        row.update(extra)
        rows.append(row)
        curves[name] = _thin_curve(eff_s, eff_b)
    return Report(rows, curves, level=level, n_boot=n_boot, gaps=_gaps(labels, scores, reference, n_boot, gap_level,
                                                                       seed))


def _shared_events(event_ids: list[np.ndarray]) -> np.ndarray:
    """The event ids every run scored (one line when there are none)."""
    shared = event_ids[0]
    for ids in event_ids[1:]:
        shared = np.intersect1d(shared, ids)
    if len(shared) == 0:
        raise HybridjetError("--common-events: the runs share no scored event")
    return shared


def _order(event_ids: np.ndarray, shared: np.ndarray | None) -> np.ndarray:
    """The positions of a run's events sorted by id (only those in ``shared``, when given)."""
    order = np.argsort(event_ids, kind="stable")
    return order if shared is None else order[np.isin(event_ids[order], shared)]


def _gaps(labels: Any, scores: dict[str, Any], reference: str | None, n_boot: int, level: float,
          seed: int) -> list[dict[str, Any]]:
    """Paired AUC gaps of ``reference`` (default: the first model) to every other model."""
    if n_boot == 0 or len(scores) < 2:
        return []
    reference = next(iter(scores)) if reference is None else reference
    if reference not in scores:
        raise HybridjetError(f"--reference: no model named {reference!r} (have {', '.join(scores)})")
    gaps = []
    for name, other in scores.items():
        if name == reference:
            continue
        gap, lo, hi = M.paired_auc_gap(labels, scores[reference], other, n_boot=n_boot, level=level, seed=seed)
        gaps.append({"reference": reference, "other": name, "gap": gap, "lo": lo, "hi": hi, "level": level,
                     "n_boot": n_boot})
    return gaps


# ---------------------------------------------------------------------------------------------- runs
def _load_run(run_dir: Path, split: str) -> tuple[dict[str, Any], Any]:
    if not run_dir.is_dir():
        raise InputFileError(
            run_dir, "no such run directory; expected a directory with scores.h5 and metrics.json"
        )
    run = RunDir(run_dir)
    meta = run.read_metrics(missing_ok=True)
    score_set = run.read_scores(split)
    # strict metrics.json files hold null for what has no finite value: treated as absent
    meta = {k: v for k, v in meta.items() if v is not None}
    for key in INFO_FIELDS:  # shown in the table as numbers
        if key in meta and (isinstance(meta[key], bool) or not isinstance(meta[key], int | float)):
            raise InputFileError(run.metrics_file, f"{key} is {meta[key]!r}; expected a number")
    if "name" in meta and not isinstance(meta["name"], str):
        raise InputFileError(run.metrics_file, f"name is {meta['name']!r}; expected a text")
    meta.setdefault("name", run_dir.name)
    meta.setdefault("model", score_set.attrs.get("model"))
    return meta, score_set


def _check_same_data(dirs: list[Path], sets: list[Any], split: str) -> list[str]:
    """Refuse runs whose ``split`` was scored on different data files (by the content digest each scores file
    records), even where their event ids happen to match; returns the runs that record none (older runs)."""
    known = [(d, ss.split_attrs["data_sha256"], ss.split_attrs.get("data", "?")) for d, ss in zip(dirs, sets,
             strict=True) if ss.split_attrs.get("data_sha256")]
    for d, digest, data in known[1:]:
        d0, digest0, data0 = known[0]
        if digest != digest0:
            raise HybridjetError(f"runs {d0} and {d} scored their {split!r} split on different data ({data0}, sha256 "
                                 f"{digest0[:12]}; {data}, sha256 {digest[:12]}); a paired comparison needs the "
                                 "same events: score both on one file")
    for d, ss in zip(dirs, sets, strict=True):
        unlabeled = int((ss.label < 0).sum())
        if unlabeled:
            raise HybridjetError(f"{d / 'scores.h5'}: split {split!r} holds {unlabeled} events without a label (-1); "
                                 "a comparison needs truth labels: score a labelled file")
    return [str(d) for d, ss in zip(dirs, sets, strict=True) if not ss.split_attrs.get("data_sha256")]


def _check_same_events(a: Path, ea: np.ndarray, b: Path, eb: np.ndarray) -> None:
    if len(ea) == len(eb) and np.array_equal(ea, eb):
        return
    only_a = len(np.setdiff1d(ea, eb, assume_unique=True))
    only_b = len(np.setdiff1d(eb, ea, assume_unique=True))
    raise HybridjetError(
        f"runs {a} and {b} were scored on different events: {only_a} of {len(ea)} events of {a} are not in {b} "
        f"and {only_b} of {len(eb)} events of {b} are not in {a}; compare runs scored on the same split of the same data"
    )


def compare_runs(
    run_dirs: list[str | os.PathLike[str]],
    split: str = "test",
    out: str | os.PathLike[str] | None = "report/",
    n_boot: int = 200,
    reference: str | None = None,
    sic_floor: SicFloor | None = None,
    common_events: bool = False,
    style: str | None = None,
) -> Report:
    """Compare runs (``<run>/scores.h5`` + ``<run>/metrics.json``) on the same events of ``split``.

    Scores are aligned by ``event_id``; runs scored on different event sets or with disagreeing labels are
    refused.  ``reference``: the run (by name) whose AUC gaps to the others are bootstrapped (default: the first).
    Writes ``comparison.md``, ``comparison.json``, ``roc.png`` and ``roc_tpr_fpr.png`` into ``out`` (each
    atomically; ``out=None`` writes nothing) and returns the report. Runs whose scores file says it holds a
    resonance search's signal-region events (``selection = signal_region``, as ``hybridjet anomaly`` writes them)
    also get max SIC above ``sic_floor``, the search's S/B and S/√B before and after the cut, and ``sic.png``.
    ``common_events``: compare on the events every run scored (a run scored on a subset of the others' events),
    instead of refusing runs scored on different event sets. ``style``: the figures' (:data:`plots.STYLES`;
    default ``hep`` where mplhep is installed); they also show ROC and SIC side by side (``roc_sic.png``) and each
    model's score distributions for signal and background (``scores.png``).
    """
    from hybridjet.eval import plots

    style = style or plots.default_style()
    with plots.plot_style(style):  # an unknown style, or one without mplhep, is one line before any work
        pass
    dirs = [Path(d) for d in run_dirs]
    if not dirs:
        raise HybridjetError("no run directories given")
    if out is not None:  # before any work: a file in the way or a folder that cannot be written is one line
        check_writable(Path(out) / "comparison.md")
    loaded = [_load_run(d, split) for d in dirs]
    unverified = _check_same_data(dirs, [ss for _, ss in loaded], split)
    ref_dir, (_, ref) = dirs[0], loaded[0]
    shared = _shared_events([ss.event_id for _, ss in loaded]) if common_events else None
    ref_order = _order(ref.event_id, shared)
    ref_ids, ref_labels = ref.event_id[ref_order], ref.label[ref_order]
    scores: dict[str, np.ndarray] = {}
    info: dict[str, dict[str, Any]] = {}
    names = _distinct_names(dirs, [str(meta["name"]) for meta, _ in loaded])
    for d, name, (meta, ss) in zip(dirs, names, loaded, strict=True):
        order = _order(ss.event_id, shared)
        _check_same_events(ref_dir, ref_ids, d, ss.event_id[order])
        n_diff = int(np.sum(ss.label[order] != ref_labels))
        if n_diff:
            raise HybridjetError(f"runs {ref_dir} and {d} disagree on the label of {n_diff} events")
        scores[name] = ss.score[order]
        row_info = {k: meta.get(k) for k in INFO_FIELDS if meta.get(k) is not None}
        row_info["model"] = meta.get("model")
        row_info["run_dir"] = str(d)
        if ss.attrs.get("score_kind") in ("probability", "logit-difference"):
            row_info["threshold"] = 0.5 if ss.attrs["score_kind"] == "probability" else 0.0
        info[name] = row_info
    report = evaluate(ref_labels, scores, info, n_boot=n_boot, reference=reference)
    report.labels, report.scores = ref_labels, scores
    report.meta = {"split": split, "runs": [str(d) for d in dirs], "n_events": int(len(ref_ids)),
                   "data": next((ss.split_attrs.get("data") for _, ss in loaded if ss.split_attrs.get("data")), None)}
    if unverified and len(dirs) > 1:  # runs from before scores files named their data: matched by event ids only
        report.meta["data_unverified"] = unverified
    if all(ss.attrs.get("selection") == "signal_region" for _, ss in loaded):
        attrs = {row["name"]: ss.attrs for row, (_, ss) in zip(report.rows, loaded, strict=True)}
        extra, report.sic_curves = search_rows(ref_labels, scores, attrs, sic_floor)
        for row in report.rows:
            row.update(extra[row["name"]])
        report.sic_bands = seed_bands(report.rows, [meta for meta, _ in loaded], report.level)
    if out is not None:
        write_report(report, out, style)
    return report


def _distinct_names(dirs: list[Path], names: list[str]) -> list[str]:
    """Each run's name; runs sharing one (a study's ``seed0`` of several methods) are told apart by as much of their
    path as it takes (``gbdt/n300/seed0``)."""
    out = list(names)
    for name in set(names):
        clash = [i for i, n in enumerate(names) if n == name]
        if len(clash) < 2:
            continue
        parts = [dirs[i].resolve().parts for i in clash]
        for depth in range(1, max(len(p) for p in parts) + 1):
            tails = ["/".join(p[-depth:]) for p in parts]
            if len(set(tails)) == len(tails):
                break
        else:  # the same run given more than once: numbered
            tails = [name] + [f"{name} ({k + 2})" for k in range(len(clash) - 1)]
        for i, tail in zip(clash, tails, strict=True):
            out[i] = tail
    repeated = sorted({n for n in out if out.count(n) > 1})
    if repeated:  # a path's tail that is another run's name
        raise HybridjetError(f"two runs would both be named {repeated[0]!r}; rename one in its metrics.json")
    return out


def seed_bands(rows: list[dict[str, Any]], metas: list[dict[str, Any]], level: float = 0.68) -> list[dict[str, Any]]:
    """Per (method, label mode, injected S/B) that two runs or more of ``hybridjet anomaly`` share (their
    ``metrics.json``, one integer ``seed`` each): max SIC above the floor as the median and ``level`` band over the
    seeds, the data's S/√B and S/√B after the median's cut."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for row, meta in zip(rows, metas, strict=True):
        seed, mode = meta.get("seed"), meta.get("label_mode")
        if isinstance(seed, int) and not isinstance(seed, bool) and mode and row.get("max_sic_floor") is not None:
            sb = meta.get("s_over_b")
            key = f"{meta.get('method', meta.get('model'))} {mode}" + (f" S/B {100 * sb:.3g}%" if sb else "")
            groups.setdefault(key, []).append(row)
    out = []
    for key, members in groups.items():
        if len(members) < 2:
            continue
        sic = band([r["max_sic_floor"] for r in members], level)
        initial = members[0].get("s_over_sqrt_b")
        out.append({"group": key, "n_seeds": len(members), "max_sic": sic, "s_over_sqrt_b": initial,
                    "best_s_over_sqrt_b": None if initial is None else initial * sic["median"]})
    return out


def write_report(report: Report, out: str | os.PathLike[str], style: str | None = None) -> dict[str, Path]:
    """Write ``comparison.md``, ``comparison.json`` and the figures into ``out``: ``roc.png`` (rejection),
    ``roc_tpr_fpr.png``, ``roc_sic.png`` (rejection and SIC side by side), ``scores.png`` (the score distributions,
    when the report holds the scores) and, for a search's runs, ``sic.png``; in ``style``."""
    from hybridjet.eval import plots

    out = Path(out)
    paths = {
        "markdown": out / "comparison.md",
        "json": out / "comparison.json",
        "roc": out / "roc.png",
        "roc_tpr_fpr": out / "roc_tpr_fpr.png",
        "roc_sic": out / "roc_sic.png",
    }
    with atomic_path(paths["markdown"], suffix=".md") as tmp:
        tmp.write_text(report.table() + "\n" + report.notes())
    report.to_json(paths["json"])
    with plots.plot_style(style or plots.default_style()):
        report.plot_roc(paths["roc"])
        report.plot_tpr_fpr(paths["roc_tpr_fpr"])
        plots.plot_rejection_and_sic(report, paths["roc_sic"])
        if report.scores and report.labels is not None:
            paths["scores"] = plots.plot_score_distributions(report.labels, report.scores, out / "scores.png")
        if report.sic_curves:
            paths["sic"] = plots.plot_sic(report.sic_curves, out / "sic.png", report.rows[0].get("floor_eff_b"))
    return paths
