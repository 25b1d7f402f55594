"""Events from the scikit-hep world: an awkward array of events with a jet collection (NanoAOD's ``FatJet``, a
Delphes tree's ``FatJet``, any records with pt/eta/phi/mass or px/py/pz/E), or a ROOT TTree read through uproot,
turned into the package's :class:`~hybridjet.data.store.JetArrays` — the leading jets by pT, their four-vectors,
N-subjettiness and the event's particle count — so that every run scores them as it scores a jets.h5.

Where each quantity lives is a :class:`JetFields` record: a preset (``nanoaod``, ``delphes``) or a YAML mapping of
its fields. A missing field is one line naming it and what was expected."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hybridjet.data.store import JetArrays
from hybridjet.errors import HybridjetError, InputFileError

#: events read from a ROOT tree at a time (bounded memory, whatever the file's size)
ROOT_CHUNK_EVENTS = 100_000
#: jet slots an awkward array may be asked for at most
MAX_JETS = 64


@dataclass(frozen=True)
class JetFields:
    """Where the jets are in an awkward array of events (or a ROOT tree's branches).

    Args:
        collection: the field of each event holding its jets ("" : the array is the jets themselves, one list per
            event).
        pt, eta, phi, mass: the jets' fields in those coordinates (GeV); or, with ``cartesian``, ``px``, ``py``,
            ``pz``, ``energy``.
        tau: the N-subjettiness fields τ1, τ2, τ3 of each jet, or one field holding at least 3 values per jet (as
            Delphes' ``Tau[5]``); needed by the feature sets with τ ratios.
        n_particles: the event-level field counting the event's particles (the ``log_n_particles`` feature);
            needed by ``fourvec`` and ``substructure``. ``"sum:FIELD"``: the sum of a per-jet count over the jets;
            "" : none (a run whose features need it refuses the events).
        event_id: the event-level field of event numbers ("" : the row number).
        label: the event-level field of truth labels, 1 signal / 0 background ("" : unknown, written as -1).
    """

    collection: str = "FatJet"
    pt: str = "pt"
    eta: str = "eta"
    phi: str = "phi"
    mass: str = "mass"
    cartesian: bool = False
    px: str = "px"
    py: str = "py"
    pz: str = "pz"
    energy: str = "E"
    tau: tuple[str, ...] = ("tau1", "tau2", "tau3")
    n_particles: str = "nPFCand"
    event_id: str = "event"
    label: str = ""

    def momentum_fields(self) -> tuple[str, str, str, str]:
        """The four jet fields of the four-vector, in the coordinates the record says."""
        if self.cartesian:
            return self.px, self.py, self.pz, self.energy
        return self.pt, self.eta, self.phi, self.mass


#: the layouts of the two formats physicists meet most: NanoAOD (CMS) and Delphes
FIELD_PRESETS: dict[str, JetFields] = {
    "nanoaod": JetFields(),
    # Delphes keeps no particle count per event: set n_particles for the feature sets that need one
    "delphes": JetFields(pt="PT", eta="Eta", phi="Phi", mass="Mass", tau=("Tau",), n_particles="", event_id=""),
}


def parse_fields(value: str | dict[str, Any] | JetFields | None) -> JetFields:
    """A :class:`JetFields` from a preset name, a YAML file of its fields, a mapping, or itself (``None``: the
    ``nanoaod`` preset); unknown keys and bad values are one line."""
    if value is None:
        return FIELD_PRESETS["nanoaod"]
    if isinstance(value, JetFields):
        return value
    preset, value, source = _mapping_or_preset(value, FIELD_PRESETS, "jet fields")
    if preset is not None:
        return preset
    known = set(_field_names())
    unknown = sorted(set(value) - known - {"preset"})
    if unknown:
        raise HybridjetError(f"{source}.{unknown[0]}: unknown field; expected some of {', '.join(sorted(known))}")
    base = FIELD_PRESETS.get(value.get("preset", "nanoaod"))
    if base is None:
        raise HybridjetError(f"{source}.preset: expected one of {', '.join(FIELD_PRESETS)}, got {value['preset']!r}")
    changes = {k: v for k, v in value.items() if k != "preset"}
    for key, item in changes.items():
        if key == "cartesian":
            if not isinstance(item, bool):
                raise HybridjetError(f"{source}.cartesian: expected true or false, got {item!r}")
        elif key == "tau":
            items = [item] if isinstance(item, str) else item
            if not isinstance(items, list) or len(items) not in (1, 3) or not all(isinstance(t, str) for t in items):
                raise HybridjetError(f"{source}.tau: expected three field names (tau1, tau2, tau3) or one field "
                                     f"holding them, got {item!r}")
            changes[key] = tuple(items)
        elif not isinstance(item, str):
            raise HybridjetError(f"{source}.{key}: expected a field name, got {item!r}")
    return dataclasses.replace(base, **changes)


def _mapping_or_preset(value: str | dict[str, Any], presets: dict[str, Any], what: str) -> tuple[Any, Any, str]:
    """``(preset, None, "")`` for a preset's name, else ``(None, mapping, where it came from)`` of a YAML file's
    mapping or a mapping given; anything else is one line."""
    source = what.replace(" ", "_")
    if isinstance(value, str):
        if value in presets:
            return presets[value], None, ""
        path = Path(value)
        if not path.is_file():
            raise HybridjetError(f"--fields: expected a preset ({', '.join(presets)}) or a YAML file of {what}, got "
                                 f"{value!r}")
        import yaml

        try:
            value = yaml.safe_load(path.read_text())
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
            raise InputFileError(path, f"not a readable YAML mapping of {what} ({type(err).__name__})") from None
        source = str(path)
    if not isinstance(value, dict):
        raise HybridjetError(f"{source}: expected a mapping of {what}")
    return None, value, source


def _field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(JetFields)]


def is_awkward(events: Any) -> bool:
    """Whether ``events`` is an awkward array, its subclasses included (coffea's NanoEvents, vector's momentum
    arrays), without importing awkward where nothing has."""
    import sys

    awkward = sys.modules.get("awkward")
    return awkward is not None and isinstance(events, awkward.Array)


@dataclass(frozen=True)
class AwkwardEvents:
    """An awkward array of events and where its jets are: what ``predict_proba`` takes for a layout other than
    NanoAOD's (``hybridjet.AwkwardEvents(events, parse_fields("delphes"))``); scores come back as awkward."""

    events: Any
    fields: JetFields = dataclasses.field(default_factory=JetFields)


@dataclass(frozen=True)
class RootEvents:
    """A ROOT file's TTree of events with a jet collection, read through uproot in chunks:
    ``predict_proba(hybridjet.RootEvents("nano.root", "Events"))``; ``fields`` as :class:`AwkwardEvents`'."""

    path: str | Path
    tree: str = "Events"
    fields: JetFields = dataclasses.field(default_factory=JetFields)


def scores_like(events: Any, probabilities: np.ndarray) -> Any:
    """``probabilities`` as an awkward array when the events came as one (so they join the user's arrays), else
    as given."""
    if is_awkward(events) or isinstance(events, AwkwardEvents):
        import awkward as ak

        return ak.Array(probabilities)
    return probabilities


def jets_from_awkward(events: Any, fields: JetFields | None = None, n_jets: int = 2, needs_tau: bool = True,
                      needs_particle_count: bool = True, source: str = "events", first_row: int = 0) -> JetArrays:
    """The ``n_jets`` leading jets by pT of each event of ``events`` as :class:`JetArrays` (missing jets masked),
    with τ1..τ3 and the particle count where the feature set ``needs`` them (zeros, never read, where not); without
    an event-number field the ids are the rows, counted from ``first_row`` (a chunk's place in its file)."""
    import awkward as ak

    fields = fields or JetFields()
    if not 1 <= n_jets <= MAX_JETS:
        raise HybridjetError(f"n_jets: expected 1 to {MAX_JETS}, got {n_jets}")
    jets = _collection(events, fields, source)
    quantities = [_jet_field(jets, name, fields, source) for name in fields.momentum_fields()]
    if fields.cartesian:
        px, py, pz, energy = quantities
        pt = np.hypot(px, py)
    else:
        pt, eta, phi, mass = quantities
        px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
        energy = np.sqrt(px**2 + py**2 + pz**2 + mass**2)
    order = ak.argsort(pt, axis=1, ascending=False)  # the leading jets first, whatever the collection's order

    def leading(values: Any) -> tuple[np.ndarray, np.ndarray]:
        padded = ak.pad_none(values[order], n_jets, axis=1, clip=True)
        present = ~ak.to_numpy(ak.is_none(padded, axis=1))
        return ak.to_numpy(ak.fill_none(padded, 0.0)).astype(np.float64), present

    four = [leading(q) for q in (px, py, pz, energy)]
    mask = four[0][1]
    vectors = np.stack([v for v, _ in four], axis=-1).astype(np.float32)
    n = len(vectors)
    tau = np.zeros((n, n_jets, 3), np.float32)
    if needs_tau:
        tau = np.stack([leading(t)[0] for t in _tau_fields(jets, fields, source)], axis=-1).astype(np.float32)
    count = np.zeros(n, np.int64)
    if needs_particle_count:
        count = _particle_count(events, jets, fields, source)
    event_id = np.arange(first_row, first_row + n, dtype=np.int64) if not fields.event_id else \
        _integers(_event_field(events, fields.event_id, source, "event numbers"), fields.event_id, source)
    label = np.full(n, -1, np.int8) if not fields.label else \
        _labels(_event_field(events, fields.label, source, "labels 1 / 0"), fields.label, source)
    arrays = JetArrays(vectors, mask, count, tau, label, event_id, {"source": source})
    for name, values in (("jets", vectors), ("tau", tau)):
        if not np.isfinite(values).all():
            raise HybridjetError(f"{source}: {int((~np.isfinite(values).all(axis=(1, 2))).sum())} events have "
                                 f"non-finite {name}; expected finite jet quantities")
    return arrays


def _collection(events: Any, fields: JetFields, source: str) -> Any:
    if not fields.collection:
        return events
    if fields.collection not in getattr(events, "fields", []):
        have = ", ".join(getattr(events, "fields", [])[:12]) or "none"
        raise HybridjetError(f"{source}: no field {fields.collection!r} (the jet collection); its fields: {have}; "
                             "expected a jet collection (set fields.collection)")
    return events[fields.collection]


def _jet_field(jets: Any, name: str, fields: JetFields, source: str) -> Any:
    import awkward as ak

    if name not in getattr(jets, "fields", []):
        where = f"{source}.{fields.collection}" if fields.collection else source
        have = ", ".join(getattr(jets, "fields", [])[:16]) or "none"
        raise HybridjetError(f"{where}: no jet field {name!r}; its fields: {have}; expected the jets' "
                             f"{'px, py, pz, E' if fields.cartesian else 'pt, eta, phi, mass'} (set fields.{_key(fields, name)})")
    values = jets[name]
    if values.ndim != 2:
        raise HybridjetError(f"{source}: jet field {name!r} holds {values.ndim - 1} levels per event; expected one "
                             "value per jet")
    return ak.values_astype(values, np.float64)


def _key(fields: JetFields, name: str) -> str:
    return next((f.name for f in dataclasses.fields(fields) if getattr(fields, f.name) == name), name)


def _tau_fields(jets: Any, fields: JetFields, source: str) -> list[Any]:
    import awkward as ak

    if len(fields.tau) == 3:
        return [_jet_field(jets, name, fields, source) for name in fields.tau]
    name = fields.tau[0]
    if name not in getattr(jets, "fields", []):
        raise HybridjetError(f"{source}: no jet field {name!r} (N-subjettiness); expected τ1..τ3 per jet for this "
                             "run's feature set (set fields.tau)")
    values = jets[name]
    if values.ndim != 3 or ak.any(ak.num(values, axis=2) < 3):
        raise HybridjetError(f"{source}: jet field {name!r}: expected at least 3 values (τ1, τ2, τ3) per jet")
    return [ak.values_astype(values[:, :, k], np.float64) for k in range(3)]


def _particle_count(events: Any, jets: Any, fields: JetFields, source: str) -> np.ndarray:
    import awkward as ak

    name = fields.n_particles
    if not name:
        raise HybridjetError(f"{source}: no particle count (fields.n_particles is not set); this run's feature set "
                             "needs the event's particle count: expected an event field, or 'sum:FIELD' of a per-jet "
                             "count")
    if name.startswith("sum:"):
        per_jet = _jet_field(jets, name[4:], fields, source)
        return ak.to_numpy(ak.sum(per_jet, axis=1)).astype(np.int64)
    return _event_field(events, name, source, "the event's particle count (set fields.n_particles, or "
                        "'sum:nConstituents' for the jets' own counts)").astype(np.int64)


def _integers(values: np.ndarray, name: str, source: str) -> np.ndarray:
    """Event numbers: whole numbers, one per event."""
    if values.dtype.kind not in "iu" and not (values.dtype.kind == "f" and np.all(np.mod(values, 1) == 0)):
        raise HybridjetError(f"{source}: event field {name!r}: expected whole event numbers, got {values.dtype}")
    return values.astype(np.int64)


def _labels(values: np.ndarray, name: str, source: str) -> np.ndarray:
    """Truth labels: 1 signal, 0 background."""
    bad = ~np.isin(values, (0, 1))
    if bad.any():
        raise HybridjetError(f"{source}: event field {name!r}: expected labels 1 (signal) or 0 (background), got "
                             f"{values[bad][0].item()!r} in {int(bad.sum())} events")
    return values.astype(np.int8)


def _event_field(events: Any, name: str, source: str, what: str) -> np.ndarray:
    import awkward as ak

    if name not in getattr(events, "fields", []):
        raise HybridjetError(f"{source}: no event field {name!r}; expected {what}")
    values = events[name]
    if values.ndim != 1 or not isinstance(ak.type(values).content, ak.types.NumpyType):
        raise HybridjetError(f"{source}: event field {name!r}: expected one number per event")
    return ak.to_numpy(values)


# --- ROOT trees through uproot ---

def _branch(keys: set[str], collection: str, field: str) -> str | None:
    """The branch of a collection's field in NanoAOD's (``FatJet_pt``) or Delphes' (``FatJet.PT``, a fixed-size
    array as ``FatJet.Tau[5]``) naming."""
    for name in (f"{collection}_{field}", f"{collection}.{field}", f"{collection}/{collection}.{field}"):
        if name in keys:
            return name
    sized = sorted(k for k in keys if k.startswith((f"{collection}.{field}[", f"{collection}/{collection}.{field}[")))
    return sized[0] if sized else None


def open_tree(path: str | Path, tree: str) -> Any:
    """The TTree ``tree`` of the ROOT file ``path``; a missing file or tree is one line."""
    try:
        import uproot
    except ImportError:
        raise HybridjetError("reading ROOT files needs uproot (pip install 'hybridjet[root]')") from None
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "no such file; expected a ROOT file")
    try:
        handle = uproot.open(path)
    except Exception as err:  # noqa: BLE001 - uproot raises many kinds for a file that is not ROOT
        raise InputFileError(path, f"not a ROOT file uproot can read ({type(err).__name__})") from None
    # TTrees, and ROOT 7's RNTuples (what uproot writes by default): both read the same way
    trees = [k.split(";")[0] for k, cls in handle.classnames().items() if cls in ("TTree", "ROOT::RNTuple")]
    if tree not in trees:
        raise InputFileError(path, f"no tree {tree!r}; its trees: {', '.join(trees) or 'none'}; expected --tree "
                                   "naming one")
    return handle[tree]


def _branch_keys(tree: Any) -> set[str]:
    """A tree's branch names; a TTree's nested (Delphes') branches by their short names too."""
    keys = set(tree.keys())
    if hasattr(tree, "branches"):
        keys |= set(tree.keys(recursive=True, full_paths=False))
    return keys


def _root_branches(tree: Any, fields: JetFields, needs_tau: bool, needs_count: bool,
                   path: Path) -> dict[str, tuple[str, str]]:
    """Branch -> (where it goes: "jet" / "event", its field name), every needed one checked to exist."""
    keys = _branch_keys(tree)
    wanted: dict[str, tuple[str, str]] = {}
    jet_fields = list(fields.momentum_fields()) + (list(fields.tau) if needs_tau else [])
    if needs_count and fields.n_particles.startswith("sum:"):
        jet_fields.append(fields.n_particles[4:])
    for field in jet_fields:
        branch = _branch(keys, fields.collection, field) if fields.collection else (field if field in keys else None)
        if branch is None:
            raise InputFileError(path, f"no branch of jet field {field!r} in collection {fields.collection!r} "
                                       f"(looked for {fields.collection}_{field} and {fields.collection}.{field}); "
                                       "expected the jets' branches (set --fields)")
        wanted[branch] = ("jet", field)
    if needs_count and not fields.n_particles:
        raise InputFileError(path, "no particle count (fields.n_particles is not set); this run's feature set needs "
                                   "the event's particle count: expected an event branch, or 'sum:FIELD' of a per-jet "
                                   "count")
    events = [f for f in (fields.event_id, fields.label) if f]
    if needs_count and fields.n_particles and not fields.n_particles.startswith("sum:"):
        events.append(fields.n_particles)
    for field in events:
        if field not in keys:
            raise InputFileError(path, f"no branch {field!r} (an event-level field the run needs); expected it, or "
                                       "set --fields")
        wanted[field] = ("event", field)
    return wanted


def iter_root_jets(path: str | Path, tree: str, fields: JetFields, n_jets: int, needs_tau: bool = True,
                   needs_particle_count: bool = True,
                   chunk_events: int = ROOT_CHUNK_EVENTS) -> Iterator[JetArrays]:
    """:func:`jets_from_awkward` of ``tree`` in ``path``, ``chunk_events`` events at a time."""
    import awkward as ak

    handle = open_tree(path, tree)
    wanted = _root_branches(handle, fields, needs_tau, needs_particle_count, Path(path))
    first_row = 0
    for chunk in handle.iterate(list(wanted), step_size=chunk_events, library="ak"):
        jets = ak.zip({field: _read(chunk, b) for b, (kind, field) in wanted.items() if kind == "jet"},
                      depth_limit=2)  # the per-jet level: a field holding an array per jet (Tau[5]) stays one
        record = {field: _read(chunk, b) for b, (kind, field) in wanted.items() if kind == "event"}
        record[fields.collection or "jets"] = jets
        events = ak.zip(record, depth_limit=1)
        zipped = dataclasses.replace(fields, collection=fields.collection or "jets")
        yield jets_from_awkward(events, zipped, n_jets, needs_tau, needs_particle_count, f"{path}:{tree}", first_row)
        first_row += len(chunk)


def _read(chunk: Any, branch: str) -> Any:
    """A branch's values in a chunk: a field of its own (a TTree's), or nested under its collection (an RNTuple's
    ``FatJet.pt`` comes back as ``FatJet`` holding ``pt``)."""
    if branch in chunk.fields:
        return chunk[branch]
    value = chunk
    for part in branch.replace("/", ".").split("."):
        if part not in value.fields:
            continue  # Delphes' FatJet/FatJet.PT: the collection twice
        value = value[part]
    return value


def check_root_events(events: RootEvents, needs_tau: bool, needs_particle_count: bool) -> np.ndarray:
    """Check, before any work, that ``events``' tree exists, holds events and every branch the run needs, and
    that its event numbers (when the fields name them) do not repeat; returns the events' ids."""
    handle = open_tree(events.path, events.tree)
    _root_branches(handle, events.fields, needs_tau, needs_particle_count, Path(events.path))
    n = int(handle.num_entries)
    if n == 0:
        raise InputFileError(events.path, f"tree {events.tree!r} holds no events; nothing to score")
    if not events.fields.event_id:
        return np.arange(n, dtype=np.int64)
    import awkward as ak

    where = f"{events.path}:{events.tree}"
    record = ak.zip({events.fields.event_id: handle[events.fields.event_id].array(library="ak")}, depth_limit=1)
    ids = _integers(_event_field(record, events.fields.event_id, where, "event numbers"), events.fields.event_id,
                    where)
    unique, counts = np.unique(ids, return_counts=True)
    if len(unique) != len(ids):
        raise InputFileError(events.path, f"event field {events.fields.event_id!r} repeats {len(ids) - len(unique):,} "
                                          f"number(s) (first: {int(unique[counts > 1][0])}); expected one id per "
                                          "event (scores are matched to events by it), or fields.event_id: '' to "
                                          "number the rows")
    return ids


def count_root_events(path: str | Path, tree: str) -> int:
    """Entries of ``tree`` in ``path``."""
    return int(open_tree(path, tree).num_entries)


# --- particle-level ROOT trees, for clustering ---

@dataclass(frozen=True)
class ParticleFields:
    """Where an event's particles are in a particle-level ROOT tree (``hybridjet cluster events.root``).

    Args:
        collection: the particle collection (Delphes: ``Particle``, or an ``EFlow*`` collection).
        pt, eta, phi: their fields; ``mass``: "" for massless particles (as the LHCO files have them).
        status: a field whose value must be ``final_state`` for a particle to be clustered ("" : every particle).
        pid: the PDG id field; particles whose ``|pid|`` is in ``invisible`` (neutrinos) are left out ("" : none).
        event_id, label: event-level fields ("" : the row number; no labels).
    """

    collection: str = "Particle"
    pt: str = "PT"
    eta: str = "Eta"
    phi: str = "Phi"
    mass: str = "Mass"
    status: str = "Status"
    final_state: int = 1
    pid: str = "PID"
    invisible: tuple[int, ...] = (12, 14, 16)
    event_id: str = ""
    label: str = ""


PARTICLE_PRESETS: dict[str, ParticleFields] = {
    "delphes": ParticleFields(),  # the generator particles of a Delphes tree: stable, neutrinos left out
}


def parse_particle_fields(value: str | dict[str, Any] | ParticleFields | None) -> ParticleFields:
    """A :class:`ParticleFields` from a preset name, a YAML file or a mapping (``None``: ``delphes``)."""
    if value is None:
        return PARTICLE_PRESETS["delphes"]
    if isinstance(value, ParticleFields):
        return value
    preset, value, source = _mapping_or_preset(value, PARTICLE_PRESETS, "particle fields")
    if preset is not None:
        return preset
    known = {f.name for f in dataclasses.fields(ParticleFields)}
    unknown = sorted(set(value) - known)
    if unknown:
        raise HybridjetError(f"{source}.{unknown[0]}: unknown field; expected some of {', '.join(sorted(known))}")
    changes = dict(value)
    for key, item in changes.items():
        if key == "final_state":
            if isinstance(item, bool) or not isinstance(item, int):
                raise HybridjetError(f"{source}.final_state: expected an integer status, got {item!r}")
        elif key == "invisible":
            if not isinstance(item, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in item):
                raise HybridjetError(f"{source}.invisible: expected a list of PDG ids, got {item!r}")
            changes[key] = tuple(item)
        elif not isinstance(item, str):
            raise HybridjetError(f"{source}.{key}: expected a field name, got {item!r}")
    return dataclasses.replace(PARTICLE_PRESETS["delphes"], **changes)


@dataclass(frozen=True)
class RootParticles:
    """A particle-level ROOT tree as ``hybridjet cluster``'s input: :meth:`read` gives the events ``start:stop``
    as massless-or-massive particle records, as the LHCO reader gives them."""

    path: str
    tree: str
    fields: ParticleFields = dataclasses.field(default_factory=ParticleFields)

    def branches(self) -> dict[str, tuple[str, str]]:
        """Branch -> (particle / event, field), every one checked to exist in the tree."""
        f = self.fields
        handle = open_tree(self.path, self.tree)
        keys = _branch_keys(handle)
        wanted: dict[str, tuple[str, str]] = {}
        for field in (f.pt, f.eta, f.phi, f.mass, f.status, f.pid):
            if not field:
                continue
            branch = _branch(keys, f.collection, field)
            if branch is None:
                raise InputFileError(self.path, f"no branch of particle field {field!r} in collection "
                                                f"{f.collection!r} (looked for {f.collection}_{field} and "
                                                f"{f.collection}.{field}); expected the particles' branches (set "
                                                "--fields)")
            wanted[branch] = ("particle", field)
        for field in (f.event_id, f.label):
            if field and field not in keys:
                raise InputFileError(self.path, f"no branch {field!r} (an event-level field); expected it, or set "
                                                "--fields")
            if field:
                wanted[field] = ("event", field)
        return wanted

    def count(self) -> int:
        """The tree's events."""
        return int(open_tree(self.path, self.tree).num_entries)

    def labelled(self) -> bool:
        """Whether the events carry truth labels."""
        return bool(self.fields.label)

    def read(self, start: int, stop: int) -> Any:
        """Events ``start:stop`` as :class:`~hybridjet.data.lhco.LHCOEvents` (the particles to cluster)."""
        import awkward as ak

        from hybridjet.data.lhco import LHCOEvents

        f = self.fields
        wanted = self.branches()
        chunk = open_tree(self.path, self.tree).arrays(list(wanted), entry_start=start, entry_stop=stop, library="ak")
        values = {field: _read(chunk, b) for b, (kind, field) in wanted.items() if kind == "particle"}
        keep = values[f.pt] > 0
        if f.status:
            keep = keep & (values[f.status] == f.final_state)
        if f.pid:
            for pdg in f.invisible:
                keep = keep & (abs(values[f.pid]) != pdg)
        mass = values[f.mass][keep] if f.mass else ak.zeros_like(values[f.pt][keep])
        particles = ak.zip({"pt": values[f.pt][keep], "eta": values[f.eta][keep], "phi": values[f.phi][keep],
                            "mass": mass}, with_name="Momentum4D")
        particles = ak.values_astype(particles, np.float64)
        n = stop - start
        where = f"{self.path}:{self.tree}"
        record = ak.zip({field: _read(chunk, b) for b, (kind, field) in wanted.items() if kind == "event"},
                        depth_limit=1) if f.event_id or f.label else None
        event_id = np.arange(start, stop, dtype=np.int64) if not f.event_id else \
            _integers(_event_field(record, f.event_id, where, "event numbers"), f.event_id, where)
        labels = None if not f.label else _labels(_event_field(record, f.label, where, "labels 1 / 0"), f.label,
                                                  where)
        if len(event_id) != n:
            raise InputFileError(self.path, f"read {len(event_id)} events of {n} asked for; a damaged tree")
        return LHCOEvents(particles=particles, labels=labels, event_id=event_id)
