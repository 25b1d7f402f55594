#!/usr/bin/env bash
# Train part of a resonance search on the lent GPU within one call, then bring back what finished:
#     source scripts/device/setup_device.sh
#     bash scripts/device/anomaly_runs.sh configs/anomaly_gpu.yaml 555 --methods hybrid --s-over-b 0.001 0.05 \
#         --seeds 0 1 --modes supervised --jobs 4
# runs `hybridjet anomaly -c CONFIG ARGS... --no-progress` for at most LIMIT seconds. A call's limit is shorter than
# a grid: what finished by then (whole (method, mode, S/B, seed), and the fold models of those in progress) is kept
# on the machine and reused by the next call while the machine is warm. At the end
# `$OUT/runs.tar` holds every finished run's metrics.json and scores.h5 (relative to the config's OUT/runs) and the
# log; unpack it into that folder here, and `hybridjet anomaly -c CONFIG` reuses the runs (the fingerprints are the
# same on both machines). Exit status: hybridjet's, 0 when it was stopped at LIMIT and the tar was written.
set -uo pipefail
if [ $# -lt 2 ]; then echo "usage: $0 CONFIG LIMIT_S [hybridjet anomaly arguments...]" >&2; exit 2; fi
config=$1 limit=$2
shift 2
for arg in "$@"; do
  case $arg in --out|--out=*|--report|--report=*)
    echo "$0: $arg: the runs go to the config's out and are brought back from there; set out in the config" >&2
    exit 2;;
  esac
done
out_dir=$(python3 -c "import sys; from hybridjet.anomaly.config import load_config; print(load_config(sys.argv[1]).out)" "$config") || exit 1
tar_file=$(realpath -m "${OUT:-/tmp}/runs.tar")
mkdir -p "$out_dir/runs/logs"
log="$out_dir/runs/logs/anomaly_$(date -u +%Y%m%dT%H%M%S).log"
timeout "$limit" python3 -m hybridjet.cli anomaly -c "$config" "$@" --report "${TMPDIR:-/tmp}/anomaly_report" \
  --no-progress > "$log" 2>&1
status=$?
grep -E "^  [A-Za-z0-9_.-]+/.* max SIC|^training|rror" "$log" | tail -n 40
if [ $status -eq 124 ]; then echo "stopped after $limit s: the runs in progress keep their finished folds"; status=0; fi
cd "$out_dir/runs" &&
  tar -cf "$tar_file" logs $(find . -mindepth 4 -maxdepth 4 -name "seed*" -type d \
    -exec test -f {}/metrics.json \; -printf "%P/metrics.json %P/scores.h5 ") &&
  echo "runs.tar: $(tar -tf "$tar_file" | grep -c metrics.json) finished runs" || status=$?
exit $status
