"""Signal injection for a resonance search: signal and background pools, cut into the search's samples.

* :class:`Pools` — clustered signal and background events (jets.h5), from one truth-labelled file (the LHCO R&D
  sample clustered, a ``mix``) or from one file of each; the truth labels travel along for evaluation only.
* :func:`partition` — the pools cut once (seeded) into the events that make up "data" (background; signal to
  inject), an independent background sample of the signal region (the idealized anomaly detector's reference),
  a share of signal-region signal that only the supervised classifier trains on (its labelled signal does not then
  depend on the injected S/B, as in the LHCO studies' supervised bound) and a truth-labelled signal-region test set
  of held-out signal and background, never injected nor trained on.
* :func:`inject` — the data at one S/B: the data background of the signal region and sidebands plus
  ``round(S/B × B_SR)`` signal events in the signal region, and the signal the same draw puts in the sidebands
  (so that its m_jj shape is kept). S/B is the ratio in the signal region, as the LHCO studies quote it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from hybridjet.data.kinematics import dijet_mass
from hybridjet.data.regions import Regions
from hybridjet.data.store import JetArrays, read_jets
from hybridjet.errors import HybridjetError

#: event ids of a signal file read next to a background file are shifted by this, so ids stay unique
SIGNAL_ID_OFFSET = 1 << 40

PathLike = str | os.PathLike[str]


@dataclass
class Pools:
    """Signal (truth label 1) and background (0) events with their m_jj (GeV)."""

    signal: JetArrays
    background: JetArrays

    def __post_init__(self) -> None:
        self.signal_mjj = dijet_mass(self.signal.jets, self.signal.jet_mask)
        self.background_mjj = dijet_mass(self.background.jets, self.background.jet_mask)

    @classmethod
    def from_files(cls, jets: PathLike | None = None, signal: PathLike | None = None,
                   background: PathLike | None = None) -> Pools:
        """From one truth-labelled ``jets`` file (labels 1 and 0) or from ``signal`` and ``background`` files
        (their labels ignored: the file says what an event is)."""
        if jets is not None:
            arrays = read_jets(jets)
            if (arrays.label < 0).any():
                raise HybridjetError(f"{jets}: holds unlabeled (-1) events; the search needs truth labels 1/0 to "
                                     "inject signal and evaluate (or give data.signal and data.background)")
            return cls(arrays.subset(arrays.label == 1), arrays.subset(arrays.label == 0))
        if signal is None or background is None:
            raise HybridjetError("data: expected jets (one truth-labelled jets.h5) or both signal and background")
        sig, bkg = read_jets(signal), read_jets(background)
        sig.event_id = sig.event_id + SIGNAL_ID_OFFSET
        sig.label, bkg.label = np.ones(len(sig), np.int8), np.zeros(len(bkg), np.int8)
        return cls(sig, bkg)

    def check(self) -> None:
        """One line when a pool is empty or event ids repeat (scores are matched to events by id)."""
        for name, arrays in (("signal", self.signal), ("background", self.background)):
            if len(arrays) == 0:
                raise HybridjetError(f"data: the {name} sample holds no events")
        ids = np.concatenate([self.signal.event_id, self.background.event_id])
        if len(np.unique(ids)) != len(ids):
            raise HybridjetError(f"data: {len(ids) - len(np.unique(ids))} event ids repeat across the signal and "
                                 "background samples; expected unique event_id")


@dataclass
class Partition:
    """The pools cut into the search's samples (see :func:`partition`)."""

    data_background: JetArrays  # signal region and sidebands only
    data_background_mjj: np.ndarray
    signal: JetArrays  # the signal that may be injected (signal region and sidebands only)
    signal_mjj: np.ndarray
    reference: JetArrays  # independent background of the signal region (idealized anomaly detector)
    test: JetArrays  # truth-labelled signal-region events never injected nor trained on
    regions: Regions
    supervised_signal: JetArrays  # signal-region signal for the supervised mode only


