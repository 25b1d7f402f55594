"""A downstream analysis with a trained hybridjet run, written with the scikit-hep tools an analysis uses: read a
NanoAOD-style ROOT file with uproot, build the fat jets as ``vector`` records in awkward, score the events with the
run (awkward in, awkward out), cut on the score, and fill and plot the dijet mass before and after the cut with
``hist`` and ``mplhep``.

    python examples/jets_to_nanoaod.py data/demo/jets.h5 nano.root        # or any NanoAOD-like file
    python examples/downstream_analysis.py runs/demo/gbdt nano.root --cut 0.5 --out analysis/
"""

from __future__ import annotations

import argparse
from pathlib import Path

import awkward as ak
import hist
import matplotlib
import mplhep
import uproot
import vector

import hybridjet

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - after choosing the headless backend

vector.register_awkward()
FATJET_FIELDS = ("pt", "eta", "phi", "mass", "tau1", "tau2", "tau3")


def read_events(path: str, tree: str) -> ak.Array:
    """The events of a NanoAOD-style tree: a FatJet collection of records, the event number and particle count."""
    branches = [f"FatJet_{f}" for f in FATJET_FIELDS] + ["event", "nPFCand"]
    raw = uproot.open(path)[tree].arrays(branches, library="ak")
    fatjet = ak.zip({f: raw[f"FatJet_{f}"] for f in FATJET_FIELDS}, with_name="Momentum4D")
    return ak.zip({"FatJet": fatjet, "event": raw["event"], "nPFCand": raw["nPFCand"]}, depth_limit=1)


def dijet_mass(events: ak.Array) -> ak.Array:
    """m_jj of the two leading fat jets by pT (None for events with fewer than two)."""
    jets = events.FatJet[ak.argsort(events.FatJet.pt, ascending=False)]
    two = ak.pad_none(jets, 2)[:, :2]
    return (two[:, 0] + two[:, 1]).mass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="a finished hybridjet run directory")
    parser.add_argument("events", help="a NanoAOD-style ROOT file")
    parser.add_argument("--tree", default="Events")
    parser.add_argument("--cut", type=float, default=0.5, help="keep events whose signal probability is above this")
    parser.add_argument("--out", default="analysis", help="folder for the figure and the selected events")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    events = read_events(args.events, args.tree)
    classifier = hybridjet.load_run(args.run)
    score = classifier.predict_proba(events)  # an awkward array, one probability per event
    events = ak.with_field(events, score, "score")
    mjj = dijet_mass(events)
    selected = events[(events.score > args.cut) & ~ak.is_none(mjj)]

    axis = hist.axis.Regular(40, 1000, 6000, name="mjj", label=r"$m_{jj}$ [GeV]")
    before = hist.Hist(axis).fill(ak.to_numpy(ak.drop_none(mjj)))
    after = hist.Hist(axis).fill(ak.to_numpy(dijet_mass(selected)))
    plt.style.use(mplhep.style.ROOT)
    fig, ax = plt.subplots(figsize=(8, 6), layout="constrained")
    mplhep.histplot([before, after], ax=ax, label=["all events", f"score > {args.cut}"])
    ax.set_yscale("log")
    ax.set_ylabel("Events / bin")
    ax.legend()
    fig.savefig(out / "mjj.png")
    ak.to_parquet(ak.zip({"event": selected.event, "score": selected.score, "mjj": dijet_mass(selected)}),
                  out / "selected.parquet")
    print(f"{len(events):,} events, {len(selected):,} with score > {args.cut} "
          f"({len(selected) / max(len(events), 1):.1%}); m_jj before: {before.sum():.0f}, after: {after.sum():.0f} "
          f"entries -> {out / 'mjj.png'}, {out / 'selected.parquet'}")


if __name__ == "__main__":
    main()
