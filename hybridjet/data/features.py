"""Physics features for the numeric encoder and the classical baselines, and their normalisation.

Feature sets (the same vectors go to the hybrid's encoder, the no-LLM ablation and the gradient-boosted trees):

- ``fourvec``: what the jets' four-vectors and the particle count carry, in physics-aware coordinates —
  per jet log pT, η, Δφ to the leading jet, log(1 + m), a mask bit; per event the two leading jets' masses ordered
  heavy/light, log m_jj, |Δη_jj|, log n_particles.
- ``substructure``: ``fourvec`` plus N-subjettiness ratios τ21 and τ32 per jet, and τ21 of the heavy/light jet.
- ``highlevel``: the four features of the LHCO anomaly-detection studies (CWoLa, CATHODE) — m_j1 the heavier of the
  two leading jets' masses and Δm_j = m_j1 − m_j2 (both in TeV), τ21 of the heavier and of the lighter jet. It holds
  no m_jj on purpose: a weakly supervised classifier separating signal-region data from sideband data must not
  see the variable the regions are cut on.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hybridjet.data.kinematics import dijet_mass, jet_kinematics
from hybridjet.errors import HybridjetError
from hybridjet.io_utils import atomic_path

#: the most features a run may record (64 jets of the richest set hold 458)
MAX_FEATURES = 4096
HIGHLEVEL_NAMES = ["m_j1", "delta_m_j", "tau21_j1", "tau21_j2"]


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.zeros_like(num, dtype=np.float64)
    ok = den > 0
    out[ok] = num[ok] / den[ok]
    return out


def _jet_feature_names(n_jets: int, substructure: bool) -> list[str]:
    per_jet = ["log_pt", "eta", "dphi", "log_m", "present"] + (["tau21", "tau32"] if substructure else [])
    names = [f"j{j + 1}_{n}" for j in range(n_jets) for n in per_jet]
    ordered = ["log_m_heavy", "log_m_light"] + (["tau21_heavy", "tau21_light"] if substructure else [])
    return names + ordered + ["log_mjj", "abs_deta_jj", "log_n_particles"]


#: each feature's name in words, as the hybrid's named-token prompt writes it before the feature's value token
_SPOKEN = {"log_pt": "log transverse momentum", "eta": "pseudorapidity", "dphi": "azimuth from jet 1",
           "log_m": "log mass", "present": "present", "tau21": "tau21", "tau32": "tau32",
           "log_m_heavy": "log mass of the heavier jet", "log_m_light": "log mass of the lighter jet",
           "tau21_heavy": "tau21 of the heavier jet", "tau21_light": "tau21 of the lighter jet",
           "log_mjj": "log dijet mass", "abs_deta_jj": "dijet pseudorapidity gap",
           "log_n_particles": "log particle count", "m_j1": "heavier jet mass in TeV",
           "delta_m_j": "jet mass difference in TeV", "tau21_j1": "tau21 of the heavier jet",
           "tau21_j2": "tau21 of the lighter jet"}


def spoken_name(name: str) -> str:
    """A feature's name in words (``j2_log_pt`` -> ``jet 2 log transverse momentum``); an unknown name as given."""
    head, _, rest = name.partition("_")
    if head[:1] == "j" and head[1:].isdigit() and rest in _SPOKEN:
        return f"jet {head[1:]} {_SPOKEN[rest]}"
    return _SPOKEN.get(name, name.replace("_", " "))


def event_features(
    jets: np.ndarray,
    jet_mask: np.ndarray,
    n_particles: np.ndarray,
    tau: np.ndarray | None = None,
    feature_set: str = "fourvec",
    kinematics: dict[str, np.ndarray] | None = None,
) -> np.ndarray:
    """Per-event feature matrix float32 [N, F] of ``feature_set`` from jets.h5 arrays (jets [N, J, 4] px,py,pz,E in
    GeV); ``kinematics``: ``jet_kinematics(jets)`` when the caller has it already."""
    record = get_feature_set(feature_set)
    if record.needs_tau and tau is None:
        raise HybridjetError(f"features: {feature_set!r} needs the 'tau' dataset of jets.h5")
    bad_inputs = ~np.isfinite(jets).all(axis=(1, 2))
    if tau is not None:
        bad_inputs |= ~np.isfinite(tau).all(axis=(1, 2))
    if bad_inputs.any():
        raise HybridjetError(f"features: {int(bad_inputs.sum())} events give non-finite features (NaN/inf in jets or tau)")
    kin = jet_kinematics(jets) if kinematics is None else kinematics
    return _check_finite(record.compute(jets, jet_mask.astype(bool), n_particles, tau, kin).astype(np.float32))


