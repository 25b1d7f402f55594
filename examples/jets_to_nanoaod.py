"""Write a jets.h5 (from ``hybridjet cluster`` or the demo) as a ROOT file in NanoAOD's layout — a ``FatJet``
collection (``nFatJet``, ``FatJet_pt``, ``_eta``, ``_phi``, ``_mass``, ``_tau1..3``), ``nPFCand`` and ``event`` —
so that ``examples/downstream_analysis.py`` can be tried on the demo's events:

    python examples/jets_to_nanoaod.py data/demo/jets.h5 nano.root
"""

from __future__ import annotations

import argparse

import awkward as ak
import numpy as np
import uproot

from hybridjet.data.kinematics import jet_kinematics
from hybridjet.data.store import read_jets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("jets", help="a jets.h5 file")
    parser.add_argument("out", help="the ROOT file to write (TTree 'Events')")
    args = parser.parse_args()
    arrays = read_jets(args.jets)
    kin = jet_kinematics(arrays.jets)
    present = arrays.jet_mask.astype(bool)
    counts = present.sum(axis=1)
    columns = {name: kin[name] for name in ("pt", "eta", "phi", "mass")}
    columns.update({f"tau{i + 1}": arrays.tau[..., i] for i in range(3)})
    fat = ak.zip({name: ak.unflatten(values[present].astype(np.float32), counts) for name, values in columns.items()})
    with uproot.recreate(args.out) as f:
        f.mktree("Events", {"FatJet": fat.type.content, "nPFCand": "int32", "event": "int64"})
        f["Events"].extend({"FatJet": fat, "nPFCand": arrays.n_particles.astype(np.int32),
                            "event": arrays.event_id.astype(np.int64)})
    print(f"wrote {len(arrays):,} events to {args.out} (TTree Events, NanoAOD's FatJet layout)")


if __name__ == "__main__":
    main()
