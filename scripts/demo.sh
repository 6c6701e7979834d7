#!/usr/bin/env bash
# The main job on an embedded default: generate a ransomware-like capture mixed with benign home
# traffic, replay it through the agent's real pipeline (Python 3.11, as on a Raspberry Pi) and print
# the graded incident timeline. No LAN, broker or root needed.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh agent
exec .venv-agent/bin/lan-guard-agent demo "$@"
