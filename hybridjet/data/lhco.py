"""Read and write the LHC Olympics (LHCO) event layout, chunk by chunk.

The layout is an HDF5 file written by pandas in "fixed" format under key ``df``: ``df/block0_values`` float64
[N, 2101] (or [N, 2100] for unlabelled black boxes); columns 3i..3i+2 hold (pT [GeV], eta, phi) of particle i,
zero-padded to 700 particles; column 2100 holds the label (1 signal, 0 background).

Reading goes through h5py with row slices, so a 17 GB file never sits in memory; writing reproduces the group,
dataset and attribute structure that PyTables/pandas expect, so our files open with ``pandas.read_hdf``.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import awkward as ak
import h5py
import numpy as np

from hybridjet.data.h5 import check_stored_size, open_hdf5, short_error
from hybridjet.data.physics import check_particles
from hybridjet.errors import InputFileError
from hybridjet.io_utils import atomic_path

try:  # registers blosc & co. with HDF5 when installed
    import hdf5plugin  # noqa: F401

    HAVE_HDF5PLUGIN = True
except ImportError:  # pragma: no cover - depends on the environment
    HAVE_HDF5PLUGIN = False

MAX_PARTICLES = 700
N_FEATURE_COLUMNS = 3 * MAX_PARTICLES  # 2100
KEY = "df"
_READ_BLOCK = 8192  # rows read from disk at once (2101 float64 columns: ~138 MB)
_WRITE_BLOCK = 8192

PathLike = str | os.PathLike[str]

#: the root attribute marking an event file hybridjet wrote (generate, mix): the only kind their outputs replace
WRITER_ATTR, WRITER_VALUE = "HYBRIDJET", b"events"
EVENTS_WHAT = "an event file hybridjet wrote"


def is_hybridjet_events(path: PathLike) -> bool:
    """Whether ``path`` is an event file :class:`LHCOWriter` wrote (never, say, the LHCO R&D file itself)."""
    with h5py.File(path, "r") as f:
        value = f.attrs.get(WRITER_ATTR)
    return (value.decode() if isinstance(value, bytes) else value) == WRITER_VALUE.decode()


@dataclass
class LHCOEvents:
    """A block of LHCO events: ``particles`` awkward [N, var] records (pt, eta, phi, mass=0), padding removed."""

    particles: ak.Array
    labels: np.ndarray | None
    event_id: np.ndarray

    def __len__(self) -> int:
        return len(self.event_id)


# --------------------------------------------------------------------------------------------------- reading
def _open(path: PathLike) -> h5py.File:
    return open_hdf5(path, "the LHCO layout written by pandas.to_hdf")


def _values_dataset(f: h5py.File, path: PathLike) -> h5py.Dataset | np.ndarray:
    """``df/block0_values``, checked; a [0, columns] array for pandas' stand-in of an empty frame."""
    group_name = KEY if KEY in f else None
    if group_name is None:
        candidates = [k for k in f if isinstance(f[k], h5py.Group) and "block0_values" in f[k]]
        if len(candidates) == 1:
            group_name = candidates[0]
    if group_name is None:
        found = ", ".join(sorted(f.keys())) or "nothing"
        raise InputFileError(path, f"expected key 'df' with dataset 'df/block0_values' (pandas fixed format); found {found}")
    group = f[group_name]
    if isinstance(group, h5py.Group) and "table" in group:
        raise InputFileError(path, "written in pandas 'table' format; expected 'fixed' format (to_hdf(..., format='fixed'))")
    if not isinstance(group, h5py.Group) or "block0_values" not in group:
        raise InputFileError(path, f"expected dataset '{group_name}/block0_values' (pandas fixed format)")
    if "block1_values" in group:
        raise InputFileError(path, "has several column blocks; expected one float block of 2100 or 2101 columns")
    ds = group["block0_values"]
    if "value_type" in ds.attrs and "shape" in ds.attrs and "axis0" in group:
        # pandas stores a 0-row frame as a [1, 1] placeholder whose real (pickled) shape sits in attrs:
        # its column count is the length of axis0 (the column labels)
        ds = np.zeros((0, group["axis0"].shape[0]), dtype=np.float64)
    if ds.ndim != 2 or ds.shape[1] not in (N_FEATURE_COLUMNS, N_FEATURE_COLUMNS + 1):
        raise InputFileError(path, f"expected 2100 or 2101 columns (700 x pT, eta, phi [+ label]); found shape {ds.shape}")
    if ds.dtype.kind != "f":
        raise InputFileError(path, f"expected floating-point values; found dtype {ds.dtype}")
    if isinstance(ds, h5py.Dataset):
        check_stored_size(ds, path)
    return ds


