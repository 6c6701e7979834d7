#!/usr/bin/env python3
"""Start the LAN Guard agent inside its Home Assistant add-on.

The Supervisor writes the owner's options to ``/data/options.json`` (checked against the
add-on's schema) and, because the add-on declares ``services: mqtt:need``, tells it the broker
of the Mosquitto add-on with its credentials (``GET http://supervisor/services/mqtt`` with
the add-on's token). This maps both onto the agent's ``LAN_GUARD_*`` environment and
replaces itself with ``lan-guard-agent run`` (or another agent command given as arguments,
such as ``check-config``). Standard library only: it runs before anything else.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from pathlib import Path
from typing import Any

OPTIONS = Path(os.environ.get("LAN_GUARD_ADDON_OPTIONS", "/data/options.json"))
# The Supervisor's address inside an add-on; a test points it at its own local server.
SUPERVISOR = os.environ.get("LAN_GUARD_ADDON_SUPERVISOR", "http://supervisor")
ROUTES = Path("/proc/net/route")
DATA = "/data"  # the add-on's persistent folder: the outbox survives updates and restarts


class AddonError(Exception):
    """What keeps the agent from starting, in words for the add-on's log."""


def mqtt_service(supervisor: str, token: str) -> dict[str, Any]:
    """The broker the Mosquitto add-on provides: host, port, ssl, username, password."""
    request = urllib.request.Request(
        f"{supervisor}/services/mqtt", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            answer: dict[str, Any] = json.loads(response.read())
    except (OSError, ValueError) as err:
        raise AddonError(
            f"no MQTT broker from the Supervisor ({err}): is Mosquitto installed?"
        ) from err
    if answer.get("result") != "ok" or not isinstance(answer.get("data"), dict):
        raise AddonError(f"the Supervisor has no MQTT service: {answer.get('message')}")
    data: dict[str, Any] = answer["data"]
    return data


def default_interface(routes: Path = ROUTES) -> str | None:
    """The interface of the default route (host network: the one facing the LAN)."""
    try:
        lines = routes.read_text(encoding="ascii").splitlines()[1:]
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) > 2 and fields[1] == "00000000":  # destination 0.0.0.0
            return fields[0]
    return None


def agent_environment(
    options: dict[str, Any], mqtt: dict[str, Any], interface: str | None
) -> dict[str, str]:
    """The agent's configuration (``LAN_GUARD_*`` variables) from the options and broker."""
    env = {
        "STATE_DIRECTORY": DATA,
        "LAN_GUARD_MQTT_OUTBOX_PATH": f"{DATA}/outbox.sqlite",
        # Events go to MQTT; the add-on's log keeps the agent's own log lines only.
        "LAN_GUARD_STDOUT": "false",
        "LAN_GUARD_LOG_LEVEL": str(options.get("log_level", "info")).upper(),
        "LAN_GUARD_MQTT_HOST": str(mqtt["host"]),
        "LAN_GUARD_MQTT_PORT": str(mqtt["port"]),
        "LAN_GUARD_MQTT_TLS": "true" if mqtt.get("ssl") else "false",
        "LAN_GUARD_MQTT_TOPIC_PREFIX": str(options.get("topic_prefix", "lan_guard")),
        "LAN_GUARD_DECOYS_ENABLED": "true" if options.get("decoys", True) else "false",
        "LAN_GUARD_ENFORCER_BACKEND": str(options.get("enforcer", "none")),
        "LAN_GUARD_ENFORCER_ALLOWLIST": ",".join(options.get("enforcer_allowlist", [])),
    }
    if ports := options.get("decoy_ports"):
        env["LAN_GUARD_DECOYS_PORTS"] = ",".join(str(port) for port in ports)
    for key, name in (
        ("username", "LAN_GUARD_MQTT_USERNAME"),
        ("password", "LAN_GUARD_MQTT_PASSWORD"),
    ):
        if mqtt.get(key):
            env[name] = str(mqtt[key])
    if agent_id := options.get("agent_id"):
        env["LAN_GUARD_AGENT_ID"] = str(agent_id)
    if shared_key := options.get("shared_key"):
        env["LAN_GUARD_MQTT_SHARED_KEY"] = str(shared_key)
    if interface := options.get("interface") or interface:
        env["LAN_GUARD_NETWORK_INTERFACE"] = str(interface)
    return env


def main(argv: list[str]) -> int:
    """Read options and broker, then become the agent (``argv``: the agent's command)."""
    try:
        options = json.loads(OPTIONS.read_text(encoding="utf-8"))
        token = os.environ.get("SUPERVISOR_TOKEN", "")
        env = agent_environment(options, mqtt_service(SUPERVISOR, token), default_interface())
    except (OSError, ValueError, AddonError) as err:
        print(f"lan-guard-addon: {err}", file=sys.stderr)
        return 1
    # The agent's own variables only: nothing else of the container's environment is passed
    # on except what a process needs to run.
    keep = {key: os.environ[key] for key in ("PATH", "HOME", "LANG", "TZ") if key in os.environ}
    command = argv or ["run"]
    os.execvpe("lan-guard-agent", ["lan-guard-agent", *command], {**keep, **env})


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
