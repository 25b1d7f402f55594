"""The figures of a comparison, a resonance search and a study (matplotlib on the Agg backend, PNG written
atomically), in a HEP style through mplhep: :func:`plot_style` sets it for the figures drawn inside it
(``plain``: matplotlib's own; ``hep``: mplhep's ROOT-like style, the default; an experiment's — ATLAS, CMS, LHCb,
ALICE, DUNE — also labels each panel "<experiment> Simulation")."""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator
from itertools import cycle
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hybridjet.io_utils import atomic_path

if TYPE_CHECKING:  # pragma: no cover
    from hybridjet.eval.compare import Report

#: plot styles by name -> mplhep's style (None: matplotlib's own)
STYLES = {"plain": None, "hep": "ROOT", "ATLAS": "ATLAS", "CMS": "CMS", "LHCb": "LHCb2", "ALICE": "ALICE",
          "DUNE": "DUNE"}
_EXPERIMENTS = {"ATLAS": "atlas", "CMS": "cms", "LHCb": "lhcb", "ALICE": "alice", "DUNE": "dune"}
_current_style: contextvars.ContextVar[str] = contextvars.ContextVar("hybridjet_plot_style", default="plain")


@contextlib.contextmanager
def plot_style(name: str = "hep") -> Iterator[None]:
    """Draw the figures made inside in style ``name`` (one of :data:`STYLES`)."""
    from hybridjet.errors import HybridjetError

    if name not in STYLES:
        raise HybridjetError(f"--style: expected one of {', '.join(STYLES)}, got {name!r}")
    rc: dict[str, Any] = {}
    try:
        import matplotlib

        if STYLES[name] is not None:
            import mplhep

            rc = _flat_style(getattr(mplhep.style, STYLES[name]))
    except ImportError as err:
        raise HybridjetError(f"figures in style {name} need {err.name or 'matplotlib'}: pip install "
                             "'hybridjet[plots]'") from None

    token = _current_style.set(name)
    try:
        with matplotlib.rc_context(rc):
            yield
    finally:
        _current_style.reset(token)


def default_style() -> str:
    """``hep`` where mplhep (and matplotlib) are installed, else ``plain``."""
    import importlib.util

    found = all(importlib.util.find_spec(m) is not None for m in ("mplhep", "matplotlib"))
    return "hep" if found else "plain"


def _flat_style(style: Any) -> dict[str, Any]:
    """An mplhep style (a dict, or a list of dicts applied in order) as one rc mapping."""
    if isinstance(style, dict):
        return dict(style)
    out: dict[str, Any] = {}
    for part in style:
        if isinstance(part, dict):
            out.update(part)
    return out


_COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
_STYLES = ("-", "--", "-.", (0, (1, 1)), (0, (5, 1, 1, 1, 1, 1)))