def _jet_features(jets: np.ndarray, mask: np.ndarray, n_particles: np.ndarray, tau: np.ndarray | None,
                  kin: dict[str, np.ndarray], substructure: bool) -> np.ndarray:
    """``fourvec`` (and, with ``substructure``, its τ ratios): see the module docstring."""
    pt, eta, phi, mass = (np.where(mask, kin[k], 0.0) for k in ("pt", "eta", "phi", "mass"))
    dphi = np.where(mask, (phi - phi[:, :1] + np.pi) % (2 * np.pi) - np.pi, 0.0)
    cols = [np.log1p(pt), eta, dphi, np.log1p(np.clip(mass, 0.0, None)), mask.astype(np.float64)]
    if substructure:
        assert tau is not None
        cols += [np.where(mask, _ratio(tau[..., 1], tau[..., 0]), 0.0),
                 np.where(mask, _ratio(tau[..., 2], tau[..., 1]), 0.0)]
    per_jet = np.stack(cols, axis=-1).reshape(len(jets), -1)
    both = mask[:, 0] & mask[:, 1] if mask.shape[1] > 1 else np.zeros(len(jets), bool)
    mjj = dijet_mass(jets, mask)
    deta = np.where(both, np.abs(eta[:, 0] - eta[:, 1]), 0.0) if mask.shape[1] > 1 else np.zeros(len(jets))
    # the two leading jets ordered by mass: a resonance's decay products land in fixed slots whatever their pT order
    lead = np.clip(mass[:, :2], 0.0, None)
    heavy_first = np.argsort(-lead, axis=1, kind="stable")
    rows = np.arange(len(jets))[:, None]
    by_mass = [np.log1p(lead[rows, heavy_first])]
    if substructure:
        assert tau is not None
        tau21 = np.where(mask[:, :2], _ratio(tau[:, :2, 1], tau[:, :2, 0]), 0.0)
        by_mass.append(tau21[rows, heavy_first])
    if lead.shape[1] < 2:
        by_mass = [np.pad(b, ((0, 0), (0, 2 - lead.shape[1]))) for b in by_mass]
    event = np.concatenate(by_mass + [np.stack([np.log1p(mjj), deta, np.log1p(n_particles.astype(np.float64))],
                                               axis=-1)], axis=1)
    return np.concatenate([per_jet, event], axis=1)


