"""ROC plots of a comparison report (matplotlib, Agg backend, PNG written atomically)."""

from __future__ import annotations

import os
from itertools import cycle
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hybridjet.io_utils import atomic_path

if TYPE_CHECKING:  # pragma: no cover
    from hybridjet.eval.compare import Report

_COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
_STYLES = ("-", "--", "-.", (0, (1, 1)), (0, (5, 1, 1, 1, 1, 1)))


def _figure() -> tuple[Any, Any]:
    """A standalone figure on the Agg canvas (no pyplot state, works headless and leaves notebooks alone)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 5.2), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _save(fig: Any, path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    return path


def _styles(n: int) -> list[dict[str, Any]]:
    colors, styles = cycle(_COLORS), cycle(_STYLES)
    return [{"color": next(colors), "linestyle": next(styles), "linewidth": 1.8} for _ in range(n)]


def _grouped_styles(names: list[str]) -> list[dict[str, Any]]:
    """One colour per first word of a name (the method), one line style per the rest (the mode)."""
    parts = [(n.split(" ", 1)[0], n.split(" ", 1)[-1]) for n in names]
    heads = list(dict.fromkeys(h for h, _ in parts))
    tails = list(dict.fromkeys(t for _, t in parts))
    return [{"color": _COLORS[heads.index(h) % len(_COLORS)], "linestyle": _STYLES[tails.index(t) % len(_STYLES)],
             "linewidth": 1.8} for h, t in parts]


def _label(row: dict[str, Any]) -> str:
    return f"{row['name']} (AUC = {row['auc']:.3f})"


def _subtitle(report: Report) -> str:
    r = report.rows[0]
    return f"Test set: {r['n_test']:,} events ({r['n_signal']:,} signal, {r['n_background']:,} background)"


def plot_rejection(report: Report, path: str | os.PathLike[str]) -> Path:
    """Background rejection 1/ε_B (log scale) versus ε_S, one curve per model, random classifier dashed."""
    fig, ax = _figure()
    y_max = 1.0
    for row, style in zip(report.rows, _styles(len(report.rows)), strict=True):
        eff_s, eff_b = report.curves[row["name"]]
        ok = (eff_b > 0) & (eff_s > 0)
        rej = 1.0 / eff_b[ok]
        if rej.size:
            y_max = max(y_max, float(rej.max()))
        marker = "o" if rej.size < 3 else None  # e.g. a perfect classifier: only the (1, 1) point is finite
        ax.plot(eff_s[ok], rej, label=_label(row), marker=marker, **style)
    x = np.linspace(0.01, 1.0, 200)
    ax.plot(x, 1.0 / x, color="0.45", linestyle=(0, (4, 3)), linewidth=1.2, label="Random (1/ε$_S$)")
    ax.set_yscale("log")
    ax.set_xlim(0.0, 1.0)
    top = max(10.0, y_max * 2.0)
    ax.set_ylim(1.0, top)
    limit = report.rows[0]["n_background"] / 10.0  # above this, fewer than 10 background events pass
    if limit < top:
        ax.axhspan(max(limit, 1.0), top, color="0.92", zorder=0, label="< 10 background events pass")
    ax.set_xlabel("Signal efficiency ε$_S$")
    ax.set_ylabel("Background rejection 1/ε$_B$")
    ax.set_title(_subtitle(report), fontsize=9, loc="left")
    ax.grid(True, which="major", alpha=0.5)
    ax.grid(True, which="minor", alpha=0.15)
    ax.legend(loc="upper right", fontsize=8, framealpha=0.9)
    return _save(fig, path)


def plot_tpr_fpr(report: Report, path: str | os.PathLike[str]) -> Path:
    """Plain ROC curve: true-positive rate (ε_S) versus false-positive rate (ε_B), with the diagonal."""
    fig, ax = _figure()
    for row, style in zip(report.rows, _styles(len(report.rows)), strict=True):
        eff_s, eff_b = report.curves[row["name"]]
        ax.plot(eff_b, eff_s, label=_label(row), **style)
    ax.plot([0, 1], [0, 1], color="0.45", linestyle=(0, (4, 3)), linewidth=1.2, label="Random (AUC = 0.5)")
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.0)
    ax.set_aspect("equal")
    ax.set_xlabel("False-positive rate ε$_B$ (background efficiency)")
    ax.set_ylabel("True-positive rate ε$_S$ (signal efficiency)")
    ax.set_title(_subtitle(report), fontsize=9, loc="left")
    ax.grid(True, alpha=0.4)
    ax.legend(loc="lower right", fontsize=8, framealpha=0.9)
    return _save(fig, path)


def plot_sic(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: str | os.PathLike[str],
             floor_eff_b: float | None = None, title: str | None = None) -> Path:
    """SIC = ε_S/√ε_B versus ε_S, one curve per name (each limited to cuts above the background floor)."""
    fig, ax = _figure()
    for (name, (eff_s, sic)), style in zip(curves.items(), _styles(len(curves)), strict=True):
        best = float(np.max(sic)) if len(sic) else float("nan")
        ax.plot(eff_s, sic, label=f"{name} (max {best:.2f})", **style)
    ax.axhline(1.0, color="0.45", linestyle=(0, (4, 3)), linewidth=1.2, label="No cut (SIC = 1)")
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(bottom=0.0)
    ax.set_xlabel("Signal efficiency ε$_S$")
    ax.set_ylabel("Significance improvement ε$_S$/√ε$_B$")
    floor = f"cuts keeping ε$_B$ ≥ {floor_eff_b:.3g}" if floor_eff_b else ""
    ax.set_title(" — ".join(t for t in (title, floor) if t), fontsize=9, loc="left")
    ax.grid(True, alpha=0.4)
    ax.legend(loc="upper right", fontsize=7, framealpha=0.9)
    return _save(fig, path)


def on_common_grid(points: list[dict[str, Any]], grid_percent: list[float]
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One series' points (``{"s_over_b", "median", "lo", "hi"}``) on the grid of every series' S/B values in %,
    from its first to its last: NaN where it has no point, so that its line and band break there instead of
    joining its neighbours across an S/B it was not trained at. Returns (x in %, median, lo, hi)."""
    by_x = {100 * p["s_over_b"]: p for p in points}
    x = np.array([g for g in grid_percent if min(by_x) <= g <= max(by_x)], dtype=float)
    values = [[by_x[g][k] if g in by_x else np.nan for g in x] for k in ("median", "lo", "hi")]
    return x, *(np.asarray(v, dtype=float) for v in values)


