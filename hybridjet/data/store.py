"""The package's own jets.h5 schema: J leading jets per event, masks, N-subjettiness, labels, provenance, and
(schema 2, ``cluster --constituents P``) the P leading constituents of every jet with their standard features."""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
from collections.abc import Iterator
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

SCHEMA_VERSION = 2
#: the versions this hybridjet reads (1: no constituents)
READABLE_VERSIONS = (1, 2)
#: jet slots per event at most (each jet holds a particle; an LHCO event holds 700)
MAX_JET_SLOTS = 700
#: constituents kept per jet at most (an LHCO event holds 700 particles)
MAX_CONSTITUENTS = 700
#: the per-constituent features ``cluster --constituents`` stores, in this order (see docs/ARCHITECTURE.md)
CONSTITUENT_FEATURES = ("log_pt", "log_e", "log_pt_rel", "log_e_rel", "deta", "dphi", "delta_r")
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
# optional (schema 2): dataset -> dtype; [N, J, P, 7] and [N, J, P]
_CONSTITUENT_DATASETS = {"constituents": "f4", "constituent_mask": "bool"}


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
    #: [N, J, P, 7] float32 features of each jet's P leading constituents (``CONSTITUENT_FEATURES``), or None
    constituents: np.ndarray | None = None
    #: [N, J, P] bool, which constituent slots hold a particle
    constituent_mask: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.event_id)

    @property
    def n_jets(self) -> int:
        """J, the number of jet slots per event."""
        return int(self.jets.shape[1])

    @property
    def n_constituents(self) -> int:
        """P, the constituent slots per jet (0: the file holds none)."""
        return 0 if self.constituents is None else int(self.constituents.shape[2])

    def subset(self, idx: np.ndarray | slice) -> JetArrays:
        """The events selected by ``idx`` (indices, boolean mask or slice)."""
        parts = {k: None if getattr(self, k) is None else getattr(self, k)[idx] for k in _CONSTITUENT_DATASETS}
        return JetArrays(self.jets[idx], self.jet_mask[idx], self.n_particles[idx], self.tau[idx],
                         self.label[idx], self.event_id[idx], dict(self.attrs), **parts)

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
        if (self.constituents is None) != (self.constituent_mask is None):
            raise ValueError("constituents and constituent_mask come together")
        if self.constituents is not None:
            p = self.constituents.shape[2] if self.constituents.ndim == 4 else -1
            if self.constituents.shape != (n, j, p, len(CONSTITUENT_FEATURES)) or \
                    self.constituent_mask.shape != (n, j, p):  # type: ignore[union-attr]
                raise ValueError(f"constituents must be [N, J, P, {len(CONSTITUENT_FEATURES)}] with a [N, J, P] mask, "
                                 f"got {self.constituents.shape}")

    @staticmethod
    def concatenate(parts: list[JetArrays]) -> JetArrays:
        """Concatenate several blocks (attrs from the first)."""
        names = list(_DATASETS) + ([] if not parts or parts[0].constituents is None else list(_CONSTITUENT_DATASETS))
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


def _provenance(arrays: JetArrays, attrs: dict[str, Any] | None) -> dict[str, Any]:
    meta: dict[str, Any] = {**arrays.attrs, **(attrs or {})}
    meta.update({
        "format": FORMAT_NAME,
        "schema_version": SCHEMA_VERSION,
        "package_version": _package_version(),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "n_constituents": arrays.n_constituents,
    })
    return meta


def _datasets_of(arrays: JetArrays) -> dict[str, str]:
    """dataset -> dtype of what ``arrays`` holds."""
    out = {name: dtype for name, (dtype, _) in _DATASETS.items()}
    if arrays.constituents is not None:
        out.update(_CONSTITUENT_DATASETS)
    return out


def _set_attrs(f: h5py.File, meta: dict[str, Any]) -> None:
    for key, value in meta.items():
        f.attrs[key] = value if not isinstance(value, (list, tuple)) else [str(v) for v in value]


def write_jets(path: PathLike, arrays: JetArrays, attrs: dict[str, Any] | None = None) -> None:
    """Write ``arrays`` to ``path`` atomically, with schema version and provenance attributes."""
    arrays.validate()
    meta = _provenance(arrays, attrs)
    with atomic_path(path, suffix=".h5") as tmp, hdf5_built_in_memory(tmp) as f:
        for name, dtype in _datasets_of(arrays).items():
            data = np.ascontiguousarray(getattr(arrays, name), dtype=dtype)
            kwargs: dict[str, Any] = {}
            if len(data) > 0:
                kwargs = {"chunks": (min(len(data), 16384),) + data.shape[1:], "compression": "gzip",
                          "compression_opts": 4, "shuffle": True}
            f.create_dataset(name, data=data, **kwargs)
        _set_attrs(f, meta)


