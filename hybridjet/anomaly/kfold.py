"""One classifier in one label mode over the k folds, through the package's own recipes (:func:`train_gbdt`,
:func:`train_classifier`): fold f's model(s) train on fold f's training file and score fold f's signal-region data,
so every data event gets a score from a model that did not see it; the truth-labelled test set is scored by the
mean of the fold models' probabilities (or by fold 0's alone). Several models per fold are averaged the same way.

The run directory holds ``fold<f>/`` (a run per model), ``scores.h5`` (splits ``data`` and ``test``, truth labels,
``selection = signal_region``, the data's signal-region counts: ``hybridjet compare`` reports their SIC) and
``metrics.json``. A model that finished writes ``trained.json`` (the fingerprint of its settings, its fit time)
into its run last: a (method, mode, S/B, seed) stopped midway keeps its finished fold models for the next try,
which trains only the rest.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hybridjet.api import load_run
from hybridjet.data.datamodule import JetDataModule
from hybridjet.data.weak import FoldFiles
from hybridjet.errors import HybridjetError
from hybridjet.eval.metrics import auc
from hybridjet.eval.scores import data_identity
from hybridjet.eval.sic import SicFloor, max_sic
from hybridjet.io_utils import write_json
from hybridjet.run import training_holder
from hybridjet.rundir import METRICS_FILE, SCORES_FILE, RunDir
from hybridjet.train.methods import Method, train_model


@dataclass(frozen=True)
class Scored:
    """Scores of one file's events, in the file's order."""

    event_id: np.ndarray
    score: np.ndarray
    label: np.ndarray

    def plus(self, other: Scored | None) -> Scored:
        """These scores added to ``other``'s (the same file's events in the same order), or these alone."""
        if other is None:
            return self
        assert np.array_equal(self.event_id, other.event_id)  # one file, read in its order each time
        return Scored(other.event_id, other.score + self.score, other.label)

    def divided(self, n: int) -> Scored:
        """The scores over ``n`` (a sum of ``n`` models' scores made a mean)."""
        return Scored(self.event_id, self.score / n, self.label)


def fold_datamodule(path: Path, method: Method, feature_set: str, split: tuple[float, float, float],
                    seed: int) -> JetDataModule:
    """The data module of one fold's training file (its settings and classes checked at construction)."""
    return JetDataModule(str(path), feature_set=feature_set, split=split, seed=seed, batch_size=method.batch_size,
                         eval_batch_size=max(method.batch_size, 1024))


TRAINED = "trained.json"


def trained_before(run: Path, fingerprint: str | None) -> float | None:
    """The fit seconds of the model in ``run`` if it finished training with settings of this ``fingerprint``."""
    if fingerprint is None:
        return None
    try:
        done = json.loads((run / TRAINED).read_text())
        return float(done["fit_time_s"]) if done.get("fingerprint") == fingerprint else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _clear_stale(run_dir: Path, folds: list[FoldFiles]) -> None:
    """Remove what an earlier try left that this one does not rewrite: other folds' models, the old results."""
    keep = {f"fold{fold.fold}" for fold in folds}
    for child in run_dir.glob("fold*"):
        if re.fullmatch(r"fold\d+", child.name) and child.is_dir() and child.name not in keep:
            shutil.rmtree(child, ignore_errors=True)
    for name in (METRICS_FILE, SCORES_FILE):
        (run_dir / name).unlink(missing_ok=True)


def summed_scores(run_dirs: list[Path], paths: list[Path]) -> list[Scored]:
    """For each of ``paths`` (jets.h5 files), the sum over the runs of their signal probabilities for every event
    (a run is loaded once for all the paths: loading an LLM costs more than scoring a fold)."""
    sums: list[Scored | None] = [None] * len(paths)
    for run_dir in run_dirs:
        clf = load_run(run_dir)
        for i, path in enumerate(paths):
            ids, probs, labels = [], [], []
            for batch, p in clf.iter_probabilities(str(path), None, False):
                ids.append(batch["event_id"].numpy())
                probs.append(np.asarray(p, np.float64))
                labels.append(batch["label"].numpy().astype(np.int8))
            sums[i] = Scored(np.concatenate(ids), np.concatenate(probs), np.concatenate(labels)).plus(sums[i])
        del clf  # before the next run loads: one model in memory at a time
    assert all(total is not None for total in sums)
    return sums  # type: ignore[return-value]


def evaluate_split(scored: Scored, floor: SicFloor) -> dict[str, Any]:
    """Truth-labelled metrics of one split: max SIC above the floor (and where), AUC, event counts."""
    n_sig = int((scored.label == 1).sum())
    out: dict[str, Any] = {"n_signal": n_sig, "n_background": int(len(scored.label) - n_sig)}
    if 0 < n_sig < len(scored.label):
        out.update(max_sic(scored.label, scored.score, floor), auc=auc(scored.label, scored.score))
    return out


def train_kfold(method: Method, mode: str, folds: list[FoldFiles], test: Path | None, run_dir: Path, seed: int,
                feature_set: str, split: tuple[float, float, float], per_fold: int = 1, ensemble_folds: bool = True,
                floor: SicFloor | None = None, info: dict[str, Any] | None = None,
                progress: bool = False) -> dict[str, Any]:
    """Train ``method`` on every fold of ``mode``, score, write ``scores.h5`` + ``metrics.json`` in ``run_dir``;
    returns the metrics (``info`` is added to them and to the scores file's attributes)."""
    floor = floor or SicFloor()
    info = dict(info or {})
    fingerprint = info.get("fingerprint")
    inputs = [p.resolve() for fold in folds for p in (fold.score, *fold.train.values())]
    if any(p.is_relative_to(run_dir.resolve()) for p in inputs):
        raise HybridjetError(f"{run_dir}: holds the fold files it would train from; expected a run folder of its own")
    started = time.perf_counter()
    _clear_stale(run_dir, folds)
    data_parts: list[Scored] = []
    test_sum: Scored | None = None
    n_test_runs = 0
    fit_seconds = 0.0  # this try's fitting
    fit_earlier = 0.0  # the reused models' fitting, in the tries that trained them
    reused = 0
    for fold in folds:
        runs = []
        for m in range(per_fold):
            run = run_dir / f"fold{fold.fold}" / (f"model{m}" if per_fold > 1 else "")
            runs.append(run)
            earlier = trained_before(run, fingerprint)
            if earlier is not None:  # finished in a try that stopped later
                fit_earlier += earlier
                reused += 1
                continue
            holder = training_holder(run)
            if holder is not None:  # e.g. a worker of a search that was killed, still training
                raise HybridjetError(f"{run}: another process (pid {holder}) is training into it; expected it "
                                     "stopped first (its finished fold models are kept)")
            (run / TRAINED).unlink(missing_ok=True)  # first: no stale mark may outlive a failed removal
            shutil.rmtree(run, ignore_errors=True)  # a model stopped midway, or of other settings
            model_seed = seed + 1000 * m + 100_000 * fold.fold
            fit_started = time.perf_counter()
            datamodule = fold_datamodule(fold.train[mode], method, feature_set, split, model_seed)
            train_model(method, datamodule, run, model_seed, progress)
            seconds = time.perf_counter() - fit_started
            fit_seconds += seconds
            write_json(run / TRAINED, {"fingerprint": fingerprint, "fit_time_s": seconds})
        scores_test = test is not None and (ensemble_folds or fold.fold == 0)
        summed = summed_scores(runs, [fold.score, test] if scores_test else [fold.score])
        data_parts.append(summed[0].divided(len(runs)))
        if scores_test:
            test_sum = summed[1].plus(test_sum)
            n_test_runs += len(runs)
    train_seconds = time.perf_counter() - started
    data = Scored(*(np.concatenate([getattr(p, k) for p in data_parts]) for k in ("event_id", "score", "label")))
    attrs = {"model": method.classifier, "score_kind": "probability", "selection": "signal_region", "label_mode": mode,
             **{k: v for k, v in info.items() if isinstance(v, (int, float, str))}}
    run = RunDir(run_dir)
    run.write_scores("data", data.event_id, data.score, data.label, attrs, data_identity(*(fold.score for fold in folds)))
    splits = {"data": evaluate_split(data, floor)}
    if test_sum is not None:
        tested = test_sum.divided(n_test_runs)
        run.write_scores("test", tested.event_id, tested.score, tested.label, attrs, data_identity(test))
        splits["test"] = evaluate_split(tested, floor)
    metrics = {"name": str(info.get("name", run_dir.name)), "model": method.classifier, "label_mode": mode, "seed": seed,
               "folds": len(folds), "models_per_fold": per_fold, "ensemble_folds": ensemble_folds,
               "feature_set": feature_set, "train_time_s": train_seconds,
               "fit_time_s": fit_seconds, "models_reused": reused, "fit_time_earlier_s": fit_earlier,
               "score_time_s": train_seconds - fit_seconds, **info, "search": splits}
    run.write_metrics(metrics)
    return metrics
