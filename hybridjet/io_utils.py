"""Small I/O helpers shared by every writer: atomic file and directory writes, output checks, strict JSON.

Temporary names.  ``atomic_path(DIR/NAME)`` and ``atomic_dir(DIR/NAME)`` write into ``DIR/.NAME.<pid>@<host>.<random>
[suffix].tmp`` and rename it over ``DIR/NAME`` at the end.  A writer killed with SIGKILL leaves its temporary behind;
the next write of the same ``DIR/NAME`` removes it (:func:`remove_stale_temps`) when the temporary's writer is gone:
recorded on this host and its pid no longer runs.  Temporaries of a live process, of another host (a shared file
system) or without a recorded writer (the ``.NAME.<random>.tmp`` names of earlier versions) are left alone.

Modes.  A temporary is created private (``mkstemp`` / ``mkdtemp``) and given the mode an ordinary ``open`` or
``mkdir`` would have under the process's umask before it is renamed into place, so colleagues sharing a file system
read outputs as they read any other file of the user's.

What an output may replace.  A file only if it is not one of the command's inputs and, where the writer says what it
writes (``replaces``), only a file of that kind; a folder only if it is empty or holds a previous output of the
same kind: a user's file is never deleted by an output that happens to be named like it.

A full disk (``ENOSPC``, a quota, a file size limit) while writing is one :class:`OutputPathError` naming the output,
with the temporary removed.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from hybridjet.errors import HybridjetError, OutputPathError

PathLike = str | os.PathLike[str]

_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "host"


#: errors of a write that ran out of room: no space, over a quota, over the process's file size limit
FULL_DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_FULL_DISK_TEXT = ("no space left on device", "disk quota exceeded", "file too large")


def current_umask() -> int:
    """The process's umask (read from ``/proc`` where it is shown, which changes nothing; else set and reset)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def apply_umask(path: PathLike, directory: bool = False) -> None:
    """Give ``path`` the mode ``open`` (0666) or ``mkdir`` (0777) would have given it under the current umask."""
    os.chmod(path, (0o777 if directory else 0o666) & ~current_umask())


def is_full_disk(exc: BaseException) -> bool:
    """Whether ``exc`` (an ``OSError``, or a library's error wrapping one, such as HDF5's) says the disk is full."""
    if isinstance(exc, OSError) and exc.errno in FULL_DISK_ERRNOS:
        return True
    text = str(exc).lower()
    return any(phrase in text for phrase in _FULL_DISK_TEXT) or "errno = 28" in text


def full_disk_error(final: PathLike, exc: BaseException) -> OutputPathError:
    """The one-line error of a write of ``final`` that ran out of room."""
    reason = next((os.strerror(e) for e in FULL_DISK_ERRNOS if isinstance(exc, OSError) and exc.errno == e),
                  "no space left on device")
    return OutputPathError(final, f"could not be written: {reason.lower()} in {Path(final).parent or '.'}; "
                                  "nothing was written there (free some space or write elsewhere)")


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


def check_writable(final: PathLike, inputs: tuple[PathLike, ...] = (),
                   replaces: Callable[[Path], bool] | None = None, what: str = "") -> None:
    """Raise :class:`OutputPathError` unless ``atomic_path(final)`` can write ``final``; creates nothing.

    ``final`` must not be a directory (or another non-file) nor one of ``inputs`` (the rename would replace the
    file being read); an existing ``final`` must be a file of the kind written (``replaces(final)`` true, ``what``
    naming it), and its nearest existing ancestor must be a directory that accepts a new file (probed with a
    temporary file, removed at once).
    """
    final = Path(final)
    for source in inputs:
        if final.is_file() and Path(source).is_file() and os.path.samefile(final, source):
            raise OutputPathError(final, f"is also the input {source}; write the output to another file")
    if replaces is not None and final.is_file() and not _safely(replaces, final):
        raise OutputPathError(final, f"exists and is not {what or 'a file of the kind written'}; it would be "
                                     "replaced: choose another name or move it away")
    if final.is_dir():
        raise OutputPathError(final, f"is a directory; expected a file name, e.g. {final / 'out.h5'}")
    if final.exists() and not final.is_file():
        raise OutputPathError(final, "exists and is not a regular file; expected a file name")
    _probe_parent(final)


