"""Deterministic train/val/test splits and class balancing."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

SPLIT_NAMES = ("train", "val", "test")


def split_indices(n: int, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0) -> dict[str, np.ndarray]:
    """Shuffle ``range(n)`` with ``seed`` and cut it into disjoint, covering, sorted train/val/test index arrays."""
    if len(fractions) != 3 or any(f < 0 for f in fractions) or sum(fractions) <= 0:
        raise ValueError("fractions must be three non-negative numbers (train, val, test)")
    frac = np.asarray(fractions, dtype=np.float64) / float(sum(fractions))
    perm = np.random.default_rng(seed).permutation(n)
    cuts = np.round(np.cumsum(frac)[:2] * n).astype(int)
    parts = np.split(perm, cuts)
    return {name: np.sort(part).astype(np.int64) for name, part in zip(SPLIT_NAMES, parts, strict=True)}


def balance_indices(indices: np.ndarray, labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """Downsample the majority class among ``indices`` (labels indexed by them) to 1:1; returns sorted indices."""
    indices = np.asarray(indices)
    lab = np.asarray(labels)[indices]
    sig, bkg = indices[lab == 1], indices[lab == 0]
    k = min(len(sig), len(bkg))
    rng = np.random.default_rng(seed)
    keep = np.concatenate([rng.choice(sig, k, replace=False), rng.choice(bkg, k, replace=False)])
    return np.sort(keep)
