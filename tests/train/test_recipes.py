import json

import numpy as np

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
