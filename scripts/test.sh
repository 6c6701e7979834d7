#!/usr/bin/env bash
# Every check: lint, types, the agent's tests on Python 3.11 (the Raspberry Pi OS default), the
# network-namespace lab, the Home Assistant tests and the PSOC's tests on Python 3.13.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh all
export PYTHONDONTWRITEBYTECODE=1

echo "== ruff"
.venv/bin/ruff check sensor_agent custom_components psoc tests benchmarks addon
.venv/bin/ruff format --check sensor_agent custom_components psoc tests benchmarks addon
echo "== mypy --strict"
# psoc/federation/server_app.py and secure.py run in Flower's process: checked where Flower is.
.venv-agent/bin/mypy --strict --python-version 3.11 sensor_agent benchmarks \
  addon/lan_guard_agent/rootfs/usr/bin/lan_guard_addon.py psoc/federation/server_app.py \
  psoc/federation/secure.py --exclude benchmarks/psoc_load.py
.venv/bin/mypy --strict --python-version 3.13 custom_components/lan_guard
.venv/bin/mypy --strict --python-version 3.13 psoc benchmarks/psoc_load.py \
  --exclude psoc/federation/server_app.py --exclude psoc/federation/secure.py
echo "== agent and add-on tests (Python 3.11)"
.venv-agent/bin/python -m pytest -q -p no:cacheprovider tests/agent tests/addon
echo "== lab tests (Python 3.13, network namespaces; skipped with a reason when not root)"
.venv/bin/python -m pytest -q -p no:cacheprovider -p no:homeassistant tests/lab
echo "== a real hass, Mosquitto, the agent and headless Chromium (Python 3.13)"
.venv/bin/python -m pytest -q -p no:cacheprovider -p no:homeassistant tests/browser
echo "== Home Assistant tests (Python 3.13)"
.venv/bin/python -m pytest -q -p no:cacheprovider tests/ha \
  --cov=custom_components.lan_guard --cov-report=term-missing:skip-covered --cov-fail-under=95
echo "== PSOC tests (Python 3.13: PostgreSQL and SQLite, real mosquittos, agents, headless Chromium)"
.venv/bin/python -m pytest -q -p no:cacheprovider -p no:homeassistant tests/psoc
