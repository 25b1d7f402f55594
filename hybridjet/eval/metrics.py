"""Binary-classification metrics in HEP conventions: ROC, AUC, background rejection, SIC, bootstrap intervals.

Conventions
-----------
* Higher score = more signal-like; an event is *selected* when ``score >= threshold``.
* ``eff_s`` (ε_S, signal efficiency, TPR) and ``eff_b`` (ε_B, background efficiency, FPR) are fractions of the
  signal / background events selected.  Background rejection is ``1/ε_B``.
* Ties are handled exactly: events sharing a score form one ROC step, and AUC equals the Mann-Whitney statistic
  with ties counted as one half.
* ``rejection_at_X`` is ``1/ε_B`` at ``ε_S = X``, with ε_B interpolated linearly between the two ROC points that
  bracket ``X`` (the efficiency reachable by randomising between the two neighbouring thresholds).  When no
  background passes at that working point the rejection is unbounded: it is reported as ``float('inf')`` here and
  as ``> N_b`` (the lower bound ``1/ε_B > N_b``) in tables.
* ``max_sic`` is the maximum of ``ε_S/√ε_B`` over thresholds that keep at least ``min_background`` background
  events (default 10), so that the maximum is not driven by a handful of events.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from hybridjet.errors import HybridjetError

REJECTION_WORKING_POINTS = (0.3, 0.5)
DEFAULT_MIN_BACKGROUND = 10.0

MetricFn = Callable[[np.ndarray, np.ndarray], float]


# ---------------------------------------------------------------------------------------------- validation
def check_inputs(labels: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert ``labels`` (0/1) and ``scores`` (finite or ±inf reals) to bool and float64 arrays."""
    y = np.asarray(labels)
    s = np.asarray(scores)
    if y.ndim != 1 or s.ndim != 1:
        raise HybridjetError(f"labels and scores must be 1-D arrays; got shapes {y.shape} and {s.shape}")
    if len(y) != len(s):
        raise HybridjetError(f"labels and scores have different lengths ({len(y)} vs {len(s)})")
    if len(y) == 0:
        raise HybridjetError("no events to evaluate (empty labels and scores)")
    if y.dtype == bool:
        yb = y
    else:
        if not np.issubdtype(y.dtype, np.number):
            raise HybridjetError(f"labels must be 0/1 numbers; got dtype {y.dtype}")
        bad = ~((y == 0) | (y == 1))
        if bad.any():
            raise HybridjetError(
                f"labels must be 0 (background) or 1 (signal); found {int(bad.sum())} other value(s), "
                f"e.g. {y[bad][0].item()!r}"
            )
        yb = y == 1
    if not np.issubdtype(s.dtype, np.number) or np.issubdtype(s.dtype, np.complexfloating):
        raise HybridjetError(f"scores must be real numbers; got dtype {s.dtype}")
    s = s.astype(np.float64, copy=False)
    n_nan = int(np.isnan(s).sum())
    if n_nan:
        raise HybridjetError(f"{n_nan} of {len(s)} scores are NaN; fix the model output before evaluating")
    n_sig = int(yb.sum())
    if n_sig == 0 or n_sig == len(yb):
        only = "signal" if n_sig else "background"
        raise HybridjetError(f"labels contain only {only} events ({len(yb)}); metrics need both classes")
    return yb, s


def default_threshold(scores: np.ndarray) -> float:
    """0.5 when every score lies in [0, 1] (probabilities), else 0 (logits / logit differences)."""
    s = np.asarray(scores)
    return 0.5 if (s.size and float(s.min()) >= 0.0 and float(s.max()) <= 1.0) else 0.0


# ---------------------------------------------------------------------------------------------- ROC core
@dataclass(frozen=True)
class _Grouped:
    """Events grouped by distinct score (ascending), computed once and re-weighted by the bootstrap."""

    values: np.ndarray  # distinct scores, ascending
    inverse: np.ndarray  # event -> group
    y: np.ndarray  # bool labels

    @classmethod
    def build(cls, y: np.ndarray, s: np.ndarray) -> _Grouped:
        values, inverse = np.unique(s, return_inverse=True)
        return cls(values, inverse.ravel(), y)

    def roc(self, weights: np.ndarray | None = None) -> _Roc:
        g = len(self.values)
        w = np.ones(len(self.y)) if weights is None else weights
        sig = np.bincount(self.inverse, weights=w * self.y, minlength=g)[::-1]
        bkg = np.bincount(self.inverse, weights=w * ~self.y, minlength=g)[::-1]
        tp = np.concatenate([[0.0], np.cumsum(sig)])
        fp = np.concatenate([[0.0], np.cumsum(bkg)])
        thresholds = np.concatenate([[np.inf], self.values[::-1]])
        return _Roc(tp, fp, thresholds)


