import numpy as np
import pytest

from hybridjet.data.features import Normalizer, event_features, feature_names
from hybridjet.data.kinematics import dijet_mass, jet_kinematics
from hybridjet.errors import HybridjetError


def test_feature_columns_match_names(make_toy_jets):
    arrays = make_toy_jets(50)
    for feature_set in ("fourvec", "substructure", "highlevel"):
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


def test_highlevel_orders_jets_by_mass_and_leaves_out_mjj(make_toy_jets):
    arrays = make_toy_jets(300)
    features = event_features(arrays.jets, arrays.jet_mask, arrays.n_particles, arrays.tau, "highlevel")
    assert feature_names("highlevel", 2) == ["m_j1", "delta_m_j", "tau21_j1", "tau21_j2"]
    p = arrays.jets.astype(np.float64)
    mass = np.sqrt(np.clip(p[..., 3] ** 2 - (p[..., :3] ** 2).sum(-1), 0, None)) / 1000.0
    tau21 = arrays.tau[..., 1] / arrays.tau[..., 0]
    heavy = np.argmax(mass, axis=1)
    rows = np.arange(len(mass))
    np.testing.assert_allclose(features[:, 0], mass.max(1), rtol=2e-2, atol=2e-3)
    np.testing.assert_allclose(features[:, 1], mass.max(1) - mass.min(1), rtol=2e-2, atol=3e-3)
    np.testing.assert_allclose(features[:, 2], tau21[rows, heavy], rtol=1e-5)
    np.testing.assert_allclose(features[:, 3], tau21[rows, 1 - heavy], rtol=1e-5)
    assert (features[:, 1] >= 0).all()
    # moving the second jet in η changes m_jj but none of the four features
    kin = jet_kinematics(arrays.jets)
    eta = kin["eta"].copy()
    eta[:, 1] += 1.0
    pz = kin["pt"] * np.sinh(eta)
    px, py = kin["pt"] * np.cos(kin["phi"]), kin["pt"] * np.sin(kin["phi"])
    moved = np.stack([px, py, pz, np.sqrt(px**2 + py**2 + pz**2 + kin["mass"] ** 2)], axis=-1).astype(np.float32)
    assert np.abs(dijet_mass(moved) - dijet_mass(arrays.jets)).min() > 1.0
    again = event_features(moved, arrays.jet_mask, arrays.n_particles, arrays.tau, "highlevel")
    np.testing.assert_allclose(again, features, rtol=2e-2, atol=3e-3)

def test_highlevel_needs_tau_and_handles_a_missing_jet(make_toy_jets):
    arrays = make_toy_jets(20)
    with pytest.raises(HybridjetError, match="'highlevel' needs the 'tau'"):
        event_features(arrays.jets, arrays.jet_mask, arrays.n_particles, None, "highlevel")
    arrays.jet_mask[:5, 1] = False
    arrays.jets[:5, 1] = 0
    features = event_features(arrays.jets, arrays.jet_mask, arrays.n_particles, arrays.tau, "highlevel")
    np.testing.assert_allclose(features[:5, 1], features[:5, 0])  # Δm_j = m_j1 when j2 is absent
    assert (features[:5, 3] == 0).all()


def test_a_new_feature_set_is_one_record(monkeypatch, toy_jets_h5, tmp_path):
    """Issue 33: a feature set registered in FEATURE_SETS alone is taken by the data module, the nets (its default
    periodic sigma), the run record and scoring, and the configs' checks."""
    import numpy as np

    from hybridjet.api import load_run
    from hybridjet.data.datamodule import JetDataModule
    from hybridjet.data.features import FEATURE_SETS, FeatureSet
    from hybridjet.models.encoder import default_periodic_sigma
    from hybridjet.study.config import parse_config
    from hybridjet.train.classifiers import HybridClassifier
    from hybridjet.train.recipes import train_classifier

    record = FeatureSet("ptonly", lambda j, p=0: [f"j{i + 1}_log_pt" for i in range(j)],
                        lambda jets, mask, n, tau, kin: np.where(mask, np.log1p(kin["pt"]), 0.0), periodic_sigma=0.2)
    monkeypatch.setitem(FEATURE_SETS, "ptonly", record)
    assert default_periodic_sigma("ptonly") == 0.2
    assert parse_config({"data": {"jets": "x.h5"}, "features": "ptonly"}).feature_set == "ptonly"
    clf = HybridClassifier.from_settings(use_llm=False, n_soft_tokens=2, ablation_width=8, encoder_hidden=16)
    train_classifier(clf, JetDataModule(str(toy_jets_h5), feature_set="ptonly", batch_size=64), tmp_path / "run",
                     max_epochs=1, progress=False)
    scores = load_run(tmp_path / "run").predict_proba(str(toy_jets_h5))
    assert scores.shape == (600,) and np.isfinite(scores).all()


