"""The package's own jets.h5 schema: J leading jets per event, masks, N-subjettiness, labels, provenance."""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from hybridjet import __version__
from hybridjet.data.h5 import check_stored_size, hdf5_built_in_memory, open_hdf5
from hybridjet.data.physics import check_jets
from hybridjet.errors import InputFileError
from hybridjet.io_utils import atomic_path

SCHEMA_VERSION = 1
#: jet slots per event at most (each jet holds a particle; an LHCO event holds 700)
MAX_JET_SLOTS = 700
FORMAT_NAME = "hybridjet.jets"

PathLike = str | os.PathLike[str]

# dataset -> (dtype, trailing shape as a function of J)
_DATASETS: dict[str, tuple[str, int]] = {
    "jets": ("f4", 3),  # [N, J, 4]
    "jet_mask": ("bool", 2),  # [N, J]
    "n_particles": ("i4", 1),
    "tau": ("f4", 3),  # [N, J, 3]
    "label": ("i1", 1),
    "event_id": ("i8", 1),
}


@dataclass
class JetArrays:
    """Per-event jet arrays (see docs/ARCHITECTURE.md for the schema); ``attrs`` holds provenance."""

    jets: np.ndarray
    jet_mask: np.ndarray
    n_particles: np.ndarray
    tau: np.ndarray
    label: np.ndarray
    event_id: np.ndarray
    attrs: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.event_id)

    @property
    def n_jets(self) -> int:
        """J, the number of jet slots per event."""
        return int(self.jets.shape[1])

    def subset(self, idx: np.ndarray | slice) -> JetArrays:
        """The events selected by ``idx`` (indices, boolean mask or slice)."""
        return JetArrays(self.jets[idx], self.jet_mask[idx], self.n_particles[idx], self.tau[idx],
                         self.label[idx], self.event_id[idx], dict(self.attrs))

    def validate(self) -> None:
        """Raise ValueError if shapes or dtypes are inconsistent."""
        n = len(self.event_id)
        if self.jets.ndim != 3 or self.jets.shape[0] != n or self.jets.shape[2] != 4:
            raise ValueError(f"jets must be [N, J, 4], got {self.jets.shape}")
        j = self.jets.shape[1]
        expected = {"jet_mask": (n, j), "n_particles": (n,), "tau": (n, j, 3), "label": (n,), "event_id": (n,)}
        for name, shape in expected.items():
            if getattr(self, name).shape != shape:
                raise ValueError(f"{name} must have shape {shape}, got {getattr(self, name).shape}")

    @staticmethod
    def concatenate(parts: list[JetArrays]) -> JetArrays:
        """Concatenate several blocks (attrs from the first)."""
        names = list(_DATASETS)
        cat = {k: np.concatenate([getattr(p, k) for p in parts]) for k in names}
        return JetArrays(**cat, attrs=dict(parts[0].attrs) if parts else {})


JETS_WHAT = "a jets.h5 file hybridjet wrote"


def is_jets_file(path: PathLike) -> bool:
    """Whether ``path`` is a jets.h5 file hybridjet wrote (the only kind of file ``cluster`` replaces)."""
    with h5py.File(path, "r") as f:
        value = f.attrs.get("format")
    return (value.decode() if isinstance(value, bytes) else value) == FORMAT_NAME


def _package_version() -> str:
    return str(__version__)


def write_jets(path: PathLike, arrays: JetArrays, attrs: dict[str, Any] | None = None) -> None:
    """Write ``arrays`` to ``path`` atomically, with schema version and provenance attributes."""
    arrays.validate()
    meta: dict[str, Any] = {**arrays.attrs, **(attrs or {})}
    meta.update({
        "format": FORMAT_NAME,
        "schema_version": SCHEMA_VERSION,
        "package_version": _package_version(),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    })
    with atomic_path(path, suffix=".h5") as tmp, hdf5_built_in_memory(tmp) as f:
        for name, (dtype, _) in _DATASETS.items():
            data = np.ascontiguousarray(getattr(arrays, name), dtype=dtype)
            kwargs: dict[str, Any] = {}
            if len(data) > 0:
                kwargs = {"chunks": (min(len(data), 16384),) + data.shape[1:], "compression": "gzip",
                          "compression_opts": 4, "shuffle": True}
            f.create_dataset(name, data=data, **kwargs)
        for key, value in meta.items():
            f.attrs[key] = value if not isinstance(value, (list, tuple)) else [str(v) for v in value]


