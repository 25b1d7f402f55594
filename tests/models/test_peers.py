"""Issue 35: the particle-level peers (ParT, ParticleNet from weaver-core; Deep Sets) and the hybrid on particles:
their inputs, masking, training by the package's recipe, and runs that score the same after loading."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import torch
import vector

from hybridjet.data.datamodule import JetDataModule
from hybridjet.data.features import ParticleLayout
from hybridjet.data.lhco import read_lhco
from hybridjet.errors import HybridjetError
from hybridjet.models.particle_inputs import ParticleInputs, pair_features, present_first
from hybridjet.train.methods import parse_method, train_model

PEER_SETTINGS = {"deepsets": {"width": 16}, "particlenet": {"width": 8, "depth": 2, "neighbours": 4},
                 "part": {"width": 16, "depth": 2, "heads": 2}}


def _noise_in_empty_slots(features: torch.Tensor, layout) -> torch.Tensor:
    """``features`` with random values in the features (not the presence bits) of every empty constituent slot."""
    noisy = features.clone()
    _, _, present = layout.split(noisy)
    tail = noisy[:, layout.n_jet_columns:].view(len(noisy), layout.n_jets, layout.n_constituents, -1)
    empty = ~present.bool()
    tail[..., :-1][empty] = torch.randn(int(empty.sum()), tail.shape[-1] - 1) * 3
    return noisy


@pytest.fixture(scope="module")
def particles_data(particles_jets_h5):
    dm = JetDataModule(str(particles_jets_h5), feature_set="particles", batch_size=32, seed=0)
    dm.setup()
    return dm


def test_four_vectors_in_the_sequence_are_the_particles(particles_data, particles_jets_h5):
    """The normalised columns give back each constituent's momentum: the invariant mass of the two leading
    constituents of jet 1 equals the one vector computes from the event file's particles."""
    inputs = ParticleInputs(list(particles_data.normalizer.names), particles_data.normalizer)
    test = particles_data.splits["test"].tensors
    seq = inputs(test["features"])
    pairs, pair_mask = pair_features(seq)
    assert not pair_mask.diagonal(dim1=1, dim2=2).any() and not pairs[~pair_mask].any()
    events = read_lhco(particles_jets_h5.parent / "events.h5")
    p = 8  # constituents per jet
    checked = 0
    for row, event_id in enumerate(test["event_id"].tolist()[:40]):
        if not bool(seq.mask[row, 1]):
            continue
        particles = events.particles[event_id]
        pt, eta, phi = (ak.to_numpy(getattr(particles, f)) for f in ("pt", "eta", "phi"))
        lead = np.argsort(-pt)
        v = vector.array({"pt": pt, "eta": eta, "phi": phi, "mass": np.zeros(len(pt))})
        got = seq.four_vectors[row, :2].double()
        pair = got.sum(dim=0)
        mass = float(torch.sqrt(torch.clamp(pair[3] ** 2 - (pair[:3] ** 2).sum(), min=0)))
        # the jet's two leading members are among the event's particles: find them by pT
        jet_pts = torch.hypot(got[:, 0], got[:, 1]).numpy()
        members = [int(np.argmin(np.abs(pt - x))) for x in jet_pts]
        want = float((v[members[0]] + v[members[1]]).mass)
        assert mass == pytest.approx(want, rel=1e-3, abs=1e-3)
        assert float(pairs[row, 0, 1, 3]) == pytest.approx(np.log(max(want**2, 1e-8)), rel=1e-3, abs=2e-3)
        want_delta = float(v[members[0]].deltaR(v[members[1]]))  # η-φ distance of massless particles
        assert float(pairs[row, 0, 1, 0]) == pytest.approx(np.log(want_delta), abs=1e-3)
        assert set(members) <= set(lead.tolist())
        checked += 1
    assert checked > 10 and seq.features.shape[1] == 2 * p


def test_present_first_keeps_every_particle(particles_data):
    inputs = ParticleInputs(list(particles_data.normalizer.names), particles_data.normalizer)
    seq = inputs(particles_data.splits["val"].tensors["features"])
    moved = present_first(seq)
    counts = seq.mask.sum(dim=1)
    assert torch.equal(moved.mask.sum(dim=1), counts)
    assert all(bool(moved.mask[i, : int(c)].all()) for i, c in enumerate(counts))
    assert torch.allclose(moved.four_vectors.sum(dim=1), seq.four_vectors.sum(dim=1), atol=1e-3)


