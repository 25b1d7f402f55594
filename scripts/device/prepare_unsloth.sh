#!/usr/bin/env bash
# Build .stage/unsloth/unsloth.tar.xz (ignored by git): Unsloth and what it needs beyond the GPU image and
# deps.tar.xz (which holds bitsandbytes 0.50.2), for the `unsloth` and `unsloth-packed` systems of
# scripts/bench_sft.py. Unsloth pins trl <= 1.15.0 and datasets < 5, so it gets its own trl and datasets (TRL's own
# row, scripts/device/prepare_trl.sh, keeps trl 1.16). Left out: unsloth's studio/ and unsloth_cli/ (82 MB, not
# needed to train), xformers (its PyPI wheel is built for another torch; Unsloth then uses PyTorch's attention, as it
# does without it), cut_cross_entropy (unused by Unsloth on torch >= 2.8).
# Carry ".stage/unsloth" in a call of its own, then in the benchmark's call:
#     source scripts/device/setup_device.sh && mkdir -p /root/site-packages-unsloth && \
#       tar -xJf .stage/unsloth/unsloth.tar.xz -C /root/site-packages-unsloth
#     UNSLOTH_SITE=/root/site-packages-unsloth python3 scripts/bench_sft.py ... --systems hybridjet unsloth unsloth-packed
# (bench_sft.py puts UNSLOTH_SITE first on the path of the Unsloth rows only; the folder's name holds
# "site-packages" for dill, as TRL's does.)
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=.venv/bin/python
rm -rf .stage/unsloth_whl .stage/unsloth_site && mkdir -p .stage/unsloth_whl .stage/unsloth_site .stage/unsloth
for p in unsloth==2026.10.9 unsloth_zoo==2026.10.9 trl==1.15.0 datasets==4.8.5 dill==0.4.1 multiprocess==0.70.19 \
         tyro==1.0.17 docstring-parser==0.18.0 typeguard==4.4.4 shtab==1.7.2 msgspec==0.23.0 torchao==0.18.0; do
  $PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .stage/unsloth_whl "$p"
done
(cd .stage/unsloth_site && for w in ../unsloth_whl/*.whl; do unzip -q -o "$w"; done
 rm -rf unsloth/studio unsloth_cli)
tar -C .stage/unsloth_site -cf - . | xz -T2 -6 > .stage/unsloth/unsloth.tar.xz
rm -rf .stage/unsloth_whl .stage/unsloth_site
ls -la .stage/unsloth/unsloth.tar.xz