def _new_figure(panels: int = 1, width: float = 6.4, height: float = 5.2) -> Any:
    """A standalone figure on the Agg canvas (no pyplot state, works headless and leaves notebooks alone), sized
    ``width`` x ``height`` per panel (a HEP style's larger fonts get 1.4x that)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    scale = 1.0 if _current_style.get() == "plain" else 1.4
    fig = Figure(figsize=(scale * width * panels, scale * height), dpi=120 if scale == 1.0 else 90,
                 layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _figure() -> tuple[Any, Any]:
    """One panel: :func:`_new_figure` and its axes."""
    fig = _new_figure()
    return fig, fig.add_subplot()


def _save(fig: Any, path: str | os.PathLike[str]) -> Path:
    """Label the panels with the experiment of the style, if it names one, and write the PNG atomically."""
    experiment = _EXPERIMENTS.get(_current_style.get())
    if experiment is not None:
        import mplhep

        for ax in fig.axes:
            getattr(mplhep, experiment).label(ax=ax, data=False, loc=0, fontsize="small")
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
    fig = _new_figure(len(series), 5.0, 4.6)
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


def plot_rejection_and_sic(report: Report, path: str | os.PathLike[str], min_background: int = 10) -> Path:
    """Two panels side by side: background rejection 1/ε_B and SIC = ε_S/√ε_B against ε_S, one curve per model;
    SIC over the cuts keeping at least ``min_background`` background events (below that it is noise)."""
    fig = _new_figure(2)
    left, right = fig.subplots(1, 2)
    n_background = report.rows[0]["n_background"]
    floor = min_background / max(n_background, 1)
    for row, style in zip(report.rows, _styles(len(report.rows)), strict=True):
        eff_s, eff_b = report.curves[row["name"]]
        ok = (eff_b > 0) & (eff_s > 0)
        left.plot(eff_s[ok], 1.0 / eff_b[ok], label=row["name"], **style)
        kept = ok & (eff_b >= floor)
        sic = eff_s[kept] / np.sqrt(eff_b[kept])
        best = float(sic.max()) if sic.size else float("nan")
        right.plot(eff_s[kept], sic, label=f"{row['name']} (max {best:.2f})", **style)
    x = np.linspace(0.01, 1.0, 200)
    left.plot(x, 1.0 / x, color="0.45", linestyle=(0, (4, 3)), linewidth=1.2, label="Random")
    right.axhline(1.0, color="0.45", linestyle=(0, (4, 3)), linewidth=1.2, label="No cut (SIC = 1)")
    left.set_yscale("log")
    left.set_ylim(bottom=1.0)
    left.set_ylabel("Background rejection 1/ε$_B$")
    right.set_ylabel("SIC = ε$_S$/√ε$_B$")
    right.set_ylim(bottom=0.0)
    for ax in (left, right):
        ax.set_xlim(0.0, 1.0)
        ax.set_xlabel("Signal efficiency ε$_S$")
        ax.grid(True, which="major", alpha=0.5)
    left.legend(loc="upper right", fontsize=8, framealpha=0.9)
    right.legend(loc="upper right", fontsize=8, framealpha=0.9,
                 title=f"cuts keeping ≥ {min_background} background events", title_fontsize=8)
    return _save(fig, path)


def plot_score_distributions(labels: np.ndarray, scores: dict[str, np.ndarray], path: str | os.PathLike[str],
                             bins: int = 40) -> Path:
    """Per model a panel of its score's distribution for signal and background (unit area, filled by ``hist``, drawn
    by mplhep where installed), on the score's own range; the last column's events without a label are left out."""
    import math

    n = len(scores)
    columns = min(n, 3)
    rows = math.ceil(n / columns)
    fig = _new_figure(columns, 4.6, 3.8 * rows)
    axes = np.atleast_1d(fig.subplots(rows, columns, squeeze=False)).ravel()
    for ax, (name, values) in zip(axes, scores.items(), strict=False):
        values = np.asarray(values, np.float64)
        lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
        hi = hi if hi > lo else lo + 1.0
        for cls, label, color in ((0, "background", _COLORS[0]), (1, "signal", _COLORS[1])):
            chosen = values[labels == cls]
            counts, edges = _histogram(chosen, bins, lo, hi)
            area = counts.sum() * (edges[1] - edges[0])
            density = counts / area if area > 0 else counts
            _step(ax, density, edges, f"{label} ({len(chosen):,})", color)
        ax.set_xlabel(f"{name} score")
        ax.set_ylabel("Events (unit area)")
        ax.set_yscale("log")
        ax.legend(loc="upper center", fontsize=8, framealpha=0.9)
    for ax in axes[n:]:
        ax.set_visible(False)
    return _save(fig, path)


def _histogram(values: np.ndarray, bins: int, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """Counts and edges of ``values`` in ``bins`` regular bins on [lo, hi] (``hist`` where installed)."""
    try:
        import hist
    except ImportError:
        counts, edges = np.histogram(values, bins=bins, range=(lo, hi))
        return counts.astype(float), edges
    # the top edge is exclusive: the highest scores (many at exactly 1.0) would fall into the overflow
    h = hist.Hist(hist.axis.Regular(bins, lo, hi, name="score")).fill(np.clip(values, lo, np.nextafter(hi, lo)))
    return h.values().astype(float), h.axes[0].edges


def _step(ax: Any, density: np.ndarray, edges: np.ndarray, label: str, color: str) -> None:
    try:
        import mplhep
    except ImportError:
        ax.stairs(density, edges, label=label, color=color, linewidth=1.6)
        return
    mplhep.histplot(density, edges, ax=ax, label=label, color=color, linewidth=1.6, histtype="step")
