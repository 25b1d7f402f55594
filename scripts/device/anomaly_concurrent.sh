#!/usr/bin/env bash
# Train one method of a resonance-search config at several (S/B, seed) pairs at once on one GPU, each pair a
# `hybridjet anomaly --methods METHOD --s-over-b SB --seeds SEED` process of its own (one process leaves most of
# the GPU unused: batches of 1024 events through a 135M model), then bring back what finished:
#     source scripts/device/setup_device.sh
#     bash scripts/device/anomaly_concurrent.sh configs/anomaly_gpu.yaml hybrid 560 0.005:0 0.005:1 0.02:0
#     MODES=cwola bash scripts/device/anomaly_concurrent.sh ...     # only these label modes (--modes)
# Every process stops after LIMIT seconds; a (method, mode, S/B, seed) finished by then is kept on the machine and
# reused by the next call while the machine is warm, the one in progress is lost. Under 6 processes one mode takes
# about as long as a lone process's three, so choose LIMIT or MODES such that the modes finish.
# The pairs have their own fold files and report folders: the processes share only the read-only pools and the
# test set (written atomically, the same content by each). At the end `$OUT/runs.tar` holds every finished run's
# metrics.json and scores.h5 (relative to the config's OUT/runs) and the processes' logs under logs/; unpack it
# into that folder here, then `hybridjet anomaly -c CONFIG` reuses the runs.
set -uo pipefail
if [ $# -lt 4 ]; then echo "usage: $0 CONFIG METHOD LIMIT_S SB:SEED [SB:SEED ...]" >&2; exit 2; fi
config=$1 method=$2 limit=$3
shift 3
out_dir=$(python3 -c "import sys; from hybridjet.anomaly.config import load_config; print(load_config(sys.argv[1]).out)" "$config") || exit 1
logs="$out_dir/runs/logs"
mkdir -p "$logs"
threads=$(( $(nproc) / $# ))
pids=()
for pair in "$@"; do
  sb=${pair%%:*} seed=${pair##*:}
  log="$logs/${method}_sb${sb}_seed${seed}.log"
  echo "== $(date -u +%T) start $method S/B $sb seed $seed" >> "$log"
  OMP_NUM_THREADS=$(( threads > 0 ? threads : 1 )) timeout "$limit" python3 -m hybridjet.cli anomaly -c "$config" \
    --methods "$method" ${MODES:+--modes $MODES} --s-over-b "$sb" --seeds "$seed" --report "/tmp/report_${method}_${sb}_${seed}" \
    --no-progress >> "$log" 2>&1 &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
for log in "$logs"/*.log; do echo "--- $log"; grep -E "^  [a-z]+ +[a-z]+ +max SIC|rror|Killed" "$log" | tail -n 12; done
cd "$out_dir/runs" &&
  tar -cf "${OUT:-/tmp}/runs.tar" logs $(find "$method" \( -name metrics.json -o -name scores.h5 \) -not -path "*/fold*" 2>/dev/null) &&
  echo "runs.tar: $(tar -tf "${OUT:-/tmp}/runs.tar" | grep -c metrics.json) finished runs"
exit $status
