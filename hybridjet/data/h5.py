"""Opening a user's HDF5 file for reading, with one rule (and one-line errors) for every data command."""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from pathlib import Path

import h5py

from hybridjet.errors import InputFileError


def short_error(exc: BaseException) -> str:
    """The first line of an exception's message (HDF5's run to several), at most 160 characters."""
    return str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__


#: how far a dataset's declared size may exceed what the file stores for it: gzip's best ratio is about 1000:1, so
#: a larger declared size (a crafted or damaged file) would only fill memory with fill values
MAX_EXPANSION = 1100
_SLACK_BYTES = 64 << 20


def check_stored_size(dataset: h5py.Dataset, path: str | os.PathLike[str]) -> None:
    """Refuse a dataset whose declared size its file cannot hold: reading it would allocate that size (bounded
    before use, like every size read from a file)."""
    declared = int(dataset.size) * dataset.dtype.itemsize
    stored = dataset.id.get_storage_size()
    if declared > MAX_EXPANSION * stored + _SLACK_BYTES:
        raise InputFileError(path, f"dataset '{dataset.name.lstrip('/')}' declares shape {dataset.shape} "
                                   f"({declared / 1e9:.3g} GB) but the file stores {stored:,} bytes of it; "
                                   "a damaged or crafted file")


@contextlib.contextmanager
def hdf5_built_in_memory(path: str | os.PathLike[str]) -> Iterator[h5py.File]:
    """An HDF5 file built in memory and written to ``path`` in one plain write when the block ends.

    HDF5 writes much of a file only when it closes it, where a full disk surfaces in h5py's deallocators as ignored
    exceptions and then a segmentation fault; a plain write fails with an ``OSError`` instead, which
    :func:`~hybridjet.io_utils.atomic_path` turns into one line. For files whose content is in memory anyway
    (scores, jets.h5).
    """
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        yield f
    with open(path, "wb") as fh:
        fh.write(buffer.getbuffer())


def open_hdf5(path: str | os.PathLike[str], expected: str) -> h5py.File:
    """``path`` opened read-only, or an :class:`InputFileError` saying why not (``expected``: what it should be).

    Missing, a directory, not HDF5, unreadable or truncated (h5py refuses a file shorter than its header says).
    """
    p = Path(path)
    if not p.exists():
        raise InputFileError(path, f"file not found (expected {expected})")
    if p.is_dir():
        raise InputFileError(path, f"is a directory (expected {expected})")
    try:
        ok = h5py.is_hdf5(p)
    except OSError as exc:
        raise InputFileError(path, f"unreadable ({short_error(exc)})") from None
    if not ok:
        raise InputFileError(path, f"not an HDF5 file (expected {expected})")
    try:
        return h5py.File(p, "r")
    except OSError as exc:
        raise InputFileError(path, f"unreadable or truncated HDF5 file ({short_error(exc)})") from None
