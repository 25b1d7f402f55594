"""Turning user inputs (jets.h5 paths, in-memory jets, feature arrays) into classifier batches."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hybridjet.errors import HybridjetError
from hybridjet.models.features import event_features

CHUNK_EVENTS = 100_000


def _tensors_of(model: Any, arrays: Any) -> dict[str, torch.Tensor]:
    from hybridjet.data.kinematics import jet_kinematics
    from hybridjet.models.datamodule import event_tensors

    kin = jet_kinematics(arrays.jets)
    features = model.normalizer(event_features(arrays.jets, arrays.jet_mask, arrays.n_particles,
                                               getattr(arrays, "tau", None), model.feature_set, kin))
    return event_tensors(arrays, features, kin)


def _batches_of(model: Any, arrays: Any, batch_size: int) -> Iterator[dict[str, torch.Tensor]]:
    tensors = _tensors_of(model, arrays)
    for i in range(0, len(tensors["features"]), batch_size):
        yield {k: v[i : i + batch_size] for k, v in tensors.items()}


def read_chunk(model: Any, path: str | Path, start: int, total: int) -> dict[str, torch.Tensor]:
    """Classifier tensors of the ``CHUNK_EVENTS`` events of ``path`` from ``start`` (fewer at the end, ``total``)."""
    from hybridjet.data.store import read_jets

    return _tensors_of(model, read_jets(path, start=start, stop=min(start + CHUNK_EVENTS, total)))


def _file_chunks(model: Any, path: str | Path, total: int) -> Iterator[dict[str, torch.Tensor]]:
    """:func:`read_chunk` for every chunk; the next chunk is read and turned into features in a background thread
    while the caller scores the current one (on a GPU the host work hides behind the device's)."""
    from concurrent.futures import ThreadPoolExecutor

    starts = range(0, total, CHUNK_EVENTS)
    if not starts:
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="hybridjet-read") as pool:
        upcoming = pool.submit(read_chunk, model, path, starts[0], total)
        for next_start in starts[1:]:
            chunk = upcoming.result()
            upcoming = pool.submit(read_chunk, model, path, next_start, total)
            yield chunk  # closed early: leaving the pool waits for the one chunk in flight
        yield upcoming.result()


def _file_batches(model: Any, path: str | Path, batch_size: int, progress: bool) -> Iterator[dict[str, torch.Tensor]]:
    """Batches of a jets.h5 read ``CHUNK_EVENTS`` at a time; a chunk's leftover events join the next chunk, so every
    batch but the last is full (one batch shape: a compiled model compiles once)."""
    from hybridjet.data.store import count_jets_events

    total = count_jets_events(path)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, unit="ev", desc=f"scoring {Path(path).name}")
    pending: dict[str, torch.Tensor] | None = None
    for tensors in _file_chunks(model, path, total):
        n_read = len(tensors["features"])
        if pending is not None:
            tensors = {k: torch.cat([pending[k], v]) for k, v in tensors.items()}
        n = len(tensors["features"])
        full = n - n % batch_size
        for i in range(0, full, batch_size):
            yield {k: v[i : i + batch_size] for k, v in tensors.items()}
        pending = {k: v[full:] for k, v in tensors.items()} if full < n else None
        if bar is not None:
            bar.update(n_read)
    if pending is not None:
        yield pending
    if bar is not None:
        bar.close()


def iter_event_batches(model: Any, events: Any, batch_size: int,
                       progress: bool = False) -> Iterator[dict[str, torch.Tensor]]:
    """Yield classifier batches (normalised ``features``, ``kinematics``, ``jets`` …) from ``events``, reading files
    chunk by chunk (bounded memory).

    ``events`` is a jets.h5 path, an object with ``jets``/``jet_mask``/``n_particles``/``tau`` arrays (``JetArrays``,
    ``JetDataset``), or a float array of *unnormalised* features as :func:`event_features` returns them (enough for
    models that read features only, such as the hybrid).
    """
    if model.normalizer is None:
        raise HybridjetError("model: no feature normalisation (train it or load it with from_pretrained)")
    if isinstance(events, (str, Path)):
        yield from _file_batches(model, events, batch_size, progress)
        return
    if isinstance(events, np.ndarray):
        expected = len(model.normalizer.names)
        if events.ndim != 2 or events.shape[1] != expected:
            raise HybridjetError(f"events: expected a feature array [N, {expected}], got shape {events.shape}")
        features = torch.from_numpy(model.normalizer(events.astype(np.float32)))
        for i in range(0, len(features), batch_size):
            yield {"features": features[i : i + batch_size]}
    elif hasattr(events, "jets"):
        yield from _batches_of(model, getattr(events, "arrays", events), batch_size)
    else:
        raise HybridjetError(f"events: expected a jets.h5 path, JetArrays/JetDataset or a feature array, got {type(events).__name__}")
