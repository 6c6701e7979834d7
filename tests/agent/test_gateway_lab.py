"""``lan-guard-agent run`` with no ``network.gateway_ip``, in network namespaces (root only):
the default route's gateway is protected by IP in the handler and in the nftables ruleset,
its MAC (the kernel's ARP entry, else the first ARP reply heard) is protected and published
in ``info``; once learnt it never moves: the host claiming the gateway's address after the
gateway has been silent longer than an ordinary address is held is a level 3 spoof every
time, and remains quarantinable; a quarantine of an IP that belongs to another host is
refused; the decoys listen on the node's IP only.

Lab prefix ``lgc``, subnet 198.18.10.0/24: ``gw`` .1 (the node's default route), ``node``
.10 (the agent, nftables enforcer), ``host`` .31; the broker in the root namespace is reached
over a /32 uplink. Every probe is bounded (``ping -c 1 -W 1``; the host's claims of the
gateway's address are two frames of ``tests/lab/spray_tool.py``).
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from sensor_agent import signing
from tests.broker import Collector, Mosquitto, free_port
from tests.contract import validate
from tests.netlab import Host, Lab, require_tools

PREFIX, SUBNET = "lgc", "198.18.10.0/24"
AGENT = str(Path(sys.executable).parent / "lan-guard-agent")
CLAIM = [sys.executable, str(Path(__file__).parents[1] / "lab" / "spray_tool.py"), "claim"]
AGENT_ID = "gateway-lab"
TOPIC = f"lan_guard/{AGENT_ID}"
KEY = "gateway-lab-shared-key-0123"
DECOY_PORT = 18080
STRANGER_MAC = "00:1b:21:42:00:42"

pytestmark = pytest.mark.skipif(
    require_tools("nft", "ping", "ss", "mosquitto") is not None,
    reason=str(require_tools("nft", "ping", "ss", "mosquitto")),
)


class Agent:
    """One ``run`` of the agent on ``node`` and what it published."""

    def __init__(
        self,
        lab: Lab,
        node: Host,
        broker: Mosquitto,
        port: int,
        log: Path,
        *,
        env: Sequence[str] = (),
    ) -> None:
        self.lab, self.node, self.broker, self.log_path = lab, node, broker, log
        uplink = lab.uplinks[0]
        self.seen = Collector(broker.port, f"{TOPIC}/#").start()
        self.proc = node.spawn(
            [
                "env",
                f"LAN_GUARD_MQTT_SHARED_KEY={KEY}",
                "LAN_GUARD_ENFORCER_BACKEND=nftables",
                f"LAN_GUARD_MQTT_OUTBOX_PATH={log.with_suffix('.sqlite')}",
                f"LAN_GUARD_DECOYS_PORTS={DECOY_PORT}",
                *env,
                AGENT,
                "run",
                "--interface",
                "eth0",
                "--agent-id",
                AGENT_ID,
                "--mqtt-host",
                uplink.root_ip,
                "--mqtt-port",
                str(port),
                "--no-stdout",
            ],
            log=log,
        )
        ready = self.seen.wait_for(
            lambda _: self.latest("quarantine") is not None and self.latest("info") is not None,
            20,
        )
        assert ready, self.log()
        # The agent subscribes to commands just after its retained payloads: until a first
        # (harmless) command is answered, one may come too early to be heard.
        for _ in range(10):
            if self.command("release", STRANGER_MAC, None, timeout=1) is not None:
                break

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def latest(self, topic: str) -> dict[str, Any] | None:
        bodies = self.seen.payloads(f"{TOPIC}/{topic}")
        return json.loads(bodies[-1]) if bodies else None

    def result(self, action: str, mac: str, ip: str | None) -> dict[str, Any]:
        """The agent's answer to a signed command."""
        answer = self.command(action, mac, ip, timeout=10)
        assert answer is not None, f"no result for {action} {mac}:\n{self.log()}"
        return answer

    def command(
        self, action: str, mac: str, ip: str | None, *, timeout: float
    ) -> dict[str, Any] | None:
        cid = uuid.uuid4().hex
        body = {"id": cid, "action": action, "mac": mac, "ip": ip}
        client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2)
        client.connect("127.0.0.1", self.broker.port, keepalive=10)
        client.loop_start()
        try:
            signed = signing.sign(
                body, KEY.encode(), time.time(), agent_id=AGENT_ID, topic="command"
            )
            payload = json.dumps(signed)
            client.publish(f"{TOPIC}/command", payload, qos=1).wait_for_publish(timeout=5)
        finally:
            client.disconnect()
            client.loop_stop()

        def answers() -> list[dict[str, Any]]:
            results = map(json.loads, self.seen.payloads(f"{TOPIC}/command/result"))
            return [r for r in results if r["id"] == cid]

        if not self.seen.wait_for(lambda _: bool(answers()), timeout):
            return None
        result = answers()[0]
        validate("command_result", result)
        return result

    def stop(self) -> None:
        assert self.lab.stop(self.proc, timeout=10) == 0, self.log()
        self.seen.stop()


@pytest.fixture
def lab() -> Iterator[tuple[Lab, Host, Host, Host, Mosquitto, int]]:
    with Lab(PREFIX, SUBNET) as lab:
        gw = lab.host("gw", "198.18.10.1/24")
        node = lab.host("node", "198.18.10.10/24", gateway="198.18.10.1")
        host = lab.host("host", "198.18.10.31/24")
        uplink = lab.uplink_to_root("198.18.10.253", "198.18.10.254", node)
        port = free_port()
        with Mosquitto(extra_config=f"listener {port} {uplink.root_ip}") as broker:
            yield lab, gw, node, host, broker, port


