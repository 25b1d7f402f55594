"""Classical baseline: gradient-boosted trees on exactly the features, splits and seeds the hybrid sees.

Trained with scikit-learn's HistGradientBoosting; a run keeps the fitted trees as plain arrays (``trees.safetensors``)
next to ``model.json``, never as a pickle, and scores them with :class:`TreeEnsemble`, a numpy walk down the same
trees (the same sums as scikit-learn's predictor, so the same probabilities).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file

from hybridjet import __version__
from hybridjet.errors import HybridjetError
from hybridjet.eval.metrics import binary_metrics
from hybridjet.eval.scores import write_scores
from hybridjet.io_utils import atomic_path, write_json
from hybridjet.models.base import RUN_MODEL_FILE, read_run_metadata
from hybridjet.models.datamodule import JetDataModule
from hybridjet.models.features import Normalizer

TREES_FILE = "trees.safetensors"
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
        array as :func:`hybridjet.models.features.event_features` returns it)."""
        out = [probs for _, probs in self.iter_probabilities(events, batch_size, progress)]
        return np.concatenate(out) if out else np.zeros(0, np.float32)

    def iter_probabilities(self, events: Any, batch_size: int | None = None,
                           progress: bool = False) -> Any:
        """``(batch, signal probabilities)`` per batch of ``events``, as the LLM classifiers yield them."""
        from hybridjet.models.scoring import iter_event_batches

        self._check_fitted()
        for batch in iter_event_batches(self, events, batch_size or 65536, progress):
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
        with atomic_path(run_dir / TREES_FILE) as tmp:
            save_file(trees.arrays, str(tmp))
        with atomic_path(run_dir / RUN_MODEL_FILE) as tmp:
            tmp.write_text(json.dumps(self.run_metadata(), indent=1))

    @classmethod
    def from_pretrained(cls, run_dir: str | Path) -> GradientBoostedTrees:
        """Load a gbdt run directory (arrays and JSON only)."""
        run_dir = Path(run_dir)
        meta = read_run_metadata(run_dir)
        if meta.get("class") != cls.__name__:
            raise HybridjetError(f"{run_dir}: holds a {meta.get('class')}, not a {cls.__name__}")
        try:
            model = cls(**meta["hparams"])
            model.normalizer = Normalizer.from_dict(meta["normalizer"])
        except (KeyError, TypeError, ValueError) as err:
            raise HybridjetError(f"{run_dir / RUN_MODEL_FILE}: malformed gbdt record ({err!r})") from None
        model.feature_set = meta.get("feature_set")
        model.iterations = int(meta.get("iterations") or 0)
        path = run_dir / TREES_FILE
        if not path.is_file():
            raise HybridjetError(f"{path}: trees not found (is this a finished gbdt run directory?)")
        try:
            model.trees = TreeEnsemble(load_file(str(path)))
        except HybridjetError:
            raise
        except Exception as err:  # safetensors' own errors: a truncated or overwritten file
            raise HybridjetError(f"{path}: unreadable trees ({str(err).splitlines()[0][:160]})") from None
        return model


def train_gbdt(
    datamodule: JetDataModule,
    run_dir: str | Path,
    max_iter: int = 500,
    learning_rate: float = 0.1,
    max_leaf_nodes: int = 31,
    seed: int = 0,
    class_weight: str | None = None,
) -> dict[str, Any]:
    """Fit the trees, save the run, score the test split into ``scores.h5`` + ``metrics.json`` in ``run_dir``,
    like every other run. Returns the metrics (``metrics.json`` is strict JSON: a non-finite number, such as an
    unbounded 1/ε_B, is ``null``)."""
    model = GradientBoostedTrees(max_iter, learning_rate, max_leaf_nodes, seed, class_weight).fit(datamodule)
    run_dir = Path(run_dir)
    model.save_run(run_dir)
    test = datamodule.splits["test"].tensors
    started = time.perf_counter()
    score = model.score_features(test["features"].numpy())
    infer_seconds = time.perf_counter() - started
    labels = test["label"].numpy().astype(np.int8)
    write_scores(run_dir / "scores.h5", "test", test["event_id"].numpy(), score, labels,
                 attrs={"model": "gbdt", "score_kind": "probability"})
    metrics = {
        "name": run_dir.name, "model": "gbdt", "trainable_params": model._check_fitted().n_nodes(),
        **model.timing, "infer_events_per_s": len(score) / max(infer_seconds, 1e-9),
        "iterations": model.iterations, "feature_set": datamodule.feature_set,
        "test": binary_metrics(labels.astype(int), score),
    }
    write_json(run_dir / "metrics.json", metrics)
    return metrics

