"""Atomic writes and strict JSON (``hybridjet.io_utils``)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from hybridjet.errors import HybridjetError
from hybridjet.io_utils import atomic_path, strict_json, write_json


def _strict(text: str) -> object:
    def refuse(name: str) -> None:
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_strict_json_writes_non_finite_numbers_as_null(tmp_path):
    data = {"inf": math.inf, "ninf": -math.inf, "nan": math.nan, "f32": np.float32("inf"), "ok": np.float64(0.5),
            "n": np.int64(3), "flag": np.bool_(True), "list": [1.0, math.inf, np.array([2.0, np.nan])],
            "nested": {"x": (math.nan,)}, "none": None, "text": "inf"}
    expected = {"inf": None, "ninf": None, "nan": None, "f32": None, "ok": 0.5, "n": 3, "flag": True,
                "list": [1.0, None, [2.0, None]], "nested": {"x": [None]}, "none": None, "text": "inf"}
    assert _strict(strict_json(data)) == expected
    write_json(tmp_path / "m.json", data)
    assert _strict((tmp_path / "m.json").read_text()) == expected
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_an_unwritable_destination_is_a_user_error_and_an_oserror(tmp_path):
    (tmp_path / "file").write_text("x")
    (tmp_path / "dir").mkdir()
    for final in (tmp_path / "file" / "out.json", tmp_path / "dir"):
        with pytest.raises(HybridjetError) as info, atomic_path(final) as tmp:
            tmp.write_text("{}")
        assert isinstance(info.value, OSError)  # code tolerating unwritable outputs (caches) still catches it
        assert str(final) in str(info.value) and "\n" not in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir", "file"] and not list((tmp_path / "dir").iterdir())


def test_outputs_get_the_umask_s_modes_not_private_ones(tmp_path):
    """Before: every atomically written file was 0600 and every folder 0700 (mkstemp, mkdtemp) under umask 022."""
    import os

    from hybridjet.io_utils import atomic_dir

    old = os.umask(0o022)
    try:
        write_json(tmp_path / "m.json", {"a": 1})
        with atomic_dir(tmp_path / "folder") as tmp:
            (tmp / "inner").mkdir()
            fd = os.open(tmp / "inner" / "private.bin", os.O_WRONLY | os.O_CREAT, 0o600)  # as safetensors writes
            os.close(fd)
        os.umask(0o027)
        write_json(tmp_path / "group.json", {"a": 1})
    finally:
        os.umask(old)
    mode = lambda p: (tmp_path / p).stat().st_mode & 0o777  # noqa: E731
    assert (mode("m.json"), mode("folder"), mode("folder/inner"), mode("folder/inner/private.bin")) == (
        0o644, 0o755, 0o755, 0o644)
    assert mode("group.json") == 0o640


def test_a_folder_output_never_replaces_a_folder_it_did_not_write(tmp_path):
    """Before: atomic_dir removed whatever was at the destination (model export --out onto a user's folder)."""
    from hybridjet.errors import OutputPathError
    from hybridjet.io_utils import atomic_dir

    mine = tmp_path / "out"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    with pytest.raises(OutputPathError, match="holding 1 entry .thesis.tex."), atomic_dir(mine) as tmp:
        (tmp / "model.bin").write_text("x")
    assert (mine / "thesis.tex").read_text() == "years of work" and sorted(p.name for p in tmp_path.iterdir()) == [
        "out"]
    ours = lambda d: (d / "marker").is_file()  # noqa: E731
    for _ in range(2):  # an empty folder is taken, and then its own earlier output is replaced
        with atomic_dir(tmp_path / "new", replaces=ours) as tmp:
            (tmp / "marker").write_text("1")
    (tmp_path / "empty").mkdir()
    with atomic_dir(tmp_path / "empty") as tmp:
        (tmp / "marker").write_text("1")
    assert (tmp_path / "new" / "marker").is_file() and (tmp_path / "empty" / "marker").is_file()
    with pytest.raises(OutputPathError, match="holds the input"), atomic_dir(tmp_path, inputs=(mine / "thesis.tex",)):
        pass


def test_a_file_output_replaces_only_a_file_of_its_kind(tmp_path):
    from hybridjet.errors import OutputPathError
    from hybridjet.io_utils import check_writable

    data = tmp_path / "data.txt"
    data.write_text("keep")
    with pytest.raises(OutputPathError, match="is also the input"):
        check_writable(data, inputs=(data,))
    with pytest.raises(OutputPathError, match="is not a results file"):
        check_writable(data, replaces=lambda p: p.read_text() == "results", what="a results file")
    data.write_text("results")
    check_writable(data, replaces=lambda p: p.read_text() == "results", what="a results file")


def test_a_full_disk_is_one_line_naming_the_output_and_leaves_no_temporary(small_disk):
    from hybridjet.errors import OutputPathError
    from hybridjet.io_utils import atomic_dir

    full_disk = small_disk("64k")
    with pytest.raises(OutputPathError, match="no space left on device") as info, \
            atomic_path(full_disk / "big.bin") as tmp:
        tmp.write_bytes(b"x" * (1 << 20))
    assert str(full_disk / "big.bin") in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(OutputPathError, match="no space left"), atomic_dir(full_disk / "folder") as tmp:
        (tmp / "big.bin").write_bytes(b"x" * (1 << 20))
    assert list(full_disk.iterdir()) == []
