#!/usr/bin/env bash
# Import times on the GPU image, then the compile section with torch.compile's default mode and with CUDA graphs
# (cuda_graphs: false, then true), one call:  [MODES=...] [IMPORTS=0] bash scripts/device/cudagraph_trial.sh
source scripts/device/setup_device.sh
python3 scripts/device/make_random_model.py --shape smollm2 --tokenizer "$SMOLLM2_CFG" --out /root/models/smollm2-random >/dev/null 2>&1
if [ "${IMPORTS:-1}" = 1 ]; then for m in "torch" "torch, transformers, peft, torch._dynamo, torch._inductor.compile_fx, bitsandbytes" "hybridjet.models.hybrid" "hybridjet.models.hybrid" "lightning"; do
  /usr/bin/env time -f "import $m: %e s" python3 -c "import $m" 2>&1 | tail -1; done; fi
for mode in ${MODES:-false true}; do
  python3 scripts/bench_gpu.py --data data/q40k/jets.h5 --model /root/models/smollm2-random --sections compile --compile-variants shared-auto --compile-batches 1024 2048 4096 --hybrid-score-batches 16384 --cuda-graphs $mode --out-json $OUT/cudagraph.jsonl > $OUT/cg_$mode.log 2>&1
  echo "== cuda_graphs $mode"; grep -E "events/s|ev/s|error|Error" $OUT/cg_$mode.log | grep -v Warn | cut -c1-250 | tail -8
done
