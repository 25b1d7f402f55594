"""Classical baseline: gradient-boosted trees on exactly the features, splits and seeds the hybrid sees."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from hybridjet.io_utils import write_json
from hybridjet.models.datamodule import JetDataModule


def train_gbdt(
    datamodule: JetDataModule,
    run_dir: str | Path,
    max_iter: int = 500,
    learning_rate: float = 0.1,
    max_leaf_nodes: int = 31,
    seed: int = 0,
    class_weight: str | None = None,
) -> dict[str, Any]:
    """Fit scikit-learn HistGradientBoosting (early stopping on the val split), score the test split and write
    ``scores.h5`` + ``metrics.json`` into ``run_dir``, like every other run. Returns the metrics.

    ``metrics.json`` is strict JSON: a non-finite number (``rejection_at_0.3`` is ``inf`` when no background event
    passes) is written as ``null``; the returned dict keeps the float.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier

    from hybridjet.eval.metrics import binary_metrics
    from hybridjet.eval.scores import write_scores

    datamodule.setup("fit")
    train, val, test = (datamodule.splits[s].tensors for s in ("train", "val", "test"))
    x_train, y_train = train["features"].numpy(), train["label"].numpy().astype(int)
    x_val, y_val = val["features"].numpy(), val["label"].numpy().astype(int)
    clf = HistGradientBoostingClassifier(
        max_iter=max_iter, learning_rate=learning_rate, max_leaf_nodes=max_leaf_nodes, random_state=seed,
        early_stopping=True, validation_fraction=None, n_iter_no_change=20,
        class_weight="balanced" if class_weight == "balanced" else None,
    )
    started = time.perf_counter()
    # early stopping on our own val split (not a random internal one), so all models see the same data
    clf.fit(x_train, y_train, X_val=x_val, y_val=y_val)
    train_seconds = time.perf_counter() - started
    started = time.perf_counter()
    score = clf.predict_proba(test["features"].numpy())[:, 1].astype(np.float32)
    infer_seconds = time.perf_counter() - started
    labels = test["label"].numpy().astype(np.int8)
    run_dir = Path(run_dir)
    write_scores(run_dir / "scores.h5", "test", test["event_id"].numpy(), score, labels,
                 attrs={"model": "gbdt", "score_kind": "probability"})
    metrics = {
        "name": run_dir.name, "model": "gbdt", "trainable_params": _tree_nodes(clf),
        "train_time_s": train_seconds, "train_events_per_s": len(x_train) * clf.n_iter_ / max(train_seconds, 1e-9),
        "infer_events_per_s": len(score) / max(infer_seconds, 1e-9), "iterations": int(clf.n_iter_),
        "feature_set": datamodule.feature_set, "test": binary_metrics(labels.astype(int), score),
    }
    write_json(run_dir / "metrics.json", metrics)
    return metrics


def _tree_nodes(clf: Any) -> int:
    """Total number of tree nodes: the trees' analogue of a parameter count."""
    return int(sum(len(p.nodes) for stage in clf._predictors for p in stage))