def _open(path: PathLike) -> h5py.File:
    p = Path(path)
    f = open_hdf5(path, "a jets.h5 file written by 'hybridjet cluster'")
    version = f.attrs.get("schema_version")
    if version is None:
        f.close()
        if p.exists() and _looks_like_lhco(p):
            raise InputFileError(path, "is an LHCO event file, not jets.h5; run 'hybridjet cluster' on it first")
        raise InputFileError(path, "no 'schema_version' attribute; expected a jets.h5 file written by 'hybridjet cluster'")
    if int(version) != SCHEMA_VERSION:
        f.close()
        raise InputFileError(path, f"jets.h5 schema version {version}; this hybridjet reads version {SCHEMA_VERSION}")
    missing = [k for k in _DATASETS if k not in f]
    if missing:
        f.close()
        raise InputFileError(path, f"missing dataset(s) {', '.join(missing)}; expected {', '.join(_DATASETS)}")
    try:  # sizes read from the file, bounded before anything is allocated by them
        for name in _DATASETS:
            check_stored_size(f[name], path)
        shape = f["jets"].shape
        if len(shape) == 3 and not 0 < shape[1] <= MAX_JET_SLOTS:
            raise InputFileError(path, f"dataset 'jets' has {shape[1]:,} jet slots per event; expected 1 to "
                                       f"{MAX_JET_SLOTS} (an event of 700 particles holds at most 700 jets)")
    except BaseException:
        f.close()
        raise
    return f


def _looks_like_lhco(p: Path) -> bool:
    with h5py.File(p, "r") as f:
        return "df" in f and "block0_values" in f["df"]


def count_jets_events(path: PathLike) -> int:
    """Number of events in a jets.h5 file."""
    with _open(path) as f:
        return int(f["event_id"].shape[0])


def jets_per_event(path: PathLike) -> int:
    """J, the number of jet slots per event of a jets.h5 file (its header only)."""
    with _open(path) as f:
        shape = f["jets"].shape
    if len(shape) != 3 or shape[2] != 4:
        raise InputFileError(path, f"dataset 'jets' has shape {shape}; expected [N, J, 4]")
    return int(shape[1])


def check_unique_ids(path: PathLike) -> None:
    """Refuse a jets.h5 file whose ``event_id`` repeats (scores are matched to events by id)."""
    ids = read_event_ids(path)
    unique, counts = np.unique(ids, return_counts=True)
    if len(unique) != len(ids):
        raise InputFileError(path, f"dataset 'event_id' repeats {len(ids) - len(unique):,} id(s) (first: "
                                   f"{int(unique[counts > 1][0])}); expected one id per event")


def read_event_ids(path: PathLike) -> np.ndarray:
    """The ``event_id`` dataset of a jets.h5 file (8 bytes an event)."""
    with _open(path) as f:
        return np.asarray(f["event_id"][:], dtype=np.int64)


def read_jets(path: PathLike, start: int | None = None, stop: int | None = None) -> JetArrays:
    """Read events ``start:stop`` of a jets.h5 file, validating schema, shapes and finiteness."""
    with _open(path) as f:
        n = f["event_id"].shape[0]
        j = f["jets"].shape[1] if f["jets"].ndim == 3 else -1
        expected = {"jets": (n, j, 4), "jet_mask": (n, j), "n_particles": (n,), "tau": (n, j, 3), "label": (n,),
                    "event_id": (n,)}
        for name, shape in expected.items():
            if f[name].shape != shape:
                raise InputFileError(path, f"dataset '{name}' has shape {f[name].shape}; expected {shape}")
        sl = slice(start, stop)
        try:
            data = {name: np.asarray(f[name][sl], dtype=dtype) for name, (dtype, _) in _DATASETS.items()
                    if name != "label"}
            data["label"] = _labels(f["label"][sl], path)
        except OSError as exc:
            raise InputFileError(path, f"unreadable data; truncated or corrupt file ({str(exc)[:120]})") from None
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
    first = sl.indices(n)[0]
    for name in ("jets", "tau"):
        if not np.isfinite(data[name]).all():
            event = int(np.nonzero(~np.isfinite(data[name]).reshape(len(data[name]), -1).all(axis=1))[0][0])
            raise InputFileError(path, f"dataset '{name}', event {event + first}: NaN or inf; expected finite numbers")
    check_jets(path, data["jets"], data["jet_mask"], data["n_particles"], data["tau"], first)
    return JetArrays(**data, attrs=attrs)


def _labels(raw: np.ndarray, path: PathLike) -> np.ndarray:
    """The stored labels as int8, checked before the cast (which would wrap 257 to 1 or cut 0.9 to 0)."""
    raw = np.asarray(raw)
    if raw.dtype.kind not in "iu":
        raise InputFileError(path, f"dataset 'label' holds {raw.dtype} values; expected integers -1, 0, 1")
    if not np.isin(raw, (-1, 0, 1)).all():
        bad = raw[~np.isin(raw, (-1, 0, 1))]
        raise InputFileError(path, f"dataset 'label' holds {len(bad):,} values other than -1, 0, 1 (first: "
                                   f"{int(bad[0])})")
    return raw.astype(np.int8)


def read_labels(path: PathLike) -> np.ndarray:
    """The ``label`` dataset of a jets.h5 file alone (int8 [N]: 1 signal, 0 background, -1 unknown)."""
    with _open(path) as f:
        try:
            return _labels(f["label"][:], path)
        except OSError as exc:
            raise InputFileError(path, f"unreadable data; truncated or corrupt file ({str(exc)[:120]})") from None
