"""``hybridjet study`` on toy events and a tiny LLM: the controls, the learning curves, the paired gaps, reuse."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from hybridjet.cli import main
from hybridjet.data.store import read_jets, write_jets
from hybridjet.errors import HybridjetError
from hybridjet.study.config import load_config, parse_config


def _config(tmp_path: Path, make_toy_jets, tiny: Path | None = None, **sections: Any) -> Path:
    write_jets(tmp_path / "jets.h5", make_toy_jets(900, seed=3))
    net = {"n_soft_tokens": 2, "encoder_hidden": 16, "encoder_layers": 1, "epochs": 2, "batch_size": 16}
    methods: dict[str, Any] = {"gbdt": {"max_iter": 20}, "ablation": {**net, "ablation_width": 8}}
    if tiny is not None:
        hybrid = {**net, "model": str(tiny), "quantization": "none"}
        methods.update(hybrid=hybrid, hybrid_random={"method": "hybrid", "init": "random", **hybrid})
    cfg: dict[str, Any] = {"name": "toy", "out": str(tmp_path / "out"), "report": str(tmp_path / "report"),
                           "data": {"jets": str(tmp_path / "jets.h5")}, "sample": {"test_events": 200, "val_events": 100},
                           "curve": {"sizes": [40, 80], "seeds_small": 2, "seeds": 1},
                           "budget": {"min_steps": 6, "max_epochs": 4, "patience": 2, "min_batch": 8},
                           "methods": methods}
    cfg.update(sections)
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_a_study_trains_every_control_reports_gaps_and_reuses_its_runs(tmp_path, make_toy_jets, tiny_llama, capsys):
    path = _config(tmp_path, make_toy_jets, tiny_llama)
    assert main(["study", "-c", str(path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "0 runs reused, 16 to train" in out
    report = json.loads((tmp_path / "report" / "study.json").read_text())
    assert {(r["method"], r["n"], r["seeds"]) for r in report["summary"]} == {
        (m, n, 2) for m in ("gbdt", "ablation", "hybrid", "hybrid_random") for n in (40, 80)}
    gaps = {(g["control"], g["n"]) for g in report["gaps"]}
    assert gaps == {(m, n) for m in ("gbdt", "ablation", "hybrid_random") for n in (40, 80)}
    for g in report["gaps"]:
        assert g["lo"] <= g["gap"] <= g["hi"] and g["seeds"] == 2
    curves = report["curves"]["AUC"]  # what the figure draws: per method, a point at each N
    assert {m: [p["n"] for p in points] for m, points in curves.items()} == {m: [40, 80] for m in curves}
    for name in ("study.md", "learning_curves.png", "auc_gaps.png"):
        assert (tmp_path / "report" / name).stat().st_size > 0
    # every run scored the same fixed test set; seed s's training sets are nested and disjoint from test and val
    files = tmp_path / "out" / "files"
    test_ids, val_ids = (set(read_jets(files / f"{s}.h5").event_id.tolist()) for s in ("test", "val"))
    small, large = (set(read_jets(files / "seed1" / f"n{n}.h5").event_id.tolist()) for n in (40, 80))
    assert small < large and not large & (test_ids | val_ids) and not test_ids & val_ids
    record = json.loads((tmp_path / "out" / "runs" / "hybrid_random" / "n40" / "seed0" / "study.json").read_text())
    assert record["test"]["n_events"] == 200 and record["batch_size"] == 8
    model = json.loads((tmp_path / "out" / "runs" / "hybrid_random" / "n40" / "seed0" / "model.json").read_text())
    assert model["arch"]["init"] == "random"
    # a second study reuses every run; a --methods subset trains nothing else and reports every finished run
    assert main(["study", "-c", str(path), "--no-progress", "--methods", "gbdt"]) == 0
    assert "16 runs reused, 0 to train" in capsys.readouterr().out


@pytest.mark.parametrize(("change", "message"), [
    ({"curve": {"sizes": [40, 5000]}}, r"curve.sizes: the largest training size 5,000 .* the data holds"),
    ({"methods": {"forest": {}}}, "methods.forest: unknown method"),
    ({"reference": "hybrid"}, "reference: 'hybrid' is not among the methods"),
    ({"curve": {"sizes": [5]}}, r"curve.sizes: expected an integer >= 20"),
    ({"sample": {"signal_fraction": 1.0}}, "sample.signal_fraction: expected a fraction strictly between 0 and 1"),
    ({"budget": {"patience": 0}}, "budget.patience: expected an integer >= 1"),
])
def test_bad_settings_are_one_line_before_any_training(tmp_path, make_toy_jets, capsys, change, message):
    path = _config(tmp_path, make_toy_jets, **change)
    assert main(["study", "-c", str(path), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"hybridjet: error: {path}: ") or err.startswith("hybridjet: error: curve.sizes")
    assert re.search(message, err), err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind", ["hybrid", "text"])
def test_layers_the_model_lacks_are_one_line_before_any_training(tmp_path, make_toy_jets, tiny_llama, capsys, kind):
    """``llm_layers`` beyond the model's decoder layers (the tiny model has 2): refused before the trees train."""
    path = _config(tmp_path, make_toy_jets, tiny_llama)
    cfg = yaml.safe_load(path.read_text())
    cut = {"model": str(tiny_llama), "quantization": "none"} if kind == "text" else cfg["methods"]["hybrid"]
    cfg["methods"][f"{kind}_cut"] = {**cut, "method": kind, "llm_layers": 3}
    path.write_text(yaml.safe_dump(cfg))
    assert main(["study", "-c", str(path), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert f"methods.{kind}_cut.llm_layers: expected a whole number from 1 to 2" in err, err
    assert not (tmp_path / "out" / "runs" / "gbdt").exists()


def test_other_inputs_train_into_their_own_folders(tmp_path, make_toy_jets, capsys):
    """``--features`` studies the config's methods on other inputs, never into the config's own runs and report."""
    path = _config(tmp_path, make_toy_jets)
    assert main(["study", "-c", str(path), "--no-progress", "--features", "highlevel"]) == 2
    assert "--features highlevel: the config's out" in capsys.readouterr().err
    assert main(["study", "-c", str(path), "--no-progress", "--features", "jets",
                 "--out", str(tmp_path / "o2"), "--report", str(tmp_path / "r2")]) == 2
    assert "--features: expected one of" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and not (tmp_path / "o2").exists()
    assert main(["study", "-c", str(path), "--no-progress", "--features", "highlevel", "--methods", "gbdt",
                 "--out", str(tmp_path / "o2"), "--report", str(tmp_path / "r2")]) == 0
    model = json.loads((tmp_path / "o2" / "runs" / "gbdt" / "n40" / "seed0" / "model.json").read_text())
    assert model["feature_set"] == "highlevel" and model["n_features"] == 4 and not (tmp_path / "out").exists()


def test_the_budget_gives_small_sizes_enough_steps():
    cfg = parse_config({"methods": {"ablation": {"epochs": 5, "batch_size": 256}},
                        "data": {"jets": "x.h5"}, "budget": {"min_steps": 300, "max_epochs": 200, "min_batch": 16}})
    method, budget = cfg.methods[0], cfg.budget
    assert (budget.batch_size(method, 100), budget.epochs(method, 100)) == (16, 43)  # 7 steps an epoch
    assert (budget.batch_size(method, 100_000), budget.epochs(method, 100_000)) == (256, 5)  # its own epochs
    with pytest.raises(HybridjetError, match="config file not found"):
        load_config("no-such.yaml")


def test_a_study_trains_on_a_dask_cluster_the_same_runs_as_here(tmp_path, make_toy_jets, capsys):
    """Issue 34, beyond one machine: --scheduler hands every (method, N, seed) to a dask.distributed cluster's
    workers (here a local cluster of 2 worker processes); the runs equal those trained here, and are reused here."""
    distributed = pytest.importorskip("dask.distributed")

    path = _config(tmp_path, make_toy_jets)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        assert main(["study", "-c", str(path), "--no-progress", "--scheduler", cluster.scheduler_address]) == 0
    assert "0 runs reused, 8 to train" in capsys.readouterr().out
    remote = json.loads((tmp_path / "report" / "study.json").read_text())
    assert all(Path(r["run_dir"]).is_absolute() for r in remote["runs"])  # the workers were given absolute paths
    assert main(["study", "-c", str(path), "--no-progress"]) == 0
    assert "8 runs reused, 0 to train" in capsys.readouterr().out
    (tmp_path / "local").mkdir()
    local_cfg = yaml.safe_load(path.read_text())
    local_cfg.update(out=str(tmp_path / "local" / "out"), report=str(tmp_path / "local" / "report"))
    (tmp_path / "local.yaml").write_text(yaml.safe_dump(local_cfg))
    assert main(["study", "-c", str(tmp_path / "local.yaml"), "--no-progress"]) == 0
    local = json.loads((tmp_path / "local" / "report" / "study.json").read_text())
    assert [r["auc"]["median"] for r in remote["summary"]] == [r["auc"]["median"] for r in local["summary"]]
    assert main(["study", "-c", str(path), "--scheduler", "tcp://127.0.0.1:1", "--jobs", "2"]) == 2