def highlevel_features(mass: np.ndarray, jet_mask: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """float32 [N, 4]: m_j1, Δm_j = m_j1 − m_j2 (TeV), τ21 of j1 and of j2, where j1 is the heavier of the two
    leading jets (``mass`` [N, J] GeV; an absent jet has mass 0 and τ21 0)."""
    mask = np.asarray(jet_mask, bool)[:, :2]
    lead = np.where(mask, np.clip(mass[:, :2], 0.0, None), 0.0)
    tau21 = np.where(mask, _ratio(tau[:, :2, 1], tau[:, :2, 0]), 0.0)
    if lead.shape[1] < 2:  # one jet slot only: the second jet is absent
        lead, tau21 = np.pad(lead, ((0, 0), (0, 1))), np.pad(tau21, ((0, 0), (0, 1)))
    heavy_first = np.argsort(-lead, axis=1, kind="stable")
    rows = np.arange(len(lead))[:, None]
    m, t = lead[rows, heavy_first] / 1000.0, tau21[rows, heavy_first]
    return np.stack([m[:, 0], m[:, 0] - m[:, 1], t[:, 0], t[:, 1]], axis=-1).astype(np.float32)


def _check_finite(features: np.ndarray) -> np.ndarray:
    """``features``, or a one-line error naming how many events give NaN/inf."""
    if not np.isfinite(features).all():
        bad = int((~np.isfinite(features).all(axis=1)).sum())
        raise HybridjetError(f"features: {bad} events give non-finite features (NaN/inf in jets or tau)")
    return features


@dataclass(frozen=True)
class FeatureSet:
    """One feature set: what its columns are called for J jet slots, how they are computed from jets.h5's arrays
    (``compute(jets, mask, n_particles, tau, kinematics)`` -> [N, F]), whether it needs the τ dataset and the particle
    count, the periodic
    embedding's initial frequency spread that did best for it (docs/HISTORY.md), and whether it holds m_jj (which a
    weakly supervised search on m_jj regions must not see). A new feature set is one record in
    :data:`FEATURE_SETS`."""

    name: str
    names: Callable[[int], list[str]]
    compute: Callable[..., np.ndarray]
    needs_tau: bool = False
    needs_particle_count: bool = True
    periodic_sigma: float = 0.3
    holds_mjj: bool = True
    description: str = ""


#: every feature set, by name: the one place the CLI, configs, encoder and checks read them from
FEATURE_SETS: dict[str, FeatureSet] = {record.name: record for record in (
    FeatureSet("fourvec", lambda j: _jet_feature_names(j, False),
               lambda jets, mask, n, tau, kin: _jet_features(jets, mask, n, tau, kin, False),
               description="per jet log pT, eta, dphi to jet 1, log mass, presence; masses by weight, m_jj, deta, n"),
    FeatureSet("substructure", lambda j: _jet_feature_names(j, True),
               lambda jets, mask, n, tau, kin: _jet_features(jets, mask, n, tau, kin, True), needs_tau=True,
               periodic_sigma=0.1, description="fourvec + tau21, tau32 per jet and of the heavier/lighter jet"),
    FeatureSet("highlevel", lambda j: list(HIGHLEVEL_NAMES),
               lambda jets, mask, n, tau, kin: highlevel_features(kin["mass"], mask, tau), needs_tau=True,
               needs_particle_count=False, holds_mjj=False, description="the LHCO anomaly-detection features: m_j1, delta m_j, tau21 of both"),
)}


def get_feature_set(name: str | None) -> FeatureSet:
    """The record of a feature set, or one line listing the known ones."""
    if name not in FEATURE_SETS:
        raise HybridjetError(f"features: expected one of {', '.join(FEATURE_SETS)}, got {name!r}")
    return FEATURE_SETS[name]


def feature_names(feature_set: str, n_jets: int) -> list[str]:
    """Names of the columns :func:`event_features` returns."""
    return get_feature_set(feature_set).names(n_jets)


@dataclass
class Normalizer:
    """Feature standardisation with statistics of the training split (saved with every run)."""

    mean: np.ndarray
    std: np.ndarray
    names: list[str]

    @classmethod
    def fit(cls, features: np.ndarray, names: list[str]) -> Normalizer:
        """Mean and standard deviation per column (constant columns get std 1)."""
        if len(features) == 0:
            raise HybridjetError("features: cannot fit normalisation on an empty training split")
        mean = features.mean(axis=0, dtype=np.float64)
        std = features.std(axis=0, dtype=np.float64)
        std[std < 1e-8] = 1.0
        return cls(mean.astype(np.float32), std.astype(np.float32), list(names))

    def __call__(self, features: np.ndarray) -> np.ndarray:
        return ((features - self.mean) / self.std).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"names": self.names, "mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Normalizer:
        """The normalisation a run recorded, checked: one name, mean and positive std per feature, at most
        :data:`MAX_FEATURES` of them (a size read from a file, bounded before anything is built from it)."""
        names, mean, std = list(data["names"]), data["mean"], data["std"]
        if not 0 < len(names) <= MAX_FEATURES or not len(mean) == len(std) == len(names):
            raise HybridjetError(f"normalizer: expected 1 to {MAX_FEATURES} features with one mean and std each; got "
                                 f"{len(names)} names, {len(mean)} means, {len(std)} stds")
        mean, std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
        if mean.ndim != 1 or not np.isfinite(mean).all() or not np.isfinite(std).all() or (std <= 0).any():
            raise HybridjetError("normalizer: expected finite means and positive finite standard deviations")
        return cls(mean, std, [str(n) for n in names])

    def save(self, path: str | Path) -> None:
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: str | Path) -> Normalizer:
        return cls.from_dict(json.loads(Path(path).read_text()))
