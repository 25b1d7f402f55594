"""LightningDataModule over a jets.h5 file: seeded splits, training-split normalisation, fast batched loading."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler

from hybridjet.data.kinematics import jet_kinematics
from hybridjet.data.split import balance_indices, split_indices
from hybridjet.data.store import read_jets
from hybridjet.errors import HybridjetError
from hybridjet.models.features import Normalizer, event_features, feature_names


class EventBatches(Dataset):
    """Events as tensors, indexed by a *list* of rows so a whole batch is gathered in one step."""

    def __init__(self, tensors: dict[str, torch.Tensor]) -> None:
        self.tensors = tensors
        self.length = len(next(iter(tensors.values())))

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, rows: list[int]) -> dict[str, torch.Tensor]:
        index = torch.as_tensor(rows, dtype=torch.long)
        return {key: value[index] for key, value in self.tensors.items()}


def event_tensors(arrays: Any, features: np.ndarray,
                  kinematics: dict[str, np.ndarray] | None = None) -> dict[str, torch.Tensor]:
    """Per-event tensors a classifier batch carries: normalised features, label, ids, and kinematics for text."""
    kin = jet_kinematics(arrays.jets) if kinematics is None else kinematics
    mask = arrays.jet_mask.astype(bool)
    kinematics = np.stack([np.where(mask, kin[k], 0.0) for k in ("pt", "eta", "phi", "mass")], axis=-1)
    return {
        "features": torch.from_numpy(features),
        "label": torch.from_numpy(arrays.label.astype(np.float32)),
        "event_id": torch.from_numpy(arrays.event_id.astype(np.int64)),
        "jets": torch.from_numpy(arrays.jets.astype(np.float32)),
        "kinematics": torch.from_numpy(kinematics.astype(np.float32)),
        "jet_mask": torch.from_numpy(mask),
        "n_particles": torch.from_numpy(arrays.n_particles.astype(np.int64)),
    }


class JetDataModule(L.LightningDataModule):
    """Seeded train/val/test splits of one jets.h5 file, features normalised with training-split statistics.

    Args:
        data: path of a jets.h5 file (``hybridjet cluster`` output).
        feature_set: ``fourvec`` or ``substructure`` (see :mod:`hybridjet.models.features`).
        split: fractions of train/val/test (by event, seeded, disjoint).
        seed: split seed.
        batch_size: training batch size (evaluation uses ``eval_batch_size`` or the same).
        balance: downsample the training split to 1:1 signal:background.
        max_train_events: cap on training events after the split (``None``: all).
        predict_split: split scored by ``predict``.
    """

    def __init__(
        self,
        data: str,
        feature_set: str = "fourvec",
        split: tuple[float, float, float] = (0.8, 0.1, 0.1),
        seed: int = 0,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        balance: bool = False,
        max_train_events: int | None = None,
        max_eval_events: int | None = None,
        predict_split: str = "test",
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.data = data
        self.feature_set = feature_set
        self.split = tuple(split)
        self.seed = seed
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.balance = balance
        self.max_train_events = max_train_events
        self.max_eval_events = max_eval_events
        self.predict_split = predict_split
        self.normalizer: Normalizer | None = None
        self.splits: dict[str, EventBatches] = {}
        self.n_features: int | None = None
        self.pos_weight: float = 1.0
        self.n_events = self._check_data()

    def _check_data(self) -> int:
        """Fail before any run directory is created when ``data`` is missing or not a jets.h5 file."""
        from hybridjet.data.store import count_jets_events

        if not Path(self.data).exists():
            raise HybridjetError(f"{self.data}: jets.h5 file not found (make one with 'hybridjet cluster')")
        return count_jets_events(self.data)

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        arrays = read_jets(self.data)
        if len(arrays.label) == 0:
            raise HybridjetError(f"{self.data}: contains no events")
        n_jets = arrays.jets.shape[1]
        names = feature_names(self.feature_set, n_jets)
        kin = jet_kinematics(arrays.jets)
        features = event_features(arrays.jets, arrays.jet_mask, arrays.n_particles, arrays.tau, self.feature_set, kin)
        indices = split_indices(len(features), fractions=self.split, seed=self.seed)
        train = indices["train"]
        labels = arrays.label
        if (labels[train] < 0).any():
            raise HybridjetError(f"{self.data}: training events need labels 0/1, found unlabeled (-1) events")
        if self.balance:
            train = balance_indices(train, labels, seed=self.seed)
        if self.max_train_events is not None:
            train = train[: self.max_train_events]
        for name in ("train", "val", "test"):
            if name != "train" and self.max_eval_events is not None:
                indices[name] = indices[name][: self.max_eval_events]
        indices["train"] = train
        for name, idx in indices.items():
            if len(idx) == 0:
                raise HybridjetError(f"{self.data}: the {name} split is empty ({len(features)} events, split {self.split})")
        self.normalizer = Normalizer.fit(features[train], names)
        normed = self.normalizer(features)
        tensors = event_tensors(arrays, normed, kin)
        self.splits = {name: EventBatches({k: v[torch.from_numpy(idx)] for k, v in tensors.items()})
                       for name, idx in indices.items()}
        self.n_features = normed.shape[1]
        n_sig = float((labels[train] == 1).sum())
        self.pos_weight = (len(train) - n_sig) / max(n_sig, 1.0)

    def _loader(self, name: str, shuffle: bool) -> DataLoader:
        dataset = self.splits[name]
        batch = self.batch_size if shuffle else self.eval_batch_size
        sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(self.seed)) if shuffle \
            else SequentialSampler(dataset)
        return DataLoader(dataset, sampler=BatchSampler(sampler, batch, drop_last=False), batch_size=None)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.predict_split, shuffle=False)
