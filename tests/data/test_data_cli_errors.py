"""Bad input to the data commands, typed as a user types it: one ``hybridjet: error:`` line, exit 2, nothing left.

Every command runs as a subprocess (``python -m hybridjet.cli``) of this checkout, in the test's directory.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hybridjet.data.lhco import pack_rows, write_lhco
from hybridjet.data.store import JetArrays, write_jets
from hybridjet.io_utils import temp_prefix

ROOT = Path(__file__).resolve().parents[2]
HYBRIDJET = [sys.executable, "-m", "hybridjet.cli"]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
BIG = "100000"  # events no test waits for: a destination checked only after generating would time out


def hybridjet(cwd: Path, *args: object, timeout: float = 120) -> subprocess.CompletedProcess:
    """``hybridjet ARGS`` run in ``cwd`` as a user runs it."""
    return subprocess.run([*HYBRIDJET, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          cwd=cwd, env=ENV)


def tree(root: Path) -> set[str]:
    """Every path under ``root``, hidden ones included (to see leftovers)."""
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def assert_one_line_error(result: subprocess.CompletedProcess, *names: str) -> str:
    """Exit 2, no traceback, a last stderr line ``hybridjet: error: ...`` naming each of ``names``."""
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.returncode == 2, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("hybridjet: error:"), last
    for name in names:
        assert name in last, (name, last)
    return last


def _can_create(directory: Path) -> bool:
    try:
        (directory / "probe").touch()
    except OSError:
        return False
    (directory / "probe").unlink()
    return True


@pytest.fixture
def read_only_dir(tmp_path: Path):
    """A directory no file can be created in: mode 0555, or immutable (chattr +i) where root ignores modes."""
    path = tmp_path / "ro"
    path.mkdir()
    path.chmod(0o555)
    immutable = False
    if _can_create(path) and shutil.which("chattr"):
        immutable = subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0
    try:
        if _can_create(path):
            pytest.skip("cannot make a read-only directory here (root, and no chattr +i)")
        yield path
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        path.chmod(0o755)


# ------------------------------------------------------------------------------------------ generate --out
def _generate(cwd: Path, out: object, events: str = BIG, timeout: float = 120) -> subprocess.CompletedProcess:
    return hybridjet(cwd, "generate", "--process", "qcd", "--events", events, "--seed", "1", "--out", out,
                     "--no-progress", timeout=timeout)


@pytest.mark.parametrize("where", ["read-only directory", "under a file", "a directory", "a fifo"])
def test_generate_checks_its_destination_before_generating(tmp_path, request, where):
    if where == "read-only directory":
        request.getfixturevalue("read_only_dir")
        out, names = "ro/events.h5", ("ro/events.h5", "cannot create files in ro")
    elif where == "under a file":
        (tmp_path / "notes.txt").write_text("a file")
        out, names = "notes.txt/sub/events.h5", ("notes.txt/sub/events.h5", "notes.txt: it is a file")
    elif where == "a directory":
        (tmp_path / "out").mkdir()
        out, names = "out", ("out: is a directory",)
    else:
        os.mkfifo(tmp_path / "pipe.h5")
        out, names = "pipe.h5", ("pipe.h5: exists and is not a regular file",)
    before = tree(tmp_path)
    assert_one_line_error(_generate(tmp_path, out, timeout=60), *names)
    assert tree(tmp_path) == before  # no output, no temporary, no directory


# ------------------------------------------------------------------------------------------ killed generate
def _temps(directory: Path, name: str) -> set[str]:
    return {p.name for p in directory.glob(f".{name}.*")}


def test_a_killed_generate_leaves_its_chunks_and_no_output(tmp_path):
    proc = subprocess.Popen([*HYBRIDJET, "generate", "--process", "qcd", "--events", BIG, "--seed", "1",
                             "--out", "g.h5", "--workers", "2", "--no-progress"], cwd=tmp_path, env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    chunks = tmp_path / ".g.h5.chunks"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:  # both workers writing a chunk
        if len(list(chunks.glob(".chunk*.tmp"))) >= 2:
            break
        time.sleep(0.05)
    time.sleep(0.5)
    assert proc.poll() is None, proc.stderr.read() if proc.stderr else "generate ended before it was killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    # kept, for a resume; the lock the killed process held stays too (it holds nothing: the next generate takes it)
    assert _temps(tmp_path, "g.h5") == {chunks.name, ".g.h5.lock"} and not (tmp_path / "g.h5").exists()
    assert (chunks / "settings.json").is_file() and not list(chunks.glob("chunk*.json"))  # no chunk finished
    # temporaries a later generate must keep: a live writer's (this test process) and one of another host
    live = temp_prefix("g.h5") + "abcdefgh.h5.tmp"
    other_host = f".g.h5.{proc.pid}@elsewhere-{os.getpid()}.abcdefgh.h5.tmp"
    for name in (live, other_host):
        (tmp_path / name).write_bytes(b"in progress")
    result = _generate(tmp_path, "g.h5", events="2")  # other settings: the killed run's chunks are not reused
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "g.h5").is_file()
    assert _temps(tmp_path, "g.h5") == {live, other_host}  # and the lock gone with the generate that took it


# ------------------------------------------------------------------------------------------ mix, inspect, cluster
def test_mix_rejects_a_bad_event_count_before_reading(tmp_path):
    for events in ("-3", "0"):  # the inputs do not exist: a check after reading would name them instead
        result = hybridjet(tmp_path, "mix", "--signal", "s.h5", "--background", "b.h5", "--signal-fraction", "0.5",
                           "--seed", "0", "--out", "m.h5", "--events", events)
        assert_one_line_error(result, f"--events must be >= 1, got {events}")
    assert tree(tmp_path) == set()


def _events(n: int, seed: int = 5) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    pt = np.zeros((n, 700))
    pt[:, :40] = rng.exponential(20.0, (n, 40)) + 1.0
    eta, phi = rng.normal(0, 1, (n, 700)) * (pt > 0), rng.uniform(-3, 3, (n, 700)) * (pt > 0)
    return pt, eta, phi, (np.arange(n) % 2).astype(np.int8)


def _truncated_copy(path: Path) -> Path:
    data = path.read_bytes()
    half = path.with_name(f"half_{path.name}")
    half.write_bytes(data[: len(data) // 2])
    return half


@pytest.mark.parametrize("kind", ["lhco", "jets"])
def test_inspect_of_a_truncated_file_is_one_line(tmp_path, kind):
    pt, eta, phi, labels = _events(20)
    full = tmp_path / "events.h5"
    write_lhco(full, pt, eta, phi, labels)
    if kind == "jets":
        n = len(labels)
        arrays = JetArrays(np.ones((n, 2, 4), np.float32), np.ones((n, 2), bool), np.full(n, 40, np.int32),
                           np.zeros((n, 2, 3), np.float32), labels, np.arange(n, dtype=np.int64))
        full = tmp_path / "jets.h5"
        write_jets(full, arrays)
    half = _truncated_copy(full)
    last = assert_one_line_error(hybridjet(tmp_path, "inspect", half.name), half.name, "truncated")
    # the same rule as cluster's
    assert last == assert_one_line_error(hybridjet(tmp_path, "cluster", half.name, "--out", "j.h5"))
    assert not (tmp_path / "j.h5").exists()


def test_cluster_names_a_bad_label_plainly(tmp_path):
    pt, eta, phi, labels = _events(10)
    bad = labels.astype(float)
    bad[4] = 2.0
    pd.DataFrame(pack_rows(pt, eta, phi, bad)).to_hdf(tmp_path / "labels.h5", key="df", mode="w")
    before = tree(tmp_path)
    last = assert_one_line_error(hybridjet(tmp_path, "cluster", "labels.h5", "--out", "jets.h5"),
                                 "labels.h5: row 4 has label 2.0;", "expected labels 0 or 1")
    assert "np." not in last
    assert tree(tmp_path) == before


@pytest.mark.parametrize("writer", ["pandas", "hybridjet"])
def test_cluster_of_a_file_without_events_says_so(tmp_path, writer):
    if writer == "pandas":  # pandas stores an empty frame as a [1, 1] placeholder
        pd.DataFrame(np.zeros((0, 2101))).to_hdf(tmp_path / "empty.h5", key="df", mode="w")
    else:
        pt, eta, phi, labels = _events(0)
        write_lhco(tmp_path / "empty.h5", pt, eta, phi, labels)
    before = tree(tmp_path)
    last = assert_one_line_error(hybridjet(tmp_path, "cluster", "empty.h5", "--out", "jets.h5"),
                                 "empty.h5: holds no events")
    assert "shape" not in last
    assert tree(tmp_path) == before
    described = hybridjet(tmp_path, "inspect", "empty.h5")
    assert described.returncode == 0 and "events                 0" in described.stdout


# ------------------------------------------------------------------------------------------ more bad input
@pytest.mark.parametrize(("argv", "expected"), [
    (["cluster", "events.h5", "--out", "adir"], "adir: is a directory"),
    (["cluster", "events.h5", "--out", "notes.txt/jets.h5"], "notes.txt: it is a file"),
    (["cluster", "events.h5", "--out", "jets.h5", "--min-pt", "-5"], "--min-pt must be >= 0"),
    (["cluster", "events.h5", "--out", "events.h5"], "events.h5: is also the input"),
    (["mix", "--signal", "events.h5", "--background", "other.h5", "--signal-fraction", "0.5", "--seed", "0",
      "--out", "./other.h5"], "other.h5: is also the input"),
    (["mix", "--signal", "events.h5", "--background", "events.h5", "--signal-fraction", "0.5", "--seed", "0",
      "--out", "adir"], "adir: is a directory"),
    (["mix", "--signal", "empty.h5", "--background", "events.h5", "--signal-fraction", "0.5", "--seed", "0",
      "--out", "m.h5"], "empty.h5: holds no events"),
    (["inspect", "adir"], "adir: is a directory"),
    (["inspect", "notes.txt"], "notes.txt: not an HDF5 file"),
    (["inspect", "events.h5", "--events", "-5"], "--events must be >= 0"),
    (["generate", "--process", "wprime", "--events", "2", "--seed", "1", "--out", "w.h5", "--mx", "-5"],
     "--mx must be a finite mass >= 1 GeV"),
    (["generate", "--process", "wprime", "--events", "2", "--seed", "1", "--out", "w.h5", "--mwprime", "inf"],
     "--mwprime must be a finite mass"),
])
def test_more_bad_data_input_is_one_line(tmp_path, argv, expected):
    pt, eta, phi, labels = _events(10)
    write_lhco(tmp_path / "events.h5", pt, eta, phi, labels)
    shutil.copy(tmp_path / "events.h5", tmp_path / "other.h5")
    write_lhco(tmp_path / "empty.h5", pt[:0], eta[:0], phi[:0], labels[:0])
    (tmp_path / "notes.txt").write_text("a file")
    (tmp_path / "adir").mkdir()
    before, events = tree(tmp_path), (tmp_path / "events.h5").read_bytes()
    assert_one_line_error(hybridjet(tmp_path, *argv), expected)
    assert tree(tmp_path) == before
    assert (tmp_path / "events.h5").read_bytes() == events == (tmp_path / "other.h5").read_bytes()


# ------------------------------------------------------------------------------------------ outputs onto files
def test_data_outputs_never_replace_a_file_of_another_kind(tmp_path):
    """generate, mix and cluster replace only what they write themselves: the LHCO R&D file (an event file no
    hybridjet wrote), a jets.h5 where events were asked for, a user's notes."""
    rng = np.random.default_rng(0)
    pt = np.zeros((20, 700))
    pt[:, :3] = rng.uniform(100, 1500, (20, 3))
    eta, phi = np.zeros((20, 700)), np.zeros((20, 700))
    rnd = tmp_path / "events_anomalydetection.h5"  # as downloaded: pandas wrote it, not hybridjet
    pd.DataFrame(pack_rows(pt, eta, phi, rng.integers(0, 2, 20))).to_hdf(rnd, key="df", mode="w")
    ours = tmp_path / "ours.h5"
    write_lhco(ours, pt, eta, phi, rng.integers(0, 2, 20))
    notes = tmp_path / "notes.txt"
    notes.write_text("keep")
    jets = tmp_path / "jets.h5"
    write_jets(jets, JetArrays(np.zeros((2, 1, 4), np.float32), np.zeros((2, 1), bool), np.zeros(2, np.int32),
                               np.zeros((2, 1, 3), np.float32), np.zeros(2, np.int8), np.arange(2)))
    before = {p: p.read_bytes() for p in (rnd, notes, jets)}
    for argv, victim, what in (
        (("generate", "--process", "qcd", "--events", BIG, "--seed", "1", "--out", rnd), rnd, "an event file"),
        (("mix", "--signal", ours, "--background", ours, "--signal-fraction", "0.5", "--seed", "0", "--out", jets), jets,
         "an event file"),
        (("cluster", ours, "--out", notes), notes, "a jets.h5 file"),
        (("cluster", ours, "--out", rnd), rnd, "a jets.h5 file"),
    ):
        quiet = () if argv[0] == "mix" else ("--no-progress",)
        last = assert_one_line_error(hybridjet(tmp_path, *argv, *quiet), str(victim.name))
        assert f"exists and is not {what} hybridjet wrote" in last, last
    assert {p: p.read_bytes() for p in before} == before
    assert hybridjet(tmp_path, "cluster", ours, "--out", jets, "--no-progress").returncode == 0  # its own kind


