"""Compiled kernels kept for the next process, in this machine's own cache, never in a run directory.

``torch.compile`` keeps what it builds (Inductor's FX graphs and Triton kernels, AOTAutograd entries, autotuning
choices) in a cache under ``/tmp`` of the machine that compiled: a fresh GPU node compiles again. After a compiled
model has trained or scored, those artifacts are saved (``torch.compiler.save_cache_artifacts``) into the hybridjet
cache, ``<cache root>/compiled/<run key>/<torch, triton and device>/<hash>.bin`` (the cache root of
:func:`hybridjet.llm.resolve.cache_root`, ``$HYBRIDJET_CACHE`` or ``~/.cache/hybridjet``, which a cluster's shared
home makes common to its nodes); a later load of the same run directory on a machine with the same torch, Triton and
device kind loads them before compiling. The artifacts are pickles, so they are only ever read from that cache,
which this user's own processes wrote: a run directory received from someone else runs no code, and a ``compiled/``
folder inside one is ignored. ``HYBRIDJET_COMPILE_CACHE=0`` turns saving and loading off.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from pathlib import Path

import torch

from hybridjet.io_utils import atomic_path
from hybridjet.llm.resolve import cache_root

COMPILE_CACHE_DIR = "compiled"  # under the cache root
COMPILE_CACHE_ENV = "HYBRIDJET_COMPILE_CACHE"

log = logging.getLogger(__name__)
# artifact keys this process loaded or saved, per artifact folder: a save with nothing new writes nothing
_known_keys: dict[Path, set[str]] = {}
# the file this process last wrote per folder: each save holds all the process's artifacts, so it replaces it
_written: dict[Path, Path] = {}


def enabled() -> bool:
    """Whether compiled artifacts are kept and read (``HYBRIDJET_COMPILE_CACHE`` not ``0``)."""
    return os.environ.get(COMPILE_CACHE_ENV, "1") != "0"


def software_key(device: torch.device) -> str:
    """The folder name for artifacts built here: torch and Triton versions and the device kind."""
    parts = [f"torch{torch.__version__}"]
    try:
        import triton

        parts.append(f"triton{triton.__version__}")
    except ImportError:
        pass
    if device.type == "cuda":
        parts.append(torch.cuda.get_device_name(device))
    else:
        parts.append(device.type)
    return re.sub(r"[^A-Za-z0-9.+_-]+", "-", "_".join(parts))


def run_key(run_dir: str | Path) -> str:
    """The cache's name for a run directory: a digest of its absolute path."""
    return hashlib.sha256(str(Path(run_dir).resolve()).encode()).hexdigest()[:16]


def artifact_folder(run_dir: str | Path, device: torch.device) -> Path:
    """Where this machine's cache keeps the artifacts of a run compiled with this software on this kind of device."""
    return cache_root() / COMPILE_CACHE_DIR / run_key(run_dir) / software_key(device)


def _keys(info: object) -> set[str]:
    artifacts = getattr(info, "artifacts", None) or {}
    return {f"{kind}:{key}" for kind, keys in artifacts.items() for key in keys}


def load_compiled(run_dir: str | Path, device: torch.device) -> int:
    """Hot-load the cached artifacts of a run for this software and device into torch's compile caches; returns how
    many artifacts were loaded (0 when there are none). A damaged file is skipped with a warning."""
    folder = artifact_folder(run_dir, device)
    if not enabled() or not folder.is_dir():
        return 0
    known = _known_keys.setdefault(folder, set())
    loaded = 0
    for path in sorted(folder.glob("*.bin")):
        try:
            info = torch.compiler.load_cache_artifacts(path.read_bytes())
        except Exception as err:  # a damaged or foreign file costs a compilation, not the run
            log.warning("%s: compiled artifacts not loaded (%s)", path, err)
            continue
        keys = _keys(info)
        known |= keys
        loaded += len(keys)
    return loaded


def _recorded_new_artifacts() -> bool:
    """Whether torch.compile recorded artifacts since the last save: a serialisation copies all of the process's
    (tens of MB), too much for every ``predict_proba`` call of a scoring loop."""
    try:
        from torch.compiler._cache import CacheArtifactManager

        return bool(CacheArtifactManager.need_serialize())
    except (ImportError, AttributeError):  # a torch without it: serialise and compare keys
        return True


def save_compiled(run_dir: str | Path, device: torch.device) -> Path | None:
    """Save every compile artifact this process built or used into the run's cache folder (atomically), unless it
    holds them all already; returns the file written, if any. An unwritable cache is skipped with a warning."""
    if not enabled():
        return None
    if not _recorded_new_artifacts():
        return None
    folder = artifact_folder(run_dir, device)
    known = _known_keys.setdefault(folder, set())
    saved = torch.compiler.save_cache_artifacts()
    if saved is None:
        return None
    data, info = saved
    keys = _keys(info)
    if not keys or keys <= known:
        return None
    path = folder / f"{hashlib.sha256(data).hexdigest()[:16]}.bin"
    try:
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
    except OSError as err:  # e.g. a read-only cache: scoring went fine, only the kernels are not kept
        log.warning("%s: compiled artifacts not saved (%s)", folder, err)
        return None
    known |= keys
    previous = _written.get(folder)
    if previous is not None and previous != path:
        previous.unlink(missing_ok=True)
    _written[folder] = path
    return path
