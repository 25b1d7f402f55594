"""The run directory: what a finished run leaves for anyone to load and score, as data only (JSON + safetensors).

``model.json`` (the record: class, architecture, feature set and normalisation, base-model identity),
``weights.safetensors`` (trainable weights only; a trees run: ``trees.safetensors``), ``scores.h5`` (probabilities
per split), ``metrics.json`` (strict JSON). The functions know no model class; :class:`RunIO` lets a classifier write
its run and build itself from one (``from_pretrained``), and :func:`hybridjet.api.load_run` picks the class a
record names.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hybridjet import __version__
from hybridjet.data.events import EventFeatures
from hybridjet.data.features import FEATURE_SETS, Normalizer
from hybridjet.errors import HybridjetError, OutputPathError
from hybridjet.eval.metrics import split_metrics
from hybridjet.io_utils import atomic_path, check_writable, lock_folder
from hybridjet.llm.backbone import resolve_dtype
from hybridjet.rundir import (
    METRICS_FILE,
    RUN_LOCK,
    RUN_MODEL_FILE,
    RUN_WEIGHTS_FILE,
    SCORES_FILE,
    STUDY_RECORD,
    TREES_FILE,
    RunDir,
)
from hybridjet.runtime import Runtime
from hybridjet.train.checkpoints import load_trainable_state, trainable_state

PathLike = str | os.PathLike[str]

#: what a run directory of hybridjet's holds (classifiers, text runs, resonance-search runs); a folder holding files
#: but none of these is someone else's, and no training writes into it
RUN_ENTRIES = frozenset({RUN_MODEL_FILE, RUN_WEIGHTS_FILE, METRICS_FILE, SCORES_FILE, TREES_FILE,
                         "checkpoints", "logs", "config.yaml", "hparams.yaml", "metrics.csv", "adapter", "tokenizer",
                         "text_config.yaml", "eval.json", "trained.json", "fold0", RUN_LOCK, STUDY_RECORD})


def training_holder(run_dir: PathLike) -> str | None:
    """The pid of another process training into ``run_dir`` now (its :class:`RunClaim`), or ``None``."""
    import fcntl

    try:
        fd = os.open(Path(run_dir) / RUN_LOCK, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
    except OSError:
        return None
    finally:
        os.close(fd)  # releases the probe's lock too
    return None


class RunClaim:
    """One process's exclusive use of a run directory while it trains into it, and the tidy-up of a failed try.

    Taking it refuses a folder that is not a run directory (it holds files, none of a run's), and a run directory
    another process is training into (an flock on :data:`RUN_LOCK`, so a process that died holds nothing). A try
    that fails removes what it added: the log versions and files it created, and the run directory itself if it
    created it and no checkpoint to resume from is left; an interrupted try keeps everything, to be resumed.
    """

    def __init__(self, run_dir: PathLike) -> None:
        self.run_dir = Path(run_dir)
        self._fd: int | None = None
        self._created = False
        self._before: set[str] = set()
        self._logs_before: set[str] = set()

    def check(self) -> set[str]:
        """Refuse a folder that cannot be this run's (a file, someone's folder, under a file, not writable), creating
        nothing; returns the entries it holds (empty when it does not exist yet)."""
        run_dir = self.run_dir
        if run_dir.exists() and not run_dir.is_dir():
            raise OutputPathError(run_dir, "exists and is not a folder; expected a run directory")
        if not run_dir.exists():
            check_writable(run_dir / RUN_LOCK)  # the nearest existing folder above accepts it
            return set()
        try:
            entries = {e.name for e in os.scandir(run_dir)}
        except OSError as exc:
            raise OutputPathError(run_dir, f"cannot be read ({exc.strerror or exc})") from None
        for name in (RUN_MODEL_FILE, METRICS_FILE):  # merged into after training: unreadable ones are found now
            if name in entries:
                _check_json_object(run_dir / name)
        if entries and not entries & RUN_ENTRIES and not any(e.startswith("fold") for e in entries):
            shown = ", ".join(sorted(entries)[:3]) + (", ..." if len(entries) > 3 else "")
            count = "1 entry" if len(entries) == 1 else f"{len(entries)} entries"
            raise OutputPathError(run_dir, f"holds {count} ({shown}) and none of a run directory's; choose a new "
                                           "or empty folder for the run")
        return entries

    def acquire(self) -> RunClaim:
        """Check the folder, create it if needed and lock it (one line for every way this can fail). The other
        ranks of a data-parallel run (launched with ``RANK`` / ``LOCAL_RANK`` / ``NODE_RANK`` > 0) leave the claim
        to rank 0."""
        if any(int(os.environ.get(key, "0") or 0) > 0 for key in ("RANK", "LOCAL_RANK", "NODE_RANK")):
            return self
        run_dir = self.run_dir
        self._before = self.check()
        self._created = not run_dir.exists()
        logs = run_dir / "logs"
        self._logs_before = {e.name for e in os.scandir(logs)} if logs.is_dir() else set()
        self._fd = lock_folder(run_dir, RUN_LOCK, "training into this run directory")
        return self

    def release(self, failed: bool = False) -> None:
        """Unlock; after a failed try, remove what it added (see the class docstring)."""
        if self._fd is None:
            return
        try:
            if failed:
                self._tidy()
        finally:
            os.close(self._fd)
            self._fd = None

    def _tidy(self) -> None:
        """After a failed try: a try that left a checkpoint to resume from keeps everything, as an interrupted
        one does (its logs say how far it got); any other removes the log versions and entries it added, and the
        run directory if it made it."""
        run_dir = self.run_dir
        if not run_dir.is_dir() or (run_dir / "checkpoints" / "last.ckpt").is_file():
            return
        logs = run_dir / "logs"
        if logs.is_dir():
            for entry in os.scandir(logs):
                if entry.name not in self._logs_before:
                    _remove(Path(entry.path))
        for entry in os.scandir(run_dir):
            if entry.name not in self._before and entry.name != RUN_LOCK and (entry.name != "logs" or not any(
                    logs.iterdir())):
                _remove(Path(entry.path))
        if self._created and {e.name for e in os.scandir(run_dir)} <= {RUN_LOCK}:
            _remove(run_dir)

    def __enter__(self) -> RunClaim:
        return self.acquire()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        self.release(failed=exc is not None and not interrupted(exc))


def _check_json_object(path: Path) -> None:
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise OutputPathError(path, f"cannot be read ({exc.strerror or exc})") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise OutputPathError(path, f"not JSON ({str(exc).splitlines()[0][:100]}); a run directory's "
                                    f"{path.name} is written by hybridjet: move it away") from None
    if not isinstance(data, dict):
        raise OutputPathError(path, f"holds a JSON {type(data).__name__}; expected the object hybridjet writes")


#: what the output folder of a resonance search or a study holds
SEARCH_ENTRIES = frozenset({"files", "runs", RUN_LOCK})


def check_search_folder(folder: PathLike, what: str) -> None:
    """Refuse an output folder of a search or a study (``what``) that holds someone else's files, or whose
    ``runs/`` holds a classifier's run directory: their files and runs would be written among those."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputPathError(folder, f"exists and is not a folder; expected the {what}'s output folder")
    if not folder.is_dir():
        return check_writable(folder / RUN_LOCK)
    others = sorted({e.name for e in os.scandir(folder)} - SEARCH_ENTRIES)
    if others:
        shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
        raise OutputPathError(folder, f"holds {shown}, not the {what}'s files/ and runs/; choose a new or empty "
                                      "folder for out")
    runs = folder / "runs"
    if runs.is_dir():
        for entry in os.scandir(runs):
            if entry.is_dir() and (Path(entry.path) / RUN_MODEL_FILE).is_file():
                raise OutputPathError(folder, f"runs/{entry.name} is a classifier's run directory, not one of the "
                                              f"{what}'s; choose a new or empty folder for out")