@pytest.mark.parametrize("name", list(PEER_SETTINGS))
def test_peer_trains_scores_and_reloads_to_the_same_scores(name, particles_jets_h5, tmp_path):
    """Each peer trains by the recipe, its run loads (batch-norm statistics included) and scores as it did, and the
    values in empty constituent slots do not move its score; an event without any constituent (no jet) gets a
    finite score."""
    from hybridjet import load_run

    method = parse_method(name, {**PEER_SETTINGS[name], "epochs": 2, "batch_size": 64})
    dm = JetDataModule(str(particles_jets_h5), feature_set="particles", batch_size=64, seed=0)
    metrics = train_model(method, dm, tmp_path / name, seed=0)
    assert metrics["epochs_run"] == 2
    clf = load_run(tmp_path / name)
    assert clf.model_kind == name
    test = dm.splits["test"].tensors
    with torch.no_grad():
        again = torch.sigmoid(clf.net(test["features"])).numpy()
        recorded = np.sort(clf.predict_proba(str(particles_jets_h5)))
        moved = torch.sigmoid(clf.net(_noise_in_empty_slots(test["features"], clf.net.inputs.layout))).numpy()
    from hybridjet.rundir import RunDir

    scores = RunDir(tmp_path / name).read_scores("test")
    order = np.argsort(scores.event_id)
    np.testing.assert_allclose(np.sort(again), np.sort(scores.score[order]), atol=1e-5)
    assert recorded.shape == (400,)
    assert not clf.net.inputs(test["features"]).mask.any(dim=1).all()  # the split holds an event without jets
    assert np.isfinite(recorded).all() and np.isfinite(again).all()
    np.testing.assert_allclose(moved, again, atol=1e-5)


@pytest.mark.parametrize(("pairs", "features"), [(False, "particles"), (True, "particles"),
                                                  (False, "particles_substructure")])
def test_hybrid_on_particles_masks_empty_slots_and_reloads(pairs, features, particles_jets_h5, tiny_llama, tmp_path):
    """The hybrid on particles (with or without the pairwise features; with the jets' τ ratios in their tokens): one
    token per jet and per constituent between the prompt's words; empty slots are masked out of attention (their
    values do not move the score); the prompt's prefix runs once per batch with the scores of the whole sequence;
    its run scores the same after loading."""
    from hybridjet import load_run
    from hybridjet.rundir import RunDir

    method = parse_method("hybrid", {"model": str(tiny_llama), "quantization": "none", "epochs": 1,
                                     "batch_size": 64, "encoder_hidden": 32, "particle_pairs": pairs})
    dm = JetDataModule(str(particles_jets_h5), feature_set=features, batch_size=64, seed=0)
    train_model(method, dm, tmp_path / "hybrid", seed=0)
    clf = load_run(tmp_path / "hybrid")
    net = clf.net
    assert clf.feature_set == features and net.encoder.inputs.jet_width == (7 if "substructure" in features else 5)
    assert net.sequence_length == len(net.prefix_ids) + sum(1 + 8 + len(t) for t in net.between_ids)
    test = dm.splits["test"].tensors
    layout = net.encoder.inputs.layout
    with torch.no_grad():
        logits = net(test["features"])
        moved = net(_noise_in_empty_slots(test["features"], layout))
        whole = net(test["features"], plain=True)  # every event's whole sequence, a padding attention mask
    assert net.policy.plan(len(logits), logits.device, torch.float32).shares_prefix
    np.testing.assert_allclose(moved.numpy(), logits.numpy(), atol=1e-4)
    np.testing.assert_allclose(whole.numpy(), logits.numpy(), atol=1e-4)
    scores = RunDir(tmp_path / "hybrid").read_scores("test")
    np.testing.assert_allclose(np.sort(torch.sigmoid(logits).numpy()), np.sort(scores.score), atol=1e-5)


@pytest.mark.parametrize(("name", "settings", "features", "message"), [
    ("part", {}, "fourvec", "methods.part: part reads jet constituents; expected features: particles"),
    ("hybrid_named", {"method": "hybrid", "prompt_tokens": "named"}, "particles", "prompt_tokens: named"),
    ("part", {"architecture": "deepsets"}, "particles", "methods.part.architecture: part is the architecture"),
    ("part", {"width": 30, "heads": 8}, "particles", "ParT's width 30 must be a multiple of heads 8"),
    ("text", {}, "particles", "the text baseline writes jets' kinematics"),
    ("deepsets", {"features": "nope"}, "particles", "methods.deepsets.features: expected one of"),
])
def test_bad_peer_settings_are_one_line(name, settings, features, message):
    with pytest.raises(HybridjetError, match=message):
        parse_method(name, settings).check_features(features)


