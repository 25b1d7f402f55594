"""jets.h5 schema, splits, kinematics, dataset."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from hybridjet.data.dataset import JetDataset
from hybridjet.data.kinematics import dijet_mass, jet_kinematics
from hybridjet.data.split import balance_indices, split_indices
from hybridjet.data.store import SCHEMA_VERSION, JetArrays, count_jets_events, read_jets, write_jets
from hybridjet.errors import InputFileError


def _arrays(n=50, j=2, seed=0):
    rng = np.random.default_rng(seed)
    p = rng.normal(0, 300, (n, j, 3))
    m = rng.uniform(10, 200, (n, j))
    e = np.sqrt((p**2).sum(-1) + m**2)
    jets = np.concatenate([p, e[..., None]], axis=-1).astype(np.float32)
    mask = np.ones((n, j), bool)
    mask[::7, 1] = False
    jets[~mask] = 0
    return JetArrays(jets, mask, rng.integers(10, 300, n).astype(np.int32), rng.uniform(0, 1, (n, j, 3)).astype(np.float32),
                     rng.integers(0, 2, n).astype(np.int8), np.arange(n, dtype=np.int64))


def test_round_trip_and_attrs(tmp_path):
    arrays = _arrays()
    path = tmp_path / "jets.h5"
    write_jets(path, arrays, {"source": "x.h5", "algorithm": "antikt", "R": 1.0, "min_pt": 20.0})
    back = read_jets(path)
    for name in ("jets", "jet_mask", "n_particles", "tau", "label", "event_id"):
        np.testing.assert_array_equal(getattr(back, name), getattr(arrays, name))
    assert back.attrs["schema_version"] == SCHEMA_VERSION and back.attrs["algorithm"] == "antikt"
    assert {"package_version", "created", "source", "R", "min_pt"} <= set(back.attrs)
    assert count_jets_events(path) == 50
    np.testing.assert_array_equal(read_jets(path, 10, 20).event_id, np.arange(10, 20))


def test_bad_jets_files(tmp_path):
    path = tmp_path / "jets.h5"
    write_jets(path, _arrays(), {})
    with h5py.File(path, "a") as f:
        f.attrs["schema_version"] = 99
    with pytest.raises(InputFileError, match="schema version 99"):
        read_jets(path)
    write_jets(path, _arrays(), {})
    with h5py.File(path, "a") as f:
        del f["tau"]
    with pytest.raises(InputFileError, match="missing dataset"):
        read_jets(path)
    arrays = _arrays()
    arrays.jets[3, 0, 0] = np.nan
    write_jets(path, arrays, {})
    with pytest.raises(InputFileError, match="NaN"):
        read_jets(path)
    with pytest.raises(InputFileError, match="file not found"):
        read_jets(tmp_path / "missing.h5")
    with h5py.File(tmp_path / "plain.h5", "w") as f:
        f["x"] = 1
    with pytest.raises(InputFileError, match="schema_version"):
        read_jets(tmp_path / "plain.h5")


def test_split_disjoint_covering_deterministic():
    a = split_indices(1001, seed=3)
    b = split_indices(1001, seed=3)
    c = split_indices(1001, seed=4)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["train"], c["train"])
    joined = np.concatenate(list(a.values()))
    assert len(joined) == 1001 and len(np.unique(joined)) == 1001
    assert abs(len(a["train"]) - 801) <= 1 and abs(len(a["val"]) - 100) <= 1


def test_balance():
    labels = np.array([1] * 10 + [0] * 90)
    idx = balance_indices(np.arange(100), labels, seed=0)
    assert (labels[idx] == 1).sum() == (labels[idx] == 0).sum() == 10
    np.testing.assert_array_equal(idx, balance_indices(np.arange(100), labels, seed=0))


def test_kinematics_and_dataset(tmp_path):
    arrays = _arrays()
    kin = jet_kinematics(arrays.jets)
    assert all(np.isfinite(v).all() for v in kin.values())
    assert (kin["pt"][~arrays.jet_mask] == 0).all() and (kin["mass"][~arrays.jet_mask] == 0).all()
    j = arrays.jets.astype(np.float64)
    np.testing.assert_allclose(kin["pt"], np.hypot(j[..., 0], j[..., 1]), rtol=1e-6)
    mjj = dijet_mass(arrays.jets, arrays.jet_mask)
    assert (mjj[~arrays.jet_mask[:, 1]] == 0).all() and (mjj[arrays.jet_mask[:, 1]] > 0).all()
    path = tmp_path / "jets.h5"
    write_jets(path, arrays, {})
    ds = JetDataset.from_h5(path, indices=np.arange(0, 50, 2))
    assert len(ds) == 25 and len(ds.subset(np.arange(5))) == 5
    assert ds.kinematics["mjj"].shape == (25,)
