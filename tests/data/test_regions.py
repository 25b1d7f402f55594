import numpy as np
import pytest

from hybridjet.data.regions import Regions
from hybridjet.errors import HybridjetError


def test_windows_are_half_open_and_default_to_the_lhco_search():
    regions = Regions.from_config(None)
    assert regions.signal_region == (3300.0, 3700.0)
    mjj = np.array([2999.0, 3000.0, 3299.9, 3300.0, 3699.9, 3700.0, 4100.0])
    np.testing.assert_array_equal(regions.in_signal_region(mjj), [0, 0, 0, 1, 1, 0, 0])
    np.testing.assert_array_equal(regions.in_sidebands(mjj), [0, 1, 1, 0, 0, 1, 0])
    custom = Regions.from_config({"signal_region": [3400, 3600], "sidebands": [[3200, 3400]]})
    assert custom.in_sidebands(np.array([3300.0, 3650.0])).tolist() == [True, False]


@pytest.mark.parametrize(("config", "match"), [
    ({"signal_region": [3700, 3300]}, r"regions.signal_region: expected \[lo, hi\]"),
    ({"signal_region": "3.3-3.7"}, r"regions.signal_region: expected"),
    ({"sidebands": [[3000, 3400]]}, r"regions.sidebands\[0\]: \[3000, 3400\] GeV overlaps the signal region"),
    ({"sidebands": [[3000, 3300], [3100, 3200]]}, r"regions.sidebands\[1\]: .* overlaps sidebands\[0\]"),
    ({"sidebands": []}, r"regions.sidebands: expected a list"),
    ({"side_bands": []}, r"regions.side_bands: unknown setting"),
])
def test_bad_windows_are_one_line_errors(config, match):
    with pytest.raises(HybridjetError, match=match):
        Regions.from_config(config)


def test_check_against_the_data():
    mjj = np.random.default_rng(0).uniform(2500, 3900, 1000)
    regions = Regions.from_config(None)
    regions.check(mjj, need_sidebands=False)  # the upper sideband reaches past the data: fine without CWoLa
    with pytest.raises(HybridjetError, match=r"regions.sidebands\[1\]: \[3950, 4100\] GeV holds no events"):
        Regions.from_config({"sidebands": [[3000, 3300], [3950, 4100]]}).check(mjj)
    with pytest.raises(HybridjetError, match=r"regions.signal_region: \[5000, 5400\] GeV is not inside the m_jj "
                                             r"range of the data \[2500, 3899\] GeV"):
        Regions.from_config({"signal_region": [5000, 5400], "sidebands": [[4600, 5000]]}).check(mjj)
