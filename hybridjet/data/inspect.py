"""Human-readable description of an LHCO event file or a jets.h5 file (``hybridjet inspect``)."""

from __future__ import annotations

import os

import numpy as np

from hybridjet.data.h5 import open_hdf5, short_error
from hybridjet.errors import InputFileError


def _fmt_stats(name: str, values: np.ndarray) -> str:
    if len(values) == 0:
        return f"  {name:<22} (none)"
    q = np.percentile(values, [5, 50, 95])
    return f"  {name:<22} median {q[1]:10.2f}   5%-95%: {q[0]:.2f} .. {q[2]:.2f}"


def describe(path: str | os.PathLike[str], n_sample: int = 1000) -> str:
    """A multi-line summary: layout, event count, labels, and statistics over the first ``n_sample`` events."""
    # the same rule as cluster's and every reader's: missing, a directory, not HDF5, truncated -> one line
    with open_hdf5(path, "an LHCO-format or jets.h5 file") as f:
        is_jets = "schema_version" in f.attrs
    return _describe_jets(path, n_sample) if is_jets else _describe_lhco(path, n_sample)


def _describe_lhco(path: str | os.PathLike[str], n_sample: int) -> str:
    import awkward as ak

    from hybridjet.data.lhco import count_events, is_labelled, read_lhco

    n = count_events(path)
    labelled = is_labelled(path)
    sample = read_lhco(path, 0, min(n, n_sample))
    lines = [f"{path}: LHCO-format event file (pandas fixed format, key 'df')",
             f"  events                 {n}",
             f"  columns                {2101 if labelled else 2100} ({'labelled' if labelled else 'unlabelled black box'})"]
    if labelled and n:
        from hybridjet.data.lhco import _open, _values_dataset

        with _open(path) as f:
            ds = _values_dataset(f, path)
            try:
                labels = np.concatenate([ds[s:s + 65536, 2100] for s in range(0, n, 65536)])
            except OSError as exc:
                raise InputFileError(path, f"labels unreadable; truncated or corrupt file ({short_error(exc)})") from None
        lines.append(f"  labels                 {int((labels == 1).sum())} signal, {int((labels == 0).sum())} background")
    lines.append(f"  statistics over the first {len(sample)} events:")
    lines.append(_fmt_stats("particles / event", ak.to_numpy(ak.num(sample.particles))))
    lines.append(_fmt_stats("particle pT [GeV]", ak.to_numpy(ak.flatten(sample.particles.pt))))
    lines.append(_fmt_stats("scalar sum pT [GeV]", ak.to_numpy(ak.sum(sample.particles.pt, axis=1))))
    return "\n".join(lines)


def _describe_jets(path: str | os.PathLike[str], n_sample: int) -> str:
    from hybridjet.data.kinematics import dijet_mass, jet_kinematics
    from hybridjet.data.store import count_jets_events, read_jets, read_labels

    n = count_jets_events(path)
    arrays = read_jets(path, 0, min(n, n_sample))
    a = arrays.attrs
    full_labels = read_labels(path) if n <= 2_000_000 else arrays.label
    lines = [f"{path}: jets.h5 (schema version {a.get('schema_version')}, hybridjet {a.get('package_version')})",
             f"  events                 {n}",
             f"  jets per event         {arrays.n_jets} ({a.get('algorithm')}, R={a.get('R')}, min pT={a.get('min_pt')} GeV)",
             f"  constituents per jet   {arrays.n_constituents or 'none'}",
             f"  source                 {a.get('source')}",
             f"  created                {a.get('created')}",
             f"  labels                 {int((full_labels == 1).sum())} signal, {int((full_labels == 0).sum())} "
             f"background, {int((full_labels == -1).sum())} unknown"]
    if len(arrays):
        kin = jet_kinematics(arrays.jets)
        mask = arrays.jet_mask
        lines.append(f"  statistics over the first {len(arrays)} events:")
        lines.append(f"  events with < {arrays.n_jets} jets   {int((~mask.all(axis=1)).sum())}")
        for j in range(min(arrays.n_jets, 2)):
            lines.append(_fmt_stats(f"jet {j + 1} pT [GeV]", kin["pt"][mask[:, j], j]))
            lines.append(_fmt_stats(f"jet {j + 1} mass [GeV]", kin["mass"][mask[:, j], j]))
            tau = arrays.tau[mask[:, j], j]
            with np.errstate(divide="ignore", invalid="ignore"):
                t21 = np.where(tau[:, 0] > 0, tau[:, 1] / tau[:, 0], 0.0)
            lines.append(_fmt_stats(f"jet {j + 1} tau21", t21))
        if arrays.n_jets >= 2:
            lines.append(_fmt_stats("mjj [GeV]", dijet_mass(arrays.jets, mask)[mask[:, :2].all(axis=1)]))
        lines.append(_fmt_stats("particles / event", arrays.n_particles))
    return "\n".join(lines)