def test_peers_refuse_other_features(toy_jets_h5, tmp_path):
    dm = JetDataModule(str(toy_jets_h5), feature_set="fourvec", batch_size=64)
    with pytest.raises(HybridjetError, match="deepsets: reads jet constituents; expected feature_set 'particles'"):
        train_model(parse_method("deepsets", {"epochs": 1}), dm, tmp_path / "run", seed=0)


def test_score_refuses_events_cut_otherwise_before_loading(particles_jets_h5, toy_jets_h5, tmp_path, capsys):
    """A run on particles scores jets.h5 files of its constituent cut; a file without constituents, one cut at
    another P, or an awkward array of jets is one line naming what to do, before the model loads."""
    from hybridjet import load_run
    from hybridjet.cli import main
    from hybridjet.data.cluster import cluster

    dm = JetDataModule(str(particles_jets_h5), feature_set="particles", batch_size=64, seed=0)
    train_model(parse_method("deepsets", {"width": 8, "epochs": 1}), dm, tmp_path / "run", seed=0)
    assert main(["score", str(tmp_path / "run"), str(particles_jets_h5), "--out", str(tmp_path / "ok.h5")]) == 0
    other = tmp_path / "c4.h5"
    cluster(particles_jets_h5.parent / "events.h5", other, constituents=4, progress=False)
    capsys.readouterr()
    for jets, message in ((toy_jets_h5, "holds no jet constituents; this run's 'particles' features need them "
                                        "(cluster the events with 'hybridjet cluster --constituents 8')"),
                          (other, "expected 2 jets of 8 constituents, as the run was trained on (recluster with "
                                  "--n-jets 2 --constituents 8)")):
        assert main(["score", str(tmp_path / "run"), str(jets), "--out", str(tmp_path / "bad.h5")]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "bad.h5").exists()
    import awkward as ak

    events = ak.Array({"FatJet": [[{"pt": 500.0, "eta": 0.1, "phi": 0.2, "mass": 80.0}]], "nPFCand": [40]})
    with pytest.raises(HybridjetError, match="gives jets without their constituents"):
        load_run(tmp_path / "run").predict_proba(events)


def test_pair_features_keep_float32_precision_for_collinear_pairs():
    """ParT's four pair features as weaver defines them (its own function in float64 on well-separated pairs), and
    in float32 for nearly collinear pairs as exact as float32 four-vectors allow: weaver's E² − |p|² form loses ln m²
    entirely there."""
    from weaver.nn.model.ParticleTransformer import pairwise_lv_fts_pp

    from hybridjet.models.particle_inputs import lorentz_pairs, weaver_pair_features

    def vectors(pt, eta, phi):
        return torch.cat([pt * torch.cos(phi), pt * torch.sin(phi), pt * torch.sinh(eta), pt * torch.cosh(eta)], 1)

    torch.manual_seed(0)
    pt = torch.exp(torch.rand(4, 1, 24, dtype=torch.float64) * 6)
    eta, phi = torch.randn(4, 1, 24, dtype=torch.float64), torch.rand(4, 1, 24, dtype=torch.float64) * 6 - 3
    i, j = torch.tril_indices(24, 24, -1)
    v = vectors(pt, eta, phi)
    torch.testing.assert_close(weaver_pair_features(v[:, :, i], v[:, :, j]),
                               pairwise_lv_fts_pp(v[:, :, i], v[:, :, j]), atol=1e-6, rtol=1e-6)
    eta, phi = 1.5 + eta * 0.05, phi * 0.02  # a collinear spray
    exact = lorentz_pairs(pt[:, :, i], eta[:, :, i], phi[:, :, i], pt[:, :, j], eta[:, :, j], phi[:, :, j])
    exact = torch.cat([exact[1], exact[2], exact[0], exact[3]], dim=1)  # weaver's order: ln kT, ln z, ln Δ, ln m²
    v32 = vectors(pt, eta, phi).float()
    ours = (weaver_pair_features(v32[:, :, i], v32[:, :, j]).double() - exact).abs().amax(dim=(0, 2))
    theirs = (pairwise_lv_fts_pp(v32[:, :, i], v32[:, :, j]).double() - exact).abs().amax(dim=(0, 2))
    assert ours.max() < 2e-3 and theirs[3] > 1.0


