"""Compiled kernels that travel with a run directory.

``torch.compile`` keeps what it builds (Inductor's FX graphs and Triton kernels, AOTAutograd entries, autotuning
choices) in a cache under ``/tmp`` of the machine that compiled: a fresh GPU node compiles again (~9 s of 19 for
scoring 1.1M events with the hybrid on an H100). After a compiled model has scored, those artifacts are saved into the run directory
(``compiled/<torch, triton and device>/<hash>.bin``, via ``torch.compiler.save_cache_artifacts``); a later
``from_pretrained`` on a machine with the same torch, Triton and device kind loads them before compiling, so the
compilation reads its results instead of building them. Artifacts of another software or device stay unused (each
entry is keyed by its inputs anyway). ``HYBRIDJET_COMPILE_CACHE=0`` turns saving and loading off.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from pathlib import Path

import torch

from hybridjet.io_utils import atomic_path

COMPILE_CACHE_DIR = "compiled"
COMPILE_CACHE_ENV = "HYBRIDJET_COMPILE_CACHE"

log = logging.getLogger(__name__)
# artifact keys this process loaded or saved, per artifact folder: a save with nothing new writes nothing
_known_keys: dict[Path, set[str]] = {}
# the file this process last wrote per folder: each save holds all the process's artifacts, so it replaces it
_written: dict[Path, Path] = {}


def enabled() -> bool:
    """Whether run directories carry compiled artifacts (``HYBRIDJET_COMPILE_CACHE`` not ``0``)."""
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


def artifact_folder(run_dir: str | Path, device: torch.device) -> Path:
    """Where a run keeps the artifacts compiled with this software on this kind of device."""
    return Path(run_dir) / COMPILE_CACHE_DIR / software_key(device)


def _keys(info: object) -> set[str]:
    artifacts = getattr(info, "artifacts", None) or {}
    return {f"{kind}:{key}" for kind, keys in artifacts.items() for key in keys}


def load_compiled(run_dir: str | Path, device: torch.device) -> int:
    """Hot-load the run's artifacts for this software and device into the local compile caches; returns how many
    artifacts were loaded (0 when there are none). A damaged file is skipped with a warning."""
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
    """Save every compile artifact this process built or used into the run directory (atomically), unless the
    run already holds them all; returns the file written, if any. An unwritable run directory is skipped."""
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
    except OSError as err:  # e.g. a read-only run someone shared: scoring went fine, only the cache is not kept
        log.warning("%s: compiled artifacts not saved (%s)", folder, err)
        return None
    known |= keys
    previous = _written.get(folder)
    if previous is not None and previous != path:
        previous.unlink(missing_ok=True)
    _written[folder] = path
    return path
