#!/usr/bin/env bash
# The main job on the embedded defaults: set up, then `hybridjet demo` (extra arguments are passed on).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
exec .venv/bin/hybridjet demo "$@"
