"""A resonance search's regions on the dijet mass m_jj: one signal region and the sidebands around it (GeV).

An event belongs to a window ``[lo, hi)`` when ``lo <= m_jj < hi``. The signal region is where a resonance is looked
for; the sidebands, next to it, hold data that is (nearly) background only, which the CWoLa classifier compares with
the signal region's data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hybridjet.errors import HybridjetError

DEFAULT_SIGNAL_REGION = (3300.0, 3700.0)
DEFAULT_SIDEBANDS = ((3000.0, 3300.0), (3700.0, 4100.0))

Window = tuple[float, float]


def _window(value: Any, setting: str) -> Window:
    """``[lo, hi]`` as a pair of finite floats with lo < hi, or a one-line error naming ``setting``."""
    ok = isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2
    if ok:
        try:
            lo, hi = float(value[0]), float(value[1])
        except (TypeError, ValueError):
            ok = False
        else:
            ok = math.isfinite(lo) and math.isfinite(hi) and 0.0 <= lo < hi and not any(
                isinstance(v, bool) for v in value)
    if not ok:
        raise HybridjetError(f"{setting}: expected [lo, hi] in GeV with 0 <= lo < hi, got {value!r}")
    return lo, hi


def _overlap(a: Window, b: Window) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def _fmt(window: Window) -> str:
    return f"[{window[0]:g}, {window[1]:g}] GeV"


@dataclass(frozen=True)
class Regions:
    """The signal region and the sidebands on m_jj (GeV); windows may not overlap one another."""

    signal_region: Window = DEFAULT_SIGNAL_REGION
    sidebands: tuple[Window, ...] = DEFAULT_SIDEBANDS

    @classmethod
    def from_config(cls, config: dict[str, Any] | None, setting: str = "regions") -> Regions:
        """From ``{signal_region: [lo, hi], sidebands: [[lo, hi], ...]}`` (either may be left out: the defaults)."""
        config = {} if config is None else config
        if not isinstance(config, dict):
            raise HybridjetError(f"{setting}: expected a mapping with signal_region and sidebands, got {config!r}")
        unknown = sorted(set(config) - {"signal_region", "sidebands"})
        if unknown:
            raise HybridjetError(f"{setting}.{unknown[0]}: unknown setting; expected signal_region or sidebands")
        sr = _window(config.get("signal_region", DEFAULT_SIGNAL_REGION), f"{setting}.signal_region")
        raw = config.get("sidebands", DEFAULT_SIDEBANDS)
        if not isinstance(raw, Sequence) or isinstance(raw, str) or not raw:
            raise HybridjetError(f"{setting}.sidebands: expected a list of [lo, hi] windows in GeV, got {raw!r}")
        bands = tuple(_window(b, f"{setting}.sidebands[{i}]") for i, b in enumerate(raw))
        for i, band in enumerate(bands):
            if _overlap(band, sr):
                raise HybridjetError(f"{setting}.sidebands[{i}]: {_fmt(band)} overlaps the signal region {_fmt(sr)}; "
                                     "expected windows outside it")
            for j in range(i):
                if _overlap(band, bands[j]):
                    raise HybridjetError(f"{setting}.sidebands[{i}]: {_fmt(band)} overlaps sidebands[{j}] "
                                         f"{_fmt(bands[j])}; expected disjoint windows")
        return cls(sr, bands)

    def in_signal_region(self, mjj: np.ndarray) -> np.ndarray:
        """Boolean mask of the events in the signal region."""
        lo, hi = self.signal_region
        return (mjj >= lo) & (mjj < hi)

    def in_sidebands(self, mjj: np.ndarray) -> np.ndarray:
        """Boolean mask of the events in any sideband."""
        mask = np.zeros(len(mjj), bool)
        for lo, hi in self.sidebands:
            mask |= (mjj >= lo) & (mjj < hi)
        return mask

    def check(self, mjj: np.ndarray, need_sidebands: bool = True, what: str = "the data",
              setting: str = "regions") -> None:
        """One line when the signal region lies outside the m_jj range of ``mjj`` (or holds none of it), or, with
        ``need_sidebands``, when a sideband holds no event."""
        if len(mjj) == 0:
            raise HybridjetError(f"{setting}: {what} holds no events")
        lo, hi = float(np.min(mjj)), float(np.max(mjj))
        sr = self.signal_region
        if sr[0] < lo or sr[1] > hi or not self.in_signal_region(mjj).any():
            raise HybridjetError(f"{setting}.signal_region: {_fmt(sr)} is not inside the m_jj range of {what} "
                                 f"[{lo:.0f}, {hi:.0f}] GeV; expected a window within it that holds events")
        if need_sidebands:
            for i, (a, b) in enumerate(self.sidebands):
                n = int(((mjj >= a) & (mjj < b)).sum())
                if n == 0:
                    raise HybridjetError(f"{setting}.sidebands[{i}]: {_fmt((a, b))} holds no events of {what} "
                                         f"(m_jj range [{lo:.0f}, {hi:.0f}] GeV); expected a window with events "
                                         "for the CWoLa mode")

    def to_dict(self) -> dict[str, Any]:
        """The regions as plain lists, for reports."""
        return {"signal_region": list(self.signal_region), "sidebands": [list(b) for b in self.sidebands]}
