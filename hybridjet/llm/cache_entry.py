"""Integrity of a converted model cache entry: per-file sha256 records, a cheap check with a full re-hash at most
daily, and an inter-process lock.

``source.json`` lists every file written at conversion with its size and sha256.  ``verified.json`` (the stamp,
written atomically) holds the time of the last full verification and each file's size and mtime then.  A check
re-hashes every file when the stamp is missing, a day old, or a file's size or mtime differs from it (an in-place
write changes the mtime); otherwise it compares sizes only.  ``<entry>.lock`` beside the entry is flock-ed by a
process that found the entry unusable, while it checks it again and converts it: a second process waits, then
finds the finished entry.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from hybridjet.llm.files import CONVERSION_VERSION, SOURCE_JSON, read_json, sha256_file, write_json

log = logging.getLogger(__name__)

VERIFIED_JSON = "verified.json"
#: seconds after a full verification during which unchanged files (size and mtime) are not re-hashed
FULL_CHECK_INTERVAL_S = 86400.0
REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json")


def file_records(directory: Path, names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """``{name: {"size", "sha256"}}`` of the files ``names`` in ``directory`` (hashed now, no memo)."""
    return {
        name: {"size": (directory / name).stat().st_size, "sha256": sha256_file(directory / name, memo=False)}
        for name in names
    }


def file_stats(directory: Path, names: Iterable[str]) -> dict[str, list[int]]:
    """``{name: [size, mtime_ns]}`` of the files ``names`` in ``directory``."""
    out = {}
    for name in names:
        st = (directory / name).stat()
        out[name] = [st.st_size, st.st_mtime_ns]
    return out


def write_stamp(directory: Path, stats: dict[str, list[int]], now: float | None = None) -> None:
    """Record in ``directory`` that its files, with ``stats`` (:func:`file_stats`), were fully verified at ``now``
    (atomic write)."""
    write_json(directory / VERIFIED_JSON, {"verified_at": time.time() if now is None else now, "files": stats})


def _needs_full_check(directory: Path, stats: dict[str, list[int]], now: float) -> bool:
    """Whether the stamp is missing, not from the last day, or any file's size or mtime changed since it."""
    stamp = read_json(directory / VERIFIED_JSON)
    verified_at = stamp.get("verified_at")
    if not isinstance(verified_at, (int, float)) or not 0 <= now - verified_at < FULL_CHECK_INTERVAL_S:
        return True  # a clock set back (stamp in the future) counts as stale too
    return stamp.get("files") != stats


def cache_problem(directory: Path, digest: str, now: float | None = None) -> str | None:
    """Why the cache ``directory`` is unusable for a source with ``digest`` (None when its content is verified).

    Re-hashes every file when :func:`_needs_full_check` says so, and renews the stamp when they all match.
    """
    if not directory.is_dir():
        return "missing"
    meta = read_json(directory / SOURCE_JSON)
    if not meta:
        return f"no readable {SOURCE_JSON}"
    if meta.get("sha256") != digest:
        return "source sha256 mismatch"
    if meta.get("conversion_version") != CONVERSION_VERSION:
        return "older conversion version"
    files = meta.get("files")
    if not isinstance(files, dict) or not all(name in files for name in REQUIRED_FILES):
        return f"{SOURCE_JSON} lists no model/tokenizer files"
    if not all(isinstance(rec, dict) and {"size", "sha256"} <= rec.keys() for rec in files.values()):
        return f"{SOURCE_JSON} records no sha256 digests"
    for name, rec in files.items():
        f = directory / name
        if not f.is_file():
            return f"missing {name}"
        if f.stat().st_size != rec["size"]:
            return f"{name} has {f.stat().st_size} bytes, expected {rec['size']}"
    now = time.time() if now is None else now
    stats = file_stats(directory, files)  # before hashing: a write during the hashing shows at the next check
    if _needs_full_check(directory, stats, now):
        for name, rec in files.items():
            if sha256_file(directory / name, memo=False) != rec["sha256"]:
                return f"{name} differs from the sha256 recorded at conversion"
        try:
            write_stamp(directory, stats, now)
        except OSError as exc:  # a read-only shared cache: verified again next time
            log.debug("%s: verification stamp not written (%s)", directory, exc)
    try:
        from safetensors import safe_open

        with safe_open(str(directory / "model.safetensors"), framework="pt") as fh:
            if not list(fh.keys()):
                return "model.safetensors holds no tensors"
    except Exception as exc:  # truncated or corrupted header
        return f"model.safetensors unreadable ({type(exc).__name__})"
    return None


@contextlib.contextmanager
def entry_lock(entry: Path) -> Iterator[None]:
    """Hold an exclusive inter-process lock on the cache ``entry`` (``<entry>.lock`` beside it) for the block."""
    lock = entry.with_name(f"{entry.name}.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    # the lock file stays empty and is never replaced nor removed: flock locks its inode, so an atomic
    # rename (or a removal) would let two processes each hold "the" lock
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.warning("hybridjet: waiting for another process preparing %s", entry)
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as exc:  # a file system without flock (some network mounts): go on unlocked
            log.warning("hybridjet: cannot lock %s (%s): preparing it without a lock", lock, exc)
        yield
    finally:
        os.close(fd)  # releases the lock
