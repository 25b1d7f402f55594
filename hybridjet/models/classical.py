"""Classical baseline: gradient-boosted trees on exactly the features, splits and seeds the hybrid sees.

Trained with scikit-learn's HistGradientBoosting; a run keeps the fitted trees as plain arrays (``trees.safetensors``)
next to ``model.json``, never as a pickle, and scores them with :class:`TreeEnsemble`, a numpy walk down the same
trees (the same sums as scikit-learn's predictor, so the same probabilities).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from hybridjet import __version__
from hybridjet.data.columnar import scores_like
from hybridjet.data.datamodule import JetDataModule
from hybridjet.data.events import EventFeatures, iter_event_batches
from hybridjet.data.features import Normalizer
from hybridjet.errors import HybridjetError
from hybridjet.run import (
    RUN_MODEL_FILE,
    read_run_metadata,
    read_tensors,
    recorded_features,
    write_record,
    write_tensors,
)
from hybridjet.rundir import TREES_FILE

_NODE_FIELDS = ("value", "feature_idx", "num_threshold", "missing_go_to_left", "left", "right", "is_leaf")


class TreeEnsemble:
    """Binary boosted trees as arrays: node fields of every tree concatenated, ``offsets[t]`` = first node of tree t.

    ``raw(x)`` = baseline + Σ_t value of the leaf that x reaches in tree t: at a split, x goes left when
    ``x[feature] <= threshold``, a missing value (NaN) where ``missing_go_to_left`` says.
    """

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        missing = [k for k in (*_NODE_FIELDS, "offsets", "baseline") if k not in arrays]
        if missing:
            raise HybridjetError(f"{TREES_FILE}: missing arrays {', '.join(missing)}")
        self.arrays = arrays

    @classmethod
    def from_sklearn(cls, clf: Any) -> TreeEnsemble:
        """The trees of a fitted binary ``HistGradientBoostingClassifier``."""
        trees = [stage[0].nodes for stage in clf._predictors]
        if any(t["is_categorical"].any() for t in trees):
            raise HybridjetError("gbdt: categorical splits are not supported")
        nodes = np.concatenate(trees)
        arrays = {k: np.ascontiguousarray(nodes[k]) for k in _NODE_FIELDS}
        arrays["left"], arrays["right"] = arrays["left"].astype(np.int64), arrays["right"].astype(np.int64)
        arrays["offsets"] = np.cumsum([0] + [len(t) for t in trees[:-1]]).astype(np.int64)
        arrays["baseline"] = np.asarray(clf._baseline_prediction, np.float64).reshape(-1)[:1]
        return cls(arrays)

    def check(self, n_features: int) -> TreeEnsemble:
        """Refuse arrays no fitted ensemble has (read from a file, they are data): every walk must end at a leaf of
        its own tree (children after their parent, within the tree), on features the run has, with finite values."""
        a = self.arrays
        try:
            n = len(a["value"])
            if any(np.asarray(a[k]).shape != (n,) for k in _NODE_FIELDS):
                raise ValueError("node arrays of different lengths")
            offsets, baseline = np.asarray(a["offsets"]), np.asarray(a["baseline"], np.float64)
            ends = np.r_[offsets[1:], n]
            if offsets.ndim != 1 or not len(offsets) or offsets[0] != 0 or (ends <= offsets).any():
                raise ValueError("tree offsets not increasing from 0")
            if baseline.size < 1 or not np.isfinite(baseline[:1]).all() or not np.isfinite(a["value"]).all():
                raise ValueError("non-finite values")
            tree = np.searchsorted(offsets, np.arange(n), side="right") - 1
            inner = ~np.asarray(a["is_leaf"]).astype(bool)
            index = np.arange(n)
            for side in ("left", "right"):
                child = offsets[tree] + np.asarray(a[side], np.int64)
                if (inner & ((child <= index) | (child >= ends[tree]))).any():
                    raise ValueError(f"a {side} child outside its tree or before its parent")
            features = np.asarray(a["feature_idx"], np.int64)
            if (inner & ((features < 0) | (features >= n_features))).any():
                raise ValueError(f"a split on a feature outside 0..{n_features - 1}")
        except (ValueError, TypeError, IndexError) as err:
            raise HybridjetError(f"{TREES_FILE}: not trees hybridjet wrote ({err}); a damaged or altered file") from None
        return self

    def raw(self, x: np.ndarray) -> np.ndarray:
        """The ensemble's raw score (log-odds) of each row of ``x`` [N, F]."""
        a = self.arrays
        x = np.asarray(x, np.float64)
        total = np.full(len(x), float(a["baseline"][0]))
        rows = np.arange(len(x))
        for root in a["offsets"]:
            node = np.full(len(x), root, dtype=np.int64)
            active = ~a["is_leaf"][node].astype(bool)
            while active.any():
                at = node[active]
                value = x[rows[active], a["feature_idx"][at]]
                left = np.where(np.isnan(value), a["missing_go_to_left"][at].astype(bool), value <= a["num_threshold"][at])
                node[active] = root + np.where(left, a["left"][at], a["right"][at])
                active = ~a["is_leaf"][node].astype(bool)
            total += a["value"][node]
        return total

    def n_nodes(self) -> int:
        """Total number of tree nodes: the trees' analogue of a parameter count."""
        return len(self.arrays["value"])


