import numpy as np
import pytest

from hybridjet.data import events as scoring
from hybridjet.data.datamodule import JetDataModule
from hybridjet.data.store import read_jets
from hybridjet.errors import HybridjetError
from hybridjet.train.classifiers import HybridClassifier


@pytest.fixture
def ablation(toy_jets_h5):
    dm = JetDataModule(str(toy_jets_h5))
    dm.setup("fit")
    model = HybridClassifier.from_settings(use_llm=False)
    model.normalizer, model.feature_set = dm.normalizer, dm.feature_set
    model.build(dm.n_features)
    return model


@pytest.fixture
def inputs(ablation):
    return scoring.EventFeatures(ablation.feature_set, ablation.normalizer)


def test_file_batches_are_full_across_chunk_boundaries(inputs, toy_jets_h5, monkeypatch):
    monkeypatch.setattr(scoring, "CHUNK_EVENTS", 100)  # 600 events: 6 chunks, none a multiple of the batch
    batches = list(scoring.iter_event_batches(inputs, str(toy_jets_h5), batch_size=64))
    assert [len(b["features"]) for b in batches] == [64] * 9 + [24]
    ids = np.concatenate([b["event_id"].numpy() for b in batches])
    np.testing.assert_array_equal(ids, read_jets(toy_jets_h5).event_id)  # every event once, in file order


def test_scores_do_not_depend_on_chunking(ablation, toy_jets_h5, monkeypatch):
    whole = ablation.predict_proba(str(toy_jets_h5), batch_size=64)
    monkeypatch.setattr(scoring, "CHUNK_EVENTS", 100)
    np.testing.assert_allclose(ablation.predict_proba(str(toy_jets_h5), batch_size=64), whole, atol=1e-6)


def test_feature_array_of_the_wrong_width_is_an_error(inputs):
    with pytest.raises(HybridjetError, match="events: expected a feature array"):
        list(scoring.iter_event_batches(inputs, np.zeros((3, 1), np.float32), batch_size=2))


def test_unreadable_chunk_is_reported_from_the_reading_thread(inputs, toy_jets_h5, monkeypatch):
    calls = []

    def read_jets_failing_on_the_second_chunk(path, start=0, stop=None, **kwargs):
        calls.append(start)
        if start:
            raise HybridjetError(f"{path}: events {start}-{stop} unreadable")
        return read_jets(path, start=start, stop=stop, **kwargs)

    monkeypatch.setattr(scoring, "CHUNK_EVENTS", 100)
    monkeypatch.setattr(scoring, "read_jets", read_jets_failing_on_the_second_chunk)
    batches = scoring.iter_event_batches(inputs, str(toy_jets_h5), batch_size=64)
    with pytest.raises(HybridjetError, match="events 100-200 unreadable"):
        list(batches)
    assert calls[:2] == [0, 100]


def test_stopping_early_leaves_no_reader_behind(inputs, toy_jets_h5, monkeypatch):
    import threading

    monkeypatch.setattr(scoring, "CHUNK_EVENTS", 100)
    batches = scoring.iter_event_batches(inputs, str(toy_jets_h5), batch_size=64)
    assert len(next(batches)["features"]) == 64
    batches.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("hybridjet-read")]


def test_a_file_without_events_gives_no_batches(inputs, toy_jets_h5, tmp_path):
    from hybridjet.data.store import write_jets

    empty = tmp_path / "empty_jets.h5"
    write_jets(empty, read_jets(toy_jets_h5).subset(np.arange(0)))
    assert list(scoring.iter_event_batches(inputs, str(empty), batch_size=64)) == []
