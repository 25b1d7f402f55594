"""Clustering: vectorised path against a per-event loop and against summed constituents (vector)."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import vector

from hybridjet.data.cluster import (
    cluster,
    cluster_particles,
    cluster_particles_loop,
    nsubjettiness,
    to_cartesian,
)
from hybridjet.data.lhco import read_lhco
from hybridjet.data.store import read_jets


def test_vectorised_matches_loop_and_constituent_sums(lhco_file):
    path, _ = lhco_file
    events = read_lhco(path)
    fast = cluster_particles(events.particles, radius=1.0, n_jets=3, min_pt=20.0)
    ref = cluster_particles_loop(events.particles, radius=1.0, n_jets=3, min_pt=20.0)
    np.testing.assert_array_equal(fast["jet_mask"], ref["jet_mask"])
    np.testing.assert_allclose(fast["jets"], ref["jets"], rtol=1e-9, atol=1e-9)
    # independent: each jet = sum of its constituents' massless four-vectors, built with vector
    for i in range(0, len(events), 17):
        p = events.particles[i]
        for k, idx in enumerate(ref["constituents"][i]):
            vecs = vector.array({"pt": ak.to_numpy(p.pt)[idx], "eta": ak.to_numpy(p.eta)[idx],
                                 "phi": ak.to_numpy(p.phi)[idx], "mass": np.zeros(len(idx))})
            total = np.array([vecs.px.sum(), vecs.py.sum(), vecs.pz.sum(), vecs.E.sum()])
            np.testing.assert_allclose(fast["jets"][i, k], total, rtol=1e-9, atol=1e-6)
    pts = np.hypot(fast["jets"][..., 0], fast["jets"][..., 1])
    assert (np.diff(pts, axis=1)[fast["jet_mask"][:, 1:]] <= 1e-9).all()  # sorted by pT
    assert (pts[fast["jet_mask"]] > 20).all()
    np.testing.assert_array_equal(fast["n_particles"], ak.num(events.particles))


def test_nsubjettiness_simple_cases():
    # two hard, back-to-back-in-the-jet prongs: tau2 ~ 0 while tau1 > 0; one particle: all zero
    prongs = ak.zip({"pt": [[100.0, 100.0], [50.0]], "eta": [[0.0, 0.0], [1.0]], "phi": [[0.0, 0.4], [0.0]],
                     "mass": [[0.0, 0.0], [0.0]]})
    tau = nsubjettiness(to_cartesian(prongs), radius=1.0)
    assert tau[0, 0] == pytest.approx(0.2, rel=1e-3)  # each 0.2 from the axis half-way
    assert tau[0, 1] == pytest.approx(0.0, abs=1e-9) and tau[1].tolist() == [0.0, 0.0, 0.0]


def test_cluster_file_parallel_equals_serial(lhco_file, tmp_path):
    path, (_, _, _, labels) = lhco_file
    s1 = cluster(path, tmp_path / "a.h5", workers=1, chunk_size=70, progress=False)
    s2 = cluster(path, tmp_path / "b.h5", workers=2, chunk_size=70, progress=False)
    a, b = read_jets(tmp_path / "a.h5"), read_jets(tmp_path / "b.h5")
    for name in ("jets", "jet_mask", "tau", "n_particles", "label", "event_id"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert s1.n_events == s2.n_events == 300 and len(a) == 300
    np.testing.assert_array_equal(a.label, labels)
    np.testing.assert_array_equal(a.event_id, np.arange(300))
    assert s1.n_fewer_jets == int((~a.jet_mask.all(axis=1)).sum())
    assert a.attrs["algorithm"] == "antikt" and a.attrs["R"] == 1.0
    t21 = a.tau[..., 1] / np.where(a.tau[..., 0] > 0, a.tau[..., 0], 1)
    assert ((a.tau >= 0) & np.isfinite(a.tau)).all() and (t21[a.jet_mask] <= 1.0 + 1e-6).all()


def test_cli_cluster_and_inspect(lhco_file, tmp_path, capsys):
    from hybridjet.cli import main

    path, _ = lhco_file
    out = tmp_path / "jets.h5"
    assert main(["cluster", str(path), "--out", str(out), "--n-jets", "3", "--algorithm", "kt", "--no-progress"]) == 0
    assert "clustered 300 events" in capsys.readouterr().out
    assert read_jets(out).jets.shape == (300, 3, 4)
    assert main(["inspect", str(out)]) == 0
    assert "jets.h5 (schema version 2" in capsys.readouterr().out
    assert main(["inspect", str(path)]) == 0
    assert "LHCO-format event file" in capsys.readouterr().out
    assert main(["cluster", str(path), "--out", str(out), "--workers", "0"]) == 2
    assert "--workers" in capsys.readouterr().err


def test_nsubjettiness_matches_fastjet_contrib(lhco_file):
    import fastjet

    path, _ = lhco_file
    events = read_lhco(path)
    cs = fastjet.ClusterSequence(to_cartesian(events.particles), fastjet.JetDefinition(fastjet.antikt_algorithm, 1.0))
    constituents = ak.flatten(cs.constituents(20.0), axis=1)
    ours = nsubjettiness(constituents, radius=1.0)
    reference = fastjet.ClusterSequence(constituents, fastjet.JetDefinition(fastjet.kt_algorithm, 1.0)).njettiness(
        njets=[1, 2, 3], axes_definition="KT_Axes", measure_definition="NormalizedMeasure", beta=1.0, R0=1.0)
    np.testing.assert_allclose(ours, np.asarray(reference), rtol=1e-6, atol=1e-9)


def test_constituents_match_the_loops_members_by_vector(lhco_file):
    """Each jet's kept constituents are its P leading members by pT, with features computed independently here
    (vector's pseudorapidity, phi and energy of the massless particles, against the jet's)."""
    path, _ = lhco_file
    events = read_lhco(path)
    n_keep = 8
    fast = cluster_particles(events.particles, radius=1.0, n_jets=2, min_pt=20.0, constituents=n_keep)
    ref = cluster_particles_loop(events.particles, radius=1.0, n_jets=2, min_pt=20.0)
    assert fast["constituents"].shape == (len(events), 2, n_keep, 7)
    checked = 0
    for i in range(0, len(events), 7):
        p = events.particles[i]
        pt, eta, phi = (ak.to_numpy(getattr(p, f)) for f in ("pt", "eta", "phi"))
        for k, idx in enumerate(ref["constituents"][i]):
            idx = np.asarray(idx)[np.argsort(-pt[idx], kind="stable")][:n_keep]
            jet = vector.obj(px=ref["jets"][i, k, 0], py=ref["jets"][i, k, 1], pz=ref["jets"][i, k, 2],
                             E=ref["jets"][i, k, 3])
            vecs = vector.array({"pt": pt[idx], "eta": eta[idx], "phi": phi[idx], "mass": np.zeros(len(idx))})
            deta = vecs.eta - jet.eta
            dphi = vecs.deltaphi(jet)
            want = np.stack([np.log(vecs.pt), np.log(vecs.E), np.log(vecs.pt / jet.pt), np.log(vecs.E / jet.E),
                             deta, dphi, np.hypot(deta, dphi)], axis=-1)
            got = fast["constituents"][i, k, : len(idx)]
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
            assert fast["constituent_mask"][i, k].sum() == len(idx)
            assert not fast["constituents"][i, k, len(idx):].any()
            checked += 1
    assert checked > 50
    # the empty jet slots hold no constituents
    assert not fast["constituent_mask"][~fast["jet_mask"]].any()


def test_cluster_constituents_streamed_and_parallel_equal(lhco_file, tmp_path, capsys):
    """The CLI's --constituents file, written chunk by chunk, equals the one-call arrays; workers change nothing;
    a file without them reads as before and P <= 0 is one line."""
    from hybridjet.cli import main

    path, _ = lhco_file
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    assert main(["cluster", str(path), "--out", str(a), "--constituents", "16", "--chunk-size", "70",
                 "--no-progress"]) == 0
    assert main(["cluster", str(path), "--out", str(b), "--constituents", "16", "--chunk-size", "70",
                 "--workers", "2", "--no-progress"]) == 0
    ja, jb = read_jets(a), read_jets(b)
    whole = cluster_particles(read_lhco(path).particles, constituents=16)
    np.testing.assert_allclose(ja.constituents, whole["constituents"], rtol=0, atol=0)
    np.testing.assert_array_equal(ja.constituent_mask, whole["constituent_mask"])
    for name in ("jets", "tau", "event_id", "label", "constituents", "constituent_mask"):
        np.testing.assert_array_equal(getattr(ja, name), getattr(jb, name))
    assert ja.attrs["n_constituents"] == 16 and ja.n_constituents == 16
    assert read_jets(a, constituents=False).constituents is None
    capsys.readouterr()
    for bad in ("0", "-3", "701"):
        assert main(["cluster", str(path), "--out", str(tmp_path / "c.h5"), "--constituents", bad]) == 2
        err = capsys.readouterr().err
        assert "--constituents" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "c.h5").exists()
