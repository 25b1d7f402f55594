"""Pythia 8 generation (real Pythia and fastjet), determinism, physics sanity, mixing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hybridjet.data.cluster import cluster
from hybridjet.data.generate import generate, mix
from hybridjet.data.kinematics import jet_kinematics
from hybridjet.data.lhco import read_lhco
from hybridjet.data.store import read_jets
from hybridjet.errors import HybridjetError


def _values(path):
    return pd.read_hdf(path).values


def test_generation_is_deterministic(tmp_path):
    a = generate("wprime", 6, 11, tmp_path / "a.h5", progress=False)
    generate("wprime", 6, 11, tmp_path / "b.h5", progress=False)
    generate("wprime", 6, 12, tmp_path / "c.h5", progress=False)
    va, vb, vc = _values(tmp_path / "a.h5"), _values(tmp_path / "b.h5"), _values(tmp_path / "c.h5")
    np.testing.assert_array_equal(va, vb)
    assert not np.array_equal(va, vc)
    assert a.n_events == 6 and 0 < a.trigger_efficiency <= 1
    assert (va[:, 2100] == 1).all()
    events = read_lhco(tmp_path / "a.h5")
    assert (np.asarray(events.particles.pt[:, 0]) > 0).all()


def test_a_second_generate_into_the_same_file_is_refused_while_the_first_runs(tmp_path):
    """Before: two generates of one output shared its chunks; the one that finished first removed them, and the
    other crashed with a traceback (FileNotFoundError of a chunk's temporary file)."""
    import subprocess
    import sys
    import time

    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(tmp_path / '.qcd.h5.lock')!r}, os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\nos.write(fd, b'4242')\nprint('held', flush=True)\ntime.sleep(60)\n")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(HybridjetError, match=r"another hybridjet process \(pid 4242\) is generating events into "
                                                 r"qcd.h5"):
            generate("qcd", 3, 5, tmp_path / "qcd.h5", progress=False)
    finally:
        holder.kill()
        holder.wait()
    time.sleep(0.1)
    generate("qcd", 3, 5, tmp_path / "qcd.h5", progress=False)  # the first gone: this one runs, and tidies up
    assert sorted(p.name for p in tmp_path.iterdir()) == ["qcd.h5"]


@pytest.mark.slow
def test_the_same_events_whatever_the_workers(tmp_path):
    one = generate("qcd", 7, 5, tmp_path / "w1.h5", workers=1, progress=False, chunk_events=3)
    generate("qcd", 7, 5, tmp_path / "w2.h5", workers=2, progress=False, chunk_events=3)
    generate("qcd", 3, 5, tmp_path / "c0.h5", progress=False)  # chunk 0 is the seed's own stream
    w1 = _values(tmp_path / "w1.h5")
    np.testing.assert_array_equal(_values(tmp_path / "w2.h5"), w1)
    np.testing.assert_array_equal(w1[:3], _values(tmp_path / "c0.h5"))
    assert len(w1) == one.n_events == 7 and not np.array_equal(w1[:3], w1[3:6])  # chunks: their own streams
    assert (w1[:, 2100] == 0).all()
    assert not list(tmp_path.glob(".*chunks"))  # the chunks go once the file is written


@pytest.mark.slow
def test_a_killed_generate_resumes_to_the_same_file(tmp_path, monkeypatch):
    import os
    import signal
    import subprocess
    import sys
    import time

    code = ("import sys; from hybridjet.data.generate import generate; "
            "generate('qcd', 40, 9, sys.argv[1], progress=False, chunk_events=4)")
    out = tmp_path / "killed.h5"
    proc = subprocess.Popen([sys.executable, "-c", code, str(out)])
    chunks = tmp_path / ".killed.h5.chunks"
    deadline = time.monotonic() + 240
    while not (chunks / "chunk00001.json").exists():
        assert proc.poll() is None and time.monotonic() < deadline, "the generate ended before two chunks"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    done = {int(p.stem[5:]) for p in chunks.glob("chunk*.json")}
    assert len(done) >= 2
    from hybridjet.data import generate as generate_module

    made: list[int] = []
    real_chunk = generate_module._generate_chunk
    monkeypatch.setattr(generate_module, "_generate_chunk", lambda *job: (made.append(job[3]), real_chunk(*job)))
    resumed = generate("qcd", 40, 9, out, progress=False, chunk_events=4)
    assert sorted(made) == sorted(set(range(10)) - done)  # only the chunks the killed run had not finished
    monkeypatch.undo()
    generate("qcd", 40, 9, tmp_path / "whole.h5", progress=False, chunk_events=4)
    np.testing.assert_array_equal(_values(out), _values(tmp_path / "whole.h5"))
    assert resumed.n_events == 40 and not chunks.exists()
    # other settings do not reuse the chunks: a run killed at another seed starts anew
    from hybridjet.data.generate import ChunkStore

    store = ChunkStore(tmp_path / "other.h5", {"seed": 1})
    (store.dir / "chunk00000.h5").write_text("x")
    store.save_stats(0, {})
    assert ChunkStore(tmp_path / "other.h5", {"seed": 1}).done(0)
    assert not ChunkStore(tmp_path / "other.h5", {"seed": 2}).done(0)


