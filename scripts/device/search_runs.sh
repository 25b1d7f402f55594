#!/usr/bin/env bash
# Train part of a resonance search or a study on the lent GPU within one call, then bring back what finished:
#     source scripts/device/setup_device.sh
#     bash scripts/device/search_runs.sh anomaly configs/anomaly_gpu.yaml 555 --methods hybrid --s-over-b 0.001 \
#         0.05 --seeds 0 1 --modes supervised --jobs 4
#     bash scripts/device/search_runs.sh study configs/study_gpu.yaml 555 --methods hybrid hybrid_random --jobs 6
# (scripts/device/anomaly_runs.sh is the first form without its first word)
# runs `hybridjet COMMAND -c CONFIG ARGS... --no-progress` for at most LIMIT seconds. A call's limit is shorter than
# a grid: what finished by then (whole (method, mode, S/B, seed), and the fold models of those in progress) is kept
# on the machine and reused by the next call while the machine is warm. At the end
# `$OUT/runs.tar` holds every finished run's metrics.json and scores.h5 (relative to the config's OUT/runs) and the
# log; unpack it into that folder here, and `hybridjet anomaly -c CONFIG` reuses the runs (the fingerprints are the
# same on both machines). A tar larger than what one file of $OUT may be (16 MiB) comes back in parts,
# runs.tar.00, runs.tar.01, ... (`cat runs.tar.* > runs.tar`). Exit status: hybridjet's, 0 when it was stopped at
# LIMIT and the tar was written.
#
# With --detached first, the search runs in a process session of its own, which outlives the call (the device tool
# kills a call's other processes when it returns) and runs on while the machine is warm: the call waits at most
# LIMIT seconds for it, then brings back what finished so far. A later call with the same arguments waits for that
# same search (or, once it has ended, starts it again, which reuses every finished run) instead of starting another;
# no fold in progress is lost at a call's end. Exit status: 0 while it is still running, else hybridjet's.
set -uo pipefail
command=${1:-}
case $command in
  anomaly) pattern="^  [A-Za-z0-9_.-]+/.* max SIC|^training|rror" depth=4 record=metrics.json;;
  study) pattern="^[A-Za-z0-9_.-]+/n[0-9]+/seed[0-9]+: |^[0-9]+ runs reused|rror" depth=3 record=study.json;;
  *) echo "usage: $0 anomaly|study [--detached] CONFIG LIMIT_S [hybridjet arguments...]" >&2; exit 2;;
esac
shift
detached=0
if [ "${1:-}" = --detached ]; then detached=1; shift; fi
if [ $# -lt 2 ]; then echo "usage: $0 $command [--detached] CONFIG LIMIT_S [hybridjet $command arguments...]" >&2; exit 2; fi
config=$1 limit=$2
shift 2
case $limit in
  ''|*[!0-9]*) echo "$0: LIMIT_S: expected whole seconds, got '$limit'" >&2; exit 2;;
esac
for arg in "$@"; do
  case $arg in
    --out|--out=*|--report|--report=*)
      echo "$0: $arg: the runs go to the config's out and are brought back from there; set out in the config" >&2
      exit 2;;
    -c|--config|--config=*)
      echo "$0: $arg: the config is the first argument (CONFIG), not one of hybridjet's arguments" >&2
      exit 2;;
  esac
done
out_dir=$(python3 -c "
import sys
import importlib
from hybridjet.errors import HybridjetError
try:
    print(importlib.import_module(f'hybridjet.{sys.argv[2]}.config').load_config(sys.argv[1]).out)
except HybridjetError as err:
    sys.exit(f'hybridjet: error: {err}')" "$config" "$command") || exit 2
tar_file=$(realpath -m "${OUT:-/tmp}/runs.tar")
part_bytes=${RUNS_TAR_PART_BYTES:-15728640}  # under the 16 MiB a file of $OUT may be
rm -f "$tar_file" "$tar_file".[0-9][0-9]
mkdir -p "$out_dir/runs/logs"
report="${TMPDIR:-/tmp}/${command}_report"
if [ $detached -eq 1 ]; then
  # one search per (config, arguments): its pid, log and exit status under a key of them
  key=$(printf '%s\0' "$config" "$@" | sha256sum | cut -c1-12)
  state="$out_dir/runs/logs/detached_$key"
  if [ -f "$state.pid" ] && kill -0 "$(cat "$state.pid")" 2>/dev/null; then
    echo "waiting for the search started earlier (pid $(cat "$state.pid"), log $(cat "$state.log"))"
  else
    log="$out_dir/runs/logs/${command}_$(date -u +%Y%m%dT%H%M%S)_$key.log"
    rm -f "$state.pid" "$state.rc"
    echo "$log" > "$state.log"
    # the session's shell writes its own pid (setsid may fork, so $! need not be it), then hybridjet's exit status
    setsid nohup bash -c 'echo $$ > "$1.pid"; python3 -m hybridjet.cli "${@:2}" > "$0" 2>&1; echo $? > "$1.rc"' \
      "$log" "$state" "$command" -c "$config" "$@" --report "$report" --no-progress < /dev/null > /dev/null 2>&1 &
    for _ in $(seq 50); do [ -s "$state.pid" ] && break; sleep 0.2; done
    echo "started the search in the background (pid $(cat "$state.pid" 2>/dev/null), log $log)"
  fi
  log=$(cat "$state.log")
  waited=0
  while [ ! -f "$state.rc" ] && [ "$waited" -lt "$limit" ]; do sleep 2; waited=$((waited + 2)); done
  if [ -f "$state.rc" ]; then status=$(cat "$state.rc"); outcome="the search ended (exit $status)"
  else status=0; outcome="still running after $limit s: a call with the same arguments waits for it again"; fi
else
  log="$out_dir/runs/logs/${command}_$(date -u +%Y%m%dT%H%M%S).log"
  timeout "$limit" python3 -m hybridjet.cli "$command" -c "$config" "$@" --report "$report" --no-progress > "$log" 2>&1
  status=$? outcome=""
  if [ $status -eq 124 ]; then outcome="stopped after $limit s: the runs in progress keep their finished folds"; status=0; fi
fi
grep -E "$pattern" "$log" | tail -n 40
if [ -n "$outcome" ]; then echo "$outcome"; fi
cd "$out_dir/runs" &&
  tar -cf "$tar_file" logs $(find . -mindepth "$depth" -maxdepth "$depth" -name "seed*" -type d \
    -exec test -f "{}/$record" \; -printf "%P/$record %P/scores.h5 ") &&
  echo "runs.tar: $(tar -tf "$tar_file" | grep -c "$record") finished runs" || status=$?
if [ -f "$tar_file" ] && [ "$(stat -c %s "$tar_file")" -gt "$part_bytes" ]; then
  split -d -b "$part_bytes" "$tar_file" "$tar_file." && rm "$tar_file" &&
    echo "runs.tar in $(ls "$tar_file".[0-9][0-9] | wc -l) parts: cat runs.tar.* > runs.tar" || status=$?
fi
exit $status
