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
