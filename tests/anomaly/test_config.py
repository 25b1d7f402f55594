import numpy as np
import pytest
import yaml

from hybridjet.anomaly.config import load_config, parse_config
from hybridjet.anomaly.recipe import check_search, load_pools
from hybridjet.cli import main
from hybridjet.errors import HybridjetError

BASE = {"data": {"jets": "jets.h5"}}


def test_defaults_are_the_lhco_search():
    cfg = parse_config(BASE)
    assert cfg.regions.signal_region == (3300.0, 3700.0)
    assert cfg.modes == ("supervised", "idealized", "cwola") and cfg.feature_set == "highlevel"
    assert [m.name for m in cfg.methods] == ["gbdt"] and cfg.folds == 5 and cfg.seeds == (0, 1, 2)
    assert cfg.floor.min_eff_b == 1e-4


@pytest.mark.parametrize("change, message", [
    ({"salad": 1}, "salad: unknown section"),
    ({"data": {}}, "data: expected jets .* got none"),
    ({"data": {"jets": "a.h5", "signal": "s.h5"}}, "data: expected jets .* got jets, signal"),
    ({"injection": {"s_over_b": [0.01, -0.002]}}, "injection.s_over_b: expected positive ratios .* got -0.002"),
    ({"injection": {"sb": 0.01}}, "injection.sb: unknown setting"),
    ({"regions": {"signal_region": [3700, 3300]}}, r"regions.signal_region: expected \[lo, hi\]"),
    ({"regions": {"sidebands": [[3200, 3400]]}}, r"regions.sidebands\[0\]: .* overlaps the signal region"),
    ({"modes": ["cwola", "weak"]}, "modes: expected one of supervised, idealized, cwola, got 'weak'"),
    ({"methods": {"forest": {}}}, "methods.forest: unknown method"),
    ({"methods": {"gbdt": {"depth": 3}}}, "methods.gbdt.depth: unknown setting"),
    ({"methods": {"ablation": {"colour": "red"}}}, "methods.ablation.colour: not a setting"),
    ({"methods": {"ablation": {"epochs": 0}}}, "methods.ablation.epochs: expected an integer >= 1, got 0"),
    ({"methods": {"long": {"method": "forest"}}}, "methods.long.method: expected one of gbdt, ablation, hybrid"),
    ({"methods": {"long": {"epochs": 30}}}, r"methods.long: unknown method; .* a variant of one named by its setting"),
    ({"methods": {"long": {"method": "ablation", "epochs": 0}}}, "methods.long.epochs: expected an integer >= 1"),
    ({"methods": {"deep": {"method": "gbdt", "depth": 3}}}, "methods.deep.depth: unknown setting"),
    ({"methods": {"a/b": {"method": "gbdt"}}}, "methods.a/b: expected a name of letters, digits"),
    ({"methods": {"ablation": {"method": "gbdt"}}}, "methods.ablation.method: ablation names its own classifier"),
    ({"methods": {"logs": {"method": "gbdt"}}}, "methods.logs: a name the runs folder keeps for logs"),
    ({"methods": {"ablation": {"monitor": "val_acc"}}}, "methods.ablation.monitor: expected one of val_auc, val_loss"),
    ({"methods": {"gbdt": {"models_per_fold": 0}}}, "methods.gbdt.models_per_fold: expected an integer >= 1 or null, got 0"),
    ({"methods": {"gbdt": {"monitor": "val_loss"}}}, "methods.gbdt.monitor: unknown setting"),
    ({"training": {"folds": 1}}, "training.folds: expected an integer >= 2, got 1"),
    ({"training": {"seeds": [0, -1]}}, "training.seeds: expected an integer >= 0, got -1"),
    ({"sample": {"test_signal_fraction": 1.0}}, r"sample.test_signal_fraction: expected a fraction in \[0, 1\)"),
    ({"evaluation": {"split": "train"}}, "evaluation.split: expected test or data, got 'train'"),
    ({"evaluation": {"min_eff_b": -1}}, "evaluation.min_eff_b: expected a number >= 0"),
    ({"features": "pixels"}, "features: expected one of"),
    # before: silently renormalised
    ({"sample": {"background_fractions": [0.5, 0.5, 0.5]}},
     r"sample.background_fractions: the fractions \(data, reference, test\) must sum to 1; \[0.5, 0.5, 0.5\] sum"),
    ({"training": {"split": [0.5, 0.2, 0.05]}}, r"training.split: the fractions \(train, val, test\) must sum to 1"),
    # before: CWoLa trained on fourvec, whose log m_jj is the variable the regions are cut on
    ({"features": "fourvec"}, "features: fourvec holds m_jj, the variable the signal region is cut on"),
    # a method's own feature set is checked as the config's is
    ({"methods": {"gbdt": {"features": "substructure"}}}, "methods.gbdt.features: substructure holds m_jj"),
    ({"methods": {"part": {}}}, "methods.part: part reads jet constituents; expected features: particles"),
])
def test_bad_settings_name_the_setting_and_what_was_expected(change, message):
    with pytest.raises(HybridjetError, match=message) as err:
        parse_config({**BASE, **change})
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("value", ["inf", "nan", "-0.01"])
def test_an_s_over_b_on_the_command_line_that_cannot_be_injected_is_one_line(tmp_path, value, capsys):
    """Before: '--s-over-b inf' ended in a traceback."""
    from hybridjet.cli import main

    path = tmp_path / "a.yaml"
    path.write_text(yaml.safe_dump(BASE))
    assert main(["anomaly", "-c", str(path), "--s-over-b", "0.01", value, "--check"]) == 2
    assert capsys.readouterr().err.strip().startswith("hybridjet: error: --s-over-b: expected positive ratios")


