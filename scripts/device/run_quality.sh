#!/usr/bin/env bash
# Second call on a warm machine (after run_bench.sh): join the SmolLM2 GGUF, turn it into an HF directory,
# repeat the key throughput rows with the real weights, wait for generate_full.sh's data, train and compare.
#     source scripts/device/setup_device.sh && bash scripts/device/run_quality.sh MODELS...   (default: gbdt ablation hybrid)
# Environment: SKIP_BENCH=1 skips the throughput repeat; QUALITY_ARGS adds quality.py options, e.g.
#     QUALITY_ARGS='--batch-size {"hybrid":1024} --epochs {"hybrid":3}'  (what the 2026-11-21 run used)
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
[ -f "$SMOLLM2_GGUF" ] || bash scripts/device/stage_part.sh .stage/gguf2 || exit 1
# hybridjet's own GGUF conversion fails under the image's transformers 5.17 (see gguf_to_hf.py): use an HF directory
MODEL=/root/models/smollm2-gguf
python3 scripts/device/gguf_to_hf.py "$SMOLLM2_GGUF" "$SMOLLM2_CFG" "$MODEL" 2>&1 | grep -v Converting || exit 1
if [ -z "${SKIP_BENCH:-}" ]; then
  taskset -c 0,1 python3 scripts/bench_gpu.py --data data/demo/jets.h5 --model "$MODEL" --sections hybrid text \
    --hybrid-batches 1024 4096 --hybrid-score-batches 16384 --text-batches 256 --text-score-batches 512 \
    --out-json "$OUT/bench_real.jsonl" 2>&1 | grep -v -i -E "warn|Loading weights" | tee "$OUT/bench_real.log"
fi
for i in $(seq 1 ${WAIT_DATA_S:-400}); do [ -f /root/data/full/DONE ] && break; sleep 1; done
tail -4 /root/gen.log
[ -f /root/data/full/DONE ] || { echo "data not ready"; exit 3; }
MODELS=("$@"); [ ${#MODELS[@]} -eq 0 ] && MODELS=(gbdt ablation hybrid)
python3 scripts/device/quality.py --data /root/data/full/jets.h5 --model "$MODEL" --runs /root/runs/full \
  --out "$OUT/report" --models "${MODELS[@]}" ${QUALITY_ARGS:-} 2>&1 | grep -v -i -E "warn|Loading weights|tip|available:" \
  | tee "$OUT/quality.log"