def test_particles_features_layout_and_normalisation(particles_jets_h5):
    """Issue 35: the particles columns read back as jets, constituents and presence; the normalisation pools each
    constituent feature over the present constituents (one mean and std for every slot) and keeps presence 0/1."""
    import numpy as np

    from hybridjet.data.features import FEATURE_SETS, ParticleLayout, event_features, feature_names
    from hybridjet.data.store import read_jets

    arrays = read_jets(particles_jets_h5)
    record = FEATURE_SETS["particles"]
    names = feature_names("particles", arrays.n_jets, arrays.n_constituents)
    features = event_features(arrays.jets, arrays.jet_mask, arrays.n_particles, arrays.tau, "particles",
                              constituents=arrays.constituents, constituent_mask=arrays.constituent_mask)
    layout = ParticleLayout.of(names)
    assert (layout.n_jets, layout.n_constituents) == (2, 8) and features.shape == (400, len(names))
    jets, cons, present = layout.split(features)
    want_present = arrays.constituent_mask & arrays.jet_mask[:, :, None]
    np.testing.assert_array_equal(present, want_present)
    np.testing.assert_allclose(cons[want_present], arrays.constituents[want_present])
    assert not cons[~want_present].any()
    normalizer = record.normalizer(features, names)
    normed = normalizer(features)
    _, normed_cons, normed_present = layout.split(normed)
    np.testing.assert_array_equal(normed_present, want_present)  # presence bits untouched
    values = normed_cons[want_present]
    np.testing.assert_allclose(values.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(values.std(axis=0), 1.0, atol=1e-3)
    # slot 8 (rarely filled) shares slot 1's statistics: the pooled ones
    _, mean_cons, _ = layout.split(normalizer.mean[None])
    np.testing.assert_array_equal(mean_cons[0, 0, 0], mean_cons[0, 1, 7])
    assert record.slots_of(names) == (2, 8) and record.slots_of(names[:-3]) is None


def test_particles_need_constituents_one_line(toy_jets_h5):
    import pytest

    from hybridjet.data.datamodule import JetDataModule
    from hybridjet.data.features import event_features
    from hybridjet.errors import HybridjetError

    with pytest.raises(HybridjetError, match="holds no jet constituents; data.feature_set 'particles' needs them"):
        JetDataModule(str(toy_jets_h5), feature_set="particles")
    import numpy as np

    with pytest.raises(HybridjetError, match="needs each jet's constituents"):
        event_features(np.zeros((1, 2, 4)), np.zeros((1, 2), bool), np.zeros(1), None, "particles")


def test_particles_substructure_adds_the_jets_taus(particles_jets_h5):
    """particles_substructure: the particles columns with each jet's τ21, τ32 (those of ``substructure``) after its
    presence bit; the constituents and their normalisation unchanged; the layout told apart by the column names."""
    import numpy as np

    from hybridjet.data.features import (
        FEATURE_SETS,
        JET_FIELDS_SUBSTRUCTURE,
        ParticleLayout,
        event_features,
        feature_names,
    )
    from hybridjet.data.store import read_jets

    arrays = read_jets(particles_jets_h5)
    kwargs = {"constituents": arrays.constituents, "constituent_mask": arrays.constituent_mask}
    plain = event_features(arrays.jets, arrays.jet_mask, arrays.n_particles, arrays.tau, "particles", **kwargs)
    with_tau = event_features(arrays.jets, arrays.jet_mask, arrays.n_particles, arrays.tau,
                              "particles_substructure", **kwargs)
    names = feature_names("particles_substructure", arrays.n_jets, arrays.n_constituents)
    layout = ParticleLayout.of(names)
    assert layout.jet_fields == JET_FIELDS_SUBSTRUCTURE and (layout.n_jets, layout.n_constituents) == (2, 8)
    assert with_tau.shape == (400, plain.shape[1] + 2 * 2) and names[5:7] == ["j1_tau21", "j1_tau32"]
    jets, cons, present = layout.split(with_tau)
    plain_jets, plain_cons, plain_present = ParticleLayout.of(feature_names("particles", 2, 8)).split(plain)
    np.testing.assert_array_equal(cons, plain_cons)
    np.testing.assert_array_equal(present, plain_present)
    np.testing.assert_array_equal(jets[..., :5], plain_jets)
    sub = event_features(arrays.jets, arrays.jet_mask, arrays.n_particles, arrays.tau, "substructure")
    sub_names = feature_names("substructure", arrays.n_jets)
    for j in (1, 2):
        for k, tau in enumerate(("tau21", "tau32")):
            np.testing.assert_allclose(jets[:, j - 1, 5 + k], sub[:, sub_names.index(f"j{j}_{tau}")], rtol=1e-6)
    record = FEATURE_SETS["particles_substructure"]
    assert record.slots_of(names) == (2, 8) and FEATURE_SETS["particles"].slots_of(names) == (2, 8)
    normed_jets, _, _ = layout.split(record.normalizer(with_tau, names)(with_tau))
    assert set(np.unique(normed_jets[..., 4])) <= {0.0, 1.0}  # the jets' presence bits kept
    with pytest.raises(HybridjetError, match="needs the 'tau' dataset"):
        event_features(arrays.jets, arrays.jet_mask, arrays.n_particles, None, "particles_substructure", **kwargs)
