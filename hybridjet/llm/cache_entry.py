"""Integrity of a converted model cache entry: per-file sha256 records, a cheap check with a full re-hash at most
daily, and an inter-process lock.

``source.json`` lists every file written at conversion with its size and sha256.  ``verified.json`` (the stamp,
written atomically) holds the time of the last full verification, each file's size and mtime then, and the CRC-32
of each 16 MiB block of each file as that verification read it.  A check re-hashes every file when the stamp is
missing, a day old, or a file's size or mtime differs from it (an in-place write changes the mtime); otherwise it
compares the blocks' CRC-32s with the stamp's: every block of a file up to 1 GiB (about 0.25 s for SmolLM2's
540 MB), a random 1 GiB of blocks of a larger one, so that a file damaged with its mtime restored is caught at the
next load (for a large file, at a load that samples the damaged block) instead of up to a day later.  ``<entry>.lock`` beside the entry is flock-ed by a
process that found the entry unusable, while it checks it again and converts it: a second process waits, then
finds the finished entry.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import random
import time
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from hybridjet.llm.files import CONVERSION_VERSION, SOURCE_JSON, read_json, write_json

log = logging.getLogger(__name__)

VERIFIED_JSON = "verified.json"
#: seconds after a full verification during which unchanged files (size and mtime) are not re-hashed
FULL_CHECK_INTERVAL_S = 86400.0
REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json")
#: the unit of the per-load check, and how much of each file a load reads at most (all of a file up to it)
BLOCK_BYTES = 16 << 20
CHECKED_PER_LOAD_BYTES = 1 << 30


def digest_file(path: Path) -> tuple[str, list[int]]:
    """The sha256 of a file and the CRC-32 of each of its :data:`BLOCK_BYTES` blocks, in one read."""
    h, blocks = hashlib.sha256(), []
    with open(path, "rb") as fh:
        while block := fh.read(BLOCK_BYTES):
            h.update(block)
            blocks.append(zlib.crc32(block))
    return h.hexdigest(), blocks


def damaged_block(path: Path, blocks: list[int], rng: random.Random | None = None) -> int | None:
    """The first block of ``path`` whose CRC-32 differs from ``blocks`` (every block of a file up to
    :data:`CHECKED_PER_LOAD_BYTES`, else a random sample of that size), or None."""
    picks = range(len(blocks))
    budget = CHECKED_PER_LOAD_BYTES // BLOCK_BYTES
    if len(blocks) > budget:
        picks = sorted((rng or random.Random()).sample(range(len(blocks)), budget))
    with open(path, "rb") as fh:
        for index in picks:
            fh.seek(index * BLOCK_BYTES)
            if zlib.crc32(fh.read(BLOCK_BYTES)) != blocks[index]:
                return index
    return None


def file_records(directory: Path, names: Iterable[str]) -> tuple[dict[str, dict[str, Any]], dict[str, list[int]]]:
    """``{name: {"size", "sha256"}}`` of the files ``names`` in ``directory`` (hashed now, no memo), and their
    blocks' CRC-32s."""
    records, blocks = {}, {}
    for name in names:
        digest, blocks[name] = digest_file(directory / name)
        records[name] = {"size": (directory / name).stat().st_size, "sha256": digest}
    return records, blocks


def file_stats(directory: Path, names: Iterable[str]) -> dict[str, list[int]]:
    """``{name: [size, mtime_ns]}`` of the files ``names`` in ``directory``."""
    out = {}
    for name in names:
        st = (directory / name).stat()
        out[name] = [st.st_size, st.st_mtime_ns]
    return out


def write_stamp(directory: Path, stats: dict[str, list[int]], blocks: dict[str, list[int]],
                now: float | None = None) -> None:
    """Record in ``directory`` that its files, with ``stats`` (:func:`file_stats`) and the blocks' CRC-32s
    ``blocks``, were fully verified at ``now`` (atomic write)."""
    write_json(directory / VERIFIED_JSON, {"verified_at": time.time() if now is None else now, "files": stats,
                                           "blocks": blocks})


def _needs_full_check(stamp: dict[str, Any], stats: dict[str, list[int]], now: float) -> bool:
    """Whether the stamp is missing, not from the last day, records no blocks, or any file's size or mtime changed
    since it."""
    verified_at = stamp.get("verified_at")
    if not isinstance(verified_at, (int, float)) or not 0 <= now - verified_at < FULL_CHECK_INTERVAL_S:
        return True  # a clock set back (stamp in the future) counts as stale too
    blocks = stamp.get("blocks")
    if not isinstance(blocks, dict) or not all(isinstance(blocks.get(name), list) and len(blocks[name]) ==
                                               -(-size // BLOCK_BYTES) for name, (size, _) in stats.items()):
        return True
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
    stamp = read_json(directory / VERIFIED_JSON)
    if _needs_full_check(stamp, stats, now):
        blocks = {}
        for name, rec in files.items():
            digest, blocks[name] = digest_file(directory / name)
            if digest != rec["sha256"]:
                return f"{name} differs from the sha256 recorded at conversion"
        try:
            write_stamp(directory, stats, blocks, now)
        except OSError as exc:  # a read-only shared cache: verified again next time
            log.debug("%s: verification stamp not written (%s)", directory, exc)
    else:
        for name in files:
            index = damaged_block(directory / name, stamp["blocks"][name])
            if index is not None:
                return f"{name} differs from its verified content (block {index} of {BLOCK_BYTES >> 20} MiB)"
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
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)  # the umask decides, as for every other file
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