def _missing_filter(ds: h5py.Dataset) -> str | None:
    plist = ds.id.get_create_plist()
    for i in range(plist.get_nfilters()):
        code, _flags, _values, name = plist.get_filter(i)
        if not h5py.h5z.filter_avail(code):
            label = name.decode(errors="replace") if isinstance(name, bytes) else str(name)
            return f"{label or 'filter'} (HDF5 filter id {code})"
    return None


def _read_rows(ds: h5py.Dataset, path: PathLike, start: int, stop: int) -> np.ndarray:
    try:
        return np.asarray(ds[start:stop], dtype=np.float64)
    except OSError as exc:
        missing = _missing_filter(ds)
        if missing:
            hint = "pip install hdf5plugin" if not HAVE_HDF5PLUGIN else "this hdf5plugin lacks it"
            raise InputFileError(path, f"compressed with {missing}, which this HDF5 cannot decode ({hint})") from None
        raise InputFileError(path, f"rows {start}-{stop} unreadable; truncated or corrupt file ({short_error(exc)})") from None


def _validate_block(block: np.ndarray, path: PathLike, offset: int) -> None:
    if block.shape[1] > N_FEATURE_COLUMNS:
        labels = block[:, N_FEATURE_COLUMNS]
        wrong = (labels != 0) & (labels != 1)  # NaN included
        if wrong.any():
            row = int(np.nonzero(wrong)[0][0])
            raise InputFileError(path, f"row {row + offset} has label {float(labels[row])!r}; "
                                       "expected labels 0 or 1 in column 2100")
    bad = ~np.isfinite(block[:, :N_FEATURE_COLUMNS])
    if bad.any():
        row, column = (int(i) for i in np.argwhere(bad)[0])
        name = ("pT", "eta", "phi")[column % 3]
        raise InputFileError(path, f"row {row + offset}, particle {column // 3}: {name} is NaN or inf; expected "
                                   "finite pT, eta, phi values")
    pt = block[:, 0:N_FEATURE_COLUMNS:3]
    if (pt < 0).any():
        row = int(np.nonzero((pt < 0).any(axis=1))[0][0]) + offset
        raise InputFileError(path, f"row {row} holds a negative pT; expected pT >= 0 (0 = padding)")
    check_particles(path, pt, block[:, 1:N_FEATURE_COLUMNS:3], block[:, 2:N_FEATURE_COLUMNS:3], offset)


def block_to_particles(block: np.ndarray) -> ak.Array:
    """Turn [n, >=2100] LHCO rows into awkward [n, var] records (pt, eta, phi, mass=0) without the zero padding."""
    pt = block[:, 0:N_FEATURE_COLUMNS:3]
    eta = block[:, 1:N_FEATURE_COLUMNS:3]
    phi = block[:, 2:N_FEATURE_COLUMNS:3]
    mask = pt > 0
    counts = mask.sum(axis=1)
    flat_pt = pt[mask]
    fields = {
        "pt": ak.unflatten(flat_pt, counts),
        "eta": ak.unflatten(eta[mask], counts),
        "phi": ak.unflatten(phi[mask], counts),
        "mass": ak.unflatten(np.zeros_like(flat_pt), counts),
    }
    return ak.zip(fields, with_name="Momentum4D")


def _range(n: int, start: int, stop: int | None, path: PathLike) -> tuple[int, int]:
    if start < 0 or (stop is not None and stop < start):
        raise InputFileError(path, f"invalid event range start={start}, stop={stop}")
    stop = n if stop is None else min(stop, n)
    return min(start, n), stop


