"""Raw text records from files: JSON, JSON Lines, Parquet, or a Hugging Face dataset id (``hf:NAME``); one line
naming the file (and line) for anything unreadable."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from hybridjet.errors import HybridjetError, InputFileError


def _decode(path: Path, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig" if data.startswith(b"\xef\xbb\xbf") else "utf-8")
    except UnicodeDecodeError as exc:
        raise InputFileError(
            path, f"not UTF-8 text: invalid byte 0x{data[exc.start]:02x} at byte offset {exc.start}"
        ) from None


def _read_json_or_jsonl(path: Path) -> list[Any]:
    text = _decode(path, path.read_bytes())
    if not text.strip():
        raise InputFileError(path, "the file is empty (expected JSON or JSON Lines records)")
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputFileError(path, f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
        return list(data)
    if stripped.startswith("{") and path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = None  # maybe JSON Lines with a .json suffix
        if isinstance(data, dict):
            for key in ("data", "records", "examples", "train"):
                if isinstance(data.get(key), list):
                    return list(data[key])
            return [data]
    records = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise InputFileError(path, f"line {lineno}: invalid JSON ({exc.msg} at column {exc.colno})") from None
    return records


def _read_parquet(path: Path) -> list[Any]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InputFileError(path, "reading Parquet needs pyarrow (pip install pyarrow)") from None
    try:
        return pq.read_table(path).to_pylist()
    except Exception as exc:  # pyarrow raises several types for a corrupt file
        raise InputFileError(path, f"cannot read Parquet: {str(exc).splitlines()[0]}") from None


def _read_hf(name: str, split: str | None) -> list[Any]:
    try:
        import datasets
    except ImportError:
        raise HybridjetError(
            f"{name}: not a local file, and loading Hugging Face datasets needs 'pip install datasets'"
        ) from None
    try:
        ds = datasets.load_dataset(name, split=split or "train")
    except Exception as exc:  # hub unreachable, unknown id ...
        raise HybridjetError(f"{name}: could not load the Hugging Face dataset: {exc}".splitlines()[0]) from None
    return list(ds)


def read_records(path: str | os.PathLike[str], hf_split: str | None = None) -> list[Any]:
    """Raw records of a ``.json`` / ``.jsonl`` / ``.parquet`` file, or of a Hugging Face dataset id ``hf:NAME``."""
    text = str(path)
    if text.startswith("hf:"):
        return _read_hf(text[3:], hf_split)
    p = Path(path)
    if not p.exists():
        if "/" in text and not text.startswith((".", "/")) and p.suffix == "":
            return _read_hf(text, hf_split)
        raise InputFileError(p, "no such file")
    if p.is_dir():
        raise InputFileError(p, "is a directory (expected a .json, .jsonl or .parquet file)")
    suffix = p.suffix.lower()
    if suffix in (".parquet", ".pq"):
        records = _read_parquet(p)
    elif suffix in (".json", ".jsonl", ".ndjson", ".txt", ""):
        records = _read_json_or_jsonl(p)
    else:
        raise InputFileError(p, f"unknown file type {suffix!r} (expected .json, .jsonl or .parquet)")
    if not records:
        raise InputFileError(p, "no records in the file")
    return records