def test_a_config_file_error_names_the_file(tmp_path):
    path = tmp_path / "a.yaml"
    path.write_text(yaml.safe_dump({**BASE, "training": {"folds": 1}}))
    with pytest.raises(HybridjetError, match=rf"^{path}: training.folds: expected"):
        load_config(path)
    with pytest.raises(HybridjetError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")


@pytest.mark.parametrize("sections, message", [
    # the toy background's m_jj starts at 2600 GeV: a window below it lies outside the data
    ({"regions": {"signal_region": [1000, 1500], "sidebands": [[800, 1000], [1500, 1800]]}},
     r"regions.signal_region: \[1000, 1500\] GeV is not inside the m_jj range of the data \[\d+, \d+\] GeV; "
     "expected a window within it"),
    ({"regions": {"sidebands": [[3000, 3300], [9000, 9500]]}},
     r"regions.sidebands\[1\]: \[9000, 9500\] GeV holds no events of the data .* expected a window with events"),
    ({"injection": {"s_over_b": [0.0001]}},
     r"injection.s_over_b: 0.0001 leaves no signal event in the signal region \(\d+ background events there\); "
     "expected at least"),
    # before: --check said yes, and the search failed after writing its test set and lock
    ({"training": {"folds": 5000}}, r"training.folds: 5000 folds of \d+ signal-region events"),
])
def test_bad_inputs_from_the_events_fail_before_anything_is_written(tmp_path, resonance_file, search_file, capsys,
                                                                     sections, message):
    path = search_file(tmp_path, resonance_file(200, 2000), **sections)
    cfg = load_config(path)
    with pytest.raises(HybridjetError, match=message):
        check_search(cfg, load_pools(cfg, progress=False))
    capsys.readouterr()
    assert main(["anomaly", "-c", str(path), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("hybridjet: error: ") and "\n" not in err and np.any([m in err for m in ("regions", "inj", "folds")])
    assert not (tmp_path / "out").exists() and not (tmp_path / "report").exists()


def test_an_empty_sideband_is_fine_without_cwola(tmp_path, resonance_file, search_file):
    path = search_file(tmp_path, resonance_file(200, 2000), modes=["supervised", "idealized"],
                        regions={"sidebands": [[9000, 9500]]})
    cfg = load_config(path)
    part = check_search(cfg, load_pools(cfg, progress=False))
    assert len(part.reference) > 0


def test_a_search_never_writes_into_a_folder_that_is_not_its_own(tmp_path, resonance_file, search_file, capsys):
    """Before: out: a folder holding a user's files/test.h5 replaced it; out over a classifier run nested the modes'
    runs inside it."""
    from hybridjet.cli import main

    path = search_file(tmp_path, resonance_file(200, 2000))
    out = tmp_path / "out"
    (out / "files").mkdir(parents=True)
    (out / "notes.txt").write_text("mine")
    assert main(["anomaly", "-c", str(path), "--no-progress"]) == 2
    assert "holds notes.txt, not the resonance search's files/ and runs/" in capsys.readouterr().err
    (out / "notes.txt").unlink()
    (out / "runs" / "gbdt").mkdir(parents=True)
    (out / "runs" / "gbdt" / "model.json").write_text("{}")
    assert main(["anomaly", "-c", str(path), "--no-progress"]) == 2
    assert "runs/gbdt is a classifier's run directory" in capsys.readouterr().err
    assert sorted(p.name for p in out.rglob("*")) == ["files", "gbdt", "model.json", "runs"]
