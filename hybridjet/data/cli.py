"""``hybridjet generate | mix | cluster | inspect``: the collider-data commands."""

from __future__ import annotations

import argparse
from typing import Any

_EPILOG_CLUSTER = """example:
  hybridjet cluster events_anomalydetection.h5 --out jets.h5 --workers 2
  hybridjet cluster events_anomalydetection.h5 --out jets.h5 --executor dask --scheduler tcp://host:8786
The input is an LHCO-format HDF5 file (700 x pT, eta, phi per event, optional label column), read in chunks.
Output jets.h5 holds the J leading jets (px, py, pz, E), a mask for empty slots, tau_1..tau_3, particle counts,
labels (-1 if the input has none) and the source row of every event. With --executor dask the chunks run on a
dask.distributed cluster (pip install 'hybridjet[dask]'): the scheduler at --scheduler, whose workers must see
IN.h5 at the same path, or a LocalCluster of --workers processes; the output is identical."""

_EPILOG_GENERATE = """examples:
  hybridjet generate --process qcd --events 10000 --seed 1 --out qcd.h5 --workers 2
  hybridjet generate --process wprime --events 1000 --seed 2 --out sig.h5 --mx 500 --my 100
13 TeV pp, Pythia 8, MPI off; an event is kept if it has an anti-kT R=1.0 jet with pT > 1.2 TeV and |eta| < 2.5.
The same seed and worker count always give the same file."""


