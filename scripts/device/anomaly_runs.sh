#!/usr/bin/env bash
# The resonance search's form of search_runs.sh (see there): bash scripts/device/anomaly_runs.sh [--detached] CONFIG
# LIMIT_S [hybridjet anomaly arguments...]
exec bash "$(dirname "$0")/search_runs.sh" anomaly "$@"