def partition(pools: Pools, regions: Regions, background_fractions: tuple[float, float, float] = (0.4, 0.4, 0.2),
              test_signal_fraction: float = 0.5, seed: int = 0, supervised_signal_fraction: float = 0.0) -> Partition:
    """Cut the pools (seeded, disjoint): background into data / reference / test by ``background_fractions``,
    signal into the test set's share ``test_signal_fraction``, the supervised mode's ``supervised_signal_fraction``
    and the rest, which :func:`inject` draws from."""
    fractions = np.asarray(background_fractions, dtype=np.float64)
    if fractions.shape != (3,) or (fractions < 0).any() or fractions[0] <= 0:
        raise HybridjetError(f"sample.background_fractions: expected [data, reference, test] fractions >= 0 with "
                             f"data > 0, got {list(background_fractions)}")
    if not 0.0 <= test_signal_fraction < 1.0:
        raise HybridjetError(f"sample.test_signal_fraction: expected a fraction in [0, 1), got {test_signal_fraction}")
    if not 0.0 <= supervised_signal_fraction < 1.0 - test_signal_fraction:
        raise HybridjetError(f"sample.supervised_signal_fraction: expected a fraction in [0, 1 - test_signal_fraction),"
                             f" got {supervised_signal_fraction}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(pools.background))
    cuts = np.round(np.cumsum(fractions / fractions.sum())[:2] * len(order)).astype(int)
    data_rows, ref_rows, test_rows = np.split(order, cuts)
    bkg_mjj = pools.background_mjj
    sr_bkg = regions.in_signal_region(bkg_mjj)
    used = sr_bkg | regions.in_sidebands(bkg_mjj)
    data_rows = np.sort(data_rows[used[data_rows]])
    ref_rows, test_bkg = np.sort(ref_rows[sr_bkg[ref_rows]]), np.sort(test_rows[sr_bkg[test_rows]])
    sig_order = rng.permutation(len(pools.signal))
    n_test_sig = int(round(test_signal_fraction * len(sig_order)))
    n_sup = int(round(supervised_signal_fraction * len(sig_order)))
    sig_mjj = pools.signal_mjj
    test_sig, sup_sig, inject_rows = np.split(sig_order, [n_test_sig, n_test_sig + n_sup])
    test_sig = np.sort(test_sig[regions.in_signal_region(sig_mjj[test_sig])])
    sup_sig = np.sort(sup_sig[regions.in_signal_region(sig_mjj[sup_sig])])
    in_any = regions.in_signal_region(sig_mjj) | regions.in_sidebands(sig_mjj)
    inject_rows = np.sort(inject_rows[in_any[inject_rows]])
    test = JetArrays.concatenate([pools.signal.subset(test_sig), pools.background.subset(test_bkg)])
    return Partition(pools.background.subset(data_rows), bkg_mjj[data_rows], pools.signal.subset(inject_rows),
                     sig_mjj[inject_rows], pools.background.subset(ref_rows), test, regions,
                     pools.signal.subset(sup_sig))


@dataclass
class AnomalySample:
    """The data at one injected S/B (truth labels: evaluation only) and the samples it is compared with."""

    data: JetArrays  # signal region and sidebands, background + injected signal, shuffled
    mjj: np.ndarray
    in_signal_region: np.ndarray
    in_sidebands: np.ndarray
    reference: JetArrays
    test: JetArrays
    s_over_b: float
    supervised_signal: JetArrays

    def counts(self) -> dict[str, Any]:
        """Signal and background events in the signal region and the sidebands, the initial S/B and S/√B."""
        truth = self.data.label == 1
        s_sr, b_sr = int((truth & self.in_signal_region).sum()), int((~truth & self.in_signal_region).sum())
        s_sb, b_sb = int((truth & self.in_sidebands).sum()), int((~truth & self.in_sidebands).sum())
        return {"s_over_b_requested": self.s_over_b, "n_signal_sr": s_sr, "n_background_sr": b_sr,
                "n_signal_sb": s_sb, "n_background_sb": b_sb, "s_over_b": s_sr / b_sr if b_sr else float("nan"),
                "s_over_sqrt_b": s_sr / np.sqrt(b_sr) if b_sr else float("nan"),
                "n_reference": len(self.reference), "n_supervised_signal": len(self.supervised_signal),
                "n_test_signal": int((self.test.label == 1).sum()),
                "n_test_background": int((self.test.label == 0).sum())}


def injected_signal_counts(part: Partition, s_over_b: float) -> tuple[int, int]:
    """(signal events put in the signal region, in the sidebands) at ``s_over_b``, or a one-line error when that
    S/B leaves no signal event or asks for more than the signal sample holds."""
    regions = part.regions
    n_bkg_sr = int(regions.in_signal_region(part.data_background_mjj).sum())
    if n_bkg_sr == 0:
        raise HybridjetError(f"regions.signal_region: {list(regions.signal_region)} GeV holds no background "
                             "events of the data; expected a window where the background lies")
    if not (isinstance(s_over_b, (int, float)) and not isinstance(s_over_b, bool) and s_over_b > 0):
        raise HybridjetError(f"injection.s_over_b: expected positive ratios S/B in the signal region, got {s_over_b!r}")
    n_sr = int(round(s_over_b * n_bkg_sr))
    if n_sr == 0:
        raise HybridjetError(f"injection.s_over_b: {s_over_b:g} leaves no signal event in the signal region "
                             f"({n_bkg_sr} background events there); expected at least {0.5 / n_bkg_sr:.2g}, or "
                             "more background events")
    sig_sr = regions.in_signal_region(part.signal_mjj)
    have_sr, have_sb = int(sig_sr.sum()), int((~sig_sr).sum())
    if n_sr > have_sr:
        raise HybridjetError(f"injection.s_over_b: {s_over_b:g} needs {n_sr} signal events in the signal region; the "
                             f"signal sample holds {have_sr} there after the test set's share; expected at most "
                             f"{have_sr / n_bkg_sr:.3g}, or more signal events")
    n_sb = min(have_sb, int(round(n_sr * have_sb / have_sr))) if have_sr else 0
    return n_sr, n_sb


def inject(part: Partition, s_over_b: float, seed: int = 0) -> AnomalySample:
    """The data at ``s_over_b`` (signal over background in the signal region); ``seed`` draws the signal events."""
    n_sr, n_sb = injected_signal_counts(part, s_over_b)
    rng = np.random.default_rng(seed)
    sig_sr = part.regions.in_signal_region(part.signal_mjj)
    rows = np.concatenate([rng.choice(np.flatnonzero(sig_sr), n_sr, replace=False),
                           rng.choice(np.flatnonzero(~sig_sr), n_sb, replace=False)])
    rows = np.sort(rows)
    data = JetArrays.concatenate([part.data_background, part.signal.subset(rows)])
    mjj = np.concatenate([part.data_background_mjj, part.signal_mjj[rows]])
    order = rng.permutation(len(data))
    data, mjj = data.subset(order), mjj[order]
    return AnomalySample(data, mjj, part.regions.in_signal_region(mjj), part.regions.in_sidebands(mjj),
                         part.reference, part.test, float(s_over_b), part.supervised_signal)
