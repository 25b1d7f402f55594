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
- ``particles``: every jet's constituents (``cluster --constituents P``): per jet its log pT, η, Δφ to jet 1,
  log(1 + m) and presence, then per constituent slot the seven stored features (log pT, log E, log pT/pT_jet,
  log E/E_jet, Δη, Δφ, ΔR) and its presence. Normalised per feature kind over the present constituents (the same
  mean and std for every slot), presence bits kept 0/1; :class:`ParticleLayout` reads the columns back as
  [J, 5] jets and [J, P, 7] constituents with a [J, P] mask.
- ``particles_substructure``: ``particles`` with each jet's τ21 and τ32 after its presence bit (jets [J, 7]): the
  hybrid's jet tokens then hold what the trees on ``substructure`` read, next to the constituents.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hybridjet.data.kinematics import dijet_mass, jet_kinematics
from hybridjet.data.store import CONSTITUENT_FEATURES
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
    constituents: np.ndarray | None = None,
    constituent_mask: np.ndarray | None = None,
) -> np.ndarray:
    """Per-event feature matrix float32 [N, F] of ``feature_set`` from jets.h5 arrays (jets [N, J, 4] px,py,pz,E in
    GeV; ``constituents`` [N, J, P, 7] and their mask for ``particles``); ``kinematics``: ``jet_kinematics(jets)``
    when the caller has it already."""
    record = get_feature_set(feature_set)
    if record.needs_tau and tau is None:
        raise HybridjetError(f"features: {feature_set!r} needs the 'tau' dataset of jets.h5")
    if record.needs_constituents and (constituents is None or constituent_mask is None):
        raise HybridjetError(f"features: {feature_set!r} needs each jet's constituents; expected a jets.h5 file "
                             "made by 'hybridjet cluster --constituents P'")
    bad_inputs = ~np.isfinite(jets).all(axis=(1, 2))
    if tau is not None:
        bad_inputs |= ~np.isfinite(tau).all(axis=(1, 2))
    if bad_inputs.any():
        raise HybridjetError(f"features: {int(bad_inputs.sum())} events give non-finite features (NaN/inf in jets or tau)")
    kin = jet_kinematics(jets) if kinematics is None else kinematics
    parts = {"constituents": constituents, "constituent_mask": constituent_mask} if record.needs_constituents else {}
    return _check_finite(record.compute(jets, jet_mask.astype(bool), n_particles, tau, kin, **parts)
                         .astype(np.float32))


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


JET_FIELDS = ("log_pt", "eta", "dphi", "log_m", "present")
#: the jet fields of ``particles_substructure`` (``_jet_features``' per-jet columns with substructure)
JET_FIELDS_SUBSTRUCTURE = (*JET_FIELDS, "tau21", "tau32")


def _particle_names(n_jets: int, n_constituents: int, jet_fields: tuple[str, ...] = JET_FIELDS) -> list[str]:
    jets = [f"j{j + 1}_{f}" for j in range(n_jets) for f in jet_fields]
    width = len(str(max(n_constituents, 1)))
    return jets + [f"j{j + 1}_c{p + 1:0{width}d}_{f}" for j in range(n_jets) for p in range(n_constituents)
                   for f in (*CONSTITUENT_FEATURES, "present")]


def _particle_features(jets: np.ndarray, mask: np.ndarray, n_particles: np.ndarray, tau: np.ndarray | None,
                       kin: dict[str, np.ndarray], constituents: np.ndarray,
                       constituent_mask: np.ndarray, substructure: bool = False) -> np.ndarray:
    """``particles`` (``particles_substructure`` with ``substructure``): see the module docstring."""
    fields = JET_FIELDS_SUBSTRUCTURE if substructure else JET_FIELDS
    per_jet = _jet_features(jets, mask, n_particles, tau, kin, substructure)[:, : len(fields) * jets.shape[1]]
    present = (constituent_mask & mask[:, :, None]).astype(np.float32)
    cons = np.concatenate([constituents * present[..., None], present[..., None]], axis=-1)
    return np.concatenate([per_jet.astype(np.float32), cons.reshape(len(jets), -1)], axis=1)


