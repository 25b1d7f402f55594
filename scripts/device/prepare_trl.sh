#!/usr/bin/env bash
# Build .stage/trl/trl.tar.xz (ignored by git): TRL and what it needs beyond the GPU image (datasets, pyarrow, dill,
# xxhash, multiprocess, fsspec, accelerate; cp312 wheels), for the `trl-packed` system of scripts/bench_sft.py.
# Carry ".stage/trl" in a call of its own (it is ~40 MB), then in the benchmark's call:
#     source scripts/device/setup_device.sh && python3 -c "import tarfile; tarfile.open('.stage/trl/trl.tar.xz').extractall('/root/site-packages-trl')"
#     PYTHONPATH=/root/site-packages-trl:$PYTHONPATH python3 scripts/bench_sft.py ... --systems plain hybridjet trl-packed
# The folder's name must contain "site-packages": dill (under datasets' fingerprints) pickles by value the modules of
# any other folder, and pyarrow's then fail (PicklingError: Can't pickle <class 'MonthDayNano'>).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=.venv/bin/python
rm -rf .stage/trl_whl .stage/trl_site && mkdir -p .stage/trl_whl .stage/trl_site .stage/trl
for p in trl==1.16.0 datasets==5.2.0 pyarrow==26.0.1 dill==0.4.1 xxhash==4.1.0 multiprocess==0.70.19 \
         fsspec==2026.9.0 accelerate==1.15.0; do
  $PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .stage/trl_whl "$p"
done
(cd .stage/trl_site && for w in ../trl_whl/*.whl; do unzip -q -o "$w"; done)
tar -C .stage/trl_site -cf - . | xz -T2 -6 > .stage/trl/trl.tar.xz
rm -rf .stage/trl_whl .stage/trl_site
ls -la .stage/trl/trl.tar.xz
