"""Weakly supervised resonance search (CWoLa, idealized anomaly detection) against signal injection:
``hybridjet anomaly -c configs/anomaly_demo.yaml``."""
