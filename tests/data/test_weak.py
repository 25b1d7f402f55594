import numpy as np
import pytest

from hybridjet.data.injection import Pools, inject, partition
from hybridjet.data.regions import Regions
from hybridjet.data.store import read_jets
from hybridjet.data.weak import LABEL_MODES, check_modes, fold_numbers, mode_training_set, write_fold_files
from hybridjet.errors import HybridjetError


@pytest.fixture
def sample(make_resonance_jets):
    signal, background = make_resonance_jets(400, 4000, seed=2)
    return inject(partition(Pools(signal, background), Regions(), seed=0), 0.1, seed=0)


def test_label_modes_label_what_they_should(sample):
    sr_rows = np.flatnonzero(sample.in_signal_region)
    truth = sample.data.label[sr_rows]
    supervised = mode_training_set(sample, "supervised", sr_rows)
    np.testing.assert_array_equal(supervised.label, truth)  # no supervised signal set aside in this sample
    idealized = mode_training_set(sample, "idealized", sr_rows)
    ones = idealized.label == 1
    np.testing.assert_array_equal(np.sort(idealized.event_id[ones]), np.sort(sample.data.event_id[sr_rows]))
    np.testing.assert_array_equal(np.sort(idealized.event_id[~ones]), np.sort(sample.reference.event_id))
    cwola = mode_training_set(sample, "cwola", sr_rows)
    sideband_ids = sample.data.event_id[sample.in_sidebands]
    np.testing.assert_array_equal(np.sort(cwola.event_id[cwola.label == 0]), np.sort(sideband_ids))
    # the injected signal sits in both CWoLa classes: label 1 is not the truth
    assert (sample.data.label[sample.in_sidebands] == 1).any() and (truth == 0).any()
    assert sample.data.label.dtype == np.int8 and (sample.data.label[sr_rows] == truth).all()  # the data untouched


def test_folds_score_every_signal_region_event_once_by_a_model_that_did_not_see_it(tmp_path, sample):
    files = write_fold_files(sample, LABEL_MODES, folds=3, seed=5, out_dir=tmp_path)
    scored = [read_jets(f.score) for f in files]
    ids = np.concatenate([s.event_id for s in scored])
    np.testing.assert_array_equal(np.sort(ids), np.sort(sample.data.event_id[sample.in_signal_region]))
    for fold, score in zip(files, scored, strict=True):
        assert set(np.unique(score.label)) <= {0, 1}
        for mode, path in fold.train.items():
            train = read_jets(path)
            assert train.attrs["label_mode"] == mode and int(train.attrs["fold"]) == fold.fold
            assert not np.isin(score.event_id, train.event_id).any()
    sizes = [len(s) for s in scored]
    assert max(sizes) - min(sizes) <= 1


def test_bad_fold_and_mode_settings():
    with pytest.raises(HybridjetError, match="training.folds: expected an integer >= 2"):
        fold_numbers(10, 1, 0)
    with pytest.raises(HybridjetError, match="training.folds: 5 folds of 3 signal-region events"):
        fold_numbers(3, 5, 0)
    with pytest.raises(HybridjetError, match="modes: expected one of supervised, idealized, cwola, got 'salad'"):
        check_modes(["cwola", "salad"])
    with pytest.raises(HybridjetError, match="names a mode twice"):
        check_modes(["cwola", "cwola"])


def test_supervised_mode_adds_the_signal_set_aside_for_it(make_resonance_jets):
    signal, background = make_resonance_jets(400, 4000, seed=2)
    sample = inject(partition(Pools(signal, background), Regions(), seed=0, supervised_signal_fraction=0.2), 0.1)
    sr_rows = np.flatnonzero(sample.in_signal_region)
    supervised = mode_training_set(sample, "supervised", sr_rows)
    assert len(supervised) == len(sr_rows) + len(sample.supervised_signal) and len(sample.supervised_signal) > 0
    extra = np.isin(supervised.event_id, sample.supervised_signal.event_id)
    assert (supervised.label[extra] == 1).all()
    np.testing.assert_array_equal(supervised.label[~extra], sample.data.label[sr_rows])
    for mode in ("idealized", "cwola"):  # the weak modes never see it
        assert not np.isin(mode_training_set(sample, mode, sr_rows).event_id, sample.supervised_signal.event_id).any()