def count_events(path: PathLike) -> int:
    """Number of events (rows) in an LHCO-format file."""
    with _open(path) as f:
        return int(_values_dataset(f, path).shape[0])


def is_labelled(path: PathLike) -> bool:
    """Whether the file carries a label column (2101 columns)."""
    with _open(path) as f:
        return _values_dataset(f, path).shape[1] == N_FEATURE_COLUMNS + 1


def iter_lhco(
    path: PathLike, chunk_size: int = 100_000, start: int = 0, stop: int | None = None
) -> Iterator[LHCOEvents]:
    """Yield :class:`LHCOEvents` blocks of at most ``chunk_size`` events from rows ``start:stop``."""
    if chunk_size < 1:
        raise ValueError("chunk_size must be >= 1")
    with _open(path) as f:
        ds = _values_dataset(f, path)
        lo, hi = _range(ds.shape[0], start, stop, path)
        labelled = ds.shape[1] == N_FEATURE_COLUMNS + 1
        for c0 in range(lo, hi, chunk_size):
            c1 = min(c0 + chunk_size, hi)
            parts: list[ak.Array] = []
            labels: list[np.ndarray] = []
            for b0 in range(c0, c1, _READ_BLOCK):
                b1 = min(b0 + _READ_BLOCK, c1)
                block = _read_rows(ds, path, b0, b1)
                _validate_block(block, path, b0)
                parts.append(block_to_particles(block))
                if labelled:
                    labels.append(block[:, N_FEATURE_COLUMNS].astype(np.int8))
            particles = parts[0] if len(parts) == 1 else ak.concatenate(parts)
            yield LHCOEvents(
                particles=particles,
                labels=np.concatenate(labels) if labelled else None,
                event_id=np.arange(c0, c1, dtype=np.int64),
            )


def read_lhco(path: PathLike, start: int = 0, stop: int | None = None) -> LHCOEvents:
    """Read rows ``start:stop`` of an LHCO-format file into memory (use :func:`iter_lhco` for big files)."""
    blocks = list(iter_lhco(path, chunk_size=1 << 62, start=start, stop=stop))
    if not blocks:
        with _open(path) as f:
            labelled = _values_dataset(f, path).shape[1] == N_FEATURE_COLUMNS + 1
        empty = block_to_particles(np.zeros((0, N_FEATURE_COLUMNS)))
        return LHCOEvents(empty, np.zeros(0, np.int8) if labelled else None, np.zeros(0, np.int64))
    return blocks[0]