def clear_run_dir(run_dir: PathLike) -> None:
    """Empty a run directory for a fresh training (its lock file kept): refused in one line when the folder is not
    a run directory or another process is training into it."""
    claim = RunClaim(run_dir).acquire()
    try:
        for entry in os.scandir(run_dir):
            if entry.name != RUN_LOCK:
                _remove(Path(entry.path))
    finally:
        claim.release()


def interrupted(exc: BaseException) -> bool:
    """Whether ``exc`` stopped a training by Ctrl-C (Lightning turns it into ``sys.exit(1)``) or a kill: the try's
    files are kept for a resume."""
    return isinstance(exc, KeyboardInterrupt) or (
        isinstance(exc, SystemExit) and isinstance(exc.__context__, KeyboardInterrupt))


@contextlib.contextmanager
def released_on_exit(claims: list[RunClaim]) -> Iterator[None]:
    """Release every claim made in the block; a block that fails (not by an interrupt) tidies their run
    directories."""
    try:
        yield
    except BaseException as exc:
        for claim in claims:
            claim.release(failed=not interrupted(exc))
        raise
    for claim in claims:
        claim.release()


def _remove(path: Path) -> None:
    """Remove a file or folder a failed try created (gone already is fine)."""
    import shutil

    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def read_run_metadata(run_dir: PathLike) -> dict[str, Any]:
    """``model.json`` of a run directory, checked to be a JSON object (one line naming the file otherwise)."""
    path = Path(run_dir) / RUN_MODEL_FILE
    if not Path(run_dir).is_dir():
        raise HybridjetError(f"{run_dir}: no such run directory")
    if not path.is_file():
        raise HybridjetError(f"{run_dir}: not a hybridjet run directory ({RUN_MODEL_FILE} missing)")
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise HybridjetError(f"{path}: not readable JSON ({str(err).splitlines()[0][:120]}); expected the run "
                             "record hybridjet wrote") from None
    if not isinstance(meta, dict):
        raise HybridjetError(f"{path}: expected a JSON object, found {type(meta).__name__}")
    return meta