@dataclass(frozen=True)
class ParticleLayout:
    """Where the ``particles`` feature sets' columns are: J jets of ``jet_fields`` (:data:`JET_FIELDS`, or
    :data:`JET_FIELDS_SUBSTRUCTURE`), then J × P constituent slots of the stored features and a presence bit. Works
    on numpy arrays and torch tensors alike."""

    n_jets: int
    n_constituents: int
    jet_fields: tuple[str, ...] = JET_FIELDS

    @property
    def n_jet_columns(self) -> int:
        return self.n_jets * len(self.jet_fields)

    @property
    def constituent_width(self) -> int:
        """Features of one constituent slot, its presence bit included."""
        return len(CONSTITUENT_FEATURES) + 1

    @classmethod
    def of(cls, names: list[str]) -> ParticleLayout:
        """The layout whose column names are ``names``, or one line saying they are not ``particles`` columns."""
        jets = sum(1 for n in names if n.endswith("_present") and "_c" not in n)
        width = len(CONSTITUENT_FEATURES) + 1
        for fields in (JET_FIELDS, JET_FIELDS_SUBSTRUCTURE):
            rest = len(names) - jets * len(fields)
            if jets and rest > 0 and rest % (jets * width) == 0:
                layout = cls(jets, rest // (jets * width), fields)
                if _particle_names(layout.n_jets, layout.n_constituents, fields) == list(names):
                    return layout
        raise HybridjetError(f"features: {len(names)} columns are not the 'particles' features of any number of jets "
                             "and constituents; expected a run hybridjet trained on them")

    def split(self, x: Any) -> tuple[Any, Any, Any]:
        """[B, F] -> jets [B, J, fields], constituents [B, J, P, 7], their presence [B, J, P] (as stored: 0/1)."""
        b = x.shape[0]
        jets = x[:, : self.n_jet_columns].reshape(b, self.n_jets, len(self.jet_fields))
        cons = x[:, self.n_jet_columns:].reshape(b, self.n_jets, self.n_constituents, self.constituent_width)
        return jets, cons[..., :-1], cons[..., -1]


def _fit_particle_normalizer(features: np.ndarray, names: list[str]) -> Normalizer:
    """Per-column statistics for the jets' columns; for each constituent feature one mean and std over every present
    constituent of the training split, used for all slots; every presence bit kept as it is (mean 0, std 1)."""
    layout = ParticleLayout.of(names)
    base = Normalizer.fit(features[:, : layout.n_jet_columns], names[: layout.n_jet_columns])
    mean = np.zeros(len(names), np.float64)
    std = np.ones(len(names), np.float64)
    mean[: layout.n_jet_columns], std[: layout.n_jet_columns] = base.mean, base.std
    present_jet = np.array([n.endswith("_present") for n in names[: layout.n_jet_columns]])
    mean[: layout.n_jet_columns][present_jet], std[: layout.n_jet_columns][present_jet] = 0.0, 1.0
    _, cons, present = layout.split(features)
    present = present.astype(bool)
    values = cons[present].astype(np.float64)  # [present constituents, 7]
    if len(values):
        kind_mean, kind_std = values.mean(axis=0), values.std(axis=0)
        kind_std[kind_std < 1e-8] = 1.0
        tail_mean = np.zeros((layout.n_jets * layout.n_constituents, layout.constituent_width))
        tail_std = np.ones_like(tail_mean)
        tail_mean[:, :-1], tail_std[:, :-1] = kind_mean, kind_std
        mean[layout.n_jet_columns:], std[layout.n_jet_columns:] = tail_mean.ravel(), tail_std.ravel()
    return Normalizer(mean.astype(np.float32), std.astype(np.float32), list(names))


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
    names: Callable[[int, int], list[str]]  # (jet slots, constituent slots per jet)
    compute: Callable[..., np.ndarray]
    needs_tau: bool = False
    needs_particle_count: bool = True
    periodic_sigma: float = 0.3
    holds_mjj: bool = True
    description: str = ""
    #: needs each jet's constituents (``cluster --constituents P``); its columns are :class:`ParticleLayout`'s
    needs_constituents: bool = False
    #: how the training split's normalisation is fitted (None: mean and std per column)
    fit_normalizer: Callable[[np.ndarray, list[str]], Normalizer] | None = None

    def normalizer(self, features: np.ndarray, names: list[str]) -> Normalizer:
        """The normalisation of this set fitted on training features."""
        return (self.fit_normalizer or Normalizer.fit)(features, names)

    def slots_of(self, names: list[str]) -> tuple[int, int] | None:
        """(jet slots, constituent slots per jet) whose features have these column names, if any."""
        if self.needs_constituents:
            try:
                layout = ParticleLayout.of(names)
            except HybridjetError:
                return None
            return layout.n_jets, layout.n_constituents
        return next(((j, 0) for j in range(1, 65) if self.names(j, 0) == list(names)), None)


#: every feature set, by name: the one place the CLI, configs, encoder and checks read them from
FEATURE_SETS: dict[str, FeatureSet] = {record.name: record for record in (
    FeatureSet("fourvec", lambda j, p=0: _jet_feature_names(j, False),
               lambda jets, mask, n, tau, kin: _jet_features(jets, mask, n, tau, kin, False),
               description="per jet log pT, eta, dphi to jet 1, log mass, presence; masses by weight, m_jj, deta, n"),
    FeatureSet("substructure", lambda j, p=0: _jet_feature_names(j, True),
               lambda jets, mask, n, tau, kin: _jet_features(jets, mask, n, tau, kin, True), needs_tau=True,
               periodic_sigma=0.1, description="fourvec + tau21, tau32 per jet and of the heavier/lighter jet"),
    FeatureSet("highlevel", lambda j, p=0: list(HIGHLEVEL_NAMES),
               lambda jets, mask, n, tau, kin: highlevel_features(kin["mass"], mask, tau), needs_tau=True,
               needs_particle_count=False, holds_mjj=False, description="the LHCO anomaly-detection features: m_j1, delta m_j, tau21 of both"),
    FeatureSet("particles", _particle_names, _particle_features, needs_particle_count=False,
               needs_constituents=True, fit_normalizer=_fit_particle_normalizer,
               description="per jet its kinematics, then its P leading constituents' features and presence"),
    FeatureSet("particles_substructure", lambda j, p: _particle_names(j, p, JET_FIELDS_SUBSTRUCTURE),
               lambda *arrays, **parts: _particle_features(*arrays, **parts, substructure=True), needs_tau=True,
               needs_particle_count=False, needs_constituents=True, fit_normalizer=_fit_particle_normalizer,
               description="particles with each jet's tau21 and tau32 beside its kinematics"),
)}


def get_feature_set(name: str | None) -> FeatureSet:
    """The record of a feature set, or one line listing the known ones."""
    if name not in FEATURE_SETS:
        raise HybridjetError(f"features: expected one of {', '.join(FEATURE_SETS)}, got {name!r}")
    return FEATURE_SETS[name]


def feature_names(feature_set: str, n_jets: int, n_constituents: int = 0) -> list[str]:
    """Names of the columns :func:`event_features` returns for ``n_jets`` jet slots (and ``n_constituents``
    constituent slots per jet, for a set that needs them)."""
    return get_feature_set(feature_set).names(n_jets, n_constituents)


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
