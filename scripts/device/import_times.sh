#!/usr/bin/env bash
# Import time of a new process on the GPU image, with and without Python's bytecode cache, side by side in one call
# (the image sets PYTHONDONTWRITEBYTECODE=1 and ships no __pycache__). Carrying .stage/deps.tar.xz:
#     bash scripts/device/import_times.sh
# The 2026-11-22 figures (docs/gpu_report/compile_cache_2026-11-22/imports.txt) came from these same commands typed
# into two calls; this script repeats them in one.
DEVICE_ROOT=${DEVICE_ROOT:-/root}
python3 -c "import sys; print('image default: dont_write_bytecode =', sys.flags.dont_write_bytecode)"
source scripts/device/setup_device.sh    # (which itself turns bytecode on: undone for the first rows)
echo "== no bytecode (the image's default)"
for i in 1 2; do ( time env PYTHONDONTWRITEBYTECODE=1 python3 -c "import hybridjet.models.hybrid" ) 2>&1 | grep real; done
echo "== bytecode under $DEVICE_ROOT/pyc_trial (first: writes it)"
rm -rf "$DEVICE_ROOT/pyc_trial"
for i in 1 2 3; do
  ( time env -u PYTHONDONTWRITEBYTECODE PYTHONPYCACHEPREFIX="$DEVICE_ROOT/pyc_trial" python3 -c "import hybridjet.models.hybrid" ) 2>&1 | grep real
done
