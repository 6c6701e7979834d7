#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian machine (root): system tools and the project's venvs.
#   scripts/setup.sh agent   -> .venv-agent (Python 3.11): the agent alone, as on a Raspberry Pi
#   scripts/setup.sh all     -> also apt tools for the lab and .venv (Python 3.13): HA + agent + PSOC
#                               + test tools (PostgreSQL and Chromium for the PSOC's tests)
#   scripts/setup.sh psoc    -> .venv-psoc (Python 3.13): the PSOC server alone, and mosquitto
# Flower (the "federation" extra) goes into .venv-agent and .venv-psoc, never into .venv: Home
# Assistant pins older cryptography and requests than flwr needs. The tests of federated learning
# run Flower's processes from .venv-agent.
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}

APT_PACKAGES=(mosquitto mosquitto-clients nmap arp-scan hping3 smbclient nftables tcpdump
              iproute2 netcat-openbsd iputils-ping dnsmasq-base isc-dhcp-client openssl
              postgresql chromium chromium-driver masscan thc-ipv6)

find_python() {  # $1 = minor version, e.g. 3.13; a pyenv shim that cannot run it does not count
  local candidate
  for candidate in "$(command -v "python$1" 2>/dev/null || true)" \
      $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$1"*/bin/"python$1" 2>/dev/null | sort -rV); do
    if [ -n "$candidate" ] && "$candidate" -c 'import sys' >/dev/null 2>&1; then
      echo "$candidate"; return
    fi
  done
  echo "setup: Python $1 not found (PATH or pyenv)" >&2; exit 1
}

# Re-install a venv only when its inputs changed (stamp = hash of the files that define it).
ensure_venv() {  # $1 venv dir, $2 python, $3.. pip args
  local venv=$1 py=$2; shift 2
  local stamp; stamp=$(cat pyproject.toml requirements-test.txt | sha256sum | cut -c1-16)-$*
  if [ -f "$venv/.stamp" ] && [ "$(cat "$venv/.stamp")" = "$stamp" ]; then return; fi
  [ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
  echo "setup: installing $venv (log: $venv/pip.log)"
  local log="$venv/pip.log"
  if ! { "$venv/bin/python" -m pip install --disable-pip-version-check --upgrade pip &&
         "$venv/bin/python" -m pip install --disable-pip-version-check "$@"; } >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "setup: pip failed for $venv; the whole log is $log" >&2
    exit 1
  fi
  echo "$stamp" > "$venv/.stamp"
}

if [ "$what" = psoc ]; then
  APT_PACKAGES=(mosquitto)
fi

if [ "$what" = all ] || [ "$what" = psoc ]; then
  missing=()
  for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  # The distribution's broker and database services are not wanted: tests start their own
  # on free ports (PostgreSQL: a throw-away cluster per test session).
  systemctl disable --now mosquitto >/dev/null 2>&1 || true
  systemctl disable --now postgresql >/dev/null 2>&1 || true
fi

if [ "$what" = psoc ]; then
  ensure_venv .venv-psoc "$(find_python 3.13)" -e ".[psoc,federation]"
  exit 0
fi
ensure_venv .venv-agent "$(find_python 3.11)" -e ".[test,federation]"
if [ "$what" = all ]; then
  ensure_venv .venv "$(find_python 3.13)" --ignore-requires-python -r requirements-test.txt -e ".[psoc]"
fi
