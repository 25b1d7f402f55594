"""Opening a user's HDF5 file for reading, with one rule (and one-line errors) for every data command."""

from __future__ import annotations

import os
from pathlib import Path

import h5py

from hybridjet.errors import InputFileError


def short_error(exc: BaseException) -> str:
    """The first line of an exception's message (HDF5's run to several), at most 160 characters."""
    return str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__


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
