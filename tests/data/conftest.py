"""Shared helpers for the data tests: small random LHCO-layout event arrays."""

from __future__ import annotations

import numpy as np
import pytest


def random_events(n: int, seed: int = 0, max_particles: int = 120) -> tuple[np.ndarray, ...]:
    """[n, 700] pt/eta/phi with a few collimated sprays per event, plus 0/1 labels."""
    rng = np.random.default_rng(seed)
    pt = np.zeros((n, 700))
    eta = np.zeros((n, 700))
    phi = np.zeros((n, 700))
    for i in range(n):
        k = int(rng.integers(0, max_particles))
        centres = rng.uniform(-np.pi, np.pi, 3)
        which = rng.integers(0, 3, k)
        pt[i, :k] = rng.exponential(15.0, k) + 0.5
        eta[i, :k] = rng.normal(0, 1.0, 3)[which] + rng.normal(0, 0.3, k)
        phi[i, :k] = (centres[which] + rng.normal(0, 0.3, k) + np.pi) % (2 * np.pi) - np.pi
    labels = rng.integers(0, 2, n)
    return pt, eta, phi, labels


@pytest.fixture
def make_events():
    """The ``random_events`` helper, as a fixture (test directories are not packages)."""
    return random_events


@pytest.fixture
def lhco_file(tmp_path):
    from hybridjet.data.lhco import write_lhco

    pt, eta, phi, labels = random_events(300, seed=1)
    path = tmp_path / "events.h5"
    write_lhco(path, pt, eta, phi, labels)
    return path, (pt, eta, phi, labels)
