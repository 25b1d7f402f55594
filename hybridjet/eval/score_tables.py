"""Scores as a table the analysis joins to its own: ``hybridjet score --out scores.parquet`` (or ``.root``, a
TTree written by uproot) holds ``event_id``, ``label`` (-1: unknown) and one column of signal probabilities per
run. Scoring the same events with another run adds its column (the same run scored again replaces its own; another
run's column is never replaced); a file hybridjet did not write, or one holding other events, is never replaced."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from hybridjet.errors import HybridjetError, InputFileError, OutputPathError
from hybridjet.io_utils import atomic_path, lock_folder, release_lock

TABLE_FORMAT = "hybridjet.score_table"
TABLE_WHAT = "a score table hybridjet wrote"
TABLE_KINDS = {".parquet": "parquet", ".root": "root"}
ROOT_TREE = "scores"
_FORMAT_KEY = "hybridjet_format"
_RUNS_KEY = "hybridjet_runs"
_KEYS = ("event_id", "label")


def table_kind(path: str | Path) -> str | None:
    """``parquet`` or ``root`` for a score-table file name, else ``None`` (an HDF5 scores file)."""
    return TABLE_KINDS.get(Path(path).suffix.lower())


def column_name(run_dir: str | Path, given: str | None = None) -> str:
    """The column a run's scores go in: ``given``, else the run directory's name, as a valid identifier."""
    name = given if given is not None else Path(run_dir).resolve().name
    if given is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", given):
        raise HybridjetError(f"--column: expected letters, digits and '_' (not first a digit), got {given!r}")
    name = re.sub(r"[^A-Za-z0-9_]", "_", name)
    name = name if re.match(r"[A-Za-z_]", name) else f"score_{name}"
    if name in _KEYS:
        raise HybridjetError(f"--column: {name!r} names one of the table's own columns; expected another (--column)")
    return name


def is_score_table(path: str | Path) -> bool:
    """Whether ``path`` is a score table hybridjet wrote (the only kind of table a score replaces)."""
    try:
        return read_score_table(path) is not None
    except (InputFileError, OSError, HybridjetError):
        return False


def read_score_table(path: str | Path) -> dict[str, np.ndarray] | None:
    """The columns of a score table hybridjet wrote, or ``None`` for another file of that kind."""
    found = _read_table(path)
    return None if found is None else found[0]


def _read_table(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, str]] | None:
    """(columns, the run that wrote each score column) of a table hybridjet wrote, else ``None``."""
    path = Path(path)
    kind = table_kind(path)
    if kind == "parquet":
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except Exception:  # noqa: BLE001 - pyarrow raises many kinds for a file that is not Parquet
            return None
        meta = table.schema.metadata or {}
        if meta.get(_FORMAT_KEY.encode()) != TABLE_FORMAT.encode():
            return None
        return ({name: table.column(name).to_numpy() for name in table.column_names},
                _runs(meta.get(_RUNS_KEY.encode(), b"{}").decode()))
    if kind == "root":
        import uproot

        try:
            with uproot.open(path) as handle:
                marker = handle.get(_FORMAT_KEY)
                if str(marker) != TABLE_FORMAT or ROOT_TREE not in handle:
                    return None
                runs = _runs(str(handle[_RUNS_KEY])) if _RUNS_KEY in handle else {}
                return {k: np.asarray(v) for k, v in handle[ROOT_TREE].arrays(library="np").items()}, runs
        except Exception:  # noqa: BLE001 - uproot raises many kinds for a file that is not ROOT
            return None
    raise HybridjetError(f"{path}: expected a .parquet or .root score table")


def _runs(text: str) -> dict[str, str]:
    try:
        runs = json.loads(text)
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in runs.items()} if isinstance(runs, dict) else {}


def check_table_output(path: str | Path) -> None:
    """Refuse, before any work, an existing file at ``path`` that is not a score table hybridjet wrote."""
    path = Path(path)
    if path.exists() and not (path.is_file() and is_score_table(path)):
        raise OutputPathError(path, f"exists and is not {TABLE_WHAT}; it would be replaced: choose another name or "
                                    "move it away")
    if table_kind(path) == "root":
        _require("uproot", "root")
    else:
        _require("pyarrow", "text")


def check_table_events(path: str | Path, event_id: Any) -> None:
    """Refuse, before any scoring, an existing table at ``path`` that holds other events than ``event_id`` (in
    that order): the new column could not join it."""
    if Path(path).exists():
        _check_events(Path(path), _read_table(path), event_id)


def _check_events(path: Path, found: tuple[dict[str, np.ndarray], dict[str, str]] | None, event_id: Any) -> None:
    held = (found or ({}, {}))[0].get("event_id", np.zeros(0, np.int64))
    if len(held) != len(event_id) or not np.array_equal(held, np.asarray(event_id, np.int64)):
        raise OutputPathError(path, "holds the scores of other events (its event_id column differs); expected "
                                    "the same events in the same order, or another file")


def _require(module: str, extra: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise HybridjetError(f"writing {'ROOT' if extra == 'root' else 'Parquet'} score tables needs {module} "
                             f"(pip install 'hybridjet[{extra}]')")


def check_table_column(path: str | Path, column: str, run: str) -> None:
    """Refuse, before any scoring, to put ``run``'s scores in a column of the table at ``path`` that holds another
    run's (rescoring the same run replaces its column)."""
    _check_column(Path(path), _read_table(path) if Path(path).exists() else None, column, run)


