#!/usr/bin/env bash
# The PSOC on one machine: a local broker on loopback, the PSOC (worker and console) on SQLite,
# and the agent's demo capture replayed as three sites. Prints the console's address, accounts
# and what to look at; Ctrl-C stops it. Installs what it needs (mosquitto, .venv-psoc).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh psoc
exec .venv-psoc/bin/lan-guard-psoc demo "$@"
