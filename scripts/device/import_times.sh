#!/usr/bin/env bash
# Import time of a new process on the GPU image, with and without Python's bytecode cache, side by side in one call.
# Carrying .stage/deps.tar.xz:   bash scripts/device/import_times.sh
# Bytecode is read and written only under PYTHONPYCACHEPREFIX when that is set, so each row names its own prefix:
# "none" = an empty prefix nothing is written to (every module compiled from source, as in a process that finds no
# bytecode), then a fresh prefix that the first process writes and the next ones read.
DEVICE_ROOT=${DEVICE_ROOT:-/root}
python3 -c "import sys; print('image default: dont_write_bytecode =', sys.flags.dont_write_bytecode)"
echo "image ships torch bytecode: $(ls -d "$(python3 -c 'import os, torch; print(os.path.dirname(torch.__file__))')/__pycache__" 2>/dev/null || echo no)"
source scripts/device/setup_device.sh
empty="$DEVICE_ROOT/pyc_empty"; fresh="$DEVICE_ROOT/pyc_trial"
rm -rf "$empty" "$fresh"; mkdir -p "$empty"
echo "== no bytecode read or written"
for i in 1 2; do
  ( time env PYTHONDONTWRITEBYTECODE=1 PYTHONPYCACHEPREFIX="$empty" python3 -c "import hybridjet.models.hybrid" ) 2>&1 | grep real
done
echo "== bytecode under a fresh $fresh (first: writes it)"
for i in 1 2 3; do
  ( time env -u PYTHONDONTWRITEBYTECODE PYTHONPYCACHEPREFIX="$fresh" python3 -c "import hybridjet.models.hybrid" ) 2>&1 | grep real
done
echo "== where the time goes (bytecode read): python3 -X importtime, largest cumulative"
env -u PYTHONDONTWRITEBYTECODE PYTHONPYCACHEPREFIX="$fresh" python3 -X importtime -c "import hybridjet.models.hybrid" 2>&1 \
  | sort -t'|' -k2 -n -r | head -25