def register(subparsers: Any) -> None:
    """Add the data commands to the top-level ``hybridjet`` parser."""
    fmt = argparse.RawDescriptionHelpFormatter

    p = subparsers.add_parser("generate", help="Generate LHCO-format events with Pythia 8 (QCD dijets or W'->XY)",
                              description="Generate LHCO-format events with Pythia 8.", epilog=_EPILOG_GENERATE,
                              formatter_class=fmt)
    p.add_argument("--process", required=True, choices=("qcd", "wprime"), help="QCD dijets or the W'->X(qq)Y(qq) signal")
    p.add_argument("--events", required=True, type=int, metavar="N", help="number of events to keep (after the trigger)")
    p.add_argument("--seed", required=True, type=int, metavar="S", help="random seed (the same events whatever --workers)")
    p.add_argument("--out", required=True, metavar="FILE.h5", help="output LHCO-format file")
    p.add_argument("--mx", type=float, default=None, metavar="GEV", help="wprime: mass of X (default 500)")
    p.add_argument("--my", type=float, default=None, metavar="GEV", help="wprime: mass of Y (default 100)")
    p.add_argument("--mwprime", type=float, default=None, metavar="GEV", help="wprime: mass of W' (default 3500)")
    p.add_argument("--workers", type=int, default=1, metavar="W", help="worker processes (default 1)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.set_defaults(handler=_generate)

    p = subparsers.add_parser("mix", help="Mix signal and background files into a labelled, shuffled R&D-style file",
                              description="Mix signal and background LHCO files into one labelled, shuffled file.")
    p.add_argument("--signal", required=True, metavar="S.h5", help="signal events (LHCO layout)")
    p.add_argument("--background", required=True, metavar="B.h5", help="background events (LHCO layout)")
    p.add_argument("--signal-fraction", required=True, type=float, metavar="F", help="fraction of signal, 0..1")
    p.add_argument("--seed", required=True, type=int, metavar="S", help="random seed for selection and shuffling")
    p.add_argument("--out", required=True, metavar="OUT.h5", help="output LHCO-format file with labels")
    p.add_argument("--events", type=int, default=None, metavar="N",
                   help="total events (default: as many as the inputs allow)")
    p.set_defaults(handler=_mix)

    p = subparsers.add_parser("cluster", help="Cluster LHCO events into jets (fastjet), writing jets.h5",
                              description="Cluster LHCO-format events into jets with fastjet, chunk by chunk.",
                              epilog=_EPILOG_CLUSTER, formatter_class=fmt)
    p.add_argument("input", metavar="IN", help="LHCO-format event file (.h5), or a ROOT file (.root) with a tree of "
                                               "particles (--tree, --fields)")
    p.add_argument("--tree", default="Delphes", help="the tree of a ROOT input (default: Delphes)")
    p.add_argument("--fields", default="delphes", metavar="PRESET|YAML",
                   help="where a ROOT input's particles are: delphes (Particle.PT/Eta/Phi/Mass, Status 1, neutrinos "
                        "left out; the default) or a YAML mapping of hybridjet.data.columnar.ParticleFields' fields")
    p.add_argument("--out", required=True, metavar="jets.h5", help="output jets file")
    p.add_argument("--radius", type=float, default=1.0, metavar="R", help="jet radius (default 1.0)")
    p.add_argument("--algorithm", choices=("antikt", "kt", "cambridge"), default="antikt",
                   help="clustering algorithm (default antikt)")
    p.add_argument("--n-jets", type=int, default=2, metavar="J", help="leading jets kept per event (default 2)")
    p.add_argument("--min-pt", type=float, default=20.0, metavar="GEV", help="minimum jet pT (default 20)")
    p.add_argument("--constituents", type=int, default=None, metavar="P",
                   help="also keep each jet's P leading constituents by pT with their features (log pT, log E, their "
                        "ratios to the jet's, deta, dphi, dR to the jet axis) and a mask, for the 'particles' "
                        "feature set (default: none)")
    p.add_argument("--workers", type=int, default=1, metavar="W", help="worker processes (default 1)")
    p.add_argument("--executor", choices=("local", "dask"), default="local",
                   help="where chunks run: local processes or a dask.distributed cluster (default local)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="dask scheduler address, e.g. tcp://host:8786 (default: start a LocalCluster of --workers)")
    p.add_argument("--chunk-size", type=int, default=5_000, metavar="C", help="events per chunk (default 5000)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.set_defaults(handler=_cluster)

    p = subparsers.add_parser("inspect", help="Describe an LHCO event file or a jets.h5 file",
                              description="Print what an LHCO-format event file or a jets.h5 file holds.")
    p.add_argument("file", metavar="FILE.h5", help="LHCO-format or jets.h5 file")
    p.add_argument("--events", type=int, default=1000, metavar="N",
                   help="events read for the summary statistics (default 1000)")
    p.set_defaults(handler=_inspect)


def _positive(name: str, value: float) -> None:
    from hybridjet.errors import HybridjetError

    if value < 1:
        raise HybridjetError(f"--{name} must be >= 1, got {value}")


def _generate(args: argparse.Namespace) -> int:
    from hybridjet.data.generate import generate
    from hybridjet.errors import HybridjetError

    _positive("events", args.events)
    _positive("workers", args.workers)
    masses = {"mx": args.mx, "my": args.my, "mwprime": args.mwprime}
    given = [name for name, value in masses.items() if value is not None]
    if args.process == "qcd" and given:  # QCD dijets have no such masses: the setting would be silently ignored
        raise HybridjetError(f"--{given[0]}: a mass of the W' signal; --process qcd has none")
    defaults = {"mx": 500.0, "my": 100.0, "mwprime": 3500.0}
    generate(args.process, args.events, args.seed, args.out, workers=args.workers, progress=args.progress,
             **{name: defaults[name] if value is None else value for name, value in masses.items()})
    return 0


def _mix(args: argparse.Namespace) -> int:
    from hybridjet.data.generate import mix
    from hybridjet.errors import HybridjetError

    if not 0.0 <= args.signal_fraction <= 1.0:
        raise HybridjetError(f"--signal-fraction must be within [0, 1], got {args.signal_fraction}")
    if args.events is not None:
        _positive("events", args.events)
    summary = mix(args.signal, args.background, args.out, args.signal_fraction, args.seed, n_events=args.events)
    print(summary)
    return 0


def _cluster(args: argparse.Namespace) -> int:
    from hybridjet.data.cluster import cluster
    from hybridjet.data.lhco import MAX_PARTICLES
    from hybridjet.errors import HybridjetError

    for name in ("n_jets", "workers", "chunk_size"):
        _positive(name.replace("_", "-"), getattr(args, name))
    if args.n_jets > MAX_PARTICLES:  # each jet holds a particle at least
        raise HybridjetError(f"--n-jets: expected at most {MAX_PARTICLES} (the particles an event holds), got "
                             f"{args.n_jets}")
    if not args.radius > 0:
        raise HybridjetError(f"--radius must be > 0, got {args.radius}")
    if not args.min_pt >= 0:  # also NaN
        raise HybridjetError(f"--min-pt must be >= 0, got {args.min_pt}")
    if args.scheduler is not None and args.executor != "dask":
        raise HybridjetError("--scheduler needs --executor dask")
    if args.constituents is not None:
        _positive("constituents", args.constituents)
        if args.constituents > MAX_PARTICLES:
            raise HybridjetError(f"--constituents: expected at most {MAX_PARTICLES} per jet (the particles an event "
                                 f"holds), got {args.constituents}")
    root = None
    if args.input.lower().endswith(".root"):
        from hybridjet.data.columnar import RootParticles, parse_particle_fields

        root = RootParticles(args.input, args.tree, parse_particle_fields(args.fields))
    summary = cluster(args.input, args.out, radius=args.radius, algorithm=args.algorithm, n_jets=args.n_jets,
                      min_pt=args.min_pt, workers=args.workers, chunk_size=args.chunk_size, progress=args.progress,
                      executor=args.executor, scheduler=args.scheduler, root=root,
                      constituents=args.constituents or 0)
    print(summary)
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from hybridjet.data.inspect import describe
    from hybridjet.errors import HybridjetError

    if args.events < 0:
        raise HybridjetError(f"--events must be >= 0, got {args.events}")
    print(describe(args.file, n_sample=args.events))
    return 0
