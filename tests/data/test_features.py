import numpy as np
import pytest

from hybridjet.data.features import Normalizer, event_features, feature_names
from hybridjet.errors import HybridjetError


def test_feature_columns_match_names(make_toy_jets):
    arrays = make_toy_jets(50)
    for feature_set in ("fourvec", "substructure"):
        features = event_features(arrays.jets, arrays.jet_mask, arrays.n_particles, arrays.tau, feature_set)
        assert features.shape == (50, len(feature_names(feature_set, 2)))
        assert np.isfinite(features).all()


def test_mass_feature_recovers_jet_mass(make_toy_jets):
    arrays = make_toy_jets(200)
    features = event_features(arrays.jets, arrays.jet_mask, arrays.n_particles, None, "fourvec")
    names = feature_names("fourvec", 2)
    mass = np.expm1(features[:, names.index("j1_log_m")])
    p = arrays.jets[:, 0].astype(np.float64)
    expected = np.sqrt(np.clip(p[:, 3] ** 2 - (p[:, :3] ** 2).sum(1), 0, None))
    np.testing.assert_allclose(mass, expected, rtol=2e-2, atol=2.0)


def test_masked_jet_slots_are_zero(make_toy_jets):
    arrays = make_toy_jets(10)
    arrays.jet_mask[:, 1] = False
    arrays.jets[:, 1] = 0
    features = event_features(arrays.jets, arrays.jet_mask, arrays.n_particles, arrays.tau, "substructure")
    names = feature_names("substructure", 2)
    j2 = [i for i, n in enumerate(names) if n.startswith("j2_")]
    assert (features[:, j2] == 0).all()
    assert (features[:, names.index("log_mjj")] == 0).all()


def test_bad_inputs_are_one_line_errors(make_toy_jets):
    arrays = make_toy_jets(10)
    with pytest.raises(HybridjetError, match="substructure"):
        event_features(arrays.jets, arrays.jet_mask, arrays.n_particles, None, "substructure")
    with pytest.raises(HybridjetError, match="expected one of"):
        event_features(arrays.jets, arrays.jet_mask, arrays.n_particles, None, "pixels")
    arrays.jets[3, 0, 0] = np.nan
    with pytest.raises(HybridjetError, match="non-finite"):
        event_features(arrays.jets, arrays.jet_mask, arrays.n_particles, None, "fourvec")


def test_normalizer_roundtrip(tmp_path):
    x = np.random.default_rng(0).normal(5, 3, (100, 4)).astype(np.float32)
    x[:, 2] = 1.0  # constant column keeps std 1
    norm = Normalizer.fit(x, ["a", "b", "c", "d"])
    y = norm(x)
    np.testing.assert_allclose(y[:, [0, 1, 3]].mean(0), 0, atol=1e-5)
    assert np.isfinite(y).all()
    norm.save(tmp_path / "n.json")
    again = Normalizer.load(tmp_path / "n.json")
    np.testing.assert_array_equal(again(x), y)
    with pytest.raises(HybridjetError, match="empty"):
        Normalizer.fit(x[:0], ["a", "b", "c", "d"])
