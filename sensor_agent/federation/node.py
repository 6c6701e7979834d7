"""``lan-guard-agent federate``: the examples' intake and a Flower SuperNode, side by side.

The intake (:mod:`.intake`) keeps the owner's labelled examples as they arrive from the
integration; the SuperNode (Flower's ``flower-supernode``, started from this Python's folder)
connects out to the provider's SuperLink and runs the project's ClientApp when a round asks,
with the example store's path in its node config. The SuperNode signs in with this node's own
key (:mod:`.nodekey`); the provider's SuperLink admits only nodes whose public key it
registered. Nothing listens on the LAN: the SuperNode's own runtime API stays on loopback.
Both stop with the command (SIGTERM, SIGINT).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sensor_agent.federation.examples import ExampleStore
from sensor_agent.federation.intake import Intake, serve
from sensor_agent.federation.nodekey import NodeKeyError, ensure
from sensor_agent.sinks.mqtt import MqttSettings

_LOGGER = logging.getLogger(__name__)


class FederationError(ValueError):
    """The federation cannot start as configured (the message says why)."""


@dataclass(frozen=True)
class NodeSettings:
    """The ``[federation]`` section, checked."""

    superlink: str
    site_id: str
    examples_path: Path
    auth_key_path: Path
    root_certificates: str | None = None
    insecure: bool = False
    max_examples: int = 5_000
    max_age_s: float = 365 * 86_400.0
    min_examples: int = 10
    runtime_port: int = 9094  # the SuperNode's own API, on loopback

    @classmethod
    def from_config(cls, section: dict[str, Any], outbox_path: str) -> NodeSettings:
        if not section.get("superlink"):
            raise FederationError("federation.superlink: the provider's SuperLink, host:port")
        if not section.get("site_id"):
            raise FederationError("federation.site_id: this site's id at the provider")
        if section.get("root_certificates") and section.get("insecure"):
            raise FederationError("federation: root_certificates and insecure exclude each other")
        state = Path(outbox_path).parent
        path = section.get("examples_path") or str(state / "examples.sqlite")
        return cls(
            superlink=str(section["superlink"]),
            site_id=str(section["site_id"]),
            examples_path=Path(path),
            auth_key_path=Path(section.get("auth_key_path") or state / "supernode_key"),
            root_certificates=section.get("root_certificates"),
            insecure=bool(section.get("insecure")),
            max_examples=int(section.get("max_examples", 5_000)),
            max_age_s=float(section.get("max_age_days", 365.0)) * 86_400.0,
            min_examples=int(section.get("min_examples", 10)),
            runtime_port=int(section.get("runtime_port", 9094)),
        )


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def supernode_command(settings: NodeSettings, agent_id: str, bin_dir: Path) -> list[str]:
    """``flower-supernode`` with TLS to the SuperLink (or plain HTTP when ``insecure``),
    signing in with the node's key."""
    node_config = " ".join(
        [
            f"examples-db={_quoted(str(settings.examples_path.absolute()))}",
            f"site-id={_quoted(settings.site_id)}",
            f"agent-id={_quoted(agent_id)}",
            f"min-examples={settings.min_examples}",
        ]
    )
    command = [
        str(bin_dir / "flower-supernode"),
        "--superlink",
        settings.superlink,
        "--auth-supernode-private-key",
        str(settings.auth_key_path.absolute()),
    ]
    if settings.insecure:
        command.append("--insecure")
    elif settings.root_certificates:
        command += ["--root-certificates", settings.root_certificates]
    return [
        *command,
        "--host",
        "127.0.0.1",
        "--port",
        str(settings.runtime_port),
        "--node-config",
        node_config,
    ]


def node_key(settings: NodeSettings) -> str:
    """The node's public key for the provider to register (the pair is made if missing)."""
    try:
        return ensure(settings.auth_key_path)
    except (NodeKeyError, OSError) as err:
        raise FederationError(f"federation.auth_key_path: {err}") from err


def run(settings: NodeSettings, mqtt: MqttSettings, stop: threading.Event) -> int:
    """Serve the intake and keep a SuperNode running until ``stop``; returns an exit code."""
    if mqtt.shared_key is None:
        raise FederationError("federate needs mqtt.shared_key: examples must be signed")
    public_key = node_key(settings)
    store = ExampleStore(
        settings.examples_path, max_rows=settings.max_examples, max_age_s=settings.max_age_s
    )
    intake = Intake(store, mqtt.shared_key.encode(), mqtt.agent_id)
    listener = threading.Thread(target=serve, args=(mqtt, intake, stop), daemon=True)
    listener.start()
    bin_dir = Path(sys.executable).parent
    # The SuperNode starts Flower's other executables (flower-superexec, flwr-clientapp) by
    # name: this venv's first.
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    supernode = subprocess.Popen(supernode_command(settings, mqtt.agent_id, bin_dir), env=env)
    _LOGGER.info(
        "federation: SuperNode for site %s to %s, node key %s",
        settings.site_id,
        settings.superlink,
        public_key,
    )
    try:
        while not stop.wait(1.0):
            if supernode.poll() is not None:
                # The usual reason at set-up: the provider has not registered this node's key.
                _LOGGER.error(
                    "the SuperNode exited with %d; the SuperLink admits this node only once "
                    "the provider registered its public key: %s",
                    supernode.returncode,
                    public_key,
                )
                return 1
        return 0
    finally:
        stop.set()
        if supernode.poll() is None:
            supernode.terminate()
            try:
                supernode.wait(10)
            except subprocess.TimeoutExpired:
                supernode.kill()
        listener.join(10)
        store.close()