# ------------------------------------------------------------------------------------------ values and sizes
@pytest.mark.parametrize(("argv", "expected"), [
    (("cluster", "IN", "--out", "j.h5", "--n-jets", "100000000"), "--n-jets: expected at most 700"),
    (("generate", "--process", "qcd", "--events", "5", "--seed", "900000001", "--out", "g.h5"),
     "--seed: expected an integer in [0, 899,999,999]"),  # before: the same events as --seed 1
    (("generate", "--process", "qcd", "--events", "1001", "--seed", "-1", "--out", "g.h5"), "--seed: expected"),
    (("generate", "--process", "wprime", "--events", "5", "--seed", "1", "--mwprime", "20000", "--out", "g.h5"),
     "--mwprime: 20000 GeV cannot be made at sqrt(s) = 13000 GeV"),
    (("generate", "--process", "qcd", "--events", "5", "--seed", "1", "--mx", "300", "--out", "g.h5"),
     "--mx: a mass of the W' signal; --process qcd has none"),
    (("mix", "--signal", "IN", "--background", "IN", "--signal-fraction", "0.5", "--seed", "0", "--out", "m.h5"),
     "is both the signal and the background"),
])
def test_values_that_cannot_be_meant_are_one_line_before_any_work(tmp_path, argv, expected):
    pt = np.zeros((4, 700))
    pt[:, :3] = 500.0
    write_lhco(tmp_path / "in.h5", pt, np.zeros((4, 700)), np.zeros((4, 700)), np.array([0, 1, 0, 1]))
    argv = [str(tmp_path / "in.h5") if a == "IN" else a for a in argv]
    last = assert_one_line_error(hybridjet(tmp_path, *argv))
    assert expected in last, last
    assert not [p for p in tmp_path.iterdir() if p.name != "in.h5"]


