"""LHCO layout: round trips with pandas, chunked reading, and every bad-input error."""

from __future__ import annotations

import awkward as ak
import h5py
import numpy as np
import pandas as pd
import pytest

from hybridjet.data.lhco import (
    count_events,
    iter_lhco,
    read_answer_key,
    read_lhco,
    write_lhco,
    write_lhco_particles,
)
from hybridjet.errors import InputFileError


def _frame(pt, eta, phi, labels=None):
    from hybridjet.data.lhco import pack_rows

    return pd.DataFrame(pack_rows(pt, eta, phi, labels))


@pytest.mark.parametrize("labelled", [True, False])
@pytest.mark.parametrize("compression", [None, "gzip"])
def test_our_file_opens_with_pandas(tmp_path, labelled, compression, make_events):
    pt, eta, phi, labels = make_events(40, seed=2)
    path = tmp_path / "ours.h5"
    write_lhco(path, pt, eta, phi, labels if labelled else None, compression=compression)
    df = pd.read_hdf(path)
    assert df.shape == (40, 2101 if labelled else 2100)
    np.testing.assert_array_equal(df.values, _frame(pt, eta, phi, labels if labelled else None).values)
    assert list(df.columns) == list(range(df.shape[1]))


@pytest.mark.parametrize("complib", [None, "zlib"])
def test_reads_pandas_written_files(tmp_path, complib, make_events):
    pt, eta, phi, labels = make_events(50, seed=3)
    path = tmp_path / "pandas.h5"
    kwargs = {"complevel": 5, "complib": complib} if complib else {}
    _frame(pt, eta, phi, labels).to_hdf(path, key="df", mode="w", format="fixed", **kwargs)
    events = read_lhco(path)
    assert len(events) == 50
    np.testing.assert_array_equal(events.labels, labels.astype(np.int8))
    np.testing.assert_array_equal(events.event_id, np.arange(50))
    for i in (0, 7, 49):
        keep = pt[i] > 0
        np.testing.assert_allclose(ak.to_numpy(events.particles[i].pt), pt[i][keep])
        np.testing.assert_allclose(ak.to_numpy(events.particles[i].eta), eta[i][keep])
        np.testing.assert_allclose(ak.to_numpy(events.particles[i].phi), phi[i][keep])
        assert ak.all(events.particles[i].mass == 0)


def test_unlabelled_black_box(tmp_path, make_events):
    pt, eta, phi, _ = make_events(10, seed=4)
    path = tmp_path / "bb.h5"
    _frame(pt, eta, phi).to_hdf(path, key="df", mode="w")
    events = read_lhco(path)
    assert events.labels is None and len(events) == 10


def test_chunked_equals_full(lhco_file):
    path, _ = lhco_file
    full = read_lhco(path)
    chunks = list(iter_lhco(path, chunk_size=37))
    assert [len(c) for c in chunks][:2] == [37, 37] and sum(len(c) for c in chunks) == 300
    joined = ak.concatenate([c.particles for c in chunks])
    assert ak.all(ak.ravel(joined.pt) == ak.ravel(full.particles.pt))
    np.testing.assert_array_equal(np.concatenate([c.labels for c in chunks]), full.labels)
    np.testing.assert_array_equal(np.concatenate([c.event_id for c in chunks]), np.arange(300))
    part = read_lhco(path, start=100, stop=150)
    np.testing.assert_array_equal(part.event_id, np.arange(100, 150))
    assert ak.all(ak.ravel(part.particles.pt) == ak.ravel(full.particles[100:150].pt))
    assert count_events(path) == 300


def test_particles_round_trip(tmp_path, lhco_file):
    path, _ = lhco_file
    events = read_lhco(path)
    out = tmp_path / "copy.h5"
    write_lhco_particles(out, events.particles, events.labels)
    again = read_lhco(out)
    assert ak.all(ak.ravel(again.particles.phi) == ak.ravel(events.particles.phi))
    np.testing.assert_array_equal(again.labels, events.labels)


def test_answer_key(tmp_path):
    key = tmp_path / "key.txt"
    key.write_text("1\n0\n0.0\n\n1.0\n")
    np.testing.assert_array_equal(read_answer_key(key), [1, 0, 0, 1])
    key.write_text("1\n2\n")
    with pytest.raises(InputFileError, match="line 2"):
        read_answer_key(key)


