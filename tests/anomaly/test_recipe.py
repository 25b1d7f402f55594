import dataclasses

from hybridjet.anomaly.config import parse_config
from hybridjet.anomaly.recipe import _fingerprint


def test_a_trained_runs_fingerprint_stays_the_same_across_versions():
    """The fingerprint decides whether a finished run is reused: a field that does not change training (here the
    methods a run only reports) must leave it as it was, or every user's trained runs would be retrained. The value
    is the one hybridjet has computed for this config since the fingerprint took the events' digest; change it only
    with a change to what trains."""
    cfg = parse_config({"data": {"jets": "jets.h5"}, "methods": {"gbdt": {"max_iter": 20}}})
    assert _fingerprint(cfg, cfg.methods[0], 0.01, 0, "events") == "cedbed7073ea1795"
    reporting = dataclasses.replace(cfg, reported_only=(dataclasses.replace(cfg.methods[0], name="ablation"),))
    assert _fingerprint(reporting, cfg.methods[0], 0.01, 0, "events") == "cedbed7073ea1795"
    assert _fingerprint(cfg, cfg.methods[0], 0.01, 1, "events") != "cedbed7073ea1795"


def test_settings_added_later_leave_the_fingerprints_of_runs_without_them():
    """``monitor`` and ``models_per_fold`` came after runs were trained: unset, they are not in the fingerprint;
    set, they make another one."""
    cfg = parse_config({"data": {"jets": "jets.h5"}, "methods": {"gbdt": {"max_iter": 20},
                                                                 "gbdt_five": {"method": "gbdt", "max_iter": 20,
                                                                               "models_per_fold": 5}}})
    assert _fingerprint(cfg, cfg.methods[0], 0.01, 0, "events") == "cedbed7073ea1795"
    assert _fingerprint(cfg, cfg.methods[1], 0.01, 0, "events") != "cedbed7073ea1795"