def ping(src: Host, ip: str) -> bool:
    return src.run(["ping", "-c", "1", "-W", "1", ip], timeout=5).returncode == 0


def test_the_default_route_gateway_and_its_mac_are_protected(
    lab: tuple[Lab, Host, Host, Host, Mosquitto, int], tmp_path: Path
) -> None:
    net, gw, node, host, broker, port = lab
    quiet = [  # an ordinary address is free after 1 s of silence; every detection an event
        "LAN_GUARD_DETECTORS_ARP_SPOOF_HOLD_S=1",
        "LAN_GUARD_INCIDENTS_UPDATE_INTERVAL_S=0",
    ]
    agent = Agent(net, node, broker, port, tmp_path / "first.log", env=quiet)
    try:
        assert ping(host, node.ip)  # the host's ARP request: the inventory binds its IP
        info = agent.latest("info")
        assert info is not None
        validate("info", info)
        assert info["gateway"] == gw.ip  # from the default route: no --gateway-ip given
        assert info["gateway_mac"] is None  # the kernel has not resolved it yet
        ruleset = node.run(["nft", "list", "table", "inet", "lan_guard"], timeout=10).stdout
        assert f"ip daddr {gw.ip}" in ruleset or f"ip saddr {gw.ip}" in ruleset, ruleset
        listening = node.run(["ss", "-ltnH"], timeout=10).stdout
        assert f"{node.ip}:{DECOY_PORT}" in listening and f"0.0.0.0:{DECOY_PORT}" not in listening

        gateway = agent.result("quarantine", STRANGER_MAC, gw.ip)
        assert (gateway["ok"], gateway["error"]) == (False, f"refused: {gw.ip} is the gateway")

        assert ping(node, gw.ip)  # the gateway's ARP reply: the agent learns its MAC
        learnt = agent.seen.wait_for(
            lambda _: bool((agent.latest("info") or {}).get("gateway_mac")), 5
        )
        assert learnt, agent.log()
        info = agent.latest("info")
        assert info is not None
        validate("info", info)
        assert info["gateway_mac"] == gw.mac
        by_mac = agent.result("quarantine", gw.mac, None)
        assert (by_mac["ok"], by_mac["error"]) == (False, f"refused: {gw.mac} is the gateway")

        def host_known(_: object) -> bool:
            hosts = agent.latest("hosts") or {"hosts": []}
            return {"mac": host.mac, "ip": host.ip} in [
                {"mac": h["mac"], "ip": h["ip"]} for h in hosts["hosts"]
            ]

        # the retained hosts list (at most every 10 s) says the inventory knows it
        assert agent.seen.wait_for(host_known, 20), agent.log()
        forged = agent.result("quarantine", STRANGER_MAC, host.ip)
        assert forged["ok"] is False
        assert forged["error"] == (
            f"refused: {host.ip} belongs to {host.mac} in the agent's hosts inventory, "
            f"not {STRANGER_MAC}"
        )
        own = agent.result("quarantine", host.mac, host.ip)
        assert own["ok"] is True, f"{own}\n{agent.log()}"
        assert agent.result("release", host.mac, None)["ok"] is True

        # The gateway says nothing for longer than an ordinary address is held, then the
        # host claims the gateway's address, twice (arpspoof's "I am the router").
        for _ in range(2):
            time.sleep(1.5)
            claimed = host.run([*CLAIM, "eth0", gw.ip, "1", "0.1"], timeout=10)
            assert claimed.returncode == 0, claimed.stderr

        def spoofs() -> list[dict[str, Any]]:
            events = map(json.loads, agent.seen.payloads(f"{TOPIC}/event"))
            return [e for e in events if e["kind"] == "arp_spoof"]

        assert agent.seen.wait_for(lambda _: len(spoofs()) >= 2, 10), agent.log()
        for spoof in spoofs():  # every time, never adopted as the gateway
            validate("event", spoof)
            assert (spoof["level"], spoof["source"]["mac"]) == (3, host.mac)
            assert (spoof["evidence"]["ip"], spoof["evidence"]["old_mac"]) == (gw.ip, gw.mac)
        # the spoofer is no gateway the enforcer must spare; the gateway still is
        spoofer = agent.result("quarantine", host.mac, None)
        assert spoofer["ok"] is True, f"{spoofer}\n{agent.log()}"
        assert agent.result("release", host.mac, None)["ok"] is True
        by_mac = agent.result("quarantine", gw.mac, None)
        assert (by_mac["ok"], by_mac["error"]) == (False, f"refused: {gw.mac} is the gateway")
    finally:
        agent.stop()
    # the node's own ARP entry for the gateway took the host's claim: learnt again, from gw
    node.run(["ip", "neigh", "flush", "dev", "eth0"], timeout=5)

    # Restarted with the gateway in the kernel's ARP table: known from the first info on.
    assert ping(node, gw.ip)
    agent = Agent(net, node, broker, port, tmp_path / "second.log")
    try:
        info = agent.latest("info")
        assert info is not None and info["gateway_mac"] == gw.mac, agent.log()
        by_mac = agent.result("quarantine", gw.mac, None)
        assert (by_mac["ok"], by_mac["error"]) == (False, f"refused: {gw.mac} is the gateway")
    finally:
        agent.stop()
