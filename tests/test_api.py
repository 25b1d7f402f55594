"""``hybridjet.load_run``: one protocol for every classifier a run holds, the nets and the trees, each loaded by the
registry's record for its kind of run."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hybridjet.api import RUN_LOADERS, Classifier, load_run
from hybridjet.data.datamodule import JetDataModule
from hybridjet.models.classical import GradientBoostedTrees
from hybridjet.train.classifiers import HybridClassifier
from hybridjet.train.recipes import train_classifier, train_gbdt


def test_nets_and_trees_are_one_kind_of_classifier(toy_jets_h5: Path, tmp_path: Path) -> None:
    dm = JetDataModule(str(toy_jets_h5), batch_size=64)
    train_gbdt(dm, tmp_path / "trees", max_iter=5)
    clf = HybridClassifier.from_settings(use_llm=False, n_soft_tokens=2, ablation_width=8, encoder_hidden=16)
    train_classifier(clf, JetDataModule(str(toy_jets_h5), batch_size=64), tmp_path / "net", max_epochs=1,
                     progress=False)
    for name, kind in (("trees", GradientBoostedTrees), ("net", HybridClassifier)):
        loaded = load_run(tmp_path / name, dense=True)  # the trees take the nets' options and ignore them
        assert isinstance(loaded, kind) and isinstance(loaded, Classifier)
        probs = loaded.predict_proba(str(toy_jets_h5))
        batch, first = next(iter(loaded.iter_probabilities(str(toy_jets_h5), batch_size=100)))
        assert probs.shape == (600,) and np.isfinite(probs).all()
        np.testing.assert_allclose(first, probs[:100], atol=1e-6)
        assert len(batch["event_id"]) == 100 and loaded.run_metadata()["class"] == type(loaded).__name__
        loaded_again = tmp_path / f"{name}_again"
        if name == "trees":  # saved again, it scores the same
            loaded.save_run(loaded_again)
            np.testing.assert_allclose(load_run(loaded_again).predict_proba(str(toy_jets_h5)), probs)
    assert set(RUN_LOADERS) == {"GradientBoostedTrees"}  # every other record's class: an LLM classifier
