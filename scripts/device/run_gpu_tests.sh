#!/usr/bin/env bash
# The test files whose behaviour differs on a GPU (4-bit weights on the device, bf16 by default, compiled layers,
# FlexAttention, CUDA-only tests), run on the lent GPU machine; CI has no GPU. One call, carrying .stage/deps.tar.xz:
#     source scripts/device/setup_device.sh && bash scripts/device/run_gpu_tests.sh [test paths]
# The log goes to $OUT/gpu_tests.log (comes back with the call). PYTHON picks the interpreter (default python3).
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
TESTS=(tests/text/test_sft.py tests/llm/test_shared_prefix.py tests/llm/test_cuda.py tests/llm/test_offload.py tests/llm/test_nf4.py tests/models/test_hybrid.py tests/models/test_text_prompt.py
       tests/data/test_events.py tests/test_compile_cache.py tests/train/test_cli.py tests/train/test_optim.py
       tests/text/test_loss.py)
[ $# -gt 0 ] && TESTS=("$@")  # test paths (each its own pytest run)
# One pytest per test file, each appending its report: a call that ends (or a lease that runs out) mid-way still
# brings back the finished files' failures with their tracebacks. The exit status is non-zero if any file failed.
: > "$OUT/gpu_tests.log"
status=0
for test in "${TESTS[@]}"; do
  echo "=== $test" >> "$OUT/gpu_tests.log"
  "${PYTHON:-python3}" -m pytest -q -p no:cacheprovider --tb=short "$test" >> "$OUT/gpu_tests.log" 2>&1 || status=$?
  tail -1 "$OUT/gpu_tests.log"
done
exit $status
