import json

import numpy as np
import pytest

from hybridjet.anomaly.config import Method
from hybridjet.anomaly.kfold import train_kfold
from hybridjet.api import load_run
from hybridjet.data.injection import Pools, inject, partition
from hybridjet.data.regions import Regions
from hybridjet.data.store import read_jets, write_jets
from hybridjet.data.weak import FoldFiles, write_fold_files
from hybridjet.errors import HybridjetError
from hybridjet.eval.scores import read_scores


@pytest.fixture(scope="module")
def folds(tmp_path_factory, make_resonance_jets):
    signal, background = make_resonance_jets(400, 3000, seed=3)
    part = partition(Pools(signal, background), Regions(), seed=0, supervised_signal_fraction=0.2)
    sample = inject(part, 0.2, seed=0)
    out = tmp_path_factory.mktemp("kfold")
    write_jets(out / "test.h5", part.test)
    return sample, write_fold_files(sample, ("supervised", "cwola"), folds=3, seed=1, out_dir=out / "files"), out


@pytest.mark.parametrize("mode", ["supervised", "cwola"])
def test_every_signal_region_event_is_scored_once_by_the_model_that_did_not_see_it(folds, mode, tmp_path):
    sample, files, out = folds
    run = tmp_path / "run"
    metrics = train_kfold(Method("gbdt", {"max_iter": 10}), mode, files, out / "test.h5", run, seed=0,
                          feature_set="highlevel", split=(0.7, 0.25, 0.05), info={"name": f"gbdt/{mode}"})
    data = read_scores(run / "scores.h5", "data")
    sr_ids = sample.data.event_id[sample.in_signal_region]
    assert len(data.event_id) == len(sr_ids) and len(np.unique(data.event_id)) == len(sr_ids)
    assert set(data.event_id) == set(sr_ids)
    truth = dict(zip(sample.data.event_id, sample.data.label, strict=True))
    assert all(truth[i] == y for i, y in zip(data.event_id, data.label, strict=True))  # truth kept for evaluation
    where = dict(zip(data.event_id, data.score, strict=True))
    for fold in files:
        scored = read_jets(fold.score)
        trained = read_jets(fold.train[mode])
        assert not np.isin(scored.event_id, trained.event_id).any()  # the fold's model never saw its events
        _, own = next(iter(load_run(run / f"fold{fold.fold}").iter_probabilities(str(fold.score), 100_000)))
        np.testing.assert_allclose([where[i] for i in scored.event_id], own, rtol=1e-6)
        for other in files:  # and any other fold's model did see them
            if other.fold != fold.fold:
                assert np.isin(scored.event_id, read_jets(other.train[mode]).event_id).all()
    # the truth-labelled test set: the mean of the fold models
    test = read_scores(run / "scores.h5", "test")
    assert set(np.unique(test.label)) == {0, 1}
    assert metrics["search"]["test"]["max_sic"] > 0 and metrics["folds"] == 3
    assert json.loads((run / "metrics.json").read_text())["search"]["data"]["n_signal"] == int(
        (sample.data.label[sample.in_signal_region] == 1).sum())
    assert data.attrs["selection"] == "signal_region" and data.attrs["label_mode"] == mode


def test_each_fold_model_is_loaded_once_for_its_fold_and_the_test_set(folds, tmp_path, monkeypatch):
    """Loading a hybrid means loading and quantising its LLM: the fold's data and the truth test set are scored by
    one load of each fold model (there were two, plus the training's own)."""
    from hybridjet.anomaly import kfold

    sample, files, out = folds
    loaded = []
    monkeypatch.setattr(kfold, "load_run", lambda run: (loaded.append(run), load_run(run))[1])
    train_kfold(Method("gbdt", {"max_iter": 10}), "cwola", files, out / "test.h5", tmp_path / "run", seed=0,
                feature_set="highlevel", split=(0.7, 0.25, 0.05), per_fold=2)
    assert sorted(map(str, loaded)) == sorted(str(tmp_path / "run" / f"fold{f.fold}" / f"model{m}")
                                              for f in files for m in range(2))
    test = read_scores(tmp_path / "run" / "scores.h5", "test")
    want = np.mean([next(iter(load_run(tmp_path / "run" / f"fold{f.fold}" / f"model{m}").iter_probabilities(
        str(out / "test.h5"), 100_000)))[1] for f in files for m in range(2)], axis=0)
    np.testing.assert_allclose(test.score, want, rtol=1e-6)  # still the mean of every fold model


def test_a_run_folder_holding_its_fold_files_is_refused_before_anything_is_removed(tmp_path):
    fold_dir = tmp_path / "fold0"
    fold_dir.mkdir()
    (fold_dir / "cwola.h5").write_bytes(b"kept")
    folds = [FoldFiles(0, {"cwola": fold_dir / "cwola.h5"}, fold_dir / "score.h5")]
    with pytest.raises(HybridjetError, match="holds the fold files it would train from"):
        train_kfold(Method("gbdt"), "cwola", folds, None, tmp_path, 0, "highlevel", (0.75, 0.2, 0.05))
    assert (fold_dir / "cwola.h5").read_bytes() == b"kept"
