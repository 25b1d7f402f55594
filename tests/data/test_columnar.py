"""Events from awkward arrays and ROOT files (written here by uproot itself): the same scores as the same jets from
a jets.h5, awkward out for awkward in, and a missing field, branch or tree as one line naming it."""

import numpy as np
import pytest

from hybridjet.cli import main
from hybridjet.data.columnar import AwkwardEvents, JetFields, RootEvents, jets_from_awkward, parse_fields
from hybridjet.data.datamodule import JetDataModule
from hybridjet.data.kinematics import jet_kinematics
from hybridjet.data.store import JetArrays, write_jets
from hybridjet.errors import HybridjetError
from hybridjet.train.recipes import train_gbdt

ak = pytest.importorskip("awkward")
uproot = pytest.importorskip("uproot")


def _leading_first(arrays: JetArrays) -> JetArrays:
    """The toy jets with the leading jet by pT first, as 'hybridjet cluster' writes them."""
    pt = jet_kinematics(arrays.jets)["pt"]
    order = np.argsort(-pt, axis=1, kind="stable")
    rows = np.arange(len(arrays))[:, None]
    return JetArrays(arrays.jets[rows, order], arrays.jet_mask[rows, order], arrays.n_particles, arrays.tau[rows, order],
                     arrays.label, arrays.event_id + 1000, {})


def _nanoaod(arrays: JetArrays) -> dict:
    """NanoAOD's layout of the jets: a FatJet collection (pt, eta, phi, mass, tau1..3), event numbers, a count."""
    kin = jet_kinematics(arrays.jets)
    per_jet = {k: kin[k] for k in ("pt", "eta", "phi", "mass")}
    per_jet.update({f"tau{i + 1}": arrays.tau[..., i] for i in range(3)})
    counts = arrays.jet_mask.sum(axis=1)
    fat = ak.zip({k: ak.unflatten(v[arrays.jet_mask.astype(bool)], counts) for k, v in per_jet.items()})
    return {"FatJet": fat, "event": arrays.event_id, "nPFCand": arrays.n_particles.astype(np.int64),
            "truth": arrays.label.astype(np.int64)}


@pytest.fixture(scope="module")
def jets(make_toy_jets):
    return _leading_first(make_toy_jets(300, seed=3))


@pytest.fixture(scope="module")
def trees(jets, tmp_path_factory):
    """A gbdt run on the fourvec features of the toy jets."""
    root = tmp_path_factory.mktemp("columnar")
    write_jets(root / "jets.h5", jets)
    train_gbdt(JetDataModule(str(root / "jets.h5")), root / "trees", max_iter=20)
    import hybridjet

    return hybridjet.load_run(root / "trees"), root


def test_an_awkward_array_scores_as_its_jets_and_comes_back_awkward(jets, trees):
    clf, root = trees
    events = ak.zip(_nanoaod(jets), depth_limit=1)
    got = clf.predict_proba(events)
    assert isinstance(got, ak.Array)
    np.testing.assert_allclose(ak.to_numpy(got), clf.predict_proba(root / "jets.h5"), atol=1e-6)
    converted = jets_from_awkward(events, JetFields(label="truth"), n_jets=2)
    np.testing.assert_allclose(converted.jets, jets.jets, rtol=1e-4, atol=1e-2)
    assert np.array_equal(converted.event_id, jets.event_id) and np.array_equal(converted.label, jets.label)


def test_jets_out_of_pt_order_are_sorted_and_missing_jets_masked(jets):
    events = _nanoaod(jets)
    fat = events["FatJet"][:, ::-1]  # subleading first
    one = ak.zip({**events, "FatJet": fat[:, :1]}, depth_limit=1)  # and only one jet per event
    converted = jets_from_awkward(ak.zip({**events, "FatJet": fat}, depth_limit=1), n_jets=2)
    np.testing.assert_allclose(converted.jets, jets.jets, rtol=1e-4, atol=1e-2)
    single = jets_from_awkward(one, n_jets=2)
    assert single.jet_mask[:, 0].all() and not single.jet_mask[:, 1].any() and (single.jets[:, 1] == 0).all()