def _probe_parent(final: Path) -> None:
    """Raise :class:`OutputPathError` unless the nearest existing ancestor of ``final`` is a folder that accepts a
    new file (probed with a temporary file, removed at once)."""
    existing = final.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputPathError(final, f"cannot create a directory under {existing}: it is a file")
    try:
        fd, probe = tempfile.mkstemp(prefix=temp_prefix(final), suffix=".probe.tmp", dir=existing)
    except OSError as exc:
        raise OutputPathError(final, f"cannot create files in {existing} ({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(probe)


def _safely(predicate: Callable[[Path], bool], path: Path) -> bool:
    """``predicate(path)``, false when it raises (an unreadable file is not one of ours)."""
    try:
        return bool(predicate(path))
    except Exception:  # noqa: BLE001 - any failure to recognise the file means: not ours
        return False


def check_folder_replaceable(final: PathLike, replaces: Callable[[Path], bool] | None = None, what: str = "",
                             inputs: tuple[PathLike, ...] = ()) -> None:
    """Raise :class:`OutputPathError` unless ``atomic_dir(final)`` may replace what is at ``final``: nothing, an
    empty folder, or a previous output of the same kind (``replaces(final)``); never one of ``inputs`` or a folder
    holding one."""
    final = Path(final)
    where = Path(os.path.realpath(final))
    for source in map(Path, inputs):
        real = Path(os.path.realpath(source))
        if real == where or real.is_relative_to(where):
            raise OutputPathError(final, f"holds the input {source}; write the output to another folder")
    if not final.exists() and not final.is_symlink():
        return _probe_parent(final)
    if not final.is_dir() or final.is_symlink():
        raise OutputPathError(final, "exists and is not a folder; expected a folder name")
    try:
        entries = [e.name for e in os.scandir(final)]
    except OSError as exc:
        raise OutputPathError(final, f"cannot be read ({exc.strerror or exc})") from None
    if entries and not (replaces is not None and _safely(replaces, final)):
        shown = ", ".join(sorted(entries)[:3]) + (", ..." if len(entries) > 3 else "")
        raise OutputPathError(final, f"is a folder holding {len(entries)} entr{'y' if len(entries) == 1 else 'ies'} "
                                     f"({shown}) and not {what or 'an earlier output of this command'}; it would "
                                     "be replaced: choose a new or empty folder")
    _probe_parent(final)


def _make_temp(final: Path, suffix: str, directory: bool) -> Path:
    """Create the temporary for ``final`` (its parent made first), with one-line errors for unwritable places."""
    if final.is_dir() and not directory:
        raise OutputPathError(final, "is a directory; expected a file name")
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(final)
        if directory:
            made = Path(tempfile.mkdtemp(prefix=temp_prefix(final), suffix=suffix + ".tmp", dir=final.parent))
            apply_umask(made, directory=True)
            return made
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(final), suffix=suffix + ".tmp", dir=final.parent)
    except (FileExistsError, NotADirectoryError):
        raise OutputPathError(final, "cannot create its directory: a file is in the way") from None
    except OSError as exc:
        if is_full_disk(exc):
            raise full_disk_error(final, exc) from None
        raise OutputPathError(final, f"cannot write in {final.parent} ({exc.strerror or exc})") from None
    os.close(fd)
    apply_umask(tmp)
    return Path(tmp)


@contextlib.contextmanager
def atomic_path(final: PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``final``; rename it over ``final`` only if the block succeeds."""
    final = Path(final)
    tmp_path = _make_temp(final, suffix, directory=False)
    try:
        yield tmp_path
        with contextlib.suppress(FileNotFoundError):  # a writer that recreated the file gave it its own mode
            apply_umask(tmp_path)
        try:
            os.replace(tmp_path, final)
        except IsADirectoryError:  # a directory appeared at ``final`` meanwhile
            raise OutputPathError(final, "is a directory; expected a file name") from None
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        if is_full_disk(exc) and not isinstance(exc, OutputPathError):
            raise full_disk_error(final, exc) from None
        raise


@contextlib.contextmanager
def atomic_dir(final: PathLike, replaces: Callable[[Path], bool] | None = None, what: str = "",
               inputs: tuple[PathLike, ...] = ()) -> Iterator[Path]:
    """Yield a temporary directory next to ``final``; it replaces ``final`` only if the block succeeds.

    What is at ``final`` is checked before and again just before the swap (:func:`check_folder_replaceable`): only
    nothing, an empty folder or an earlier output of the same kind (``replaces``) is replaced.
    """
    final = Path(final)
    check_folder_replaceable(final, replaces, what, inputs)
    tmp = _make_temp(final, "", directory=True)
    try:
        yield tmp
        for path in tmp.rglob("*"):  # writers that create files private (safetensors does) get the umask's modes
            if not path.is_symlink():
                apply_umask(path, directory=path.is_dir())
        check_folder_replaceable(final, replaces, what)  # a user's file may have arrived meanwhile
        if final.exists():
            old = final.with_name(f".{final.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if is_full_disk(exc) and not isinstance(exc, OutputPathError):
            raise full_disk_error(final, exc) from None
        raise


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


def lock_folder(folder: PathLike, name: str, doing: str) -> int:
    """Create ``folder`` if needed and hold an exclusive lock on its ``name`` file (an flock: a process that dies
    holds nothing) for as long as the returned descriptor is open; the file holds the holder's pid. Another holder
    is one line saying it is ``doing`` something there. The lock file is never replaced; :func:`release_lock`
    removes it safely."""
    import fcntl

    folder = Path(folder)
    for _ in range(8):  # a lock file removed by its holder (release_lock) between our open and flock: again
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(folder / name, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            if is_full_disk(exc):
                raise full_disk_error(folder / name, exc) from None
            raise OutputPathError(folder, f"cannot be written ({exc.strerror or exc})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise HybridjetError(f"{folder}: another hybridjet process (pid {holder}) is {doing}; wait for it to "
                                 "finish or choose another folder") from None
        except OSError:  # a file system without flock (some network mounts): go on unlocked, as the model cache does
            pass
        try:
            same = os.stat(folder / name).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            return fd
        os.close(fd)
    raise HybridjetError(f"{folder}: its lock {name} keeps being replaced; expected one hybridjet process at a time")


def release_lock(folder: PathLike, name: str, fd: int) -> None:
    """Remove a lock file :func:`lock_folder` gave, then let it go: a process that opened it meanwhile sees it gone
    and takes a new one (so that no lock file is left behind)."""
    with contextlib.suppress(OSError):
        os.unlink(Path(folder) / name)
    os.close(fd)


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
