"""The label modes of a resonance search and their k-fold files: what each classifier is trained on and scores.

Modes (the training files' ``label``; the truth stays in the score files, for evaluation only):

* ``supervised`` — the signal region's data with their truth labels, plus the signal-region signal set aside for
  it (:func:`hybridjet.data.injection.partition`): the bound the others are measured against;
* ``idealized`` — the signal region's data (1) against an independent background-only sample of the same region
  (0): the idealized anomaly detector, which a perfect background model would give;
* ``cwola`` — the signal region's data (1) against the sidebands' data (0): classification without labels.

The signal region's data are cut into k folds (seeded); fold f's model trains on the other folds' data (with every
label-0 event) and scores fold f, so every signal-region data event is scored by a model that did not see it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hybridjet.data.injection import AnomalySample
from hybridjet.data.store import JetArrays, write_jets
from hybridjet.errors import HybridjetError


@dataclass(frozen=True)
class LabelMode:
    """One label mode: how its training set is built from the signal region's data rows of a fold
    (``training_set(sample, region)`` -> JetArrays with the mode's labels), what else of the sample it needs
    (``"sidebands"``, ``"reference"``, ``"supervised_signal"``), and its expected rank in the report (the modes'
    max SIC should fall with it: a bound first, weaker supervision after). A new mode is one record in
    :data:`LABEL_MODES`."""

    name: str
    training_set: Callable[[AnomalySample, JetArrays], JetArrays]
    needs: tuple[str, ...]
    rank: int
    description: str = ""


#: every label mode, by name, in the order of their expected max SIC
LABEL_MODES: dict[str, LabelMode] = {record.name: record for record in (
    LabelMode("supervised", lambda s, region: JetArrays.concatenate([region, _labelled(s.supervised_signal, 1)]),
              ("supervised_signal",), 0, "truth labels: the bound"),
    LabelMode("idealized", lambda s, region: JetArrays.concatenate([_labelled(region, 1), _labelled(s.reference, 0)]),
              ("reference",), 1, "signal-region data against an independent background sample of the region"),
    LabelMode("cwola", lambda s, region: JetArrays.concatenate(
        [_labelled(region, 1), _labelled(s.data.subset(s.in_sidebands), 0)]),
              ("sidebands",), 2, "signal-region data against the sidebands' data"),
)}

PathLike = str | os.PathLike[str]


def check_modes(modes: list[str] | tuple[str, ...], setting: str = "modes") -> tuple[str, ...]:
    """``modes`` as a tuple, or a one-line error naming an unknown or repeated one."""
    if isinstance(modes, str) or not modes:
        raise HybridjetError(f"{setting}: expected a list of {', '.join(LABEL_MODES)}, got {modes!r}")
    for mode in modes:
        if mode not in LABEL_MODES:
            raise HybridjetError(f"{setting}: expected one of {', '.join(LABEL_MODES)}, got {mode!r}")
    if len(set(modes)) != len(modes):
        raise HybridjetError(f"{setting}: {list(modes)} names a mode twice")
    return tuple(modes)


def fold_numbers(n: int, folds: int, seed: int) -> np.ndarray:
    """The fold (0..folds-1) of each of ``n`` events: a seeded permutation cut into near-equal parts."""
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise HybridjetError(f"training.folds: expected an integer >= 2 (every event scored by a model that did not "
                             f"see it), got {folds!r}")
    if n < folds:
        raise HybridjetError(f"training.folds: {folds} folds of {n} signal-region events; expected at most {n}")
    out = np.empty(n, np.int64)
    for f, rows in enumerate(np.array_split(np.random.default_rng(seed).permutation(n), folds)):
        out[rows] = f
    return out


def _labelled(arrays: JetArrays, label: int) -> JetArrays:
    out = arrays.subset(slice(None))
    out.label = np.full(len(out), label, np.int8)
    return out


def mode_training_set(sample: AnomalySample, mode: str, rows: np.ndarray) -> JetArrays:
    """The training events of ``mode`` built from the data rows ``rows`` (signal-region events), with its labels."""
    check_modes([mode])
    return LABEL_MODES[mode].training_set(sample, sample.data.subset(rows))


@dataclass(frozen=True)
class FoldFiles:
    """One fold's files: the training file of each mode and the fold's signal-region data with truth labels."""

    fold: int
    train: dict[str, Path]
    score: Path


def write_fold_files(sample: AnomalySample, modes: tuple[str, ...], folds: int, seed: int,
                     out_dir: PathLike) -> list[FoldFiles]:
    """Write ``out_dir/fold<f>/{score,<mode>}.h5`` for every fold (each atomically); returns them in fold order."""
    region_rows = np.flatnonzero(sample.in_signal_region)
    fold = fold_numbers(len(region_rows), folds, seed)
    out: list[FoldFiles] = []
    attrs = {"s_over_b": sample.s_over_b, "folds": folds, "fold_seed": seed}
    for f in range(folds):
        directory = Path(out_dir) / f"fold{f}"
        score = directory / "score.h5"
        write_jets(score, sample.data.subset(region_rows[fold == f]),
                   attrs={**attrs, "fold": f, "content": "signal-region data of this fold, truth labels"})
        train = {}
        for mode in modes:
            train[mode] = directory / f"{mode}.h5"
            write_jets(train[mode], mode_training_set(sample, mode, region_rows[fold != f]),
                       attrs={**attrs, "fold": f, "label_mode": mode,
                              "content": "training events of the other folds, labels of the mode"})
        out.append(FoldFiles(f, train, score))
    return out