def test_cartesian_fields_and_a_delphes_layout_from_a_yaml_mapping(jets, trees, tmp_path):
    clf, root = trees
    want = clf.predict_proba(root / "jets.h5")
    counts = jets.jet_mask.sum(axis=1)
    flat = jets.jets[jets.jet_mask.astype(bool)]
    cartesian = ak.zip({"jets": ak.zip({k: ak.unflatten(flat[:, i], counts) for i, k in enumerate(("px", "py", "pz",
                                                                                                    "E"))}),
                        "n": jets.n_particles.astype(np.int64)}, depth_limit=1)
    fields = JetFields(collection="jets", cartesian=True, tau=(), n_particles="n", event_id="")
    np.testing.assert_allclose(ak.to_numpy(clf.predict_proba(AwkwardEvents(cartesian, fields))), want, atol=1e-6)
    # Delphes: FatJet.PT/Eta/Phi/Mass and Tau[5] per jet; its particle count named in a YAML file
    kin = jet_kinematics(jets.jets)
    tau5 = np.concatenate([jets.tau, np.zeros((len(jets), 2, 2), np.float32)], axis=-1)
    fat = ak.zip({"PT": kin["pt"], "Eta": kin["eta"], "Phi": kin["phi"], "Mass": kin["mass"]})
    fat = ak.with_field(fat, ak.Array(tau5.tolist()), "Tau")
    delphes = ak.zip({"FatJet": fat, "nparticles": jets.n_particles.astype(np.int64)}, depth_limit=1)
    mapping = tmp_path / "delphes.yaml"
    mapping.write_text("preset: delphes\nn_particles: nparticles\n")
    got = clf.predict_proba(AwkwardEvents(delphes, parse_fields(str(mapping))))
    np.testing.assert_allclose(ak.to_numpy(got), want, atol=1e-6)


@pytest.mark.parametrize("change, message", [
    (lambda e: {k: v for k, v in e.items() if k != "FatJet"}, r"no field 'FatJet' \(the jet collection\)"),
    (lambda e: {**e, "FatJet": ak.without_field(e["FatJet"], "mass")}, "no jet field 'mass'"),
    (lambda e: {k: v for k, v in e.items() if k != "nPFCand"}, "no event field 'nPFCand'; expected the event's"),
])
def test_a_missing_field_is_one_line_naming_it(jets, trees, change, message):
    clf, _ = trees
    with pytest.raises(HybridjetError, match=message) as err:
        clf.predict_proba(ak.zip(change(_nanoaod(jets)), depth_limit=1))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("value, message", [
    ("cms", "--fields: expected a preset"),
    ({"colour": "red"}, "fields.colour: unknown field"),
    ({"tau": ["a", "b"]}, "fields.tau: expected three field names"),
    ({"cartesian": "yes"}, "fields.cartesian: expected true or false"),
])
def test_bad_field_mappings_are_one_line(value, message):
    with pytest.raises(HybridjetError, match=message):
        parse_fields(value)


def _write_tree(path, arrays, rntuple=False):
    events = _nanoaod(arrays)
    with uproot.recreate(path) as f:
        if rntuple:
            f["Events"] = events  # uproot's default: an RNTuple, branches FatJet.pt ...
        else:  # a TTree in NanoAOD's naming: nFatJet, FatJet_pt ...
            f.mktree("Events", {"FatJet": events["FatJet"].type.content, "event": "int64", "nPFCand": "int64",
                                "truth": "int64"})
            f["Events"].extend(events)


@pytest.mark.parametrize("rntuple", [False, True])
def test_score_reads_a_root_file_and_writes_a_table_with_a_column_per_run(jets, trees, tmp_path, capsys, rntuple):
    clf, root = trees
    events = tmp_path / "nano.root"
    _write_tree(events, jets, rntuple)
    for suffix in ("parquet", "root"):
        out = tmp_path / f"scores.{suffix}"
        assert main(["score", str(root / "trees"), str(events), "--out", str(out)]) == 0
        assert main(["score", str(root / "trees"), str(events), "--out", str(out), "--column", "again"]) == 0
        assert f"scored 300 events of {events}" in capsys.readouterr().out
        from hybridjet.eval.score_tables import read_score_table

        table = read_score_table(out)
        assert sorted(table) == ["again", "event_id", "label", "trees"]
        assert np.array_equal(table["event_id"], jets.event_id) and (table["label"] == -1).all()
        np.testing.assert_allclose(table["trees"], clf.predict_proba(root / "jets.h5"), atol=1e-6)
    # the API reads the same tree in chunks
    got = clf.predict_proba(RootEvents(events, "Events"))
    np.testing.assert_allclose(got, clf.predict_proba(root / "jets.h5"), atol=1e-6)


