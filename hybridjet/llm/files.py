"""The model cache's small shared pieces: content hashes of files and the JSON records beside a conversion."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hybridjet.io_utils import _HASH_MEMO, atomic_path, sha256_file  # noqa: F401 - the cache's hash

SOURCE_JSON = "source.json"
# 2: source.json records each file's sha256 (entries of 1 have sizes only); 3: tokenizer rules per family
# (SmolLM2's repairs for SmolLM2 files only, generic checks for others), notes on what a file lacks
#: bump when the conversion/repair changes, so that old caches are rebuilt
CONVERSION_VERSION = 3


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
