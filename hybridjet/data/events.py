"""From events to classifier tensors: per-event features, labels, ids and kinematics, for training (a dataset
indexed by whole batches) and for scoring (jets.h5 files read chunk by chunk, in-memory jets, feature arrays).

Scoring needs only the feature set and the training split's normalisation a run recorded, never a model."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from hybridjet import checks
from hybridjet.data.features import Normalizer, event_features, feature_names, get_feature_set
from hybridjet.data.kinematics import jet_kinematics
from hybridjet.data.store import constituents_per_jet, count_jets_events, jets_per_event, read_jets
from hybridjet.errors import HybridjetError

CHUNK_EVENTS = 100_000


def event_tensors(arrays: Any, features: np.ndarray,
                  kinematics: dict[str, np.ndarray] | None = None) -> dict[str, torch.Tensor]:
    """Per-event tensors a classifier batch carries: normalised features, label, ids, and kinematics for text."""
    kin = jet_kinematics(arrays.jets) if kinematics is None else kinematics
    mask = arrays.jet_mask.astype(bool)
    kinematics = np.stack([np.where(mask, kin[k], 0.0) for k in ("pt", "eta", "phi", "mass")], axis=-1)
    return {
        "features": torch.from_numpy(features),
        "label": torch.from_numpy(arrays.label.astype(np.float32)),
        "event_id": torch.from_numpy(arrays.event_id.astype(np.int64)),
        "jets": torch.from_numpy(arrays.jets.astype(np.float32)),
        "kinematics": torch.from_numpy(kinematics.astype(np.float32)),
        "jet_mask": torch.from_numpy(mask),
        "n_particles": torch.from_numpy(arrays.n_particles.astype(np.int64)),
    }


class EventBatches(Dataset):
    """Events as tensors, indexed by a *list* of rows so a whole batch is gathered in one step."""

    def __init__(self, tensors: dict[str, torch.Tensor]) -> None:
        self.tensors = tensors
        self.length = len(next(iter(tensors.values())))

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, rows: list[int]) -> dict[str, torch.Tensor]:
        index = torch.as_tensor(rows, dtype=torch.long)
        return {key: value[index] for key, value in self.tensors.items()}


class EventFeatures:
    """What turns jets into a classifier's inputs: the feature set and the training split's normalisation."""

    def __init__(self, feature_set: str | None, normalizer: Normalizer) -> None:
        self.feature_set, self.normalizer = feature_set, normalizer

    def check_n_jets(self, n_jets: int, source: object, n_constituents: int = 0) -> None:
        """Refuse events with another number of jet slots (or constituent slots per jet) than the run was trained on
        (their features differ)."""
        if self.feature_set is None:
            raise HybridjetError("model: no feature set recorded; it scores feature arrays only")
        record = get_feature_set(self.feature_set)
        if record.needs_constituents and not n_constituents:
            raise HybridjetError(f"{source}: holds no jet constituents; this run's {self.feature_set!r} features need "
                                 f"them (cluster the events with 'hybridjet cluster --constituents "
                                 f"{self._trained_slots()[1]}')")
        if feature_names(self.feature_set, n_jets, n_constituents) == list(self.normalizer.names):
            return
        jets, constituents = self._trained_slots()
        if record.needs_constituents:
            raise HybridjetError(f"{source}: events of {n_jets} jet slots with {n_constituents} constituents each give "
                                 f"other {self.feature_set!r} features than this run's; expected {jets} jets of "
                                 f"{constituents} constituents, as the run was trained on (recluster with --n-jets "
                                 f"{jets} --constituents {constituents})")
        expected = f"{jets} jets per event, as the run was trained on" if jets else \
            f"the {len(self.normalizer.names)} features the run was trained on"
        raise HybridjetError(f"{source}: events with {n_jets} jet slots give other {self.feature_set!r} features "
                             f"than this run's; expected {expected} (recluster with that number of jets)")

    def jet_slots(self) -> int:
        """The jet slots per event the run's features were computed from (2 where any number gives the same
        features, as for ``highlevel``)."""
        if self.feature_set is None:
            raise HybridjetError("model: no feature set recorded; it scores feature arrays only")
        if feature_names(self.feature_set, 1) == feature_names(self.feature_set, 2):
            return 2
        slots = self._trained_slots()[0]
        if not slots:
            raise HybridjetError(f"model: its {len(self.normalizer.names)} features are not the "
                                 f"{self.feature_set!r} features of any number of jets; expected a run hybridjet "
                                 "trained")
        return slots

    def _trained_slots(self) -> tuple[int, int]:
        """(jet slots, constituent slots per jet) whose features are this run's ((0, 0): none)."""
        return get_feature_set(self.feature_set).slots_of(list(self.normalizer.names)) or (0, 0)

    def refuse_jets_only(self, source: object) -> None:
        """Refuse a source of jets alone (awkward arrays, ROOT trees of jets) for a set that needs constituents."""
        if get_feature_set(self.feature_set).needs_constituents:
            raise HybridjetError(f"{source}: gives jets without their constituents; this run's "
                                 f"{self.feature_set!r} features need them (score a jets.h5 file made by "
                                 "'hybridjet cluster --constituents P')")

    def from_awkward(self, events: Any) -> Any:
        """``JetArrays`` of an awkward array of events (NanoAOD's layout) or :class:`AwkwardEvents`, with the jet
        slots and quantities this run's features need."""
        from hybridjet.data.columnar import AwkwardEvents, jets_from_awkward

        self.refuse_jets_only("events")
        record = get_feature_set(self.feature_set)
        array, fields = (events.events, events.fields) if isinstance(events, AwkwardEvents) else (events, None)
        return jets_from_awkward(array, fields, self.jet_slots(), record.needs_tau, record.needs_particle_count)

    def root_chunks(self, events: Any) -> Iterator[dict[str, torch.Tensor]]:
        """Tensors of a :class:`RootEvents` tree, one chunk of events at a time."""
        from hybridjet.data.columnar import iter_root_jets

        self.refuse_jets_only(f"{events.path}:{events.tree}")
        record = get_feature_set(self.feature_set)
        for arrays in iter_root_jets(events.path, events.tree, events.fields, self.jet_slots(), record.needs_tau,
                                     record.needs_particle_count):
            yield self.tensors(arrays, f"{events.path}:{events.tree}")

    def tensors(self, arrays: Any, source: object = "events") -> dict[str, torch.Tensor]:
        """Classifier tensors of in-memory jets (``JetArrays``)."""
        constituents = getattr(arrays, "constituents", None)
        self.check_n_jets(int(arrays.jets.shape[1]), source, 0 if constituents is None else constituents.shape[2])
        kin = jet_kinematics(arrays.jets)
        features = self.normalizer(event_features(arrays.jets, arrays.jet_mask, arrays.n_particles,
                                                  getattr(arrays, "tau", None), self.feature_set, kin, constituents,
                                                  getattr(arrays, "constituent_mask", None)))
        return event_tensors(arrays, features, kin)

    @property
    def chunk_events(self) -> int:
        """Events read at a time from a file: ``CHUNK_EVENTS``, fewer for wide inputs (constituents), so that a chunk's
        features stay near 64 M numbers."""
        return min(CHUNK_EVENTS, max(1_000, (1 << 26) // max(1, len(self.normalizer.names))))

    def read_chunk(self, path: str | Path, start: int, total: int) -> dict[str, torch.Tensor]:
        """Tensors of the :attr:`chunk_events` events of ``path`` from ``start`` (fewer at the end, ``total``)."""
        needs = get_feature_set(self.feature_set).needs_constituents
        return self.tensors(read_jets(path, start=start, stop=min(start + self.chunk_events, total),
                                      constituents=needs), path)


def _file_chunks(inputs: EventFeatures, path: str | Path, total: int) -> Iterator[dict[str, torch.Tensor]]:
    """:meth:`EventFeatures.read_chunk` for every chunk; the next chunk is read and turned into features in a
    background thread while the caller scores the current one (on a GPU the host work hides behind the device's)."""
    starts = range(0, total, inputs.chunk_events)
    if not starts:
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="hybridjet-read") as pool:
        upcoming = pool.submit(inputs.read_chunk, path, starts[0], total)
        for next_start in starts[1:]:
            chunk = upcoming.result()
            upcoming = pool.submit(inputs.read_chunk, path, next_start, total)
            yield chunk  # closed early: leaving the pool waits for the one chunk in flight
        yield upcoming.result()


def _file_batches(inputs: EventFeatures, path: str | Path, batch_size: int,
                  progress: bool) -> Iterator[dict[str, torch.Tensor]]:
    """Batches of a jets.h5 read ``CHUNK_EVENTS`` at a time."""
    total = count_jets_events(path)
    inputs.check_n_jets(jets_per_event(path), path, constituents_per_jet(path))  # before the first chunk is read
    yield from _rebatched(_file_chunks(inputs, path, total), batch_size, total if progress else None,
                          Path(path).name)


def _rebatched(chunks: Iterator[dict[str, torch.Tensor]], batch_size: int, total: int | None,
               name: str) -> Iterator[dict[str, torch.Tensor]]:
    """Batches of ``batch_size`` from chunks of any size: a chunk's leftover events join the next chunk, so every
    batch but the last is full (one batch shape: a compiled model compiles once); a progress bar over ``total``
    events when it is given."""
    bar = None
    if total is not None:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, unit="ev", desc=f"scoring {name}")
    pending: dict[str, torch.Tensor] | None = None
    for tensors in chunks:
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