def read_answer_key(path: PathLike) -> np.ndarray:
    """Read a black-box answer key: one label (0 or 1) per line, blank lines ignored."""
    p = Path(path)
    if not p.is_file():
        raise InputFileError(path, "file not found (expected an answer key: one label 0/1 per line)")
    labels = []
    with open(p, encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            text = line.strip()
            if not text:
                continue
            try:
                value = float(text)
            except ValueError:
                raise InputFileError(path, f"line {lineno}: {text[:30]!r} is not a label; expected 0 or 1 per line") from None
            if value not in (0.0, 1.0):
                raise InputFileError(path, f"line {lineno}: label {text[:30]!r}; expected 0 or 1")
            labels.append(int(value))
    return np.asarray(labels, dtype=np.int8)


# --------------------------------------------------------------------------------------------------- writing
class _Title:  # marker: PyTables' empty TITLE attribute (null dataspace)
    pass


_EMPTY_TITLE = _Title()


class _Bool(int):  # marker: PyTables stores numpy bools as an 8-bit bitfield
    pass


def _write_attr(obj: h5py.HLObject, key: str, value: Any) -> None:
    """Write one attribute exactly as PyTables does (UTF-8 null-terminated strings, bitfield bools)."""
    name = key.encode()
    if isinstance(value, (_Title, bytes)):
        data = b"" if isinstance(value, _Title) else value
        tid = h5py.h5t.C_S1.copy()
        tid.set_size(max(1, len(data)))
        tid.set_strpad(h5py.h5t.STR_NULLTERM)
        tid.set_cset(h5py.h5t.CSET_ASCII if key == "name" else h5py.h5t.CSET_UTF8)
        if isinstance(value, _Title):
            space = h5py.h5s.create(h5py.h5s.NULL)
            h5py.h5a.create(obj.id, name, tid, space)
            return
        attr = h5py.h5a.create(obj.id, name, tid, h5py.h5s.create(h5py.h5s.SCALAR))
        attr.write(np.array(data, dtype=f"S{len(data)}"), mtype=tid)
    elif isinstance(value, _Bool):
        attr = h5py.h5a.create(obj.id, name, h5py.h5t.NATIVE_B8, h5py.h5s.create(h5py.h5s.SCALAR))
        attr.write(np.array(int(value), dtype=np.uint8), mtype=h5py.h5t.NATIVE_B8)
    else:
        obj.attrs[key] = value


def _set_attrs(obj: h5py.HLObject, attrs: dict[str, Any]) -> None:
    for key, value in attrs.items():
        _write_attr(obj, key, value)


def _array_attrs(cls: bytes, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    attrs: dict[str, Any] = {"CLASS": cls}
    if cls == b"ARRAY":
        attrs["FLAVOR"] = b"numpy"
    attrs["TITLE"] = _EMPTY_TITLE
    attrs["VERSION"] = b"1.1" if cls == b"CARRAY" else b"2.4"
    attrs.update(extra or {})
    return attrs


class LHCOWriter:
    """Write an LHCO-layout file of known size block by block (pandas "fixed" format, readable by read_hdf).

    Use inside ``atomic_path``; ``append`` rows [n, 2100 or 2101] float64 until ``n_events`` rows are written.
    """

    def __init__(self, path: PathLike, n_events: int, labelled: bool, compression: str | None = None) -> None:
        self.n_events = int(n_events)
        self.n_columns = N_FEATURE_COLUMNS + int(labelled)
        self.written = 0
        need = self.n_events * self.n_columns * 8 // (4 if compression else 1)  # compressed: a quarter, at least
        if need > shutil.disk_usage(Path(path).parent).free:  # before HDF5 fails on it inside its own close
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))  # atomic_path names the output
        self._f = h5py.File(path, "w", libver="earliest")
        _set_attrs(self._f, {"CLASS": b"GROUP", "PYTABLES_FORMAT_VERSION": b"2.1",
                             "TITLE": _EMPTY_TITLE, "VERSION": b"1.0", WRITER_ATTR: WRITER_VALUE})
        g = self._f.create_group(KEY)
        _set_attrs(g, {
            "CLASS": b"GROUP", "TITLE": _EMPTY_TITLE, "VERSION": b"1.0",
            "axis0_variety": b"regular", "axis1_variety": b"regular",
            "block0_items_variety": b"regular", "encoding": b"UTF-8",
            "errors": b"strict", "nblocks": np.int64(1), "ndim": np.int64(2),
            "pandas_type": b"frame",
        })
        index_attrs = {"kind": b"integer", "name": b"N.", "transposed": _Bool(1)}
        columns = np.arange(self.n_columns, dtype=np.int64)
        for name, data in (("axis0", columns), ("axis1", np.arange(self.n_events, dtype=np.int64)),
                           ("block0_items", columns)):
            if compression and len(data):
                ds = g.create_dataset(name, data=data, chunks=(min(len(data), 8192),), compression=compression)
                _set_attrs(ds, _array_attrs(b"CARRAY", index_attrs))
            else:
                ds = g.create_dataset(name, data=data)
                _set_attrs(ds, _array_attrs(b"ARRAY", index_attrs))
        shape = (self.n_events, self.n_columns)
        if self.n_events > 0:
            chunk_rows = min(self.n_events, 64)
            self._values = g.create_dataset("block0_values", shape=shape, dtype="f8",
                                            chunks=(chunk_rows, self.n_columns), compression=compression)
            _set_attrs(self._values, _array_attrs(b"CARRAY", {"transposed": _Bool(1)}))
        else:
            self._values = g.create_dataset("block0_values", shape=shape, dtype="f8")
            _set_attrs(self._values, _array_attrs(b"ARRAY", {"transposed": _Bool(1)}))

    def append(self, rows: np.ndarray) -> None:
        """Append [n, n_columns] float64 rows."""
        rows = np.asarray(rows, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[1] != self.n_columns:
            raise ValueError(f"expected rows of shape [n, {self.n_columns}], got {rows.shape}")
        end = self.written + len(rows)
        if end > self.n_events:
            raise ValueError(f"writing {end} rows into a file sized for {self.n_events}")
        self._values[self.written:end] = rows
        self.written = end

    def close(self) -> None:
        """Close the file; it is an error to close before all rows are written."""
        self._f.close()
        if self.written != self.n_events:
            raise ValueError(f"wrote {self.written} of {self.n_events} declared rows")

    def __enter__(self) -> LHCOWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is not None:
            self._f.close()
        else:
            self.close()


def pack_rows(pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
    """Interleave [n, 700] pT, eta, phi (and optional labels) into LHCO rows [n, 2100 or 2101]."""
    n = len(pt)
    rows = np.zeros((n, N_FEATURE_COLUMNS + (labels is not None)), dtype=np.float64)
    rows[:, 0:N_FEATURE_COLUMNS:3] = pt
    rows[:, 1:N_FEATURE_COLUMNS:3] = eta
    rows[:, 2:N_FEATURE_COLUMNS:3] = phi
    if labels is not None:
        rows[:, N_FEATURE_COLUMNS] = labels
    return rows


def _check_write_inputs(pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, labels: np.ndarray | None) -> None:
    for name, arr in (("pt", pt), ("eta", eta), ("phi", phi)):
        if arr.ndim != 2 or arr.shape[1] != MAX_PARTICLES or arr.shape[0] != pt.shape[0]:
            raise ValueError(f"{name} must have shape [N, {MAX_PARTICLES}], got {arr.shape}")
        if not np.isfinite(arr).all():
            raise ValueError(f"{name} holds NaN or inf")
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (pt.shape[0],) or not np.isin(labels, (0, 1)).all():
            raise ValueError("labels must be a [N] array of 0/1")


def write_lhco(
    path: PathLike,
    pt: np.ndarray,
    eta: np.ndarray,
    phi: np.ndarray,
    labels: np.ndarray | None = None,
    compression: str | None = None,
) -> None:
    """Write [N, 700] pT/eta/phi arrays (+ optional 0/1 labels) as an LHCO-layout file, atomically."""
    pt, eta, phi = (np.asarray(a, dtype=np.float64) for a in (pt, eta, phi))
    _check_write_inputs(pt, eta, phi, labels)
    with atomic_path(path, suffix=".h5") as tmp, LHCOWriter(tmp, len(pt), labels is not None, compression) as w:
        for b0 in range(0, len(pt), _WRITE_BLOCK):
            b1 = b0 + _WRITE_BLOCK
            w.append(pack_rows(pt[b0:b1], eta[b0:b1], phi[b0:b1], None if labels is None else labels[b0:b1]))


def particles_to_padded(particles: ak.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Awkward [N, var] records with pt/eta/phi -> three [N, 700] zero-padded arrays (highest-pT 700 kept)."""
    if len(particles) and ak.max(ak.num(particles)) > MAX_PARTICLES:
        particles = particles[ak.argsort(particles.pt, axis=1, ascending=False)][:, :MAX_PARTICLES]
    out = []
    for field in ("pt", "eta", "phi"):
        padded = ak.fill_none(ak.pad_none(particles[field], MAX_PARTICLES, axis=1, clip=True), 0.0)
        out.append(ak.to_numpy(padded).astype(np.float64).reshape(len(particles), MAX_PARTICLES))
    return out[0], out[1], out[2]


def write_lhco_particles(
    path: PathLike, particles: ak.Array, labels: np.ndarray | None = None, compression: str | None = None
) -> None:
    """Write awkward particle records (pt, eta, phi) as an LHCO-layout file, atomically."""
    pt, eta, phi = particles_to_padded(particles)
    write_lhco(path, pt, eta, phi, labels, compression)
