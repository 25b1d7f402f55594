#!/usr/bin/env bash
# The benchmark dataset: 100,000 W'->XY (mX=500, mY=100, mW'=3500 GeV) + 100,000 QCD dijet events after the trigger,
# seeds as 'hybridjet demo --scale full' (signal 100, background 200, mix 0), mixed and clustered (anti-kT R=1.0).
#     bash scripts/device/generate_full.sh OUT_DIR [WORKERS]
# On a 16-core device machine, in the background of other work (pinned away from cores 0-1):
#     setsid nohup taskset -c 2-15 nice -n 10 bash scripts/device/generate_full.sh /root/data/full 14 >/root/gen.log 2>&1 &
# ~17 QCD and ~85 signal accepted events/s/core: ~7 min for QCD on 14 workers, ~1.5 min signal, <1 min clustering.
set -euo pipefail
OUT=${1:-/root/data/full}
WORKERS=${2:-16}
${PYTHON:-python3} "$(dirname "$0")/generate_full.py" "$OUT" "$WORKERS"
touch "$OUT/DONE"
