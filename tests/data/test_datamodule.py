import numpy as np
import pytest

from hybridjet.data.datamodule import JetDataModule
from hybridjet.errors import HybridjetError


def test_splits_are_disjoint_deterministic_and_normalised_on_train(toy_jets_h5):
    dm = JetDataModule(str(toy_jets_h5), batch_size=16)
    dm.setup("fit")
    ids = {k: set(v.tensors["event_id"].tolist()) for k, v in dm.splits.items()}
    assert not ids["train"] & ids["val"] and not ids["train"] & ids["test"] and not ids["val"] & ids["test"]
    again = JetDataModule(str(toy_jets_h5), batch_size=16)
    again.setup("fit")
    assert ids["test"] == set(again.splits["test"].tensors["event_id"].tolist())
    train = dm.splits["train"].tensors["features"].numpy()
    np.testing.assert_allclose(train.mean(0)[train.std(0) > 0], 0, atol=1e-4)
    batch = next(iter(dm.train_dataloader()))
    assert batch["features"].shape == (16, dm.n_features) and batch["kinematics"].shape == (16, 2, 4)


def test_balance_and_caps(toy_jets_h5):
    dm = JetDataModule(str(toy_jets_h5), balance=True, max_train_events=100, max_eval_events=20)
    dm.setup("fit")
    labels = dm.splits["train"].tensors["label"].numpy()
    assert len(labels) == 100 and len(dm.splits["test"]) == 20
    full = JetDataModule(str(toy_jets_h5), balance=True)
    full.setup("fit")
    assert full.splits["train"].tensors["label"].numpy().mean() == 0.5


def test_bad_data_is_a_clear_error(tmp_path, toy_jets_h5):
    with pytest.raises(HybridjetError, match="not found"):
        JetDataModule(str(tmp_path / "none.h5")).setup("fit")
    with pytest.raises(HybridjetError, match="split is empty"):
        JetDataModule(str(toy_jets_h5), split=(1.0, 0.0, 0.0)).setup("fit")
