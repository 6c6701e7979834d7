#!/usr/bin/env bash
# Every benchmark, one after the other, each printing its figures beside its baseline.
# The live ones (flood, evacuation) build a network-namespace lab and need root; they say so
# and skip otherwise. All traffic stays on 127.0.0.1 or inside the lab's own namespaces.
# psoc_load.py starts its own PostgreSQL (as nobody when root) and mosquitto on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh all
run() { echo; echo "== $*"; "$@"; }
run .venv-agent/bin/python benchmarks/agent_throughput.py
run .venv-agent/bin/python benchmarks/latency_mqtt.py
run .venv-agent/bin/python benchmarks/latency_mqtt.py --signed
run .venv/bin/python benchmarks/delivery_e2e.py
run .venv/bin/python benchmarks/agent_live_flood.py
run .venv/bin/python benchmarks/evacuation_latency.py
run .venv/bin/python benchmarks/detect_latency.py
run .venv/bin/python benchmarks/ha_intake.py
run .venv/bin/python benchmarks/classifier_eval.py
run .venv-agent/bin/python benchmarks/federated_eval.py  # Flower: only in the agent venv
run .venv/bin/python benchmarks/psoc_load.py