def recorded_features(meta: dict[str, Any], run_dir: PathLike) -> tuple[str | None, Normalizer | None]:
    """The feature set and normalisation a run record names, checked (sizes bounded, one count for all) before
    anything is built from them; one line naming ``model.json`` otherwise."""
    record = Path(run_dir) / RUN_MODEL_FILE
    feature_set = meta.get("feature_set")
    if feature_set is not None and feature_set not in FEATURE_SETS:
        raise HybridjetError(f"{record}: feature_set {feature_set!r}; expected one of {', '.join(FEATURE_SETS)}")
    normalizer = None
    try:
        if meta.get("normalizer"):
            normalizer = Normalizer.from_dict(meta["normalizer"])
        n_features = meta.get("n_features")
    except (KeyError, TypeError, ValueError, HybridjetError) as err:
        raise HybridjetError(f"{record}: malformed 'normalizer' ({str(err)[:160]})") from None
    if n_features is not None and (normalizer is None or n_features != len(normalizer.names)):
        raise HybridjetError(f"{record}: n_features {n_features!r} does not match the normalizer's "
                             f"{0 if normalizer is None else len(normalizer.names)} features")
    return feature_set, normalizer


def scoring_inputs(run_dir: PathLike) -> EventFeatures:
    """What turns events into a run's inputs, from its record alone (no model loaded): for checking files before
    a model loads."""
    feature_set, normalizer = recorded_features(read_run_metadata(run_dir), run_dir)
    if normalizer is None:
        raise HybridjetError(f"{Path(run_dir) / RUN_MODEL_FILE}: records no feature normalisation; not a finished run")
    return EventFeatures(feature_set, normalizer)


def write_record(run_dir: PathLike, meta: dict[str, Any]) -> None:
    """Write ``model.json`` atomically."""
    with atomic_path(Path(run_dir) / RUN_MODEL_FILE) as tmp:
        tmp.write_text(json.dumps(meta, indent=1, default=str))


def write_tensors(run_dir: PathLike, tensors: dict[str, Any], name: str = RUN_WEIGHTS_FILE) -> None:
    """Write torch tensors or numpy arrays as a safetensors file of the run, atomically."""
    values = list(tensors.values())
    with atomic_path(Path(run_dir) / name) as tmp:
        if values and isinstance(values[0], np.ndarray):
            from safetensors.numpy import save_file
        else:
            from safetensors.torch import save_file
        save_file(tensors, str(tmp))


