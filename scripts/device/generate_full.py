#!/usr/bin/env python
"""The benchmark dataset (see generate_full.sh): ``python generate_full.py OUT_DIR WORKERS``."""

import os
import sys
import time
from pathlib import Path

from hybridjet.demo import demo_config, prepare_data

if __name__ == "__main__":  # the generator's worker pool spawns: keep the work under this guard
    cfg = demo_config("full")
    cfg["workers"] = int(sys.argv[2])
    for key in ("signal_events", "background_events"):  # GEN_SIGNAL_EVENTS / GEN_BACKGROUND_EVENTS: smaller runs
        cfg[key] = int(os.environ.get("GEN_" + key.upper(), cfg[key]))
    t = time.perf_counter()
    jets = prepare_data(cfg, Path(sys.argv[1]), progress=False)
    print(f"generate_full: {jets} ready in {time.perf_counter() - t:.0f} s", flush=True)
