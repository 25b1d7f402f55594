"""The dask executor: chunks on a dask.distributed cluster give exactly the local executor's jets.h5."""

from __future__ import annotations

import numpy as np
import pytest

from hybridjet.data.cluster import cluster
from hybridjet.data.store import read_jets
from hybridjet.errors import HybridjetError

distributed = pytest.importorskip("dask.distributed", reason="dask[distributed] is in the test extra")

FIELDS = ("jets", "jet_mask", "tau", "n_particles", "label", "event_id")


def test_dask_executor_equals_local(lhco_file, tmp_path):
    path, _ = lhco_file
    local = cluster(path, tmp_path / "local.h5", workers=1, chunk_size=70, progress=False)
    # in-process 2-worker cluster (threads): fast to start; the address goes the --scheduler way
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as lc:
        summary = cluster(path, tmp_path / "dask.h5", chunk_size=70, progress=False, executor="dask",
                          scheduler=lc.scheduler_address)
    a, b = read_jets(tmp_path / "local.h5"), read_jets(tmp_path / "dask.h5")
    for name in FIELDS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    def provenance(attrs):  # everything but the creation time, which differs by the clock
        return {k: v for k, v in attrs.items() if k != "created"}

    assert provenance(a.attrs) == provenance(b.attrs)
    assert summary.n_events == local.n_events == 300 and summary.workers == 2
    assert summary.n_fewer_jets == local.n_fewer_jets


def test_dask_executor_errors(lhco_file, tmp_path, capsys):
    from hybridjet.cli import main

    path, _ = lhco_file
    with pytest.raises(HybridjetError, match="executor"):
        cluster(path, tmp_path / "x.h5", executor="spark", progress=False)
    assert main(["cluster", str(path), "--out", str(tmp_path / "x.h5"), "--scheduler", "tcp://127.0.0.1:1"]) == 2
    assert "--scheduler needs --executor dask" in capsys.readouterr().err
