from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hybridjet.errors import HybridjetError, InputFileError
from hybridjet.eval.scores import list_splits, read_scores, write_scores


def test_roundtrip_and_add_split_keeps_others(tmp_path: Path) -> None:
    path = tmp_path / "run" / "scores.h5"
    write_scores(
        path, "test", [3, 1, 2], [0.9, 0.1, 0.4], [1, 0, 0], attrs={"model": "m", "score_kind": "probability"}
    )
    write_scores(path, "val", [7, 8], [0.2, 0.8], [0, 1], attrs={"note": "second"})
    assert list_splits(path) == ["test", "val"]
    test = read_scores(path)
    assert test.event_id.dtype == np.int64 and test.score.dtype == np.float32 and test.label.dtype == np.int8
    assert test.event_id.tolist() == [3, 1, 2]
    assert test.label.tolist() == [1, 0, 0]
    assert test.attrs["model"] == "m" and test.attrs["note"] == "second"
    assert test.attrs["score_kind"] == "probability" and "created" in test.attrs
    assert len(read_scores(path, "val")) == 2
    assert not list(path.parent.glob(".*tmp"))  # no temporary files left behind


def test_architecture_argument_order_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "scores.h5"
    write_scores(path, np.array([1, 2]), np.array([0.3, 0.7]), np.array([0, 1]), "test")
    assert read_scores(path, "test").event_id.tolist() == [1, 2]


def test_missing_file_and_split(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="no such file"):
        read_scores(tmp_path / "nope.h5")
    path = tmp_path / "scores.h5"
    write_scores(path, "val", [1, 2], [0.3, 0.7], [0, 1])
    with pytest.raises(InputFileError, match=r"no split 'test' \(splits in file: val\)"):
        read_scores(path, "test")
    (tmp_path / "junk.h5").write_text("not hdf5")
    with pytest.raises(InputFileError, match="not an HDF5 file"):
        read_scores(tmp_path / "junk.h5")


def test_write_validates(tmp_path: Path) -> None:
    path = tmp_path / "scores.h5"
    with pytest.raises(HybridjetError, match="duplicate"):
        write_scores(path, "test", [1, 1], [0.3, 0.7], [0, 1])
    with pytest.raises(HybridjetError, match="one length"):
        write_scores(path, "test", [1, 2], [0.3], [0, 1])
    with pytest.raises(HybridjetError, match="score_kind"):
        write_scores(path, "test", [1, 2], [0.3, 0.7], [0, 1], attrs={"score_kind": "odds"})
    assert not path.exists()
