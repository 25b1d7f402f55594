#!/usr/bin/env bash
# Throughput/memory benchmarks on the device machine (first call): random-weight SmolLM2- and Llama-3.2-3B-shaped
# models (speed and memory don't depend on weight values), then scripts/bench_gpu.py, pinned to cores 0-1 so that a
# background job on the other cores (generate_full.sh) does not take the benchmark's CPU.
#     source scripts/device/setup_device.sh && bash scripts/device/run_bench.sh [extra bench_gpu.py args]
set -uo pipefail
PIN="taskset -c 0,1"
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
$PIN python3 scripts/device/make_random_model.py --shape smollm2 --tokenizer "$SMOLLM2_CFG" --out /root/models/smollm2-random || exit 1
$PIN python3 scripts/device/make_random_model.py --shape llama3b --tokenizer "$SMOLLM2_CFG" --out /root/models/llama3b-random || exit 1
$PIN python3 scripts/bench_gpu.py --data data/demo/jets.h5 --model /root/models/smollm2-random \
  --llama3b /root/models/llama3b-random --llama3b-checkpointing \
  --sections hybrid text variants profile llama3b --out-json "$OUT/bench.jsonl" --out-dir "$OUT" "$@" 2>&1 \
  | grep -v -i -E "warn|Loading weights|Writing model" | tee "$OUT/bench.log"
timeout 100 $PIN python3 scripts/bench_gpu.py --data data/demo/jets.h5 --model /root/models/smollm2-random \
  --sections cudagraph --out-json "$OUT/bench.jsonl" "$@" 2>&1 | grep -v -i -E "warn|Loading weights" | tail -8 | tee -a "$OUT/bench.log"
