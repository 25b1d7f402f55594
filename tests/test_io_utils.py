"""Atomic writes and strict JSON (``hybridjet.io_utils``)."""

from __future__ import annotations

import json
import math

import numpy as np

from hybridjet.io_utils import strict_json, write_json


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
