"""Jet kinematics from (px, py, pz, E) arrays through ``vector``; zero-padded slots give zeros, not NaN."""

from __future__ import annotations

import numpy as np
import vector


def jet_kinematics(jets: np.ndarray) -> dict[str, np.ndarray]:
    """pt, eta, phi, mass of jets [..., 4] (px, py, pz, E); empty (all-zero) slots give 0 everywhere."""
    jets = np.asarray(jets, dtype=np.float64)
    vec = vector.array({"px": jets[..., 0], "py": jets[..., 1], "pz": jets[..., 2], "E": jets[..., 3]})
    empty = ~(jets != 0).any(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = {"pt": np.asarray(vec.pt), "eta": np.asarray(vec.eta), "phi": np.asarray(vec.phi),
               "mass": np.asarray(vec.mass)}
    for key, value in out.items():
        value = np.where(empty | ~np.isfinite(value), 0.0, value)
        if key == "mass":
            value = np.maximum(value, 0.0)  # rounding can give tiny negative m^2
        out[key] = value
    return out


def dijet_mass(jets: np.ndarray, jet_mask: np.ndarray | None = None) -> np.ndarray:
    """Invariant mass of the two leading jets [N]; 0 where fewer than two jets are present."""
    jets = np.asarray(jets, dtype=np.float64)
    if jets.shape[1] < 2:
        return np.zeros(len(jets))
    pair = jets[:, 0] + jets[:, 1]
    vec = vector.array({"px": pair[:, 0], "py": pair[:, 1], "pz": pair[:, 2], "E": pair[:, 3]})
    mass = np.nan_to_num(np.asarray(vec.mass), nan=0.0)
    if jet_mask is not None:
        mass = np.where(np.asarray(jet_mask)[:, :2].all(axis=1), mass, 0.0)
    return np.maximum(mass, 0.0)
