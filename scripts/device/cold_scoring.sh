#!/usr/bin/env bash
# 1.1M events from jets.h5 on a fresh GPU machine: cold and warm, in one process and through `hybridjet score`.
# One call, carrying .stage/deps.tar.xz and data/q40k/jets.h5:   bash scripts/device/cold_scoring.sh
# A: score_lhco.py trains a 1-epoch run (random SmolLM2-shaped weights), then scores the file dense four times in one
#    process with fresh compile caches: cold, warm, warm with the serial reader (side by side), warm.
# C: `hybridjet score --dense` in a new process, compile caches of A; D: the same with fresh compile caches, the
#    kernels A kept in the run directory (compiled/, hybridjet.models.compile_cache) loaded first; E: fresh caches
#    and HYBRIDJET_COMPILE_CACHE=0 (compiles from scratch, as on a fresh machine before runs kept their kernels).
# F: the Python API in a new process with fresh compile caches and the run's kept kernels (score_lhco.py --reuse):
#    load + first pass, then a warm pass.
source scripts/device/setup_device.sh
python3 scripts/device/make_random_model.py --shape smollm2 --tokenizer "$SMOLLM2_CFG" --out /root/models/smollm2-random >/dev/null 2>&1
M=/root/models/smollm2-random; W=/root/score_lhco; B=${BATCH:-65536}
show() { grep -E "scored|trained|wrote|loaded|^real" "$1" | grep -v -i "warn"; }
echo "== A: one process, fresh compile caches"; export TORCHINDUCTOR_CACHE_DIR=/root/ic1 TRITON_CACHE_DIR=/root/tc1
python3 scripts/device/score_lhco.py --data data/q40k/jets.h5 --model $M --modes dense dense dense-serial dense --batch-size $B > $OUT/A.log 2>&1; show $OUT/A.log
echo "== imports"; ( time python3 -c "import hybridjet.models.hybrid" ) 2>&1 | grep real
echo "== C: hybridjet score, new process, compile caches of A"
( time python3 -m hybridjet.cli score $W/run $W/lhco_jets.h5 --out /root/c.h5 --dense --batch-size $B --model $M ) > $OUT/C.log 2>&1; show $OUT/C.log
echo "== kept in the run: $(du -sh $W/run/compiled 2>/dev/null | cut -f1) $(ls $W/run/compiled 2>/dev/null)"
echo "== D: hybridjet score, new process, fresh compile caches, the run's kept kernels"; export TORCHINDUCTOR_CACHE_DIR=/root/ic3 TRITON_CACHE_DIR=/root/tc3
( time python3 -m hybridjet.cli score $W/run $W/lhco_jets.h5 --out /root/d.h5 --dense --batch-size $B --model $M ) > $OUT/D.log 2>&1; show $OUT/D.log
echo "== E: hybridjet score, new process, fresh compile caches, HYBRIDJET_COMPILE_CACHE=0"; export TORCHINDUCTOR_CACHE_DIR=/root/ic4 TRITON_CACHE_DIR=/root/tc4
( time HYBRIDJET_COMPILE_CACHE=0 python3 -m hybridjet.cli score $W/run $W/lhco_jets.h5 --out /root/e.h5 --dense --batch-size $B --model $M ) > $OUT/E.log 2>&1; show $OUT/E.log
echo "== F: Python API, new process, fresh compile caches, the run's kept kernels"; export TORCHINDUCTOR_CACHE_DIR=/root/ic5 TRITON_CACHE_DIR=/root/tc5
python3 scripts/device/score_lhco.py --data data/q40k/jets.h5 --model $M --reuse --modes dense dense --batch-size $B > $OUT/F.log 2>&1; show $OUT/F.log