@dataclass(frozen=True)
class _Roc:
    """Cumulative (weighted) signal/background counts selected at each threshold, loosest last."""

    tp: np.ndarray
    fp: np.ndarray
    thresholds: np.ndarray

    @property
    def n_sig(self) -> float:
        return float(self.tp[-1])

    @property
    def n_bkg(self) -> float:
        return float(self.fp[-1])

    def auc(self) -> float:
        if self.n_sig <= 0 or self.n_bkg <= 0:
            return math.nan
        area = np.sum(np.diff(self.fp) * (self.tp[1:] + self.tp[:-1])) / 2.0
        return float(area / (self.n_sig * self.n_bkg))

    def eff_b_at(self, eff_s: float) -> float:
        if self.n_sig <= 0 or self.n_bkg <= 0:
            return math.nan
        es = self.tp / self.n_sig
        eb = self.fp / self.n_bkg
        i = int(np.searchsorted(es, eff_s, side="left"))  # first point with es >= eff_s (es[0] = 0)
        i = min(max(i, 1), len(es) - 1)
        x0, x1, y0, y1 = es[i - 1], es[i], eb[i - 1], eb[i]
        if x1 <= x0:
            return float(y1)
        return float(y0 + (y1 - y0) * (eff_s - x0) / (x1 - x0))

    def rejection_at(self, eff_s: float) -> float:
        eb = self.eff_b_at(eff_s)
        if math.isnan(eb):
            return math.nan
        return math.inf if eb <= 0 else 1.0 / eb

    def max_sic(self, min_background: float = DEFAULT_MIN_BACKGROUND) -> tuple[float, float]:
        """(max ε_S/√ε_B, ε_S where it is reached) over points with ≥ min_background background events."""
        if self.n_sig <= 0 or self.n_bkg <= 0:
            return math.nan, math.nan
        ok = (self.fp >= min_background) & (self.fp > 0)
        if not ok.any():
            return math.nan, math.nan
        es = self.tp[ok] / self.n_sig
        sic = es / np.sqrt(self.fp[ok] / self.n_bkg)
        k = int(np.argmax(sic))
        return float(sic[k]), float(es[k])


def _accuracy(y: np.ndarray, s: np.ndarray, threshold: float, weights: np.ndarray | None = None) -> float:
    correct = (s >= threshold) == y
    if weights is None:
        return float(correct.mean())
    return float(np.sum(weights * correct) / np.sum(weights))


