#!/usr/bin/env bash
# Where a new process's compilation comes from: compile-cache hits and misses per scoring pass of 1.1M events
# (score_lhco.py --cache-counters), and the artifact files the run keeps. One call, carrying .stage/deps.tar.xz and
# data/q40k/jets.h5:   bash scripts/device/compile_cache_trial.sh
# A: train a 1-epoch run and score twice in one process (fresh caches); C: a new process on A's caches (twice);
# D: a new process on fresh caches with the run's kept kernels; E: fresh caches, HYBRIDJET_COMPILE_CACHE=0.
# WORK (default /root/score_lhco) is the work folder, emptied first, so that trials on one warm machine (e.g. with and
# without TORCH_DYNAMO_AUTOMATIC_DYNAMIC_SHAPES=0) neither resume each other's run nor share compile caches.
source scripts/device/setup_device.sh
python3 scripts/device/make_random_model.py --shape smollm2 --tokenizer "$SMOLLM2_CFG" --out /root/models/smollm2-random >/dev/null 2>&1
M=/root/models/smollm2-random; B=${BATCH:-65536}; W=${WORK:-/root/score_lhco}
rm -rf "$W" "$W".caches
score() { python3 scripts/device/score_lhco.py --data data/q40k/jets.h5 --model $M --work "$W" --batch-size $B --cache-counters "$@" 2>&1 \
  | grep -E "scored|trained|wrote|inductor" | grep -v -i warn; }
echo "== A: one process, fresh caches"; export TORCHINDUCTOR_CACHE_DIR=$W.caches/i1 TRITON_CACHE_DIR=$W.caches/t1
score --modes dense dense
echo "== C: new process, A's caches"; score --reuse --modes dense
echo "== C again"; score --reuse --modes dense
echo "== D: new process, fresh caches, the run's kept kernels"; export TORCHINDUCTOR_CACHE_DIR=$W.caches/i3 TRITON_CACHE_DIR=$W.caches/t3
score --reuse --modes dense
echo "== E: new process, fresh caches, HYBRIDJET_COMPILE_CACHE=0"; export TORCHINDUCTOR_CACHE_DIR=$W.caches/i4 TRITON_CACHE_DIR=$W.caches/t4
HYBRIDJET_COMPILE_CACHE=0 score --reuse --modes dense
echo "== kept in the run:"; ls -la "$W"/run/compiled/*/
