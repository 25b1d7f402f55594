"""``hybridjet export-onnx``: every run kind that exports gives onnxruntime the run's own probabilities on real
events; the one that cannot (the text baseline) and outputs that are not ONNX files hybridjet wrote are one line."""

import lightning as L
import numpy as np
import pytest

from hybridjet.api import load_run
from hybridjet.cli import main
from hybridjet.data.datamodule import JetDataModule
from hybridjet.data.features import event_features
from hybridjet.data.store import read_jets
from hybridjet.train.classifiers import HybridClassifier, TextPromptClassifier
from hybridjet.train.recipes import train_classifier, train_gbdt

ort = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def runs(tiny_llama, toy_jets_h5, tmp_path_factory):
    """A trained run of each kind on the toy events."""
    root = tmp_path_factory.mktemp("onnx_runs")
    train_gbdt(JetDataModule(str(toy_jets_h5)), root / "gbdt", max_iter=30)
    for name, settings in (("ablation", {"use_llm": False}),
                           ("hybrid", {"model": str(tiny_llama), "quantization": "none"})):
        L.seed_everything(0, verbose=False)
        model = HybridClassifier.from_settings(**settings)
        train_classifier(model, JetDataModule(str(toy_jets_h5), batch_size=32), root / name, max_epochs=1,
                         progress=False)
    return root


@pytest.mark.parametrize("kind", ["gbdt", "ablation", "hybrid"])
def test_onnxruntime_gives_the_runs_probabilities_on_real_events(kind, runs, toy_jets_h5, tmp_path, capsys):
    out = tmp_path / f"{kind}.onnx"
    assert main(["export-onnx", str(runs / kind), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"({kind}, 15 fourvec features) -> {out}" in printed and "onnxruntime reproduces" in printed
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    clf = load_run(runs / kind, dense=kind == "hybrid")
    assert meta["hybridjet.features"].split(",") == list(clf.normalizer.names)
    jets = read_jets(toy_jets_h5)
    features = event_features(jets.jets, jets.jet_mask, jets.n_particles, jets.tau, meta["hybridjet.feature_set"])
    got = session.run(["probability"], {"features": features})[0]
    assert got.shape == (len(jets),)
    np.testing.assert_allclose(got, clf.predict_proba(toy_jets_h5), atol=1e-5, rtol=0)


def test_a_text_baseline_run_is_refused_in_one_line(tiny_llama, toy_jets_h5, tmp_path, capsys):
    L.seed_everything(0, verbose=False)
    model = TextPromptClassifier.from_settings(model=str(tiny_llama), quantization="none")
    dm = JetDataModule(str(toy_jets_h5), batch_size=32, max_train_events=64, max_eval_events=32)
    train_classifier(model, dm, tmp_path / "text", max_epochs=1, progress=False)
    capsys.readouterr()
    assert main(["export-onnx", str(tmp_path / "text"), "--out", str(tmp_path / "text.onnx")]) == 2
    err = capsys.readouterr().err
    assert "a text-baseline run cannot be exported to ONNX" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "text.onnx").exists()


def test_an_export_replaces_its_own_model_but_no_other_file(runs, tmp_path, capsys):
    out = tmp_path / "model.onnx"
    assert main(["export-onnx", str(runs / "gbdt"), "--out", str(out)]) == 0
    assert main(["export-onnx", str(runs / "ablation"), "--out", str(out)]) == 0  # its own export: replaced
    capsys.readouterr()
    notes = tmp_path / "notes.onnx"
    notes.write_text("my notes")
    assert main(["export-onnx", str(runs / "gbdt"), "--out", str(notes)]) == 2
    assert "is not an ONNX model hybridjet exported" in capsys.readouterr().err
    assert notes.read_text() == "my notes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "notes.onnx"]  # no temporary left


def test_a_weights_file_beside_the_output_that_is_not_ours_is_refused(runs, tmp_path, capsys):
    """Before: onnx appends a large model's weights to an existing <out>.data, whoever wrote it."""
    data = tmp_path / "model.onnx.data"
    data.write_bytes(b"someone's weights")
    assert main(["export-onnx", str(runs / "gbdt"), "--out", str(tmp_path / "model.onnx")]) == 2
    assert "model.onnx.data: exists beside an output hybridjet did not export" in capsys.readouterr().err
    assert data.read_bytes() == b"someone's weights" and sorted(p.name for p in tmp_path.iterdir()) == [
        "model.onnx.data"]