# ---------------------------------------------------------------------------------------------- public API
def roc_points(labels: Any, scores: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC as ``(eff_s, eff_b, thresholds)``, one point per distinct score, from (0, 0) at ``+inf`` to (1, 1).

    Point ``i`` selects events with ``score >= thresholds[i]``; both efficiencies are non-decreasing.
    """
    y, s = check_inputs(labels, scores)
    roc = _Grouped.build(y, s).roc()
    return roc.tp / roc.n_sig, roc.fp / roc.n_bkg, roc.thresholds


def auc(labels: Any, scores: Any) -> float:
    """Area under the ROC curve (Mann-Whitney; ties count one half)."""
    y, s = check_inputs(labels, scores)
    return _Grouped.build(y, s).roc().auc()


def rejection_at(labels: Any, scores: Any, eff_s: float) -> float:
    """Background rejection ``1/ε_B`` at signal efficiency ``eff_s`` (``inf`` when no background passes)."""
    if not 0.0 < eff_s <= 1.0:
        raise HybridjetError(f"signal efficiency must be in (0, 1]; got {eff_s}")
    y, s = check_inputs(labels, scores)
    return _Grouped.build(y, s).roc().rejection_at(eff_s)


def max_sic(labels: Any, scores: Any, min_background: float = DEFAULT_MIN_BACKGROUND) -> float:
    """Maximum significance improvement ``ε_S/√ε_B`` over thresholds keeping ≥ ``min_background`` bkg events."""
    y, s = check_inputs(labels, scores)
    return _Grouped.build(y, s).roc().max_sic(min_background)[0]


def accuracy(labels: Any, scores: Any, threshold: float | None = None) -> float:
    """Fraction of events classified correctly with ``score >= threshold`` as signal (see ``default_threshold``)."""
    y, s = check_inputs(labels, scores)
    return _accuracy(y, s, default_threshold(s) if threshold is None else threshold)


def binary_metrics(
    labels: Any,
    scores: Any,
    threshold: float | None = None,
    min_background: float = DEFAULT_MIN_BACKGROUND,
) -> dict[str, float | int]:
    """All headline metrics of one classifier as a flat dict.

    Keys: ``auc``, ``accuracy`` (at ``threshold``; default 0.5 for scores in [0, 1], else 0), ``threshold``,
    ``rejection_at_0.3`` and ``rejection_at_0.5`` (``1/ε_B``; ``inf`` when no background passes),
    ``max_sic`` and ``max_sic_eff_s`` (NaN when no threshold keeps ``min_background`` background events),
    ``n_events``, ``n_signal``, ``n_background``.
    """
    y, s = check_inputs(labels, scores)
    thr = default_threshold(s) if threshold is None else float(threshold)
    roc = _Grouped.build(y, s).roc()
    sic, sic_eff = roc.max_sic(min_background)
    out: dict[str, float | int] = {"auc": roc.auc(), "accuracy": _accuracy(y, s, thr), "threshold": thr}
    for wp in REJECTION_WORKING_POINTS:
        out[f"rejection_at_{wp}"] = roc.rejection_at(wp)
    out.update(
        max_sic=sic,
        max_sic_eff_s=sic_eff,
        n_events=int(len(y)),
        n_signal=int(y.sum()),
        n_background=int(len(y) - y.sum()),
    )
    return out


def split_metrics(labels: Any, scores: Any) -> dict[str, float | int]:
    """:func:`binary_metrics` of an evaluated split, or only its event counts when it holds one class (a small
    test split of rare signal): a run's scores are written either way."""
    y = np.asarray(labels).astype(int)
    n_sig = int((y == 1).sum())
    if 0 < n_sig < len(y):
        return binary_metrics(y, scores)
    return {"n_events": int(len(y)), "n_signal": n_sig, "n_background": int(len(y) - n_sig)}


# ---------------------------------------------------------------------------------------------- bootstrap
def _named_metric(name: str) -> Callable[[_Roc, np.ndarray, np.ndarray, np.ndarray], float]:
    if name == "auc":
        return lambda roc, y, s, w: roc.auc()
    if name == "max_sic":
        return lambda roc, y, s, w: roc.max_sic()[0]
    if name == "accuracy":
        return lambda roc, y, s, w: _accuracy(y, s, default_threshold(s), w)
    if name.startswith("rejection_at_"):
        try:
            wp = float(name.removeprefix("rejection_at_"))
        except ValueError:
            wp = math.nan
        if 0.0 < wp <= 1.0:
            return lambda roc, y, s, w: roc.rejection_at(wp)
    raise HybridjetError(
        f"unknown metric {name!r}; use 'auc', 'accuracy', 'max_sic', 'rejection_at_<eff_s>' or a callable"
    )


def _fast_name(metric_fn: object) -> str | None:
    if isinstance(metric_fn, str):
        return metric_fn
    for fn, name in ((auc, "auc"), (max_sic, "max_sic"), (accuracy, "accuracy")):
        if metric_fn is fn:
            return name
    return None


def _resample(rng: np.random.Generator, sig_idx: np.ndarray, bkg_idx: np.ndarray) -> np.ndarray:
    """Indices of one stratified bootstrap resample (signal and background drawn separately)."""
    return np.concatenate(
        [
            sig_idx[rng.integers(0, len(sig_idx), len(sig_idx))],
            bkg_idx[rng.integers(0, len(bkg_idx), len(bkg_idx))],
        ]
    )


def bootstrap_interval(
    metric_fn: MetricFn | str,
    labels: Any,
    scores: Any,
    n_boot: int = 200,
    level: float = 0.68,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval ``(lo, hi)`` of a metric at confidence ``level``.

    Signal and background events are resampled separately (class counts stay fixed, as in a fixed test set).
    ``metric_fn`` is a callable ``(labels, scores) -> float`` or a name (``"auc"``, ``"accuracy"``, ``"max_sic"``,
    ``"rejection_at_0.5"``); names and this module's ``auc``/``accuracy``/``max_sic`` use a fast path that sorts
    once and re-weights events (200 resamples of 100k events take well under a second).  Resamples where the
    metric is NaN are dropped; infinite values are kept (so ``hi`` may be ``inf``).
    """
    if n_boot < 1:
        raise HybridjetError(f"number of bootstrap resamples must be >= 1; got {n_boot}")
    if not 0.0 < level < 1.0:
        raise HybridjetError(f"confidence level must be between 0 and 1; got {level}")
    y, s = check_inputs(labels, scores)
    rng = np.random.default_rng(seed)
    sig_idx = np.flatnonzero(y)
    bkg_idx = np.flatnonzero(~y)
    name = _fast_name(metric_fn)
    values = np.empty(n_boot)
    if name is not None:
        fn = _named_metric(name)
        grouped = _Grouped.build(y, s)
        n = len(y)
        for b in range(n_boot):
            pick = _resample(rng, sig_idx, bkg_idx)
            w = np.bincount(pick, minlength=n).astype(np.float64)
            values[b] = fn(grouped.roc(w), y, s, w)
    else:
        for b in range(n_boot):
            pick = _resample(rng, sig_idx, bkg_idx)
            values[b] = float(metric_fn(y[pick].astype(np.int8), s[pick]))  # type: ignore[operator]
    values = values[~np.isnan(values)]
    if values.size == 0:
        return math.nan, math.nan
    alpha = (1.0 - level) / 2.0
    # no interpolation between resamples, so that infinite rejections stay well defined
    lo = np.quantile(values, alpha, method="lower")
    hi = np.quantile(values, 1.0 - alpha, method="higher")
    return float(lo), float(hi)


def auc_or_nan(labels: Any, scores: Any) -> float:
    """:func:`auc`, or NaN (instead of an error) when the labels hold one class only (an evaluation split of a
    training loop that happens to see one class)."""
    labels = np.asarray(labels).astype(int)
    if len(np.unique(labels)) < 2:
        return math.nan
    return auc(labels, scores)


def paired_auc_gap(labels: Any, scores_a: Any, scores_b: Any, n_boot: int = 200, level: float = 0.95,
                   seed: int = 0) -> tuple[float, float, float]:
    """AUC(a) − AUC(b) of two classifiers' scores of the same events, with its paired percentile bootstrap
    interval ``(gap, lo, hi)`` at ``level``: each resample draws the same events for both (signal and background
    separately, as :func:`bootstrap_interval`), so the interval reflects the gap's own spread, far narrower than
    the two AUCs' intervals side by side."""
    return mean_paired_auc_gap(labels, [scores_a], [scores_b], n_boot, level, seed)


def mean_paired_auc_gap(labels: Any, scores_a: list[Any], scores_b: list[Any], n_boot: int = 200,
                        level: float = 0.95, seed: int = 0, resample_pairs: bool = False) -> tuple[float, float, float]:
    """The mean over pairs ``(scores_a[i], scores_b[i])`` (e.g. two methods trained with seed i) of AUC(a) − AUC(b)
    on the same events, with its paired percentile bootstrap interval at ``level``: every resample draws the same
    events for every pair, so the interval holds the test set's spread of the mean gap. ``resample_pairs``: each
    resample also draws the pairs with replacement, so that the interval holds the spread between training seeds
    too (a hierarchical bootstrap: the honest interval for "is a better than b", not only "on these models")."""
    if n_boot < 1:
        raise HybridjetError(f"number of bootstrap resamples must be >= 1; got {n_boot}")
    if not scores_a or len(scores_a) != len(scores_b):
        raise HybridjetError(f"paired scores: {len(scores_a)} and {len(scores_b)} sets; expected one pair or more")
    y, _ = check_inputs(labels, scores_a[0])
    grouped = []
    for a, b in zip(scores_a, scores_b, strict=True):
        _, a = check_inputs(labels, a)
        _, b = check_inputs(labels, b)
        if len(a) != len(b):
            raise HybridjetError(f"paired scores: {len(a)} and {len(b)} events; expected the same events")
        grouped.append((_Grouped.build(y, a), _Grouped.build(y, b)))
    gap = float(np.mean([ga.roc().auc() - gb.roc().auc() for ga, gb in grouped]))
    rng = np.random.default_rng(seed)
    sig_idx, bkg_idx = np.flatnonzero(y), np.flatnonzero(~y)
    values = np.empty(n_boot)
    for i in range(n_boot):
        w = np.bincount(_resample(rng, sig_idx, bkg_idx), minlength=len(y)).astype(np.float64)
        pairs = rng.integers(0, len(grouped), len(grouped)) if resample_pairs else range(len(grouped))
        values[i] = np.mean([grouped[p][0].roc(w).auc() - grouped[p][1].roc(w).auc() for p in pairs])
    alpha = (1.0 - level) / 2.0
    return gap, float(np.quantile(values, alpha)), float(np.quantile(values, 1.0 - alpha))