class JetsWriter:
    """A jets.h5 file written block by block (:func:`jets_writer`): without constituents the blocks are kept and
    written at the end as :func:`write_jets` does (a few bytes an event); with constituents (kilobytes an event)
    each block goes to the file as it comes, so memory stays bounded for millions of events."""

    def __init__(self, tmp: Path) -> None:
        self.tmp, self.n = tmp, 0
        self.parts: list[JetArrays] = []
        self.file: h5py.File | None = None
        self.last: JetArrays | None = None

    def append(self, arrays: JetArrays) -> None:
        """Add the next block of events."""
        arrays.validate()
        if arrays.constituents is None:
            self.parts.append(arrays)
            return
        if self.file is None:
            self.file = h5py.File(self.tmp, "w")
            for name, dtype in _datasets_of(arrays).items():
                shape = getattr(arrays, name).shape[1:]
                chunk_rows = max(1, min(16384, (1 << 20) // max(1, int(np.prod(shape, dtype=np.int64)))))
                self.file.create_dataset(name, shape=(0, *shape), maxshape=(None, *shape), dtype=dtype,
                                         chunks=(chunk_rows, *shape), compression="gzip", compression_opts=4,
                                         shuffle=True)
        for name, dtype in _datasets_of(arrays).items():
            dataset = self.file[name]
            dataset.resize(self.n + len(arrays), axis=0)
            dataset[self.n:] = np.asarray(getattr(arrays, name), dtype=dtype)
        self.n += len(arrays)
        self.last = arrays.subset(slice(0, 0))

    def finish(self, empty: JetArrays, attrs: dict[str, Any]) -> None:
        """Write the attributes (``empty``: the layout of a file with no block)."""
        if self.file is None:
            arrays = JetArrays.concatenate(self.parts) if self.parts else empty
            write_jets(self.tmp, arrays, attrs)
            return
        assert self.last is not None
        _set_attrs(self.file, _provenance(self.last, attrs))
        self.file.close()
        self.file = None

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


@contextlib.contextmanager
def jets_writer(path: PathLike) -> Iterator[JetsWriter]:
    """A :class:`JetsWriter` whose file replaces ``path`` only when the block succeeds and ``finish`` was called."""
    with atomic_path(path, suffix=".h5") as tmp:
        writer = JetsWriter(tmp)
        try:
            yield writer
        finally:
            writer.close()


def _open(path: PathLike) -> h5py.File:
    p = Path(path)
    f = open_hdf5(path, "a jets.h5 file written by 'hybridjet cluster'")
    version = f.attrs.get("schema_version")
    if version is None:
        f.close()
        if p.exists() and _looks_like_lhco(p):
            raise InputFileError(path, "is an LHCO event file, not jets.h5; run 'hybridjet cluster' on it first")
        raise InputFileError(path, "no 'schema_version' attribute; expected a jets.h5 file written by 'hybridjet cluster'")
    if int(version) not in READABLE_VERSIONS:
        f.close()
        raise InputFileError(path, f"jets.h5 schema version {version}; this hybridjet reads versions "
                                   f"{', '.join(map(str, READABLE_VERSIONS))}")
    missing = [k for k in _DATASETS if k not in f]
    if missing:
        f.close()
        raise InputFileError(path, f"missing dataset(s) {', '.join(missing)}; expected {', '.join(_DATASETS)}")
    try:  # sizes read from the file, bounded before anything is allocated by them
        for name in [*_DATASETS, *(k for k in _CONSTITUENT_DATASETS if k in f)]:
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


def read_jets(path: PathLike, start: int | None = None, stop: int | None = None,
              constituents: bool = True) -> JetArrays:
    """Read events ``start:stop`` of a jets.h5 file, validating schema, shapes and finiteness; ``constituents``:
    with the jets' constituents, where the file holds them (kilobytes an event: left out where not needed)."""
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
            if constituents and "constituents" in f:
                data.update(_read_constituents(f, path, sl, n, j))
        except OSError as exc:
            raise InputFileError(path, f"unreadable data; truncated or corrupt file ({str(exc)[:120]})") from None
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
    first = sl.indices(n)[0]
    for name in ("jets", "tau", *(("constituents",) if "constituents" in data else ())):
        if not np.isfinite(data[name]).all():
            event = int(np.nonzero(~np.isfinite(data[name]).reshape(len(data[name]), -1).all(axis=1))[0][0])
            raise InputFileError(path, f"dataset '{name}', event {event + first}: NaN or inf; expected finite numbers")
    check_jets(path, data["jets"], data["jet_mask"], data["n_particles"], data["tau"], first)
    return JetArrays(**data, attrs=attrs)


def _read_constituents(f: h5py.File, path: PathLike, sl: slice, n: int, j: int) -> dict[str, np.ndarray]:
    """The constituent datasets of events ``sl``, their shapes checked against the jets' first."""
    shape = f["constituents"].shape
    p = shape[2] if len(shape) == 4 else -1
    if shape != (n, j, p, len(CONSTITUENT_FEATURES)) or not 0 < p <= MAX_CONSTITUENTS:
        raise InputFileError(path, f"dataset 'constituents' has shape {shape}; expected [{n}, {j}, P, "
                                   f"{len(CONSTITUENT_FEATURES)}] with 1 <= P <= {MAX_CONSTITUENTS}")
    if "constituent_mask" not in f or f["constituent_mask"].shape != (n, j, p):
        raise InputFileError(path, f"dataset 'constituent_mask' missing or not of shape {(n, j, p)}")
    return {"constituents": np.asarray(f["constituents"][sl], dtype=np.float32),
            "constituent_mask": np.asarray(f["constituent_mask"][sl], dtype=bool)}


def constituents_per_jet(path: PathLike) -> int:
    """P, the constituents kept per jet in a jets.h5 file (0: none; its header only)."""
    with _open(path) as f:
        return int(f["constituents"].shape[2]) if "constituents" in f and f["constituents"].ndim == 4 else 0


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
