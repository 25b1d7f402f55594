"""Small I/O helpers shared by every writer: atomic file and directory writes, strict JSON."""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

PathLike = str | os.PathLike[str]


@contextlib.contextmanager
def atomic_path(final: PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``final``; rename it over ``final`` only if the block succeeds."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=suffix + ".tmp", dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


@contextlib.contextmanager
def atomic_dir(final: PathLike) -> Iterator[Path]:
    """Yield a temporary directory next to ``final``; it replaces ``final`` only if the block succeeds."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        yield tmp
        if final.exists():
            old = final.with_name(f".{final.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _finite_or_null(obj: Any) -> Any:
    """``obj`` with numpy/torch scalars and arrays as plain Python values and NaN/±inf as ``None``."""
    if isinstance(obj, dict):
        return {k: _finite_or_null(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite_or_null(v) for v in obj]
    if obj is None or isinstance(obj, bool | int | str):
        return obj
    if hasattr(obj, "tolist"):  # numpy / torch scalars and arrays
        return _finite_or_null(obj.tolist())
    if not isinstance(obj, float) and hasattr(obj, "__float__"):
        obj = float(obj)
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    return obj


def strict_json(obj: Any, indent: int | None = 1) -> str:
    """``obj`` as strict JSON (RFC 8259, no ``NaN``/``Infinity`` tokens): every non-finite number becomes ``null``.

    So ``1/eps_B = inf`` (no background passes) is stored as ``null``; readers treat ``null`` as "no finite value".
    """
    return json.dumps(_finite_or_null(obj), indent=indent, allow_nan=False)


def write_json(path: PathLike, obj: Any, indent: int | None = 1) -> None:
    """Write ``obj`` to ``path`` as :func:`strict_json` text (non-finite numbers as ``null``), atomically."""
    with atomic_path(path, suffix=".json") as tmp:
        tmp.write_text(strict_json(obj, indent) + "\n")
