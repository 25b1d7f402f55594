"""Helpers for the resonance-search tests: a config file over toy resonance jets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from hybridjet.data.store import JetArrays, write_jets


def write_search(tmp_path: Path, jets: JetArrays, **sections: Any) -> Path:
    """``tmp_path/jets.h5`` (truth-labelled) and ``tmp_path/search.yaml`` reading it; ``sections`` override."""
    write_jets(tmp_path / "jets.h5", jets)
    cfg: dict[str, Any] = {
        "out": str(tmp_path / "out"), "report": str(tmp_path / "report"), "data": {"jets": str(tmp_path / "jets.h5")},
        "injection": {"s_over_b": [0.1]}, "training": {"folds": 2, "seeds": [0]},
        "methods": {"gbdt": {"max_iter": 20}},
    }
    cfg.update(sections)
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture
def search_file():
    """The ``write_search`` helper, as a fixture (test directories are not packages)."""
    return write_search


@pytest.fixture
def resonance_file(make_resonance_jets):
    """Factory ``resonance_file(n_signal, n_background, seed)``: the events of both pools in one labelled JetArrays."""

    def make(n_signal: int = 400, n_background: int = 4000, seed: int = 0) -> JetArrays:
        signal, background = make_resonance_jets(n_signal, n_background, seed)
        out = JetArrays.concatenate([signal, background])
        assert np.unique(out.event_id).size == len(out)
        return out

    return make
