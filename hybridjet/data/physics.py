"""What a collider event can hold: the ranges every reader checks, so that an impossible value (a particle of
1e30 GeV, a negative energy, a jet lighter than light) is refused with one line naming the file, the row and the
field, before it trains or scores anything through the normalisation.

The bounds are wide on purpose: they catch broken files, units and sentinels, not physics a user may study.
"""

from __future__ import annotations

import numpy as np

from hybridjet.errors import InputFileError

#: no particle or jet of a collider reaches 100 TeV (the LHC's beams carry 6.8 TeV; a 100 TeV collider's 50 TeV)
MAX_ENERGY_GEV = 1e5
#: a particle's |η|: a 7 TeV particle of 1 keV pT has η ≈ 23; generator-level files (no detector) hold such
#: forward particles, a detector's reach ends near 5
MAX_ABS_ETA = 50.0
#: φ in radians, in either convention ([−π, π] or [0, 2π])
PHI_MIN, PHI_MAX = -2 * np.pi, 2 * np.pi
#: particles of one event (LHCO files hold at most 700; a heavy-ion event a few tens of thousands)
MAX_PARTICLES_PER_EVENT = 100_000
#: tolerance of E >= |p| for float32 four-vectors: relative, plus an absolute term in GeV
_MASSLESS_REL, _MASSLESS_ABS = 1e-5, 1e-3


def _events(n: int) -> str:
    return "1 event holds" if n == 1 else f"{n:,} events hold"


def _first(bad: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argwhere(bad)[0])


def check_particles(path: object, pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, first_row: int = 0) -> None:
    """Refuse particles outside the ranges above (``pt``/``eta``/``phi`` [n, P], pT 0 = padding, not checked)."""
    present = pt > 0
    for name, values, bad, expected in (
        ("pT", pt, pt > MAX_ENERGY_GEV, f"at most {MAX_ENERGY_GEV:g} GeV"),
        ("eta", eta, present & (np.abs(eta) > MAX_ABS_ETA), f"|eta| <= {MAX_ABS_ETA:g}"),
        ("phi", phi, present & ((phi < PHI_MIN) | (phi > PHI_MAX)), "phi in radians, within [-2 pi, 2 pi]"),
    ):
        if bad.any():
            row, particle = _first(bad)
            raise InputFileError(path, f"row {row + first_row}, particle {particle}: {name} = "
                                       f"{float(values[row, particle]):.6g}; expected {expected} "
                                       f"({int(bad.any(axis=1).sum()):,} row(s) hold such values)")


def check_jets(path: object, jets: np.ndarray, jet_mask: np.ndarray, n_particles: np.ndarray, tau: np.ndarray,
               first_event: int = 0) -> None:
    """Refuse jets.h5 arrays no event can give: energies outside [0, 100 TeV], a jet with E < |p| (beyond float32
    rounding), negative N-subjettiness or particle counts, more particles than any event holds."""
    present = np.asarray(jet_mask, bool)
    energy = jets[..., 3].astype(np.float64)
    momentum = np.sqrt(np.sum(jets[..., :3].astype(np.float64) ** 2, axis=-1))
    checks = (
        ("jets", present & ((np.abs(jets) > MAX_ENERGY_GEV).any(axis=-1)),
         lambda e, j: "four-vector (" + ", ".join(f"{v:.6g}" for v in jets[e, j].tolist()) + ") GeV",
         f"components within +-{MAX_ENERGY_GEV:g} GeV"),
        ("jets", present & (energy < 0), lambda e, j: f"E = {energy[e, j]:.6g} GeV", "E >= 0"),
        ("jets", present & (energy < momentum * (1 - _MASSLESS_REL) - _MASSLESS_ABS),
         lambda e, j: f"E = {energy[e, j]:.6g} GeV below |p| = {momentum[e, j]:.6g} GeV",
         "E >= |p| (a mass of at least 0)"),
        ("tau", present & (tau < 0).any(axis=-1), lambda e, j: f"tau = {tau[e, j].tolist()}", "tau >= 0"),
    )
    for dataset, bad, shown, expected in checks:
        if bad.any():
            event, jet = _first(bad)
            raise InputFileError(path, f"dataset '{dataset}', event {event + first_event}, jet {jet}: {shown(event, jet)}"
                                       f"; expected {expected} ({_events(int(bad.any(axis=1).sum()))} such jets)")
    wrong = (n_particles < 0) | (n_particles > MAX_PARTICLES_PER_EVENT)
    if wrong.any():
        event = int(np.nonzero(wrong)[0][0])
        raise InputFileError(path, f"dataset 'n_particles', event {event + first_event}: {int(n_particles[event])}; "
                                   f"expected a count in [0, {MAX_PARTICLES_PER_EVENT:,}] ({_events(int(wrong.sum()))} "
                                   "such counts)")