# ------------------------------------------------------------------------------------------- bad input
def _bad_files(tmp_path, random_events):
    pt, eta, phi, labels = random_events(20, seed=5)
    files = {}
    files["missing"] = (tmp_path / "nope.h5", "file not found")
    txt = tmp_path / "text.h5"
    txt.write_text("pT eta phi\n1 2 3\n")
    files["not_hdf5"] = (txt, "not an HDF5 file")
    wrong_key = tmp_path / "key.h5"
    with h5py.File(wrong_key, "w") as f:
        f["events"] = np.zeros((3, 2101))
    files["wrong_key"] = (wrong_key, "expected key 'df'")
    cols = tmp_path / "cols.h5"
    pd.DataFrame(np.zeros((5, 30))).to_hdf(cols, key="df", mode="w")
    files["columns"] = (cols, "2100 or 2101 columns")
    nan = tmp_path / "nan.h5"
    bad = pt.copy()
    bad[3, 0] = np.nan
    _frame(bad, eta, phi, labels).to_hdf(nan, key="df", mode="w")
    files["nan"] = (nan, "row 3, particle 0: pT is NaN or inf")
    lab = tmp_path / "labels.h5"
    bad_labels = labels.astype(float)
    bad_labels[4] = 2.0
    _frame(pt, eta, phi, bad_labels).to_hdf(lab, key="df", mode="w")
    files["labels"] = (lab, "expected labels 0 or 1")
    trunc = tmp_path / "trunc.h5"
    write_lhco(trunc, pt, eta, phi, labels)
    data = trunc.read_bytes()
    trunc.write_bytes(data[: len(data) // 2])
    files["truncated"] = (trunc, "truncated")
    table = tmp_path / "table.h5"
    _frame(pt[:, :], eta, phi, labels).iloc[:, :10].to_hdf(table, key="df", mode="w", format="table")
    files["table"] = (table, "'table' format")
    # before: a NaN label was reported as a pT/eta/phi problem, and impossible particles clustered silently
    nan_label = tmp_path / "nan_label.h5"
    bad_labels = labels.astype(float)
    bad_labels[6] = np.nan
    _frame(pt, eta, phi, bad_labels).to_hdf(nan_label, key="df", mode="w")
    files["nan_label"] = (nan_label, "row 6 has label nan; expected labels 0 or 1")
    for name, column, value, expected in (("huge_pt", pt, 1e30, "pT = 1e+30; expected at most 100000 GeV"),
                                          ("huge_eta", eta, 1e6, "eta = 1e+06; expected |eta| <= 50"),
                                          ("phi_degrees", phi, 270.0, "phi = 270; expected phi in radians")):
        bad = column.copy()
        bad[2, 1] = value
        arrays = {"pt": pt, "eta": eta, "phi": phi}
        arrays[{id(pt): "pt", id(eta): "eta", id(phi): "phi"}[id(column)]] = bad
        path = tmp_path / f"{name}.h5"
        _frame(arrays["pt"], arrays["eta"], arrays["phi"], labels).to_hdf(path, key="df", mode="w")
        files[name] = (path, f"row 2, particle 1: {expected}")
    crafted = tmp_path / "crafted.h5"  # 2^40 rows declared in a few kB: reading it would allocate 17 PB
    write_lhco(crafted, pt, eta, phi, labels)
    with h5py.File(crafted, "a") as f:
        del f["df/block0_values"]
        f.create_dataset("df/block0_values", shape=(1 << 40, 2101), dtype="f8", chunks=(1, 2101),
                         compression="gzip")
    files["crafted"] = (crafted, "declares shape (1099511627776, 2101)")
    return files


def test_bad_inputs_raise_one_line_errors(tmp_path, make_events):
    for name, (path, expected) in _bad_files(tmp_path, make_events).items():
        with pytest.raises(InputFileError) as info:
            read_lhco(path)
        message = str(info.value)
        assert expected in message, (name, message)
        assert "\n" not in message and str(path) in message


def test_bad_inputs_through_cli(tmp_path, capsys, make_events):
    from hybridjet.cli import main

    for name, (path, expected) in _bad_files(tmp_path, make_events).items():
        code = main(["cluster", str(path), "--out", str(tmp_path / "jets.h5"), "--no-progress"])
        err = capsys.readouterr().err.strip()
        assert code == 2, name
        assert err.startswith("hybridjet: error:") and expected in err and "\n" not in err, (name, err)
        assert "Traceback" not in err
    assert not (tmp_path / "jets.h5").exists()


def test_blosc_without_plugin_message(tmp_path, monkeypatch, make_events):
    hdf5plugin = pytest.importorskip("hdf5plugin")
    from hybridjet.data import lhco

    pt, eta, phi, labels = make_events(5, seed=6)
    path = tmp_path / "blosc.h5"
    write_lhco(path, pt, eta, phi, labels)
    with h5py.File(path, "a") as f:
        data = f["df/block0_values"][...]
        del f["df/block0_values"]
        f.create_dataset("df/block0_values", data=data, **hdf5plugin.Blosc())
    assert len(read_lhco(path)) == 5  # readable with the plugin
    monkeypatch.setattr(lhco, "HAVE_HDF5PLUGIN", False)
    monkeypatch.setattr(h5py.h5z, "filter_avail", lambda code: code != 32001)

    def fail(*args, **kwargs):
        raise OSError("Can't read data (required filter 'blosc' is not registered)")

    monkeypatch.setattr(lhco, "np", _NpProxy(fail))
    with pytest.raises(InputFileError, match="pip install hdf5plugin"):
        read_lhco(path)


class _NpProxy:
    """numpy with ``asarray`` failing as h5py does when a filter is missing (simulated in the test only)."""

    def __init__(self, fail):
        self._fail = fail

    def __getattr__(self, name):
        return self._fail if name == "asarray" else getattr(np, name)
