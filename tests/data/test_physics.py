"""Impossible values in jets.h5 are refused with one line naming the file, the event and the field
(``hybridjet.data.physics``), wherever the file is read: training, scoring, the Python API."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from hybridjet.data.store import read_jets, write_jets
from hybridjet.errors import InputFileError

ROOT = Path(__file__).resolve().parents[2]


def _spoiled(make_toy_jets, tmp_path, name, spoil):
    arrays = make_toy_jets(300)
    spoil(arrays)
    path = tmp_path / f"{name}.h5"
    write_jets(path, arrays)
    return path


SPOILS = {
    # before: 1e30 trained through the normalisation (test AUC 0.985 -> 0.845), negative energies trained silently
    "huge": (lambda a: a.jets.__setitem__((5, 0), 1e30), "event 5, jet 0: four-vector (1e+30"),
    "negative_energy": (lambda a: a.jets.__setitem__((7, 1, 3), -5.0), "event 7, jet 1: E = -5 GeV; expected E >= 0"),
    "tachyon": (lambda a: a.jets.__setitem__((8, 0, 3), 10.0), "event 8, jet 0: E = 10 GeV below |p|"),
    # before: reported as "NaN/inf in jets or tau"
    "negative_count": (lambda a: a.n_particles.__setitem__(9, -4), "dataset 'n_particles', event 9: -4"),
    "negative_tau": (lambda a: a.tau.__setitem__((3, 0, 1), -0.5), "dataset 'tau', event 3, jet 0"),
    "nan": (lambda a: a.jets.__setitem__((11, 0, 2), np.nan), "dataset 'jets', event 11: NaN or inf"),
}


@pytest.mark.parametrize("name", SPOILS)
def test_impossible_jets_are_refused_by_the_reader(make_toy_jets, tmp_path, name):
    spoil, expected = SPOILS[name]
    path = _spoiled(make_toy_jets, tmp_path, name, spoil)
    with pytest.raises(InputFileError) as info:
        read_jets(path)
    assert expected in str(info.value) and str(path) in str(info.value) and "\n" not in str(info.value)


def test_masked_slots_and_massless_jets_are_fine(make_toy_jets, tmp_path):
    arrays = make_toy_jets(50)
    arrays.jet_mask[3, 1] = False
    arrays.jets[3, 1] = -7.0  # an absent jet's slot is not read by any feature
    px, py, pz = arrays.jets[4, 0, :3].astype(np.float64)
    arrays.jets[4, 0, 3] = np.float32(np.sqrt(px**2 + py**2 + pz**2))  # massless, up to float32 rounding
    write_jets(tmp_path / "ok.h5", arrays)
    assert len(read_jets(tmp_path / "ok.h5")) == 50


def test_a_dataset_declaring_more_than_its_file_holds_is_refused(make_toy_jets, tmp_path):
    """A few kB declaring 2^36 events: reading it would allocate hundreds of GB of fill values."""
    path = tmp_path / "crafted.h5"
    write_jets(path, make_toy_jets(20))
    with h5py.File(path, "a") as f:
        del f["label"]
        f.create_dataset("label", shape=(1 << 36,), dtype="i1", chunks=(1024,), compression="gzip")
    from hybridjet.data.store import read_labels

    with pytest.raises(InputFileError, match="declares shape"):
        read_labels(path)


def test_fit_refuses_impossible_values_before_any_run_directory(make_toy_jets, tmp_path):
    path = _spoiled(make_toy_jets, tmp_path, "huge", SPOILS["huge"][0])
    run = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "hybridjet.cli", "fit", "-c", str(ROOT / "configs" / "ablation.yaml"),
         "--data.data", str(path), "--trainer.default_root_dir", str(run)], capture_output=True, text=True,
        timeout=300)
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"hybridjet: error: {path}: dataset 'jets', event 5") and "GPU available" not in result.stderr
    assert not run.exists()