def test_root_inputs_and_table_outputs_are_checked_before_the_model_loads(jets, trees, tmp_path, capsys):
    _, root = trees
    events = tmp_path / "nano.root"
    _write_tree(events, jets)
    run = str(root / "trees")
    notes = tmp_path / "notes.parquet"
    notes.write_text("mine")
    other = tmp_path / "other.parquet"
    write_jets(tmp_path / "fewer.h5", jets.subset(slice(0, 100)))
    assert main(["score", run, str(tmp_path / "fewer.h5"), "--out", str(other)]) == 0
    capsys.readouterr()
    cases = [
        (["--tree", "Delphes"], "nano.root: no tree 'Delphes'; its trees: Events"),
        (["--fields", "delphes"], "no branch of jet field 'PT' in collection 'FatJet'"),
        (["--out", str(notes)], "notes.parquet: exists and is not a score table hybridjet wrote"),
        (["--out", str(other)], "other.parquet: holds the scores of other events"),
    ]
    args_of = [["score", run, str(events), "--out", str(tmp_path / "s.parquet"), *extra] for extra, _ in cases]
    cases.append((None, "a root table holds the events of one input"))
    args_of.append(["score", run, str(events), str(root / "jets.h5"), "--out", str(tmp_path / "t.root")])
    for args, (extra, message) in zip(args_of, cases, strict=True):
        assert main(args) == 2, extra
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert notes.read_text() == "mine"
    assert not (tmp_path / "s.parquet").exists() and not (tmp_path / "t.root").exists()


def test_row_numbered_ids_run_on_across_a_trees_chunks(jets, tmp_path):
    """Before: without an event-number field every 100k-event chunk numbered its events from 0 again."""
    from hybridjet.data.columnar import iter_root_jets

    events = tmp_path / "nano.root"
    _write_tree(events, jets)
    chunks = list(iter_root_jets(events, "Events", JetFields(event_id=""), 2, chunk_events=70))
    ids = np.concatenate([c.event_id for c in chunks])
    assert len(chunks) == 5 and np.array_equal(ids, np.arange(300))


def test_awkward_subclasses_and_bad_event_fields(jets, trees):
    """Before: vector's momentum arrays (and coffea's NanoEvents) were refused as 'not an awkward array'; labels of
    2 or event numbers of 0.5 were cast silently."""
    import vector

    vector.register_awkward()
    clf, root = trees
    fields = _nanoaod(jets)
    class NanoEventsLike(ak.Array):  # coffea's NanoEvents: an awkward subclass of its own for the events
        pass

    fat = ak.zip({k: fields["FatJet"][k] for k in fields["FatJet"].fields}, with_name="Momentum4D")
    events = ak.zip({**fields, "FatJet": fat}, depth_limit=1, with_name="Event",
                    behavior={**ak.behavior, ("*", "Event"): NanoEventsLike})
    assert isinstance(events, NanoEventsLike) and type(events.FatJet).__name__ == "MomentumArray4D"
    np.testing.assert_allclose(ak.to_numpy(clf.predict_proba(events)), clf.predict_proba(root / "jets.h5"), atol=1e-6)
    bad = ak.zip({**fields, "truth": np.full(len(jets), 2)}, depth_limit=1)
    with pytest.raises(HybridjetError, match="event field 'truth': expected labels 1 .* got 2 in 300 events"):
        jets_from_awkward(bad, JetFields(label="truth"))
    halves = ak.zip({**fields, "event": np.full(len(jets), 0.5)}, depth_limit=1)
    with pytest.raises(HybridjetError, match="event field 'event': expected whole event numbers"):
        jets_from_awkward(halves)


def test_a_table_refuses_another_runs_column_and_repeated_event_numbers_before_scoring(jets, trees, tmp_path,
                                                                                       capsys):
    import shutil

    _, root = trees
    events = tmp_path / "nano.root"
    _write_tree(events, jets)
    out = tmp_path / "scores.parquet"
    assert main(["score", str(root / "trees"), str(events), "--out", str(out)]) == 0
    other = tmp_path / "elsewhere" / "trees"  # another run of the same name: its column would replace the first's
    shutil.copytree(root / "trees", other)
    before = out.read_bytes()
    capsys.readouterr()
    assert main(["score", str(other), str(events), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "column 'trees' holds the scores of run" in err and "expected another --column" in err
    assert out.read_bytes() == before
    assert main(["score", str(other), str(events), "--out", str(out), "--column", "trees_2"]) == 0
    repeated = jets.subset(np.arange(len(jets)))
    repeated.event_id[:] = 7
    _write_tree(tmp_path / "repeated.root", repeated)
    capsys.readouterr()
    assert main(["score", str(root / "trees"), str(tmp_path / "repeated.root"), "--out", str(tmp_path / "r.h5")]) == 2
    assert "event field 'event' repeats 299 number(s) (first: 7)" in capsys.readouterr().err


def test_delphes_fixed_size_branches_are_found_by_their_names():
    from hybridjet.data.columnar import _branch

    keys = {"FatJet", "FatJet.PT", "FatJet.Tau[5]", "Jet.Tau[5]"}
    assert _branch(keys, "FatJet", "PT") == "FatJet.PT" and _branch(keys, "FatJet", "Tau") == "FatJet.Tau[5]"
    assert _branch(keys, "FatJet", "Mass") is None