def iter_event_batches(inputs: EventFeatures, events: Any, batch_size: int,
                       progress: bool = False) -> Iterator[dict[str, torch.Tensor]]:
    """Yield classifier batches (normalised ``features``, ``kinematics``, ``jets`` ...) from ``events``, reading files
    chunk by chunk (bounded memory).

    ``events`` is a jets.h5 path, a ROOT tree (:class:`~hybridjet.data.columnar.RootEvents`, read in chunks), an
    awkward array of events (NanoAOD's layout, or :class:`~hybridjet.data.columnar.AwkwardEvents` with its fields),
    an object with ``jets``/``jet_mask``/``n_particles``/``tau`` arrays (``JetArrays``, ``JetDataset``), or a float array of *unnormalised* features as :func:`event_features` returns them (enough for
    models that read features only, such as the hybrid).
    """
    from hybridjet.data.columnar import AwkwardEvents, RootEvents, count_root_events, is_awkward

    checks.integer("batch_size", batch_size, 1)
    if isinstance(events, (str, Path)):
        yield from _file_batches(inputs, events, batch_size, progress)
        return
    if isinstance(events, RootEvents):
        total = count_root_events(events.path, events.tree) if progress else None
        yield from _rebatched(inputs.root_chunks(events), batch_size, total, Path(events.path).name)
        return
    if is_awkward(events) or isinstance(events, AwkwardEvents):
        events = inputs.from_awkward(events)
    if isinstance(events, np.ndarray):
        expected = len(inputs.normalizer.names)
        if events.ndim != 2 or events.shape[1] != expected:
            raise HybridjetError(f"events: expected a feature array [N, {expected}], got shape {events.shape}")
        if not np.isfinite(events).all():
            raise HybridjetError(f"events: {int((~np.isfinite(events).all(axis=1)).sum())} rows of the feature array "
                                 "hold NaN or inf; expected finite features")
        features = torch.from_numpy(inputs.normalizer(events.astype(np.float32)))
        for i in range(0, len(features), batch_size):
            yield {"features": features[i : i + batch_size]}
    elif hasattr(events, "jets"):
        tensors = inputs.tensors(getattr(events, "arrays", events))
        for i in range(0, len(tensors["features"]), batch_size):
            yield {k: v[i : i + batch_size] for k, v in tensors.items()}
    else:
        raise HybridjetError(f"events: expected a jets.h5 path, RootEvents, an awkward array of events, "
                             f"JetArrays/JetDataset or a feature array, got {type(events).__name__}")