def plot_max_sic_vs_sb(series: dict[str, list[dict[str, Any]]], path: str | os.PathLike[str],
                       title: str | None = None) -> Path:
    """Max SIC against the injected S/B (log axis, in %): per series (a method and mode) the median over seeds with
    its 68% band; ``series[name]`` is a list of ``{"s_over_b", "median", "lo", "hi"}`` points. Names "method mode"
    share a colour per method and a line style per mode; the axis is labelled at the injected values."""
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

    fig, ax = _figure()
    finite = {name: [p for p in points if np.isfinite(p["median"])] for name, points in series.items()}
    injected = sorted({100 * p["s_over_b"] for points in finite.values() for p in points})
    for (name, points), style in zip(finite.items(), _grouped_styles(list(series)), strict=True):
        if not points:
            continue
        x, med, lo, hi = on_common_grid(points, injected)
        ax.plot(x, med, marker="o", markersize=4, label=name, **style)
        ax.fill_between(x, lo, hi, color=style["color"], alpha=0.15, linewidth=0)
        alone = np.isfinite(med) & ~np.isfinite(np.r_[np.nan, med[:-1]]) & ~np.isfinite(np.r_[med[1:], np.nan])
        ax.vlines(x[alone], lo[alone], hi[alone], color=style["color"], alpha=0.4, linewidth=3)  # no band to fill
    ax.axhline(1.0, color="0.45", linestyle=(0, (4, 3)), linewidth=1.2, label="No gain (SIC = 1)")
    ax.set_xscale("log")
    if injected:  # the injected values themselves, as plain numbers (not 10^1, 2x10^1)
        ax.xaxis.set_major_locator(FixedLocator(injected))
        ax.set_xticklabels([f"{t:g}" for t in injected])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_ylim(bottom=0.0)
    ax.set_xlabel("Injected S/B in the signal region [%]")
    ax.set_ylabel("Max SIC (median, 68% band over seeds)")
    if title:
        ax.set_title(title, fontsize=9, loc="left")
    ax.grid(True, which="major", alpha=0.5)
    ax.grid(True, which="minor", alpha=0.15)
    ax.legend(loc="upper left", fontsize=7, framealpha=0.9)
    return _save(fig, path)


