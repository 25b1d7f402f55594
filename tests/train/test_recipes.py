import json

import numpy as np
import pytest

from hybridjet.data.datamodule import JetDataModule
from hybridjet.data.store import JetArrays, write_jets
from hybridjet.errors import HybridjetError
from hybridjet.train.recipes import train_gbdt


def test_trees_whose_test_split_holds_one_class_still_write_scores_and_counts(tmp_path, make_toy_jets):
    # rare signal (a weakly supervised training file): the small test split may hold background only
    jets = make_toy_jets(600, seed=4)
    keep = np.flatnonzero(jets.label == 0)
    rare = JetArrays.concatenate([jets.subset(keep), jets.subset(np.flatnonzero(jets.label == 1)[:8])])
    write_jets(tmp_path / "rare.h5", rare)
    dm = None
    for seed in range(50):  # the first seed whose test split is one class while train and val hold both
        try:
            candidate = JetDataModule(str(tmp_path / "rare.h5"), feature_set="substructure", split=(0.6, 0.3, 0.1),
                                      seed=seed)
            candidate.setup("fit")
        except HybridjetError:
            continue
        if len(np.unique(candidate.splits["test"].tensors["label"].numpy())) == 1:
            dm = candidate
            break
    assert dm is not None
    metrics = train_gbdt(dm, tmp_path / "run", max_iter=5)
    n_test = len(dm.splits["test"].tensors["label"])
    assert metrics["test"] == {"n_events": n_test, "n_signal": 0, "n_background": n_test}
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["test"]["n_events"] == n_test
    assert (tmp_path / "run" / "scores.h5").exists()


def test_the_best_checkpoint_is_the_one_with_the_lowest_val_loss_when_selected_by_it(tmp_path, toy_jets_h5):
    # the weak modes' lever: with noisy labels the validation loss, not the AUC, picks the weights and stops
    import csv

    import lightning as L

    from hybridjet.train.classifiers import HybridClassifier
    from hybridjet.train.recipes import train_classifier

    L.seed_everything(0, verbose=False)
    model = HybridClassifier.from_settings(use_llm=False, encoder_hidden=16, lr=3e-3)
    metrics = train_classifier(model, JetDataModule(str(toy_jets_h5), batch_size=32), tmp_path / "run", max_epochs=4,
                               progress=False, select_by="val_loss", early_stopping_patience=2,
                               early_stopping_monitor="val_loss")
    assert "best_val_auc" not in metrics
    with open(tmp_path / "run" / "logs" / "version_0" / "metrics.csv") as f:
        losses = [float(r["val_loss"]) for r in csv.DictReader(f) if r.get("val_loss")]
    assert len(losses) >= 2 and metrics["best_val_loss"] == pytest.approx(min(losses), rel=1e-6)
    with pytest.raises(HybridjetError, match="select_by: expected one of val_auc, val_loss, got 'val_acc'"):
        train_classifier(model, JetDataModule(str(toy_jets_h5)), tmp_path / "other", select_by="val_acc")
