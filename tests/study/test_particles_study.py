"""Issue 35 at the test suite's size: a study of the peers and the hybrid on jet constituents beside the trees on
the jets' high-level features, on the same events and splits, from the README's command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from hybridjet.cli import main


def _config(tmp_path: Path, jets: Path, methods: dict[str, Any]) -> Path:
    cfg = {"name": "particles", "out": str(tmp_path / "out"), "report": str(tmp_path / "report"),
           "data": {"jets": str(jets)}, "features": "particles", "sample": {"test_events": 100, "val_events": 60},
           "curve": {"sizes": [60, 120], "seeds_small": 2, "seeds": 1},
           "budget": {"min_steps": 4, "max_epochs": 3, "patience": 2, "min_batch": 8}, "methods": methods}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_peers_hybrid_and_trees_in_one_study(tmp_path, particles_jets_h5, tiny_llama, capsys):
    methods = {"gbdt": {"features": "substructure", "max_iter": 20},
               "deepsets": {"width": 8, "epochs": 2, "batch_size": 16},
               "part": {"width": 8, "depth": 1, "heads": 2, "epochs": 2, "batch_size": 16},
               "hybrid": {"model": str(tiny_llama), "quantization": "none", "encoder_hidden": 16, "epochs": 1,
                          "batch_size": 16}}
    path = _config(tmp_path, particles_jets_h5, methods)
    assert main(["study", "-c", str(path), "--no-progress", "--jobs", "2"]) == 0
    assert "0 runs reused, 16 to train" in capsys.readouterr().out
    report = json.loads((tmp_path / "report" / "study.json").read_text())
    assert {(r["method"], r["n"]) for r in report["summary"]} == {(m, n) for m in methods for n in (60, 120)}
    assert {g["control"] for g in report["gaps"]} == {"gbdt", "deepsets", "part"}  # paired on one test set
    assert report["meta"]["method_features"] == {"gbdt": "substructure"}
    assert "features particles (gbdt: substructure)" in (tmp_path / "report" / "study.md").read_text()
    runs = tmp_path / "out" / "runs"
    model = {m: json.loads((runs / m / "n60" / "seed0" / "model.json").read_text()) for m in ("gbdt", "part")}
    assert model["part"]["feature_set"] == "particles" and model["part"]["model"] == "part"
    assert json.loads((runs / "gbdt" / "n60" / "seed0" / "metrics.json").read_text())["feature_set"] == "substructure"
    assert main(["study", "-c", str(path), "--no-progress"]) == 0
    assert "16 runs reused, 0 to train" in capsys.readouterr().out


def test_constituents_missing_is_one_line_before_training(tmp_path, toy_jets_h5, capsys):
    path = _config(tmp_path, toy_jets_h5, {"deepsets": {"width": 8}})
    assert main(["study", "-c", str(path), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "methods.deepsets: reads jet constituents and the events hold none" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out" / "runs").exists()
