"""``hybridjet anomaly`` end to end on toy resonance jets: trees and the ablation, 2 folds, 2 seeds."""

import json

import numpy as np
import yaml

from hybridjet.anomaly.config import load_config
from hybridjet.anomaly.recipe import load_pools, pools_key
from hybridjet.cli import main
from hybridjet.data.kinematics import dijet_mass
from hybridjet.data.regions import Regions
from hybridjet.data.store import read_jets
from hybridjet.eval.scores import read_scores

METHODS = {"gbdt": {"max_iter": 20},
           "ablation": {"n_soft_tokens": 2, "ablation_width": 8, "encoder_hidden": 16, "encoder_layers": 1,
                        "epochs": 2, "batch_size": 128}}


def test_search_end_to_end_then_reused_then_compared(tmp_path, resonance_file, search_file, capsys):
    path = search_file(tmp_path, resonance_file(300, 3000, seed=4), methods=METHODS,
                       injection={"s_over_b": [0.05, 0.2]}, training={"folds": 2, "seeds": [0, 1]},
                       sample={"supervised_signal_fraction": 0.2}, evaluation={"min_background": 5})
    assert main(["anomaly", "-c", str(path), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    report = json.loads((tmp_path / "report" / "anomaly.json").read_text())
    for name in ("anomaly.md", "max_sic_vs_sb.png", "sic_sb0.05.png", "sic_sb0.2.png"):
        assert (tmp_path / "report" / name).stat().st_size > 0
    # one row per method x mode x S/B, each over both seeds, printed in the table
    rows = report["rows"]
    assert {(r["method"], r["label_mode"], r["s_over_b"]) for r in rows} == {
        (m, mode, sb) for m in METHODS for mode in ("supervised", "idealized", "cwola") for sb in (0.05, 0.2)}
    assert len(rows) == 12 and all(r["n_seeds"] == 2 for r in rows)
    for r in rows:
        assert r["max_sic"]["lo"] <= r["max_sic"]["median"] <= r["max_sic"]["hi"] and r["max_sic"]["median"] > 0
        assert r["max_sic_ensemble"] is not None
        assert r["n_signal_sr"] == round(r["s_over_b"] * r["n_background_sr"])
        assert r["best_s_over_sqrt_b"] == np.float64(r["s_over_sqrt_b"]) * r["max_sic"]["median"]
    assert "max SIC median [68% band]" in printed and printed.count("| gbdt | cwola |") == 2
    assert {(o["method"], o["s_over_b"]) for o in report["ordering"]} == {(m, sb) for m in METHODS
                                                                          for sb in (0.05, 0.2)}
    # every signal-region data event scored once; the truth test set the same for every run
    out = tmp_path / "out"
    run = out / "runs" / "gbdt" / "cwola" / "sb0.2" / "seed1"
    data = read_scores(run / "scores.h5", "data")
    counts = json.loads((run / "metrics.json").read_text())["counts"]
    assert len(np.unique(data.event_id)) == len(data.event_id) == counts["n_signal_sr"] + counts["n_background_sr"]
    assert int(data.label.sum()) == counts["n_signal_sr"]
    test_ids = read_scores(out / "runs" / "ablation" / "idealized" / "sb0.05" / "ensemble" / "scores.h5").event_id
    np.testing.assert_array_equal(np.sort(read_scores(run / "scores.h5").event_id), np.sort(test_ids))
    # the weak modes' training labels say where an event comes from, never what it is
    regions = Regions()
    for fold_dir in sorted((out / "files" / "sb0.2" / "seed1").glob("fold*")):
        for mode in ("idealized", "cwola"):
            train = read_jets(fold_dir / f"{mode}.h5")
            sr = regions.in_signal_region(dijet_mass(train.jets, train.jet_mask))
            if mode == "cwola":
                np.testing.assert_array_equal(train.label, sr.astype(np.int8))
            else:
                assert sr.all()
            assert set(np.unique(train.label)) == {0, 1}
        supervised = read_jets(fold_dir / "supervised.h5")
        assert set(np.unique(supervised.label)) == {0, 1}
    # truth-labelled: the injected signal lies in the weak labels' both classes, so labels != truth somewhere
    cwola = read_jets(out / "files" / "sb0.2" / "seed1" / "fold0" / "cwola.h5")
    pools = read_jets(tmp_path / "jets.h5")
    signal_ids = set(pools.event_id[pools.label == 1].tolist())
    is_signal = np.array([int(i) in signal_ids for i in cwola.event_id])
    assert (is_signal & (cwola.label == 0)).any() and (~is_signal & (cwola.label == 1)).any()

    # a rerun reuses every trained run: no model file is written again
    model_files = sorted(out.glob("runs/**/fold*/*.safetensors"))
    assert len(model_files) == 2 * 3 * 2 * 2 * 2  # methods x modes x S/B x seeds x folds
    stamps = [p.stat().st_mtime_ns for p in model_files]
    assert main(["anomaly", "-c", str(path), "--no-progress"]) == 0
    capsys.readouterr()
    assert [p.stat().st_mtime_ns for p in model_files] == stamps
    assert json.loads((tmp_path / "report" / "anomaly.json").read_text())["rows"] == rows
    # hybridjet compare on the search's runs reports their SIC
    runs = [str(out / "runs" / m / mode / "sb0.2" / "ensemble") for m in METHODS for mode in ("supervised", "cwola")]
    assert main(["compare", *runs, "--out", str(tmp_path / "cmp"), "--bootstrap", "0"]) == 0
    shown = capsys.readouterr().out
    assert "SIC" in shown
    compared = json.loads((tmp_path / "cmp" / "comparison.json").read_text())
    assert all(r["max_sic_floor"] > 0 for r in compared["rows"]) and (tmp_path / "cmp" / "sic.png").exists()
    # and, over the seeds of each setting, the median and band of max SIC
    seeds = [str(out / "runs" / m / "cwola" / "sb0.2" / f"seed{s}") for m in METHODS for s in (0, 1)]
    assert main(["compare", *seeds, "--out", str(tmp_path / "cmp2"), "--bootstrap", "0", "--min-background", "5"]) == 0
    shown = capsys.readouterr().out
    assert "| Search runs | seeds | max SIC median [68% band] |" in shown and "| gbdt cwola S/B 20% | 2 |" in shown
    bands = json.loads((tmp_path / "cmp2" / "comparison.json").read_text())["sic_bands"]
    assert [b["n_seeds"] for b in bands] == [2, 2]
    mine = [r for r in rows if (r["method"], r["label_mode"], r["s_over_b"]) == ("gbdt", "cwola", 0.2)][0]
    assert bands[0]["max_sic"]["median"] == mine["max_sic"]["median"]  # same floor, same numbers

    # other events in the same file: retrained, not reused
    before = pools_key(load_pools(load_config(path), progress=False))
    search_file(tmp_path, resonance_file(300, 3000, seed=5), methods={"gbdt": METHODS["gbdt"]},
                injection={"s_over_b": [0.2]}, training={"folds": 2, "seeds": [1]})
    assert pools_key(load_pools(load_config(path), progress=False)) != before
    assert main(["anomaly", "-c", str(path), "--no-progress"]) == 0
    capsys.readouterr()
    assert (out / "runs/gbdt/cwola/sb0.2/seed1/fold0/trees.safetensors").stat().st_mtime_ns != stamps[
        model_files.index(out / "runs/gbdt/cwola/sb0.2/seed1/fold0/trees.safetensors")]



def test_a_methods_subset_reports_the_other_methods_finished_runs(tmp_path, resonance_file, search_file, capsys):
    path = search_file(tmp_path, resonance_file(300, 3000, seed=6), methods=METHODS, modes=["supervised", "cwola"],
                       injection={"s_over_b": [0.2]}, training={"folds": 2, "seeds": [0, 1]})
    report = tmp_path / "report" / "anomaly.json"

    def reported() -> dict[str, int]:
        return {r["method"]: r["n_seeds"] for r in json.loads(report.read_text())["rows"]}

    assert main(["anomaly", "-c", str(path), "--no-progress", "--methods", "ablation", "--seeds", "0"]) == 0
    assert reported() == {"ablation": 1}
    assert main(["anomaly", "-c", str(path), "--no-progress", "--methods", "gbdt", "gbdt"]) == 0
    printed = capsys.readouterr().out
    assert "not in the report (not trained with these settings, not asked for with --methods): 2 runs" in printed
    assert reported() == {"gbdt": 2, "ablation": 1}  # a name given twice trains once; ablation's seed 1 is missing
    assert (tmp_path / "out/runs/gbdt/cwola/sb0.2/ensemble").is_dir()
    assert not (tmp_path / "out/runs/ablation/cwola/sb0.2/ensemble").exists()  # no ensemble of the finished seed
    trees = tmp_path / "out/runs/gbdt/cwola/sb0.2/seed0/fold0/trees.safetensors"
    stamp = trees.stat().st_mtime_ns
    assert main(["anomaly", "-c", str(path), "--no-progress", "--methods", "ablation"]) == 0
    assert "not in the report" not in capsys.readouterr().out
    assert reported() == {"gbdt": 2, "ablation": 2}  # the trees' runs reused, not retrained
    assert trees.stat().st_mtime_ns == stamp
    assert (tmp_path / "out/runs/ablation/cwola/sb0.2/ensemble").is_dir()


def test_runs_that_finish_while_a_search_trains_are_in_its_report(tmp_path, resonance_file, search_file, capsys,
                                                                  monkeypatch):
    """The GPU workflow: the trees train here while the hybrid's runs, trained elsewhere, are unpacked into the runs
    folder; the report at the end shows them, as the runs folder holds them then."""
    import shutil

    from hybridjet.anomaly import recipe

    methods = {"gbdt": {"max_iter": 20}, "gbdt_stumps": {"method": "gbdt", "max_iter": 20, "max_leaf_nodes": 2}}
    path = search_file(tmp_path, resonance_file(300, 3000, seed=6), methods=methods, modes=["supervised"],
                       injection={"s_over_b": [0.2]}, training={"folds": 2, "seeds": [0]})
    runs = tmp_path / "out" / "runs"
    assert main(["anomaly", "-c", str(path), "--no-progress", "--methods", "gbdt_stumps"]) == 0
    shutil.move(runs / "gbdt_stumps", tmp_path / "elsewhere")
    train = recipe.run_tasks

    def arriving_while_training(*args, **kwargs):
        shutil.move(tmp_path / "elsewhere", runs / "gbdt_stumps")
        return train(*args, **kwargs)

    monkeypatch.setattr(recipe, "run_tasks", arriving_while_training)
    capsys.readouterr()
    assert main(["anomaly", "-c", str(path), "--no-progress", "--methods", "gbdt"]) == 0
    assert "not in the report" not in capsys.readouterr().out
    rows = json.loads((tmp_path / "report" / "anomaly.json").read_text())["rows"]
    assert sorted(r["method"] for r in rows) == ["gbdt", "gbdt_stumps"]


def test_a_named_variant_trains_beside_its_classifier_in_one_report(tmp_path, resonance_file, search_file, capsys):
    methods = {"gbdt": {"max_iter": 20}, "gbdt_stumps": {"method": "gbdt", "max_iter": 20, "max_leaf_nodes": 2}}
    path = search_file(tmp_path, resonance_file(300, 3000, seed=6), methods=methods, modes=["supervised"],
                       injection={"s_over_b": [0.2]}, training={"folds": 2, "seeds": [0]})
    assert main(["anomaly", "-c", str(path), "--no-progress", "--methods", "gbdt_stumps"]) == 0
    capsys.readouterr()
    runs = tmp_path / "out/runs"
    stumps = json.loads((runs / "gbdt_stumps/supervised/sb0.2/seed0/metrics.json").read_text())
    assert stumps["method"] == "gbdt_stumps" and stumps["model"] == "gbdt"
    assert not (runs / "gbdt").exists()  # --methods picks the variant by its name
    assert main(["anomaly", "-c", str(path), "--no-progress"]) == 0
    capsys.readouterr()
    trees = json.loads((runs / "gbdt/supervised/sb0.2/seed0/metrics.json").read_text())
    assert trees["fingerprint"] != stumps["fingerprint"]
    assert trees["search"]["test"]["auc"] != stumps["search"]["test"]["auc"]  # other settings, another model
    rows = json.loads((tmp_path / "report/anomaly.json").read_text())["rows"]
    assert sorted(r["method"] for r in rows) == ["gbdt", "gbdt_stumps"]


def test_a_variant_with_models_per_fold_averages_that_many_models_in_each_fold(tmp_path, resonance_file,
                                                                              search_file, capsys):
    # the ensemble lever of the weak modes, per method: the config's ensemble.per_fold holds for the others
    methods = {"gbdt": {"max_iter": 20}, "gbdt_three": {"method": "gbdt", "max_iter": 20, "models_per_fold": 3}}
    path = search_file(tmp_path, resonance_file(300, 3000, seed=6), methods=methods, modes=["idealized"],
                       injection={"s_over_b": [0.2]}, training={"folds": 2, "seeds": [0]})
    assert main(["anomaly", "-c", str(path), "--no-progress"]) == 0
    capsys.readouterr()
    runs = tmp_path / "out/runs"
    three = runs / "gbdt_three/idealized/sb0.2/seed0"
    assert sorted(p.name for p in (three / "fold1").iterdir()) == ["model0", "model1", "model2"]
    assert json.loads((three / "metrics.json").read_text())["models_per_fold"] == 3
    single = runs / "gbdt/idealized/sb0.2/seed0"
    assert json.loads((single / "metrics.json").read_text())["models_per_fold"] == 1
    assert (single / "fold1" / "trees.safetensors").exists()


def test_a_search_stopped_midway_keeps_the_finished_fold_models(tmp_path, resonance_file, search_file, capsys):
    path = search_file(tmp_path, resonance_file(300, 3000, seed=6), modes=["idealized"],
                       injection={"s_over_b": [0.2]}, training={"folds": 3, "seeds": [0]})
    assert main(["anomaly", "-c", str(path), "--no-progress"]) == 0
    capsys.readouterr()
    run = tmp_path / "out/runs/gbdt/idealized/sb0.2/seed0"
    first = json.loads((run / "metrics.json").read_text())
    assert first["models_reused"] == 0
    stamps = {f: (run / f / "trees.safetensors").stat().st_mtime_ns for f in ("fold0", "fold1", "fold2")}
    # stopped while fold 2 trained: its model has no trained.json yet, the (mode, seed) no metrics.json
    (run / "metrics.json").unlink()
    (run / "fold2" / "trained.json").unlink()
    assert main(["anomaly", "-c", str(path), "--no-progress"]) == 0
    capsys.readouterr()
    again = json.loads((run / "metrics.json").read_text())
    assert again["models_reused"] == 2 and again["fit_time_earlier_s"] > 0
    assert [(run / f / "trees.safetensors").stat().st_mtime_ns == stamps[f] for f in stamps] == [True, True, False]
    assert again["search"] == first["search"]  # the same result as the uninterrupted search
    # other settings: every fold model trained anew
    cfg = yaml.safe_load(path.read_text())
    cfg["methods"]["gbdt"]["max_iter"] = 21
    path.write_text(yaml.safe_dump(cfg))
    assert main(["anomaly", "-c", str(path), "--no-progress"]) == 0
    capsys.readouterr()
    assert json.loads((run / "metrics.json").read_text())["models_reused"] == 0
    # fewer folds: the folds no longer used are removed with the rest of the old try
    cfg["training"]["folds"] = 2
    path.write_text(yaml.safe_dump(cfg))
    assert main(["anomaly", "-c", str(path), "--no-progress"]) == 0
    capsys.readouterr()
    assert sorted(p.name for p in run.glob("fold*")) == ["fold0", "fold1"]
    assert json.loads((run / "metrics.json").read_text())["folds"] == 2