class GradientBoostedTrees:
    """HistGradientBoosting on the event features, trained, saved, loaded and scored like the other run types.

    Args:
        max_iter: boosting iterations at most (early stopping on the datamodule's val split).
        learning_rate / max_leaf_nodes: scikit-learn's settings.
        seed: random state.
        class_weight: ``balanced`` weighs the classes by inverse frequency.
    """

    model_kind = "gbdt"

    def __init__(self, max_iter: int = 500, learning_rate: float = 0.1, max_leaf_nodes: int = 31, seed: int = 0,
                 class_weight: str | None = None) -> None:
        for field, value in (("max_iter", max_iter), ("max_leaf_nodes", max_leaf_nodes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < (1 if field == "max_iter" else 2):
                raise HybridjetError(f"model.{field}: expected an integer >= {1 if field == 'max_iter' else 2}, "
                                     f"got {value!r}")
        if not learning_rate > 0:
            raise HybridjetError(f"model.learning_rate: expected a positive number, got {learning_rate!r}")
        if class_weight not in (None, "balanced"):
            raise HybridjetError(f"model.class_weight: expected null or balanced, got {class_weight!r}")
        self.hparams = {"max_iter": max_iter, "learning_rate": learning_rate, "max_leaf_nodes": max_leaf_nodes,
                        "seed": seed, "class_weight": class_weight}
        self.trees: TreeEnsemble | None = None
        self.normalizer: Normalizer | None = None
        self.feature_set: str | None = None
        self.timing: dict[str, float] = {}
        self.iterations = 0

    def fit(self, datamodule: JetDataModule) -> GradientBoostedTrees:
        """Fit on the training split, stopping early on the val split (not a random internal one, so that every
        model sees the same data)."""
        from sklearn.ensemble import HistGradientBoostingClassifier

        datamodule.setup("fit")
        train, val = (datamodule.splits[s].tensors for s in ("train", "val"))
        hp = self.hparams
        clf = HistGradientBoostingClassifier(
            max_iter=hp["max_iter"], learning_rate=hp["learning_rate"], max_leaf_nodes=hp["max_leaf_nodes"],
            random_state=hp["seed"], early_stopping=True, validation_fraction=None, n_iter_no_change=20,
            class_weight="balanced" if hp["class_weight"] == "balanced" else None,
        )
        started = time.perf_counter()
        # scikit-learn's binning threads each enter warnings.catch_warnings() and reset the filters; overlapping,
        # they can leave the process with none (every warning shown from then on): the caller's are put back
        with warnings.catch_warnings():
            clf.fit(train["features"].numpy(), train["label"].numpy().astype(int),
                    X_val=val["features"].numpy(), y_val=val["label"].numpy().astype(int))
        seconds = time.perf_counter() - started
        self.trees = TreeEnsemble.from_sklearn(clf)
        self.normalizer, self.feature_set = datamodule.normalizer, datamodule.feature_set
        self.iterations = int(clf.n_iter_)
        self.timing = {"train_time_s": seconds,
                       "train_events_per_s": len(train["label"]) * clf.n_iter_ / max(seconds, 1e-9)}
        return self

    def _check_fitted(self) -> TreeEnsemble:
        if self.trees is None or self.normalizer is None:
            raise HybridjetError("model: not trained yet (fit it or load it with GradientBoostedTrees.from_pretrained)")
        return self.trees

    def predict_proba(self, events: Any, batch_size: int | None = None, progress: bool = False) -> np.ndarray:
        """Signal probabilities of ``events`` (a jets.h5 path read in chunks, JetArrays/JetDataset, or a raw feature
        array as :func:`hybridjet.data.features.event_features` returns it)."""
        out = [probs for _, probs in self.iter_probabilities(events, batch_size, progress)]
        return scores_like(events, np.concatenate(out) if out else np.zeros(0, np.float32))

    def iter_probabilities(self, events: Any, batch_size: int | None = None,
                           progress: bool = False) -> Iterator[tuple[dict[str, Any], np.ndarray]]:
        """``(batch, signal probabilities)`` per batch of ``events``, as the LLM classifiers yield them."""
        self._check_fitted()
        size = 65536 if batch_size is None else batch_size
        for batch in iter_event_batches(EventFeatures(self.feature_set, self.normalizer), events, size, progress):
            yield batch, self.score_features(batch["features"].numpy())

    def score_features(self, normalized: np.ndarray) -> np.ndarray:
        """Signal probabilities of already normalised features [N, F]."""
        raw = self._check_fitted().raw(normalized)
        return (1.0 / (1.0 + np.exp(-raw))).astype(np.float32)

    def run_metadata(self) -> dict[str, Any]:
        """What ``model.json`` records: class, settings, features and their normalisation."""
        return {"class": type(self).__name__, "model": self.model_kind, "hybridjet_version": __version__,
                "hparams": dict(self.hparams), "feature_set": self.feature_set,
                "n_features": None if self.normalizer is None else len(self.normalizer.names),
                "normalizer": None if self.normalizer is None else self.normalizer.to_dict(),
                "iterations": self.iterations, "base_model": None}

    def save_run(self, run_dir: str | Path) -> None:
        """``model.json`` + ``trees.safetensors``: all :meth:`from_pretrained` needs."""
        trees = self._check_fitted()
        run_dir = Path(run_dir)
        write_tensors(run_dir, trees.arrays, TREES_FILE)
        write_record(run_dir, self.run_metadata())

    @classmethod
    def from_pretrained(cls, run_dir: str | Path) -> GradientBoostedTrees:
        """Load a gbdt run directory (arrays and JSON only)."""
        run_dir = Path(run_dir)
        meta = read_run_metadata(run_dir)
        if meta.get("class") != cls.__name__:
            raise HybridjetError(f"{run_dir}: holds a {meta.get('class')}, not a {cls.__name__}")
        try:
            model = cls(**meta["hparams"])
        except (KeyError, TypeError, ValueError) as err:
            raise HybridjetError(f"{run_dir / RUN_MODEL_FILE}: malformed gbdt record ({err!r})") from None
        model.feature_set, model.normalizer = recorded_features(meta, run_dir)
        model.iterations = int(meta.get("iterations") or 0)
        n_features = 0 if model.normalizer is None else len(model.normalizer.names)
        model.trees = TreeEnsemble(read_tensors(run_dir, TREES_FILE, numpy=True)).check(n_features)
        return model
