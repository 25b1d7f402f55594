#!/usr/bin/env bash
# A GPU session's benchmarks as one driver that runs detached on the lent machine, so that no call waits for another:
# the first call starts it and each later call (within the 30 s the machine stays warm) brings what a later step
# needs, then waits and brings back the logs.
#     call 1, carrying .stage/deps.tar.xz and .stage/unsloth (45 MB):
#         source scripts/device/setup_device.sh && bash scripts/device/session.sh start STEP... && \
#             bash scripts/device/session.sh wait 540
#     call 2, carrying .stage/bench64 (what the `particles` step reads):
#         bash scripts/device/session.sh wait 560
# Steps, in the order given (names below); a step that needs a carried file waits for it, and a failed step is
# logged and passed. Logs: /root/logs/<step>*.log, /root/logs/progress.log; `wait` copies them to $OUT/logs.tgz.
# `wait LIMIT` returns once the driver has ended or after LIMIT seconds; it also unpacks what the call carried
# (.stage/unsloth, .stage/bench64) where the steps look for it.
#   sft8b     Llama-3.1-8B shape, 2 x 2,048 tokens, every layer checkpointed: hybridjet compiled against Unsloth,
#             then with the levers (NF4 dequantized in the graph, offloaded checkpoints, 8-bit AdamW) against it
#             again; the same LoRA on every row (dropout 0, Unsloth's fused path)
#   sft8bl    the levers row of sft8b alone, beside Unsloth
#   sft3b     the same rows for the Llama-3.2-3B shape, batch 8 x 100-2,048 tokens
#   sftsmol   the same rows for SmolLM2, batch 32 x 100-2,048 tokens
#   prof8b    the 8B levers row under the profiler (prof8b.hybridjet-compiled.txt)
#   mem8b, memsmol  the levers row and Unsloth's, 2 steps each, with bench_sft.py --memory-report: what is alive
#             at each one's peak, by where it was allocated (mem8b.<system>.txt; their speeds do not count)
#   recipes8b `hybridjet sft fit` with configs/sft_chat.yaml and sft_completion.yaml on the 8B shape, 3 steps
#   particles bench_last_layer.py (bf16) and bench_particles.py at 64 constituents (batch 2,048 and 8,192)
#   tests     run_gpu_tests.sh, one pytest per file (logs/tests/gpu_tests.log)
set -uo pipefail
ROOT=${DEVICE_ROOT:-/root}
L=$ROOT/logs
M=$ROOT/models
UNSLOTH=$ROOT/site-packages-unsloth
BENCH64=$ROOT/bench64/jets_c64.h5

unpack_carried() {
  if [ -f .stage/unsloth/unsloth.tar.xz ] && [ ! -f "$UNSLOTH/.done" ]; then
    mkdir -p "$UNSLOTH" && tar -xJf .stage/unsloth/unsloth.tar.xz -C "$UNSLOTH" && touch "$UNSLOTH/.done"
  fi
  if [ -f .stage/bench64/jets_c64.h5 ] && [ ! -f "$BENCH64" ]; then
    mkdir -p "$(dirname "$BENCH64")" && cp .stage/bench64/jets_c64.h5 "$BENCH64.tmp" && mv "$BENCH64.tmp" "$BENCH64"
  fi
}

say() { echo "[$(date +%T)] $*" | tee -a "$L/progress.log"; }
await() {  # await PATH: wait up to 15 min for a carried file; 1 if it never came
  local end=$((SECONDS + 900))
  while [ ! -e "$1" ]; do [ $SECONDS -ge $end ] && { say "gave up waiting for $1"; return 1; }; sleep 2; done
}
model() {  # model SHAPE: a random-weight model directory of that shape, made once
  [ -d "$M/$1-random" ] || python3 scripts/device/make_random_model.py --shape "$1" --tokenizer "$SMOLLM2_CFG" \
    --out "$M/$1-random" > "$L/make_$1.log" 2>&1
}
sft_row() {  # sft_row NAME SHAPE plain|levers ARGS...: hybridjet compiled (with the levers) beside Unsloth
  local name=$1 shape=$2 kind=$3; shift 3
  model "$shape"
  local common=(--model "$shape=$M/$shape-random" --checkpointing 1 --lora-dropout 0 "$@")
  [ "$kind" = levers ] && common+=(--nf4-dequant graph --checkpoint-offload --optimizer adamw8bit)
  await "$UNSLOTH/.done" || return 1
  export UNSLOTH_SITE=$UNSLOTH UNSLOTH_DISABLE_STATISTICS=1
  python3 scripts/bench_sft.py "${common[@]}" --systems hybridjet-compiled unsloth --out "$L/$name.$kind.json" \
    > "$L/$name.$kind.log" 2>&1
}
sft_rows() {  # sft_rows NAME SHAPE ARGS...: both invocations, each printing its ratio to Unsloth side by side
  sft_row "$1" "$2" plain "${@:3}"; sft_row "$1" "$2" levers "${@:3}"
}

