import numpy as np
import pytest

from hybridjet.data.injection import SIGNAL_ID_OFFSET, Pools, inject, injected_signal_counts, partition
from hybridjet.data.kinematics import dijet_mass
from hybridjet.data.regions import Regions
from hybridjet.data.store import JetArrays, write_jets
from hybridjet.errors import HybridjetError


@pytest.fixture
def pools(make_resonance_jets):
    signal, background = make_resonance_jets(600, 6000, seed=1)
    return Pools(signal, background)


def test_partition_is_disjoint_and_cut_to_the_regions(pools):
    regions = Regions()
    part = partition(pools, regions, (0.4, 0.4, 0.2), test_signal_fraction=0.5, seed=3)
    ids = [part.data_background.event_id, part.signal.event_id, part.reference.event_id, part.test.event_id]
    everything = np.concatenate(ids)
    assert len(np.unique(everything)) == len(everything)
    assert regions.in_signal_region(dijet_mass(part.reference.jets)).all()
    assert regions.in_signal_region(dijet_mass(part.test.jets)).all()
    data_mjj = dijet_mass(part.data_background.jets)
    assert (regions.in_signal_region(data_mjj) | regions.in_sidebands(data_mjj)).all()
    assert set(np.unique(part.test.label)) == {0, 1} and (part.reference.label == 0).all()
    # the reference holds about as much signal-region background as the data (same fractions)
    n_data_sr = regions.in_signal_region(data_mjj).sum()
    assert abs(len(part.reference) - n_data_sr) < 0.25 * n_data_sr
    again = partition(pools, regions, (0.4, 0.4, 0.2), test_signal_fraction=0.5, seed=3)
    np.testing.assert_array_equal(again.test.event_id, part.test.event_id)


def test_injection_hits_the_requested_s_over_b_and_keeps_the_signal_shape(pools):
    part = partition(pools, Regions(), seed=0)
    sample = inject(part, 0.05, seed=7)
    counts = sample.counts()
    assert counts["n_signal_sr"] == round(0.05 * counts["n_background_sr"])
    assert counts["s_over_sqrt_b"] == pytest.approx(counts["n_signal_sr"] / np.sqrt(counts["n_background_sr"]))
    # the signal's sideband share follows the signal sample's
    sig_sr = Regions().in_signal_region(part.signal_mjj)
    expected_sb = round(counts["n_signal_sr"] * (~sig_sr).sum() / sig_sr.sum())
    assert counts["n_signal_sb"] == expected_sb
    np.testing.assert_array_equal(sample.in_signal_region, Regions().in_signal_region(sample.mjj))
    np.testing.assert_allclose(sample.mjj, dijet_mass(sample.data.jets, sample.data.jet_mask))
    # a different seed draws other signal events, the same number
    other = inject(part, 0.05, seed=8)
    assert other.counts()["n_signal_sr"] == counts["n_signal_sr"]
    assert not np.array_equal(np.sort(other.data.event_id), np.sort(sample.data.event_id))


def test_s_over_b_that_leaves_no_signal_or_needs_too_much_is_refused(pools):
    part = partition(pools, Regions(), seed=0)
    n_bkg = int(Regions().in_signal_region(part.data_background_mjj).sum())
    with pytest.raises(HybridjetError, match=rf"injection.s_over_b: 1e-05 leaves no signal event in the signal region "
                                             rf"\({n_bkg} background events there\); expected at least"):
        injected_signal_counts(part, 1e-5)
    with pytest.raises(HybridjetError, match=r"injection.s_over_b: 0.9 needs \d+ signal events .* expected at most"):
        injected_signal_counts(part, 0.9)
    with pytest.raises(HybridjetError, match="injection.s_over_b: expected positive"):
        injected_signal_counts(part, -0.01)


def test_pools_from_one_labelled_file_or_two_files(tmp_path, make_resonance_jets):
    signal, background = make_resonance_jets(20, 50)
    mixed = JetArrays.concatenate([signal, background])
    write_jets(tmp_path / "mixed.h5", mixed)
    pools = Pools.from_files(jets=tmp_path / "mixed.h5")
    assert len(pools.signal) == 20 and len(pools.background) == 50
    signal.event_id = np.arange(20)  # collides with the background's ids: the signal file's ids are shifted
    write_jets(tmp_path / "s.h5", signal)
    write_jets(tmp_path / "b.h5", background)
    pools = Pools.from_files(signal=tmp_path / "s.h5", background=tmp_path / "b.h5")
    pools.check()
    assert pools.signal.event_id.min() == SIGNAL_ID_OFFSET
    mixed.label[:3] = -1
    write_jets(tmp_path / "unlabeled.h5", mixed)
    with pytest.raises(HybridjetError, match="unlabeled"):
        Pools.from_files(jets=tmp_path / "unlabeled.h5")


def test_supervised_signal_is_a_signal_region_share_apart_from_the_test_set_and_the_injected_pool(pools):
    regions = Regions()
    part = partition(pools, regions, test_signal_fraction=0.4, seed=2, supervised_signal_fraction=0.3)
    sup = part.supervised_signal
    assert len(sup) > 0 and (sup.label == 1).all()
    assert regions.in_signal_region(dijet_mass(sup.jets)).all()
    # about 30% of the signal pool's signal-region events
    n_sr = int(regions.in_signal_region(pools.signal_mjj).sum())
    assert abs(len(sup) - 0.3 * n_sr) < 0.1 * n_sr
    for other in (part.test.event_id, part.signal.event_id):
        assert not np.isin(sup.event_id, other).any()
    sample = inject(part, 0.05, seed=1)
    assert not np.isin(sup.event_id, sample.data.event_id).any()  # never injected
    assert sample.counts()["n_supervised_signal"] == len(sup)
    # without the share, none (and the other samples are cut as before)
    none = partition(pools, regions, test_signal_fraction=0.4, seed=2)
    assert len(none.supervised_signal) == 0
    with pytest.raises(HybridjetError, match=r"sample.supervised_signal_fraction: expected a fraction in "
                                             r"\[0, 1 - test_signal_fraction\), got 0.6"):
        partition(pools, regions, test_signal_fraction=0.4, supervised_signal_fraction=0.6)


def test_injection_down_to_half_a_per_mille(make_resonance_jets):
    signal, background = make_resonance_jets(200, 40000, seed=5)
    part = partition(Pools(signal, background), Regions(), seed=0)
    counts = inject(part, 0.0005, seed=0).counts()
    assert counts["n_signal_sr"] == round(0.0005 * counts["n_background_sr"]) >= 1
    assert counts["s_over_b"] == pytest.approx(0.0005, rel=0.3)
