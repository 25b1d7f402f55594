"""Collider data: read/write the LHCO layout, generate with Pythia 8, cluster with fastjet, jets.h5 store.

Names are imported lazily so that ``import hybridjet.data`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "read_lhco": "lhco", "iter_lhco": "lhco", "write_lhco": "lhco", "write_lhco_particles": "lhco",
    "read_answer_key": "lhco", "count_events": "lhco", "LHCOEvents": "lhco",
    "generate": "generate", "mix": "generate",
    "cluster": "cluster",
    "read_jets": "store", "write_jets": "store", "JetArrays": "store", "count_jets_events": "store",
    "SCHEMA_VERSION": "store",
    "JetDataset": "dataset",
    "split_indices": "split", "balance_indices": "split",
    "jet_kinematics": "kinematics", "dijet_mass": "kinematics",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = importlib.import_module(f"hybridjet.data.{_EXPORTS[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'hybridjet.data' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