step() {
  case $1 in
    sft8b) sft_rows sft8b llama8b --batch 2 --steps 4 --warmup 3 --min-tokens 2048 --max-tokens 2048;;
    sft8bl) sft_row sft8b llama8b levers --batch 2 --steps 4 --warmup 3 --min-tokens 2048 --max-tokens 2048;;
    sft3b) sft_rows sft3b llama3b --batch 8 --steps 5 --warmup 3;;
    sftsmol) sft_rows sftsmol smollm2 --batch 32 --steps 5 --warmup 3;;
    prof8b) model llama8b
      python3 scripts/bench_sft.py --model "llama8b=$M/llama8b-random" --batch 2 --steps 3 --warmup 3 \
        --min-tokens 2048 --max-tokens 2048 --checkpointing 1 --lora-dropout 0 --systems hybridjet-compiled \
        --nf4-dequant graph --checkpoint-offload --optimizer adamw8bit --profile "$L/prof8b" > "$L/prof8b.log" 2>&1;;
    mem8b) sft_row mem8b llama8b levers --batch 2 --min-tokens 2048 --max-tokens 2048 --steps 2 --warmup 1 \
      --memory-report "$L/mem8b";;
    memsmol) sft_row memsmol smollm2 levers --batch 32 --steps 2 --warmup 1 --memory-report "$L/memsmol";;
    recipes8b) model llama8b
      for c in chat completion; do
        python3 -m hybridjet.cli sft fit -c "configs/sft_$c.yaml" --model.model "$M/llama8b-random" \
          --runs_root "$ROOT/runs" --name "${c}8b" --trainer.max_steps 3 --trainer.val_check_interval 3 \
          --trainer.enable_progress_bar false > "$L/recipes8b.$c.log" 2>&1
        echo "exit $?" >> "$L/recipes8b.$c.log"
      done;;
    particles) model smollm2
      for n in 8 30; do
        python3 scripts/bench_last_layer.py --dtype bf16 --layers "$n" --batch 512 > "$L/particles.last$n.log" 2>&1
      done
      await "$BENCH64" || return 1
      for b in 2048 8192; do
        python3 scripts/bench_particles.py --data "$BENCH64" --model "$M/smollm2-random" --batch-size 256 \
          --score-batch-size "$b" --batches 3 --warmup 3 --methods hybrid_l8 part \
          --settings '{"hybrid_l8": {"llm_layers": 8}}' > "$L/particles.$b.log" 2>&1
      done;;
    tests) OUT=$L/tests bash scripts/device/run_gpu_tests.sh > /dev/null 2>&1;;
    *) echo "session: unknown step $1" >> "$L/progress.log"; return 1;;
  esac
}

case ${1:-} in
  start)
    shift
    mkdir -p "$L" "$M"
    unpack_carried
    [ -f "$L/driver.pid" ] && kill -0 "$(cat "$L/driver.pid")" 2>/dev/null && { echo "session: already running"; exit 0; }
    setsid nohup bash "$0" run "$@" > "$L/driver.log" 2>&1 < /dev/null &
    echo $! > "$L/driver.pid";;
  run)
    shift
    say "start $*: $(nvidia-smi --query-gpu=name --format=csv,noheader)"
    for s in "$@"; do step "$s"; say "$s done (exit $?)"; done
    say "end";;
  wait)
    unpack_carried
    end=$((SECONDS + ${2:-540}))
    while [ $SECONDS -lt "$end" ] && ! grep -q "\] end" "$L/progress.log" 2>/dev/null; do sleep 5; done
    cat "$L/progress.log"
    for f in "$L"/*.log; do case $f in *driver.log|*progress.log|*make_*) ;; *) grep -h "tokens/s\|events/s\|x[0-9]\|exit\|passed\|failed" "$f" | tail -4;; esac; done
    mkdir -p "${OUT:-/tmp/out}" && tar -C "$L" -czf "${OUT:-/tmp/out}/logs.tgz" .;;
  *) echo "usage: $0 start STEP... | wait [LIMIT_S]" >&2; exit 2;;
esac
