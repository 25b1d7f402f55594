"""``scores.h5``: per-event classifier scores of one run, one HDF5 group per split.

Layout (``SCORES_FORMAT = "hybridjet-scores/1"``)::

    /                 attrs: format, model, score_kind ("probability" | "logit-difference"), created, ... (free)
    /test/event_id    int64   [N]   unique within the split
    /test/score       float32 [N]   higher = more signal-like
    /test/label       int8    [N]   1 = signal, 0 = background, -1 = unknown (events scored without a label)
    /test             attrs: data, data_sha256 (the file the events were read from and its content digest), ...
    /val/...          same datasets, any number of splits

Adding a split to an existing file rewrites the whole file atomically, keeping the other splits; a file that is not
a scores file is never replaced.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hybridjet.data.h5 import check_stored_size, hdf5_built_in_memory, open_hdf5
from hybridjet.errors import HybridjetError, InputFileError, OutputPathError
from hybridjet.io_utils import atomic_path, sha256_file

SCORES_FORMAT = "hybridjet-scores/1"
SCORE_KINDS = ("probability", "logit-difference")
_DATASETS = ("event_id", "score", "label")


@dataclass
class ScoreSet:
    """Scores of one split: ``event_id`` int64, ``score`` float32, ``label`` int8, root ``attrs`` of the file."""

    event_id: np.ndarray
    score: np.ndarray
    label: np.ndarray
    attrs: dict[str, Any] = field(default_factory=dict)
    split: str = "test"
    split_attrs: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.event_id)


def _attr_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def _check_arrays(
    split: str, event_id: Any, score: Any, label: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    eid = np.asarray(event_id)
    sc = np.asarray(score)
    lab = np.asarray(label)
    if not (eid.ndim == sc.ndim == lab.ndim == 1) or not (len(eid) == len(sc) == len(lab)):
        raise HybridjetError(
            f"split {split!r}: event_id, score and label must be 1-D arrays of one length; "
            f"got shapes {eid.shape}, {sc.shape}, {lab.shape}"
        )
    if eid.size and not np.issubdtype(eid.dtype, np.integer):
        raise HybridjetError(f"split {split!r}: event_id must be integers; got dtype {eid.dtype}")
    if eid.size and len(np.unique(eid)) != len(eid):
        raise HybridjetError(f"split {split!r}: event_id has {len(eid) - len(np.unique(eid))} duplicate(s)")
    if lab.size and not np.isin(lab, (-1, 0, 1)).all():
        raise HybridjetError(f"split {split!r}: label must be 0 (background), 1 (signal) or -1 (unknown)")
    sc = sc.astype(np.float32)
    if np.isnan(sc).any():
        raise HybridjetError(f"split {split!r}: {int(np.isnan(sc).sum())} score(s) are NaN")
    return eid.astype(np.int64), sc, lab.astype(np.int8)


def data_identity(*paths: str | os.PathLike[str]) -> dict[str, str]:
    """The split attributes naming the data a split's events were read from: ``data`` (the paths) and
    ``data_sha256`` (the file's content digest; of several files, the digest of their digests in order)."""
    digests = [sha256_file(p) for p in paths]
    digest = digests[0] if len(digests) == 1 else hashlib.sha256("".join(digests).encode()).hexdigest()
    return {"data": ", ".join(str(p) for p in paths), "data_sha256": digest}


def data_of(datamodule: Any, split: str = "test") -> dict[str, str] | None:
    """:func:`data_identity` of the file a data module reads ``split`` from (a file of the split's own, else its
    ``data`` path), or None without one."""
    path = (getattr(datamodule, "files", None) or {}).get(split) or getattr(datamodule, "data", None)
    return data_identity(path) if isinstance(path, str | os.PathLike) and Path(path).is_file() else None


def is_scores_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a scores file hybridjet wrote (the only kind of file :func:`write_scores` replaces)."""
    import h5py

    try:
        if not h5py.is_hdf5(path):
            return False
        with h5py.File(path, "r") as f:
            return _attr_value(f.attrs.get("format")) == SCORES_FORMAT
    except OSError:
        return False


#: what :func:`write_scores` may replace, for the commands' early output checks
SCORES_WHAT = "a scores file hybridjet wrote"


def write_scores(
    path: str | os.PathLike[str],
    split: str,
    event_id: Any,
    score: Any,
    label: Any,
    attrs: dict[str, Any] | None = None,
    split_attrs: dict[str, Any] | None = None,
) -> Path:
    """Write (or replace) one split of ``path`` atomically, keeping the file's other splits; returns the path.

    ``attrs`` go on the root group (merged over existing ones); set ``model`` and ``score_kind``
    (``"probability"`` or ``"logit-difference"``). ``split_attrs`` go on the split's group: ``data`` and
    ``data_sha256`` say which events were scored, so that runs scored on different files are never paired.
    An existing ``path`` that is not a scores file is refused (:class:`OutputPathError`), never replaced. Keyword
    arguments are recommended; the positional order ``(path, event_id, score, label, split)`` is also accepted.
    """
    import h5py

    if not isinstance(split, str) and isinstance(label, str):  # (path, event_id, score, label, split) order
        split, event_id, score, label = label, split, event_id, score
    if not isinstance(split, str) or not split or "/" in split:
        raise HybridjetError(f"split must be a name such as 'test' (no '/'); got {split!r}")
    eid, sc, lab = _check_arrays(split, event_id, score, label)
    path = Path(path)
    kept: dict[str, tuple[tuple[np.ndarray, ...], dict[str, Any]]] = {}
    root_attrs: dict[str, Any] = {}
    if path.exists():
        if not is_scores_file(path):
            raise OutputPathError(path, f"exists and is not {SCORES_WHAT}; it would be replaced: choose another "
                                        "name or move it away")
        try:
            with h5py.File(path, "r") as f:
                root_attrs = {k: _attr_value(v) for k, v in f.attrs.items()}
                for name, group in f.items():
                    if name != split and isinstance(group, h5py.Group):
                        kept[name] = (tuple(_bounded(group, d, path)[()] for d in _DATASETS),
                                      {k: _attr_value(v) for k, v in group.attrs.items()})
        except (OSError, KeyError) as exc:
            raise InputFileError(
                path, f"exists but is not a readable scores.h5 ({exc}); move it away"
            ) from exc
    root_attrs.update(attrs or {})
    kind = root_attrs.get("score_kind")
    if kind is not None and kind not in SCORE_KINDS:
        raise HybridjetError(f"score_kind must be one of {', '.join(SCORE_KINDS)}; got {kind!r}")
    root_attrs["format"] = SCORES_FORMAT
    root_attrs.setdefault("created", _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"))
    kept[split] = ((eid, sc, lab), {k: v for k, v in (split_attrs or {}).items() if v is not None})
    with atomic_path(path, suffix=".h5") as tmp, hdf5_built_in_memory(tmp) as f:
        for key, value in root_attrs.items():
            f.attrs[key] = "" if value is None else value
        for name, (arrays, group_attrs) in kept.items():
            group = f.create_group(name)
            for dname, arr in zip(_DATASETS, arrays, strict=True):
                group.create_dataset(dname, data=arr)
            for key, value in group_attrs.items():
                group.attrs[key] = value
    return path


def _bounded(group: Any, name: str, path: str | os.PathLike[str]) -> Any:
    """``group[name]``, refused when it declares more than the file stores (a size bounded before use)."""
    check_stored_size(group[name], path)
    return group[name]


def list_splits(path: str | os.PathLike[str]) -> list[str]:
    """Names of the splits stored in a scores file."""
    import h5py

    with _open(path) as f:
        return sorted(k for k, v in f.items() if isinstance(v, h5py.Group))


def _open(path: str | os.PathLike[str]) -> Any:

    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "no such file; expected scores.h5 written by 'hybridjet predict'")
    return open_hdf5(path, "scores.h5 written by 'hybridjet score' or a training")


def read_scores(path: str | os.PathLike[str], split: str = "test") -> ScoreSet:
    """Read one split of a scores file (see module docstring for the layout)."""
    import h5py

    with _open(path) as f:
        splits = sorted(k for k, v in f.items() if isinstance(v, h5py.Group))
        if split not in splits:
            have = ", ".join(splits) or "none"
            raise InputFileError(path, f"no split {split!r} (splits in file: {have})")
        group = f[split]
        missing = [d for d in _DATASETS if d not in group]
        if missing:
            raise InputFileError(path, f"split {split!r} lacks dataset(s) {', '.join(missing)}")
        arrays = [_bounded(group, d, path)[()] for d in _DATASETS]
        attrs = {k: _attr_value(v) for k, v in f.attrs.items()}
        group_attrs = {k: _attr_value(v) for k, v in group.attrs.items()}
    try:
        eid, sc, lab = _check_arrays(split, *arrays)
    except HybridjetError as exc:
        raise InputFileError(path, str(exc)) from exc
    return ScoreSet(eid, sc, lab, attrs, split, group_attrs)