def read_tensors(run_dir: PathLike, name: str = RUN_WEIGHTS_FILE, numpy: bool = False) -> dict[str, Any]:
    """A safetensors file of the run (one line for a missing, truncated or overwritten file)."""
    path = Path(run_dir) / name
    if not path.is_file():
        raise HybridjetError(f"{path}: not found (is this a finished hybridjet run directory?)")
    if not os.access(path, os.R_OK):  # safetensors reports it as "No such file or directory"
        raise HybridjetError(f"{path}: cannot be read (permission denied)")
    try:
        if numpy:
            from safetensors.numpy import load_file
        else:
            from safetensors.torch import load_file
        return load_file(str(path))
    except Exception as err:  # safetensors' own error types
        raise HybridjetError(f"{path}: unreadable ({str(err).splitlines()[0][:160]}); expected the safetensors "
                             "file hybridjet wrote") from None


def update_metrics(run_dir: PathLike, **fields: Any) -> None:
    """Merge ``fields`` into the run's ``metrics.json``, atomically (strict JSON: non-finite numbers are null)."""
    RunDir(run_dir).update_metrics(**fields)


def write_split_scores(run_dir: PathLike, split: str, event_id: np.ndarray, probability: np.ndarray,
                       label: np.ndarray, model_kind: str, data: dict[str, str] | None = None) -> dict[str, Any]:
    """``scores.h5`` of one evaluated split (signal probabilities; ``data``: where its events come from, see
    :func:`~hybridjet.eval.scores.data_identity`) and its metrics; returns the metrics."""
    RunDir(run_dir).write_scores(split, event_id, probability.astype(np.float32), label.astype(np.int8),
                                 attrs={"model": model_kind, "score_kind": "probability"}, split_attrs=data)
    return split_metrics(label, probability)


#: the runtime settings that change a model's numbers, which a run records as they were requested
NUMERICS = ("quantization", "dtype")


def numerics_of(source: Any) -> dict[str, Any]:
    """The recorded numerics of a run record (its ``numerics`` or, for older runs, flat ``hparams``) or of a
    :class:`Runtime`; missing ones are left to the runtime's defaults."""
    if isinstance(source, Runtime):
        return {k: getattr(source, k) for k in NUMERICS}
    if isinstance(source, dict):
        recorded = source.get("numerics") or source.get("hparams") or {}
        return {k: recorded[k] for k in NUMERICS if k in recorded}
    return {}


