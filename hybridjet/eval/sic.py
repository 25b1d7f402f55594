"""Significance improvement of a cut on a classifier's score, for resonance searches.

* SIC = ε_S/√ε_B: the factor by which a cut multiplies the signal region's S/√B. Its maximum is only meaningful
  where enough background survives, so every curve and maximum here is limited by a floor on the background
  efficiency, ε_B ≥ max(``min_eff_b``, ``min_background``/N_B): a fraction (the LHCO studies use 1e-4) and/or a
  number of surviving background events.
* Over retrainings (seeds) a maximum is reported as its median and the 68% band (16th to 84th percentile).
* The search's own numbers: the signal region's initial S/B and S/√B, and the best S/√B after the cut
  (initial S/√B × max SIC).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hybridjet.errors import HybridjetError
from hybridjet.eval.metrics import check_inputs, roc_points

DEFAULT_MIN_EFF_B = 1e-4
DEFAULT_MIN_BACKGROUND = 0.0


@dataclass(frozen=True)
class SicFloor:
    """The least background a SIC point must keep: a fraction ``min_eff_b`` and/or ``min_background`` events."""

    min_eff_b: float = DEFAULT_MIN_EFF_B
    min_background: float = DEFAULT_MIN_BACKGROUND

    def __post_init__(self) -> None:
        for name in ("min_eff_b", "min_background"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
                raise HybridjetError(f"evaluation.{name}: expected a number >= 0, got {value!r}")
        if self.min_eff_b >= 1:
            raise HybridjetError(f"evaluation.min_eff_b: expected a fraction below 1, got {self.min_eff_b!r}")

    def eff_b(self, n_background: int) -> float:
        """The floor on ε_B for ``n_background`` background events (at least one event must survive)."""
        return max(self.min_eff_b, self.min_background / n_background, 1.0 / n_background)


def sic_curve(labels: Any, scores: Any, floor: SicFloor | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(eff_s, eff_b, sic)`` at every threshold whose ε_B is at or above the floor, tightest cut first."""
    floor = floor or SicFloor()
    y, s = check_inputs(labels, scores)
    eff_s, eff_b, _ = roc_points(y, s)
    keep = eff_b >= floor.eff_b(int((~y).sum())) * (1 - 1e-12)
    eff_s, eff_b = eff_s[keep], eff_b[keep]
    return eff_s, eff_b, eff_s / np.sqrt(eff_b)


def max_sic(labels: Any, scores: Any, floor: SicFloor | None = None) -> dict[str, float]:
    """The largest SIC above the floor: ``max_sic``, the ``eff_s`` / ``eff_b`` where it is reached and the
    ``floor_eff_b`` used."""
    floor = floor or SicFloor()
    y, s = check_inputs(labels, scores)
    eff_s, eff_b, sic = sic_curve(y, s, floor)
    k = int(np.argmax(sic))
    return {"max_sic": float(sic[k]), "eff_s": float(eff_s[k]), "eff_b": float(eff_b[k]),
            "floor_eff_b": floor.eff_b(int((~y).sum()))}


def band(values: Sequence[float], level: float = 0.68) -> dict[str, float]:
    """Median and central ``level`` band (``lo``, ``hi``: percentiles, linearly interpolated) of finite values."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=np.float64)
    if v.size == 0:
        return {"median": math.nan, "lo": math.nan, "hi": math.nan, "n": 0}
    alpha = 50 * (1 - level)
    return {"median": float(np.median(v)), "lo": float(np.percentile(v, alpha)),
            "hi": float(np.percentile(v, 100 - alpha)), "n": int(v.size)}


def significance(n_signal: int, n_background: int, sic: float) -> dict[str, float]:
    """The signal region's initial S/B and S/√B, and S/√B after the cut that reaches ``sic``."""
    if n_background <= 0:
        return {"s_over_b": math.nan, "s_over_sqrt_b": math.nan, "best_s_over_sqrt_b": math.nan}
    initial = n_signal / math.sqrt(n_background)
    return {"s_over_b": n_signal / n_background, "s_over_sqrt_b": initial, "best_s_over_sqrt_b": initial * sic}


def search_rows(labels: np.ndarray, scores: dict[str, np.ndarray], attrs: dict[str, dict[str, Any]],
                floor: SicFloor | None = None) -> tuple[dict[str, dict[str, float]], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """For ``hybridjet compare``: per run name, max SIC above the floor and the search's S/√B (from the scores
    file's ``n_signal_sr`` / ``n_background_sr`` attributes, the data's counts), and the SIC curves."""
    rows: dict[str, dict[str, float]] = {}
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, s in scores.items():
        best = max_sic(labels, s, floor)
        a = attrs.get(name, {})
        row = {"max_sic_floor": best["max_sic"], "floor_eff_b": best["floor_eff_b"]}
        if a.get("n_background_sr") is not None:
            row.update(significance(int(a.get("n_signal_sr", 0)), int(a["n_background_sr"]), best["max_sic"]))
        rows[name] = row
        eff_s, _, sic = sic_curve(labels, s, floor)
        curves[name] = thin(eff_s, sic)
    return rows, curves


def thin(eff_s: np.ndarray, sic: np.ndarray, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """At most about ``n`` points of a SIC curve, evenly spread in ε_S, its maximum kept (for plots and JSON)."""
    if len(eff_s) <= n:
        return eff_s, sic
    picks = np.concatenate([np.searchsorted(eff_s, np.linspace(eff_s[0], eff_s[-1], n)), [int(np.argmax(sic))]])
    idx = np.unique(np.clip(picks, 0, len(eff_s) - 1))
    return eff_s[idx], sic[idx]
