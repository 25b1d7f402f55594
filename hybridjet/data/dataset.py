"""In-memory dataset of clustered events (a thin view over :class:`JetArrays`)."""

from __future__ import annotations

import os
from functools import cached_property

import numpy as np

from hybridjet.data.kinematics import dijet_mass, jet_kinematics
from hybridjet.data.store import JetArrays, read_jets


class JetDataset:
    """Clustered events held in memory; index with ``subset`` and read kinematics lazily."""

    def __init__(self, arrays: JetArrays) -> None:
        arrays.validate()
        self.arrays = arrays

    @classmethod
    def from_h5(cls, path: str | os.PathLike[str], indices: np.ndarray | None = None) -> JetDataset:
        """Load a jets.h5 file, optionally keeping only ``indices``."""
        arrays = read_jets(path)
        return cls(arrays if indices is None else arrays.subset(np.asarray(indices)))

    def __len__(self) -> int:
        return len(self.arrays)

    def subset(self, idx: np.ndarray | slice) -> JetDataset:
        """A new dataset with the selected events."""
        return JetDataset(self.arrays.subset(idx))

    @property
    def labels(self) -> np.ndarray:
        """int8 [N]: 1 signal, 0 background, -1 unknown."""
        return self.arrays.label

    @cached_property
    def kinematics(self) -> dict[str, np.ndarray]:
        """pt, eta, phi, mass [N, J] of each jet slot (0 for empty slots) and ``mjj`` [N]."""
        kin = jet_kinematics(self.arrays.jets)
        kin["mjj"] = dijet_mass(self.arrays.jets, self.arrays.jet_mask)
        return kin
