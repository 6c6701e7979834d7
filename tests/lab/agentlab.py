"""The agent in a namespace lab: start it on the node, read its JSON-lines events, check them.

Shared by the lab tests and ``benchmarks/agent_live_flood.py``.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.contract import validate_from_pipeline
from tests.netlab import Host, Lab, wait_for

GATEWAY_IP = "198.18.2.1"
NODE_IP = "198.18.2.2"
UPLINK_ROOT_IP = "198.18.2.253"
UPLINK_NODE_IP = "198.18.2.254"
DECOY_PORTS = (554, 445, 9100, 80, 515, 139)
"""The agent's default decoy ports: the ports ransomware probes first (docs/architecture.md)."""

AGENT = Path(sys.prefix) / "bin" / "lan-guard-agent"
"""The agent's console script in the venv running the tests."""

Event = dict[str, Any]


@dataclass
class Network:
    """The module's lab: the gateway, the monitoring node and its uplink to the root namespace."""

    lab: Lab
    gateway: Host
    node: Host
    uplink_root_ip: str


def build_network(lab: Lab) -> Network:
    gateway = lab.host("gw", GATEWAY_IP)
    node = lab.host("node", NODE_IP, gateway=GATEWAY_IP)
    uplink = lab.uplink_to_root(UPLINK_ROOT_IP, UPLINK_NODE_IP, node)
    return Network(lab=lab, gateway=gateway, node=node, uplink_root_ip=uplink.root_ip)


def read_events(path: Path) -> list[Event]:
    """Every complete JSON line of ``path`` (a line still being written is left for later)."""
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    complete = text[: text.rfind("\n") + 1]
    return [json.loads(line) for line in complete.splitlines() if line.strip()]


def is_from(host: Host) -> Callable[[Event], bool]:
    return lambda event: event["source"]["mac"] == host.mac


@dataclass
class AgentRun:
    """One ``lan-guard-agent run --interface eth0`` on the node, events to ``events_path``."""

    network: Network
    proc: Any
    events_path: Path
    log_path: Path
    args: list[str] = field(default_factory=list)

    @classmethod
    def start(
        cls, network: Network, workdir: Path, extra_args: Sequence[str] = (), ready_s: float = 20.0
    ) -> AgentRun:
        """Start the agent and wait until it logs that it is watching (capture and decoys up)."""
        events_path, log_path = workdir / "events.jsonl", workdir / "agent.log"
        args = [
            # The test's own event store (the default is the machine's, shared by every run).
            "env",
            f"LAN_GUARD_MQTT_OUTBOX_PATH={workdir / 'outbox.sqlite'}",
            str(AGENT),
            "run",
            "--interface",
            network.node.iface,
            "--events-jsonl",
            str(events_path),
            *extra_args,
        ]
        proc = network.node.spawn(args, log=log_path)
        run = cls(network, proc, events_path, log_path, args)
        ready = wait_for(lambda: run.exited() or "watching " in run.log(), timeout=ready_s)
        if not ready or run.exited():
            run.stop(check=False)
            raise AssertionError(f"the agent did not start: {run.log_tail()}")
        return run

    def exited(self) -> bool:
        return self.proc.poll() is not None

    def log(self) -> str:
        """What the agent logged so far (stderr; stdout too, which holds events as JSON)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, chars: int = 3000) -> str:
        return f"exit={self.proc.poll()} args={self.args}\n{self.log()[-chars:]}"

    def events(self) -> list[Event]:
        return read_events(self.events_path)

    def wait_event(
        self, predicate: Callable[[Event], bool], timeout: float = 10.0, what: str = "event"
    ) -> Event:
        """The first event matching ``predicate`` within ``timeout`` s, else a clear failure."""
        found: list[Event] = []

        def seen() -> bool:
            found[:] = [event for event in self.events() if predicate(event)]
            return bool(found) or self.exited()

        wait_for(seen, timeout=timeout)
        if not found:
            raise AssertionError(
                f"no {what} within {timeout} s; events: {self.events()}\n{self.log_tail()}"
            )
        return found[0]

    def wait_kind(self, kind: str, culprit: Host, timeout: float = 10.0) -> Event:
        return self.wait_event(
            lambda event: event["kind"] == kind and is_from(culprit)(event),
            timeout=timeout,
            what=f"{kind} event from {culprit.name} ({culprit.mac})",
        )

    def stop(self, *, check: bool = True) -> None:
        """Stop the agent; with ``check`` it must have stayed up and every event be valid."""
        alive = not self.exited()
        self.network.lab.stop(self.proc, timeout=5.0)
        if not check:
            return
        assert alive, f"the agent died during the test: {self.log_tail()}"
        for event in self.events():
            validate_from_pipeline("event", event)


def assert_culprit(event: Event, *, kind: str, level: int, culprit: Host) -> None:
    """The event is valid (as detected: the JSON-lines log has no seq/epoch, only MQTT does),
    of ``kind`` and ``level``, and names ``culprit`` by MAC and IP."""
    validate_from_pipeline("event", event)
    assert event["kind"] == kind, event
    assert event["level"] == level, event
    assert event["source"]["mac"] == culprit.mac, event
    assert event["source"]["ip"] == culprit.ip, event


def settle(seconds: float) -> None:
    """Give the agent time to (not) react; bounded by definition."""
    time.sleep(seconds)