def _check_column(path: Path, found: tuple[dict[str, np.ndarray], dict[str, str]] | None, column: str,
                  run: str) -> None:
    runs = found[1] if found is not None else {}
    if column in runs and runs[column] != run:
        raise OutputPathError(path, f"column {column!r} holds the scores of run {runs[column]}; expected another "
                                    f"--column for run {run}")


def write_score_table(path: str | Path, event_id: np.ndarray, label: np.ndarray, column: str,
                      scores: np.ndarray, run: str = "") -> dict[str, np.ndarray]:
    """Write ``column`` of ``scores`` (of ``run``) into the table at ``path`` (a new table, or the existing one's
    other columns kept when it holds the same events in the same order), atomically, one writer at a time; returns
    the table written."""
    path = Path(path)
    check_table_output(path)
    lock_name = f".{path.name}.lock"
    lock = lock_folder(path.parent, lock_name, f"writing the score table {path.name}")
    try:
        columns: dict[str, np.ndarray] = {"event_id": np.asarray(event_id, np.int64),
                                          "label": np.asarray(label, np.int8)}
        runs: dict[str, str] = {}
        if path.exists():  # read once, under the lock: the events, the column's run, then the other columns
            found = _read_table(path)
            if found is None:
                raise OutputPathError(path, f"exists and is not {TABLE_WHAT}; it would be replaced: choose another "
                                            "name or move it away")
            _check_events(path, found, event_id)
            _check_column(path, found, column, run)
            columns, runs = {**found[0], **columns}, found[1]
        columns[column] = np.asarray(scores, np.float32)
        runs[column] = run
        with atomic_path(path, suffix=path.suffix) as tmp:
            if table_kind(path) == "root":
                _write_root(tmp, columns, runs)
            else:
                _write_parquet(tmp, columns, runs)
    finally:
        release_lock(path.parent, lock_name, lock)
    return columns


def _write_parquet(tmp: Path, columns: dict[str, Any], runs: dict[str, str]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(columns).replace_schema_metadata({_FORMAT_KEY: TABLE_FORMAT, _RUNS_KEY: json.dumps(runs)})
    pq.write_table(table, tmp)


def _write_root(tmp: Path, columns: dict[str, Any], runs: dict[str, str]) -> None:
    import uproot

    with uproot.recreate(tmp) as handle:
        handle[_FORMAT_KEY] = TABLE_FORMAT  # a TObjString: the mark of a table hybridjet wrote
        handle[_RUNS_KEY] = json.dumps(runs)  # which run wrote each score column
        handle.mktree(ROOT_TREE, {name: values.dtype for name, values in columns.items()})
        handle[ROOT_TREE].extend(columns)