@pytest.mark.slow
def test_physics_sanity_resonance_masses(tmp_path):
    windows = {}
    for process in ("wprime", "qcd"):
        generate(process, 60, 3, tmp_path / f"{process}.h5", progress=False)
        cluster(tmp_path / f"{process}.h5", tmp_path / f"{process}_jets.h5", progress=False)
        jets = read_jets(tmp_path / f"{process}_jets.h5")
        assert jets.jet_mask.all()
        kin = jet_kinematics(jets.jets)
        assert (kin["pt"][:, 0] > 1000).all()
        heavy, light = kin["mass"].max(axis=1), kin["mass"].min(axis=1)
        windows[process] = np.mean((heavy > 400) & (heavy < 600) & (light > 60) & (light < 140))
        if process == "wprime":
            assert 350 < np.median(heavy) < 650 and 50 < np.median(light) < 160
            tau21 = jets.tau[..., 1] / jets.tau[..., 0]
            assert np.median(tau21) < 0.5  # two-prong jets
        else:
            assert not 350 < np.median(heavy) < 650
    assert windows["wprime"] > 0.5 and windows["qcd"] < 0.15, windows


def test_mix(tmp_path, make_events):
    from hybridjet.data.lhco import write_lhco

    pt, eta, phi, _ = make_events(40, seed=8)
    write_lhco(tmp_path / "s.h5", pt[:10], eta[:10], phi[:10])
    write_lhco(tmp_path / "b.h5", pt[10:], eta[10:], phi[10:])
    summary = mix(tmp_path / "s.h5", tmp_path / "b.h5", tmp_path / "m.h5", 0.25, seed=1)
    assert (summary.n_signal, summary.n_background) == (10, 30)
    mixed = _values(tmp_path / "m.h5")
    assert mixed.shape == (40, 2101) and mixed[:, 2100].sum() == 10
    sig_rows = {tuple(r) for r in np.round(mixed[mixed[:, 2100] == 1, :2100], 12)}
    original = {tuple(r) for r in np.round(_values(tmp_path / "s.h5"), 12)}
    assert sig_rows == original
    assert not np.array_equal(mixed[:, 2100], np.sort(mixed[:, 2100])[::-1])  # shuffled
    again = mix(tmp_path / "s.h5", tmp_path / "b.h5", tmp_path / "m2.h5", 0.25, seed=1)
    assert again.n_signal == 10
    np.testing.assert_array_equal(_values(tmp_path / "m2.h5"), mixed)
    small = mix(tmp_path / "s.h5", tmp_path / "b.h5", tmp_path / "m3.h5", 0.1, seed=2, n_events=20)
    assert (small.n_signal, small.n_background) == (2, 18)
    with pytest.raises(HybridjetError, match="holds 10 events"):
        mix(tmp_path / "s.h5", tmp_path / "b.h5", tmp_path / "m4.h5", 0.5, seed=1, n_events=40)


def test_generate_cli_and_errors(tmp_path, capsys):
    from hybridjet.cli import main

    assert main(["generate", "--process", "wprime", "--events", "2", "--seed", "1", "--out", str(tmp_path / "g.h5"),
                 "--no-progress"]) == 0
    assert read_lhco(tmp_path / "g.h5").labels.tolist() == [1, 1]
    assert main(["generate", "--process", "wprime", "--events", "2", "--seed", "1", "--out", str(tmp_path / "x.h5"),
                 "--mx", "3000", "--my", "600"]) == 2
    assert "must exceed" in capsys.readouterr().err
    assert main(["mix", "--signal", str(tmp_path / "g.h5"), "--background", str(tmp_path / "missing.h5"),
                 "--signal-fraction", "0.5", "--seed", "0", "--out", str(tmp_path / "m.h5")]) == 2
    assert "file not found" in capsys.readouterr().err
