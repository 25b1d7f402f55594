#!/usr/bin/env bash
# Build, on the CPU machine, what the GPU machine lacks, into .stage/ (ignored by git through .git/info/exclude):
#   .stage/deps.tar.xz   ~19 MB: bitsandbytes (CUDA 13.0/13.2 + CPU libraries only), gguf, jsonargparse[signatures], vector, awkward, liger-kernel, weaver-core,
#                        awkward-cpp, fastjet, pythia8mc (cp312 wheels) with Pythia's data trimmed to xmldoc, setups,
#                        tunes and the default PDF (NNPDF2.3 QCD+QED LO); SmolLM2's config.json + tokenizer files
#   .stage/gguf1, .stage/gguf2   the SmolLM2 GGUF in two parts (43,000,000 + 55,362,432 bytes: call 1 carries the first with deps.tar.xz and the working tree under 64 MiB)
#   .stage/gguf2/text.tar.xz    ~4 MB: rouge-score (an sdist: copied as installed here, pure Python), nltk, absl-py,
#                        click, for `hybridjet sft eval`; travels with the second GGUF part
# Calls then carry: call 1 [".stage/deps.tar.xz", ".stage/gguf1", "data/demo/jets.h5"] (~65 MB with the tree,
# under the 64 MiB limit), call 2 [".stage/gguf2"]; see BENCHMARKS.md "GPU" for the commands.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=.venv/bin/python
grep -qx "/.stage/" .git/info/exclude || echo "/.stage/" >> .git/info/exclude
grep -qx "/.whl/" .git/info/exclude || echo "/.whl/" >> .git/info/exclude
mkdir -p .whl
for p in pythia8mc==8.317.2 fastjet==3.5.2.0 awkward-cpp==57 awkward==2.14.0 vector==1.9.0 gguf==0.19.0 \
         jsonargparse==4.53.0 docstring-parser==0.18.0 typeshed-client==2.14.0 bitsandbytes==0.50.2 \
         liger-kernel==0.8.5 weaver-core==0.5.3; do
  $PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl "$p"
done
rm -rf .stage/site .stage/smollm2_cfg && mkdir -p .stage/site .stage/smollm2_cfg
(cd .stage/site && for w in ../../.whl/*.whl; do unzip -q -o "$w"; done
 rm -f bitsandbytes/libbitsandbytes_{cuda118,cuda121,cuda124,cuda126,cuda128,rocm*,xpu*}.so
 mkdir -p share && mv pythia8mc-*.data/data/share/Pythia8 share/ && rm -rf pythia8mc-*.data
 rm -rf share/Pythia8/{htmldoc,pdfdoc}
 find share/Pythia8/pdfdata -type f ! -name NNPDF23_lo_as_0130_qed_0000.dat -delete)
CONVERTED=$($PY -c "from hybridjet.llm.resolve import resolve_model; print(resolve_model('smollm2').path)")
for f in config.json tokenizer.json tokenizer_config.json chat_template.jinja generation_config.json; do
  [ -f "$CONVERTED/$f" ] && cp "$CONVERTED/$f" .stage/smollm2_cfg/
done
tar -C .stage -cf - site smollm2_cfg | xz -T2 -6 > .stage/deps.tar.xz
GGUF=$($PY -c "from hybridjet.llm.resolve import default_gguf_path; print(default_gguf_path())")
NAME=$(basename "$GGUF")
mkdir -p .stage/gguf1 .stage/gguf2
head -c 43000000 "$GGUF" > ".stage/gguf1/$NAME.part1"
tail -c +43000001 "$GGUF" > ".stage/gguf2/$NAME.part2"
cat ".stage/gguf1/$NAME.part1" ".stage/gguf2/$NAME.part2" | sha256sum | cut -d' ' -f1 | grep -qx "$(cut -d' ' -f1 scripts/device/SmolLM2.sha256)"
SITE=$($PY -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
tar -C "$SITE" -cf - rouge_score nltk absl click | xz -T2 -6 > .stage/gguf2/text.tar.xz
ls -la .stage/deps.tar.xz .stage/gguf1 .stage/gguf2
