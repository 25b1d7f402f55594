#!/usr/bin/env bash
# Quality runs on a 2-GPU machine (nvidia-h200-x2): two scripts/device/quality.py processes, one per GPU, on the same
# jets.h5 and splits, started in the background (they outlive a call) and waited for; re-running this script while
# they run only waits again. When both are done, one compare over all runs (+ paired bootstrap gaps) goes to $OUT.
#     source scripts/device/setup_device.sh && bash scripts/device/run_quality_x2.sh
# Environment: GPU0_JOBS / GPU1_JOBS: quality.py options per job, jobs separated by ';' and run one after the other
# on that GPU, e.g. GPU1_JOBS='--models text; --feature-set substructure --suffix=-sub --models gbdt hybrid';
# JOBS_FILE: a file setting them (default scripts/device/jobs_x2.sh);
# WAIT_S (how long this call waits, default 540), DATA (default /root/data/full/jets.h5).
set -uo pipefail
# shellcheck disable=SC1090
[ -z "${GPU0_JOBS:-}" ] && [ -z "${GPU1_JOBS:-}" ] && source "${JOBS_FILE:-$(dirname "$0")/jobs_x2.sh}"
OUT=${OUT:-/tmp/out}
LOGS=/root/quality_logs
DATA=${DATA:-/root/data/full/jets.h5}
MODEL=${MODEL:-/root/models/smollm2-gguf}
mkdir -p "$OUT" "$LOGS"
for i in $(seq 1 ${WAIT_DATA_S:-300}); do [ -f "$(dirname "$DATA")/DONE" ] && break; sleep 1; done
[ -f "$(dirname "$DATA")/DONE" ] || { echo "data not ready"; tail -3 /root/gen.log; exit 3; }

start() {  # start the jobs $2 on GPU $1 unless they already ran or run
  [ -f "$LOGS/gpu$1.started" ] && return
  touch "$LOGS/gpu$1.started"
  local script="" job
  IFS=';' read -ra jobs <<< "$2"
  for job in "${jobs[@]}"; do
    script+="python3 scripts/device/quality.py --data $DATA --model $MODEL --runs /root/runs/full \
      --out /root/report/gpu$1 $job || rc=1; "
  done
  CUDA_VISIBLE_DEVICES=$1 setsid nohup bash -c "rc=0; $script echo EXIT \$rc > $LOGS/gpu$1.done" \
    > "$LOGS/gpu$1.log" 2>&1 &
}
start 0 "${GPU0_JOBS:---models gbdt ablation hybrid}"
start 1 "${GPU1_JOBS:---models text}"

for i in $(seq 1 "${WAIT_S:-540}"); do
  [ -f "$LOGS/gpu0.done" ] && [ -f "$LOGS/gpu1.done" ] && break
  sleep 1
done
for g in 0 1; do
  echo "== GPU $g: $(cat "$LOGS/gpu$g.done" 2>/dev/null || echo running)"
  grep -E "test AUC|reusing|AUC gap|Error|error" "$LOGS/gpu$g.log" | grep -v -i warn | tail -8
done
cp "$LOGS"/gpu*.log "$OUT"/ 2>/dev/null
[ -f "$LOGS/gpu0.done" ] && [ -f "$LOGS/gpu1.done" ] || exit 4
# both done: one comparison per feature set over every run, then everything in one archive ($OUT returns <= 8 files)
python3 scripts/device/quality.py --data "$DATA" --model "$MODEL" --runs /root/runs/full --out /root/report/fourvec \
  --compare-only --models gbdt ablation hybrid text 2>&1 | grep -v -i warn | tee "$LOGS/compare_fourvec.log"
python3 scripts/device/quality.py --data "$DATA" --model "$MODEL" --runs /root/runs/full --out /root/report/substructure \
  --compare-only --feature-set substructure --suffix=-sub --models gbdt hybrid 2>&1 | grep -v -i warn \
  | tee "$LOGS/compare_substructure.log"
tar czf "$OUT/quality_x2.tar.gz" -C /root report quality_logs $(cd /root && ls runs/full/*/metrics.json)
