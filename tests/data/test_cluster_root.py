"""``hybridjet cluster`` on a particle-level ROOT tree (Delphes' layout, written here by uproot): the same jets as
the same particles in an LHCO file; stable particles only, neutrinos left out; a missing branch is one line."""

import numpy as np
import pytest

from hybridjet.cli import main
from hybridjet.data.store import read_jets

ak = pytest.importorskip("awkward")
uproot = pytest.importorskip("uproot")


def _delphes_tree(path, pt, eta, phi, labels, extra_particles=False):
    """The LHCO rows' particles as a Delphes-like Particle collection (PT, Eta, Phi, Mass, Status, PID); with
    ``extra_particles`` each event also holds an unstable parton and a hard neutrino, which must not be clustered."""
    keep = pt > 0
    counts = keep.sum(axis=1)
    fields = {"PT": pt[keep], "Eta": eta[keep], "Phi": phi[keep]}
    columns = {k: ak.unflatten(v.astype(np.float64), counts) for k, v in fields.items()}
    columns["Mass"] = ak.zeros_like(columns["PT"])
    columns["Status"] = ak.ones_like(columns["PT"], dtype=np.int32)
    columns["PID"] = ak.full_like(columns["PT"], 211, dtype=np.int32)
    if extra_particles:
        n = len(pt)
        extra = {"PT": np.full((n, 2), 900.0), "Eta": np.zeros((n, 2)), "Phi": np.full((n, 2), 1.0),
                 "Mass": np.zeros((n, 2)), "Status": np.tile([23, 1], (n, 1)), "PID": np.tile([21, -14], (n, 1))}
        columns = {k: ak.concatenate([columns[k], ak.values_astype(ak.Array(extra[k].tolist()),
                                                                   columns[k].layout.content.dtype)], axis=1)
                   for k in columns}
    particles = ak.zip(columns)
    with uproot.recreate(path) as f:
        f.mktree("Delphes", {"Particle": particles.type.content, "truth": "int8"})
        f["Delphes"].extend({"Particle": particles, "truth": labels.astype(np.int8)})


def test_a_delphes_tree_clusters_into_the_jets_of_the_same_particles(lhco_file, tmp_path, capsys):
    path, (pt, eta, phi, labels) = lhco_file
    events = tmp_path / "delphes.root"
    _delphes_tree(events, pt, eta, phi, labels, extra_particles=True)
    mapping = tmp_path / "fields.yaml"
    mapping.write_text("label: truth\n")
    assert main(["cluster", str(path), "--out", str(tmp_path / "lhco_jets.h5"), "--no-progress"]) == 0
    assert main(["cluster", str(events), "--out", str(tmp_path / "root_jets.h5"), "--fields", str(mapping),
                 "--chunk-size", "70", "--no-progress"]) == 0
    assert "clustered 300 events" in capsys.readouterr().out
    a, b = read_jets(tmp_path / "lhco_jets.h5"), read_jets(tmp_path / "root_jets.h5")
    for name in ("jet_mask", "n_particles", "label", "event_id"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    np.testing.assert_allclose(b.jets, a.jets, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(b.tau, a.tau, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("args, message", [
    (["--tree", "Events"], "no tree 'Events'; its trees: Delphes"),
    (["--fields", "pythia"], "--fields: expected a preset (delphes) or a YAML file"),
])
def test_a_bad_root_input_is_one_line_before_any_work(lhco_file, tmp_path, capsys, args, message):
    path, (pt, eta, phi, labels) = lhco_file
    events = tmp_path / "delphes.root"
    _delphes_tree(events, pt, eta, phi, labels)
    assert main(["cluster", str(events), "--out", str(tmp_path / "jets.h5"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "jets.h5").exists()


def test_a_missing_particle_branch_names_it(lhco_file, tmp_path, capsys):
    path, (pt, eta, phi, labels) = lhco_file
    events = tmp_path / "delphes.root"
    _delphes_tree(events, pt, eta, phi, labels)
    mapping = tmp_path / "fields.yaml"
    mapping.write_text("collection: EFlowTrack\n")
    assert main(["cluster", str(events), "--out", str(tmp_path / "jets.h5"), "--fields", str(mapping)]) == 2
    assert "no branch of particle field 'PT' in collection 'EFlowTrack'" in capsys.readouterr().err


def test_the_api_refuses_an_output_that_is_the_root_input(lhco_file, tmp_path):
    """Before: cluster(in_path, out, root=...) checked the output against in_path, not the tree it read."""
    from hybridjet.data.cluster import cluster
    from hybridjet.data.columnar import RootParticles
    from hybridjet.errors import OutputPathError

    path, (pt, eta, phi, labels) = lhco_file
    events = tmp_path / "delphes.root"
    _delphes_tree(events, pt, eta, phi, labels)
    before = events.read_bytes()
    with pytest.raises(OutputPathError, match="is also the input"):
        cluster("ignored.h5", events, root=RootParticles(str(events), "Delphes"), progress=False)
    assert events.read_bytes() == before