def plot_learning_curves(series: dict[str, dict[str, list[dict[str, Any]]]], path: str | os.PathLike[str],
                         title: str | None = None) -> Path:
    """Learning curves: per metric (``series`` maps a metric's axis label to its series) a panel of that metric
    against the training size N (log axis), each method's median over seeds with its 68% band; a method is a list
    of ``{"n", "median", "lo", "hi"}`` points."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.0 * len(series), 4.6), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(series), squeeze=False)[0]
    for ax, (label, methods) in zip(axes, series.items(), strict=True):
        for (name, points), style in zip(methods.items(), _styles(len(methods)), strict=True):
            points = sorted((p for p in points if np.isfinite(p["median"])), key=lambda p: p["n"])
            if not points:
                continue
            x = np.array([p["n"] for p in points], dtype=float)
            ax.plot(x, [p["median"] for p in points], marker="o", markersize=4, label=name, **style)
            ax.fill_between(x, [p["lo"] for p in points], [p["hi"] for p in points], color=style["color"],
                            alpha=0.15, linewidth=0)
        ax.set_xscale("log")
        if "1/ε" in label:
            ax.set_yscale("log")
        ax.set_xlabel("Training events N")
        ax.set_ylabel(label)
        ax.grid(True, which="major", alpha=0.5)
        ax.grid(True, which="minor", alpha=0.15)
    axes[0].legend(loc="lower right", fontsize=7, framealpha=0.9)
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def plot_auc_gaps(gaps: dict[str, list[dict[str, Any]]], reference: str, path: str | os.PathLike[str],
                  title: str | None = None) -> Path:
    """The AUC of ``reference`` minus each control's against N (log axis): the mean over seeds with its paired
    95% bootstrap interval over seeds and events; above zero, the reference is better."""
    fig, ax = _figure()
    for (name, points), style in zip(gaps.items(), _styles(len(gaps)), strict=True):
        points = sorted(points, key=lambda p: p["n"])
        x = np.array([p["n"] for p in points], dtype=float)
        gap = np.array([p["gap"] for p in points])
        err = np.array([[p["gap"] - p["lo"] for p in points], [p["hi"] - p["gap"] for p in points]])
        ax.errorbar(x, gap, yerr=err, marker="o", markersize=4, capsize=3, label=f"{reference} − {name}", **style)
    ax.axhline(0.0, color="0.45", linestyle=(0, (4, 3)), linewidth=1.2)
    ax.set_xscale("log")
    ax.set_xlabel("Training events N")
    ax.set_ylabel("Δ AUC (mean over seeds, 95% interval over seeds and events)")
    if title:
        ax.set_title(title, fontsize=9, loc="left")
    ax.grid(True, which="major", alpha=0.5)
    ax.legend(loc="upper right", fontsize=7, framealpha=0.9)
    return _save(fig, path)