class RunIO:
    """The run-directory side of an LLM event classifier (a mixin of
    :class:`hybridjet.train.classifiers.EventClassifier`): its record, saving, and loading a finished run. Every
    subclass that names a ``config_class`` can be loaded by its class name (``classes``)."""

    classes: dict[str, type] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "config_class" in cls.__dict__:
            RunIO.classes[cls.__name__] = cls

    def arch(self) -> dict[str, Any]:
        """The net's architecture config, as a run records it."""
        return dataclasses.asdict(self.net.config)

    def base_identity(self) -> dict[str, Any] | None:
        """Name, path and sha256 of the base LLM (``None`` for a net without one)."""
        backbone = getattr(self.net, "backbone", None)
        return None if backbone is None else backbone.identity.to_dict()

    def check_base_identity(self, recorded: dict[str, Any] | None) -> None:
        """Refuse weights trained on another base model (compared by the base weights' sha256)."""
        mine = self.base_identity() or {}
        if recorded and mine and recorded.get("sha256") and recorded.get("sha256") != mine.get("sha256"):
            raise HybridjetError(
                f"weights were trained on base model {recorded.get('name')} (sha256 {recorded['sha256'][:12]}), "
                f"but {mine.get('name')} (sha256 {str(mine.get('sha256'))[:12]}) is loaded")

    def run_metadata(self) -> dict[str, Any]:
        """The run's record (``model.json``): what :meth:`from_pretrained` needs besides the base model."""
        runtime = getattr(self.net, "runtime", None)
        return {"class": type(self).__name__, "model": self.model_kind, "hybridjet_version": __version__,
                "arch": self.arch(), "numerics": numerics_of(runtime), "feature_set": self.feature_set,
                "n_features": None if self.normalizer is None else len(self.normalizer.names),
                "normalizer": None if self.normalizer is None else self.normalizer.to_dict(),
                "base_model": self.base_identity(),
                "trainable_params": sum(p.numel() for p in self.parameters() if p.requires_grad)}

    def save_run(self, run_dir: str | Path) -> None:
        """Weights (safetensors) and record (JSON) into ``run_dir``."""
        if self.dense_inference:
            raise HybridjetError("model: densified for inference; save the run before densify_for_inference")
        state = {k: v.detach().cpu().contiguous() for k, v in trainable_state(self.net).items()}
        write_tensors(run_dir, state)
        write_record(run_dir, self.run_metadata())
        self.update_metrics(Path(run_dir))

    def update_metrics(self, run_dir: Path, **fields: Any) -> None:
        """Merge ``fields``, the run's identity and its timings into ``metrics.json``."""
        update_metrics(run_dir, name=self.run_name or Path(run_dir).name, model=self.model_kind,
                           trainable_params=sum(p.numel() for p in self.parameters() if p.requires_grad),
                           **self.timing, **fields)

    @classmethod
    def from_pretrained(cls, run_dir: str | Path, model: str | None = None, dense: bool = False,
                        runtime: Runtime | None = None, **runtime_settings: Any) -> Any:
        """Load a finished run: base LLM resolved from the record (or ``model``), trained weights from the run;
        called on :class:`EventClassifier`, whichever classifier the run holds. ``runtime``: how to run it here
        (default: the quantization and dtype the run was trained with, as requested — ``auto`` decides on this
        machine — and everything else automatic; ``runtime_settings`` change its fields, e.g.
        ``torch_compile=True``). ``dense``: scoring
        only, dequantize the 4-bit base once (:meth:`densify_for_inference`)."""
        run_dir = Path(run_dir)
        meta = read_run_metadata(run_dir)
        if runtime is None:  # the numerics the run was trained with, as requested (auto stays automatic)
            runtime = Runtime(**numerics_of(meta))
        if runtime_settings:
            runtime = runtime.replace(**runtime_settings)
        run_cls = RunIO.classes.get(meta.get("class"))
        if run_cls is None:
            raise HybridjetError(f"{run_dir / RUN_MODEL_FILE}: not an LLM classifier run "
                                 f"(class {meta.get('class')!r}; load any run with hybridjet.load_run)")
        if not issubclass(run_cls, cls):
            raise HybridjetError(f"{run_dir}: holds a {meta['class']}, not a {cls.__name__}")
        record = meta.get("arch") or meta.get("hparams") or {}  # runs before the split recorded flat hparams
        if "arch" in meta:  # a setting this version does not know: written by another version, not loadable as is
            unknown = sorted(set(record) - {f.name for f in dataclasses.fields(run_cls.config_class)})
            if unknown:
                raise HybridjetError(f"{run_dir / RUN_MODEL_FILE}: arch settings {', '.join(unknown)} are not "
                                     f"settings of {meta['class']} (written by another hybridjet version?)")
        if model is not None:
            record = {**record, "model": model}
        try:
            config = run_cls.config_class.from_record(record)
        except TypeError as err:
            raise HybridjetError(f"{run_dir / RUN_MODEL_FILE}: malformed architecture record ({err})") from None
        clf = run_cls(config, runtime=runtime)
        clf.check_base_identity(meta.get("base_model"))
        clf.feature_set, clf.normalizer = recorded_features(meta, run_dir)
        if clf.normalizer is not None:
            clf.build(len(clf.normalizer.names))
        clf.load_run_weights(run_dir)
        clf.run_dir = run_dir
        clf.follow_run_dir()
        clf.eval()
        return clf.densify_for_inference() if dense else clf

    def load_run_weights(self, run_dir: str | Path) -> None:
        """Load ``weights.safetensors`` of a run into this (already built) model, checking every key."""
        load_trainable_state(self.net, read_tensors(run_dir), str(Path(run_dir) / RUN_WEIGHTS_FILE))

    def densify_for_inference(self, dtype: str | torch.dtype | None = None) -> Any:
        """Scoring only: the 4-bit (+ LoRA) LLM replaced by a dense copy (LoRA merged in fp32, kept a branch in bf16), in the backbone's
        compute dtype unless ``dtype`` is given (same scores up to that dtype's rounding, no per-step
        dequantization); the model can no longer be trained or saved."""
        backbone = getattr(self.net, "backbone", None)
        if backbone is None or self.dense_inference or not hasattr(self.net, "densify"):
            return self
        self.net.densify(resolve_dtype(dtype, backbone.device) if dtype is not None else backbone.dtype)
        self.dense_inference = True
        return self.eval()
