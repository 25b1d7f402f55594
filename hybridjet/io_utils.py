"""Small I/O helpers shared by every writer: atomic file and directory writes, output checks, strict JSON.

Temporary names.  ``atomic_path(DIR/NAME)`` and ``atomic_dir(DIR/NAME)`` write into ``DIR/.NAME.<pid>@<host>.<random>
[suffix].tmp`` and rename it over ``DIR/NAME`` at the end.  A writer killed with SIGKILL leaves its temporary behind;
the next write of the same ``DIR/NAME`` removes it (:func:`remove_stale_temps`) when the temporary's writer is gone:
recorded on this host and its pid no longer runs.  Temporaries of a live process, of another host (a shared file
system) or without a recorded writer (the ``.NAME.<random>.tmp`` names of earlier versions) are left alone.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hybridjet.errors import OutputPathError

PathLike = str | os.PathLike[str]

_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "host"


def temp_prefix(final: PathLike) -> str:
    """The prefix of this process's temporary names for ``final``: ``.NAME.<pid>@<host>.``."""
    return f".{Path(final).name}.{os.getpid()}@{_HOST}."


def _pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host (one of another user counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temps(final: PathLike) -> list[Path]:
    """Delete the temporaries of ``final`` whose writer is gone (see the module docstring); returns them."""
    final = Path(final)
    pattern = re.compile(rf"\.{re.escape(final.name)}\.(\d+)@{re.escape(_HOST)}\..*\.tmp")
    removed: list[Path] = []
    try:
        entries = list(os.scandir(final.parent))
    except OSError:  # no directory yet, or unreadable: nothing of ours to clean
        return removed
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match is None or _pid_alive(int(match.group(1))):
            continue
        path = Path(entry.path)
        with contextlib.suppress(OSError):  # a concurrent cleaner may have removed it first
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(path)
            else:
                path.unlink()
            removed.append(path)
    return removed


def check_writable(final: PathLike, inputs: tuple[PathLike, ...] = ()) -> None:
    """Raise :class:`OutputPathError` unless ``atomic_path(final)`` can write ``final``; creates nothing.

    ``final`` must not be a directory (or another non-file) nor one of ``inputs`` (the rename would replace the
    file being read), and its nearest existing ancestor must be a directory that accepts a new file (probed
    with a temporary file, removed at once).
    """
    final = Path(final)
    for source in inputs:
        if final.is_file() and Path(source).is_file() and os.path.samefile(final, source):
            raise OutputPathError(final, f"is also the input {source}; write the output to another file")
    if final.is_dir():
        raise OutputPathError(final, f"is a directory; expected a file name, e.g. {final / 'out.h5'}")
    if final.exists() and not final.is_file():
        raise OutputPathError(final, "exists and is not a regular file; expected a file name")
    existing = final.parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise OutputPathError(final, f"cannot create a directory under {existing}: it is a file")
    try:
        fd, probe = tempfile.mkstemp(prefix=temp_prefix(final), suffix=".probe.tmp", dir=existing)
    except OSError as exc:
        raise OutputPathError(final, f"cannot create files in {existing} ({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(probe)


def _make_temp(final: Path, suffix: str, directory: bool) -> Path:
    """Create the temporary for ``final`` (its parent made first), with one-line errors for unwritable places."""
    if final.is_dir() and not directory:
        raise OutputPathError(final, "is a directory; expected a file name")
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(final)
        if directory:
            return Path(tempfile.mkdtemp(prefix=temp_prefix(final), suffix=suffix + ".tmp", dir=final.parent))
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(final), suffix=suffix + ".tmp", dir=final.parent)
    except (FileExistsError, NotADirectoryError):
        raise OutputPathError(final, "cannot create its directory: a file is in the way") from None
    except OSError as exc:
        raise OutputPathError(final, f"cannot write in {final.parent} ({exc.strerror or exc})") from None
    os.close(fd)
    return Path(tmp)


@contextlib.contextmanager
def atomic_path(final: PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``final``; rename it over ``final`` only if the block succeeds."""
    final = Path(final)
    tmp_path = _make_temp(final, suffix, directory=False)
    try:
        yield tmp_path
        try:
            os.replace(tmp_path, final)
        except IsADirectoryError:  # a directory appeared at ``final`` meanwhile
            raise OutputPathError(final, "is a directory; expected a file name") from None
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


@contextlib.contextmanager
def atomic_dir(final: PathLike) -> Iterator[Path]:
    """Yield a temporary directory next to ``final``; it replaces ``final`` only if the block succeeds."""
    final = Path(final)
    tmp = _make_temp(final, "", directory=True)
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
