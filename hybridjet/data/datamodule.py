"""LightningDataModule over a jets.h5 file: seeded splits, training-split normalisation, fast batched loading."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, SequentialSampler

from hybridjet import checks
from hybridjet.data.batches import EpochBatches, trainer_position
from hybridjet.data.events import EventBatches, event_tensors
from hybridjet.data.features import FEATURE_SETS, Normalizer, event_features, feature_names
from hybridjet.data.kinematics import jet_kinematics
from hybridjet.data.split import balance_indices, split_indices
from hybridjet.data.store import JetArrays, read_jets
from hybridjet.errors import HybridjetError


class JetDataModule(L.LightningDataModule):
    """Seeded train/val/test splits of one jets.h5 file, features normalised with training-split statistics.

    Args:
        data: path of a jets.h5 file (``hybridjet cluster`` output).
        feature_set: ``fourvec``, ``substructure`` or ``highlevel`` (see :mod:`hybridjet.data.features`).
        split: fractions of train/val/test (by event, seeded, disjoint).
        seed: split seed.
        batch_size: training batch size (evaluation uses ``eval_batch_size`` or the same).
        balance: downsample the training split to 1:1 signal:background.
        max_train_events: cap on training events after the split (``None``: all).
        predict_split: split scored by ``predict``.
        val_data, test_data: jets.h5 files holding the val / test events themselves (a learning curve's fixed
            sets, whatever the training file); the fraction of ``split`` for a split a file gives must be 0.
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
        val_data: str | None = None,
        test_data: str | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.data = data
        self.feature_set = feature_set
        self.split = tuple(split)
        self.seed = seed
        self.batch_size = batch_size
        self.eval_batch_size = batch_size if eval_batch_size is None else eval_batch_size
        self.balance = balance
        self.max_train_events = max_train_events
        self.max_eval_events = max_eval_events
        self.predict_split = predict_split
        self.files = {"val": val_data, "test": test_data}  # a split held by a file of its own
        self.normalizer: Normalizer | None = None
        self.splits: dict[str, EventBatches] = {}
        self.n_features: int | None = None
        self.pos_weight: float = 1.0
        self._arrays: JetArrays | None = None
        self._split_arrays: dict[str, JetArrays] = {}
        self._check_settings()
        self.n_events = self._check_data()

    def _check_settings(self) -> None:
        """One line for a setting that cannot work, before any file is read or model loaded."""
        for field, value, optional in (("batch_size", self.batch_size, False),
                                       ("eval_batch_size", self.eval_batch_size, False),
                                       ("max_train_events", self.max_train_events, True),
                                       ("max_eval_events", self.max_eval_events, True)):
            if optional and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise HybridjetError(f"data.{field}: expected a positive integer{' or null' if optional else ''}, "
                                     f"got {value!r}")
        self.split = checks.fractions_summing_to_one("data.split", self.split, 3, "train, val, test")
        if self.feature_set not in FEATURE_SETS:
            raise HybridjetError(f"data.feature_set: expected one of {', '.join(FEATURE_SETS)}, "
                                 f"got {self.feature_set!r}")
        if self.predict_split not in ("train", "val", "test"):
            raise HybridjetError(f"data.predict_split: expected train, val or test, got {self.predict_split!r}")
        for index, (name, path) in enumerate(self.files.items(), start=1):
            if path is not None and self.split[index] != 0:
                raise HybridjetError(f"data.split: the {name} fraction must be 0 when data.{name}_data gives the "
                                     f"{name} events; got {list(self.split)}")

    def _check_data(self) -> int:
        """Fail before any model loads or run directory is created when ``data`` is missing, not a jets.h5 file,
        or cannot train a classifier with these settings (an empty split, unlabelled or one-class training events,
        a validation split without both classes, on which val AUC and best-checkpoint selection are undefined)."""
        if not Path(self.data).exists():
            raise HybridjetError(f"{self.data}: jets.h5 file not found (make one with 'hybridjet cluster')")
        needs = FEATURE_SETS[self.feature_set].needs_constituents
        # every value checked now, before any model loads; kept for setup
        self._arrays = read_jets(self.data, constituents=needs)
        self._split_arrays = {name: read_jets(path, constituents=needs) for name, path in self.files.items()
                              if path is not None}
        if needs and not self._arrays.n_constituents:
            raise HybridjetError(f"{self.data}: holds no jet constituents; data.feature_set {self.feature_set!r} "
                                 "needs them (make the file with 'hybridjet cluster --constituents P')")
        for name, own in self._split_arrays.items():
            if own.n_jets != self._arrays.n_jets or len(own) == 0 or \
                    (needs and own.n_constituents != self._arrays.n_constituents):
                raise HybridjetError(f"{self.files[name]}: data.{name}_data holds {len(own)} events of {own.n_jets} "
                                     f"jet slots{f' of {own.n_constituents} constituents' if needs else ''}; expected "
                                     f"events with the {self._arrays.n_jets}"
                                     f"{f' of {self._arrays.n_constituents}' if needs else ''} of {self.data}")
        labels = self._arrays.label
        ids = np.concatenate([self._arrays.event_id, *(a.event_id for a in self._split_arrays.values())])
        if len(np.unique(ids)) != len(ids):  # scores are matched to events by id: found now, not after training
            raise HybridjetError(f"{self.data}: {len(ids) - len(np.unique(ids)):,} event ids repeat"
                                 f"{' across its split files' if self._split_arrays else ''}; expected one id per "
                                 "event")
        if len(labels) == 0:
            raise HybridjetError(f"{self.data}: contains no events")
        indices = self.split_rows(labels)
        train = labels[indices["train"]]
        if (train < 0).any():
            raise HybridjetError(f"{self.data}: training events need labels 0/1, found unlabeled (-1) events")
        for name in ("train", "val"):
            present = set(np.unique(self._labels_of(name, labels, indices)).tolist())
            if not {0, 1} <= present:
                only = "signal" if present == {1} else "background" if present == {0} else "unlabeled"
                raise HybridjetError(f"{self.data}: the {name} split holds {only} events only "
                                     f"({len(indices[name])} events); a classifier needs signal (1) and background (0)")
        return len(labels)

    def _labels_of(self, name: str, labels: np.ndarray, indices: dict[str, np.ndarray]) -> np.ndarray:
        own = self._split_arrays.get(name) if self._split_arrays else None
        return own.label if own is not None else labels[indices[name]]

    def split_rows(self, labels: np.ndarray) -> dict[str, np.ndarray]:
        """Row indices of the train/val/test splits after balancing and caps (the events each split uses)."""
        indices = split_indices(len(labels), fractions=self.split, seed=self.seed)
        train = indices["train"]
        if self.balance:
            train = balance_indices(train, labels, seed=self.seed)
        if self.max_train_events is not None:
            train = train[: self.max_train_events]
        for name in ("val", "test"):
            if self.max_eval_events is not None:
                indices[name] = indices[name][: self.max_eval_events]
        indices["train"] = train
        for name, idx in indices.items():
            if len(idx) == 0 and self.files.get(name) is None:
                raise HybridjetError(f"{self.data}: the {name} split is empty ({len(labels)} events, split {self.split})")
        return indices

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        record = FEATURE_SETS[self.feature_set]
        arrays = self._arrays if self._arrays is not None else read_jets(self.data,
                                                                          constituents=record.needs_constituents)
        self._arrays = None
        if len(arrays.label) == 0:
            raise HybridjetError(f"{self.data}: contains no events")
        names = feature_names(self.feature_set, arrays.n_jets, arrays.n_constituents)
        kin = jet_kinematics(arrays.jets)
        features = _features_of(arrays, self.feature_set, kin)
        indices = self.split_rows(arrays.label)
        train = indices["train"]
        labels = arrays.label
        self.normalizer = record.normalizer(features[train], names)
        normed = self.normalizer(features)
        tensors = event_tensors(arrays, normed, kin)
        self.splits = {name: EventBatches({k: v[torch.from_numpy(idx)] for k, v in tensors.items()})
                       for name, idx in indices.items() if self.files.get(name) is None}
        for name, path in self.files.items():  # the splits held by files of their own
            if path is None:
                continue
            own = self._split_arrays.pop(name, None)
            own = (own if own is not None else read_jets(path, constituents=record.needs_constituents)).subset(
                slice(0, self.max_eval_events))
            own_kin = jet_kinematics(own.jets)
            own_features = _features_of(own, self.feature_set, own_kin)
            self.splits[name] = EventBatches(event_tensors(own, self.normalizer(own_features), own_kin))
        self.n_features = normed.shape[1]
        n_sig = float((labels[train] == 1).sum())
        self.pos_weight = (len(train) - n_sig) / max(n_sig, 1.0)

    def _loader(self, name: str) -> DataLoader:
        """Evaluation batches of split ``name``, in order."""
        sampler = BatchSampler(SequentialSampler(self.splits[name]), self.eval_batch_size, drop_last=False)
        return DataLoader(self.splits[name], sampler=sampler, batch_size=None)

    def train_dataloader(self) -> DataLoader:
        """Shuffled training batches, one permutation per (seed, epoch), resumable mid-epoch
        (:class:`hybridjet.data.batches.EpochBatches`, following the trainer's progress)."""
        train = self.splits["train"]
        trainer = self.trainer
        position = (lambda: trainer_position(trainer)) if trainer is not None else None
        batches = EpochBatches(len(train), self.batch_size, self.seed, train.__getitem__, position)
        # its own generator: creating the loader's iterator draws no number from the global stream dropout uses
        return DataLoader(batches, batch_size=None, generator=torch.Generator().manual_seed(self.seed))

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.predict_split)


def _features_of(arrays: JetArrays, feature_set: str, kin: dict[str, np.ndarray]) -> np.ndarray:
    """``feature_set``'s features of in-memory jets (their constituents too, where the set needs them)."""
    return event_features(arrays.jets, arrays.jet_mask, arrays.n_particles, arrays.tau, feature_set, kin,
                          arrays.constituents, arrays.constituent_mask)