def test_every_particle_net_exports_to_onnx_with_the_runs_scores(particles_jets_h5, tiny_llama, tmp_path):
    """ParT, ParticleNet (weaver's nets, switched to their traceable paths), Deep Sets and the hybrid on particles go
    to ONNX with the run's probabilities (checked by onnxruntime inside the export, on events with empty slots);
    the run scores as before the export."""
    onnxruntime = pytest.importorskip("onnxruntime")
    from hybridjet import load_run
    from hybridjet.deploy.onnx_export import export_onnx

    dm = JetDataModule(str(particles_jets_h5), feature_set="particles", batch_size=64, seed=0)
    for name, settings in (("deepsets", {"width": 8}), ("hybrid", {"model": str(tiny_llama), "quantization": "none",
                                                                   "encoder_hidden": 16, "particle_pairs": True}),
                           ("particlenet", PEER_SETTINGS["particlenet"]), ("part", PEER_SETTINGS["part"])):
        train_model(parse_method(name, {**settings, "epochs": 1}), dm, tmp_path / name, seed=0)
        features = dm.splits["test"].tensors["features"][:200]
        with torch.no_grad():
            before = load_run(tmp_path / name).net(features)
        export = export_onnx(tmp_path / name, tmp_path / f"{name}.onnx")
        assert export.kind == name and export.max_abs_diff is not None and export.max_abs_diff < 1e-4, name
        clf = load_run(tmp_path / name)
        with torch.no_grad():
            torch.testing.assert_close(clf.net(features), before)
        raw = (features.numpy() * clf.normalizer.std + clf.normalizer.mean).astype(np.float32)
        inputs = clf.net.inputs if hasattr(clf.net, "inputs") else clf.net.encoder.inputs
        assert not inputs(features).mask.any(dim=1).all()  # with an event without any jet
        session = onnxruntime.InferenceSession(str(export.path), providers=["CPUExecutionProvider"])
        got = session.run(None, {session.get_inputs()[0].name: raw})[0]
        np.testing.assert_allclose(got, clf.predict_proba(raw), atol=1e-4, err_msg=name)


def test_particlenet_neighbours_beyond_the_slots_is_one_line(particles_jets_h5, tmp_path):
    dm = JetDataModule(str(particles_jets_h5), feature_set="particles", batch_size=64)
    with pytest.raises(HybridjetError, match=r"neighbours: ParticleNet's k = 16 needs more than k constituent slots"):
        train_model(parse_method("particlenet", {"epochs": 1}), dm, tmp_path / "run", seed=0)
    assert not (tmp_path / "run" / "weights.safetensors").exists()


@pytest.mark.parametrize("name", ["deepsets", "part"])
def test_a_peer_with_jets_reads_the_jets_taus_and_exports(name, particles_jets_h5, tmp_path):
    """jets: true on particles_substructure — the peer reads the jets' features (their τ's move its score) as the
    hybrid's jet tokens do, reloads to the same scores and exports to ONNX; without it the jets' columns are unread."""
    pytest.importorskip("onnxruntime")
    from hybridjet import load_run
    from hybridjet.deploy.onnx_export import export_onnx

    dm = JetDataModule(str(particles_jets_h5), feature_set="particles_substructure", batch_size=64, seed=0)
    for jets in (True, False):
        run = tmp_path / f"{name}_{jets}"
        train_model(parse_method(name, {**PEER_SETTINGS[name], "jets": jets, "epochs": 1}), dm, run, seed=0)
        clf = load_run(run)
        assert ParticleLayout.of(clf.normalizer.names).jet_fields[5:7] == ("tau21", "tau32")
        features = dm.splits["test"].tensors["features"][:100]
        moved = features.clone()
        moved[:, 5:7] += 2.0  # jet 1's τ21, τ32 (normalised)
        with torch.no_grad():
            delta = (clf.net(moved) - clf.net(features)).abs().max().item()
        assert (delta > 1e-4) if jets else (delta == 0.0), (name, jets, delta)
    export = export_onnx(tmp_path / f"{name}_True", tmp_path / f"{name}.onnx")
    assert export.max_abs_diff is not None and export.max_abs_diff < 1e-4