@pytest.mark.parametrize(("label", "expected"), [(np.array([0, 1, 256, 257], np.int16), "values other than -1, 0, 1"),
                                                 (np.array([0.0, 0.9, 1.0, 0.0]), "holds float64 values")])
def test_labels_are_checked_before_they_are_cast(tmp_path, label, expected):
    """Before: 256/257 wrapped to 0/1 and 0.9 was cut to 0 by the cast to int8, then read as valid labels."""
    import h5py

    path = tmp_path / "jets.h5"
    write_jets(path, JetArrays(np.tile([[[100.0, 0, 0, 101.0]]], (4, 1, 1)).astype(np.float32), np.ones((4, 1), bool),
                               np.ones(4, np.int32), np.zeros((4, 1, 3), np.float32), np.zeros(4, np.int8),
                               np.arange(4)))
    with h5py.File(path, "a") as f:
        del f["label"]
        f["label"] = label
    last = assert_one_line_error(hybridjet(tmp_path, "inspect", path))
    assert expected in last, last


def test_a_jets_file_declaring_a_hundred_million_jet_slots_is_one_line(tmp_path):
    import h5py

    path = tmp_path / "jets.h5"
    write_jets(path, JetArrays(np.zeros((2, 1, 4), np.float32), np.zeros((2, 1), bool), np.zeros(2, np.int32),
                               np.zeros((2, 1, 3), np.float32), np.zeros(2, np.int8), np.arange(2)))
    with h5py.File(path, "a") as f:
        for name, shape in (("jets", (2, 10**8, 4)), ("jet_mask", (2, 10**8)), ("tau", (2, 10**8, 3))):
            dtype = f[name].dtype
            del f[name]
            f.create_dataset(name, shape=shape, dtype=dtype, chunks=(1, 1024) + shape[2:], compression="gzip")
    last = assert_one_line_error(hybridjet(tmp_path, "inspect", path))
    assert "declares shape" in last or "jet slots per event" in last, last
