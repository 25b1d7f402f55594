"""The model cache's small shared pieces: content hashes of files and the JSON records beside a conversion."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from hybridjet.io_utils import atomic_path

SOURCE_JSON = "source.json"
# 2: source.json records each file's sha256 (entries of 1 have sizes only); 3: tokenizer rules per family
# (SmolLM2's repairs for SmolLM2 files only, generic checks for others), notes on what a file lacks
#: bump when the conversion/repair changes, so that old caches are rebuilt
CONVERSION_VERSION = 3


_HASH_MEMO: dict[tuple[str, int, int], str] = {}


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 22, memo: bool = True) -> str:
    """sha256 of a file's content (memoised per process on path, size and mtime unless ``memo=False``: a
    verification must read the bytes, since a damage may keep size and mtime)."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if not memo or key not in _HASH_MEMO:
        h = hashlib.sha256()
        with open(p, "rb") as fh:
            while block := fh.read(chunk):
                h.update(block)
        _HASH_MEMO[key] = h.hexdigest()
    return _HASH_MEMO[key]


def read_json(path: Path) -> dict[str, Any]:
    """Read a JSON object (empty dict when missing or unreadable)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write a JSON object atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
