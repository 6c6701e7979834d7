"""The nftables enforcer against real packets in network namespaces (root only).

Two places an agent can enforce, one lab (prefix ``lg4``, subnet 198.18.4.0/24):

* routed (``inet`` table on the router): a home router between its main LAN
  (``lan`` 198.18.4.0/26, router .1) and an IoT subnet (``iot`` 198.18.4.64/26, router .65);
  ``infected`` .10 on the LAN, ``appliance`` .70 on the IoT subnet. The router answers
  DNS (udp/tcp 53) and has one more service (tcp 8080, standing for its web admin).
* bridged (``bridge`` table on the switch ``seg``, 198.18.4.128/25): ``gw`` .129 is the
  segment's gateway with the same services, ``infected2`` .140 and ``appliance2`` .150.

Every probe is bounded: ``ping -c 2 -W 1`` and 1 s socket timeouts.
"""

from __future__ import annotations

import atexit
import json
import select
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from sensor_agent import signing
from sensor_agent.commands import CommandHandler, ProtectedHosts
from sensor_agent.enforcer import NftablesEnforcer
from sensor_agent.sinks.mqtt import MqttSettings, MqttSink
from tests.broker import Collector, Mosquitto, free_port
from tests.contract import validate
from tests.netlab import Host, Lab, require_tools

PREFIX = "lg4"
SUBNET = "198.18.4.0/24"

pytestmark = pytest.mark.skipif(
    require_tools("nft", "ping", "mosquitto") is not None,
    reason=str(require_tools("nft", "ping", "mosquitto")),
)

# Answers udp/53, tcp/53 and tcp/8080 on ADDRESS; gives up by itself after 300 s.
SERVICES = textwrap.dedent(
    """
    import selectors, socket, sys, time
    address = sys.argv[1]
    sel = selectors.DefaultSelector()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind((address, 53))
    sel.register(udp, selectors.EVENT_READ)
    for port in (53, 8080):
        tcp = socket.socket()
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tcp.bind((address, port))
        tcp.listen(8)
        sel.register(tcp, selectors.EVENT_READ)
    print("ready", flush=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        for key, _ in sel.select(timeout=1):
            sock = key.fileobj
            if sock.type == socket.SOCK_DGRAM:
                data, peer = sock.recvfrom(512)
                sock.sendto(b"answer:" + data, peer)
            else:
                conn, _ = sock.accept()
                conn.close()
    """
)

# One bounded probe: "udp HOST PORT" or "tcp HOST PORT"; exit 0 when answered.
PROBE = textwrap.dedent(
    """
    import socket, sys
    kind, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    try:
        if kind == "udp":
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(1)
            s.sendto(b"q", (host, port))
            sys.exit(0 if s.recvfrom(512)[0] == b"answer:q" else 1)
        socket.create_connection((host, port), timeout=1).close()
    except OSError:
        sys.exit(1)
    """
)


@dataclass
class Net:
    lab: Lab
    router: Host
    infected: Host
    appliance: Host
    seg_ns: str
    gw: Host
    infected2: Host
    appliance2: Host
    scripts: Path


def _start_services(host: Host, address: str, scripts: Path) -> None:
    proc = host.spawn(
        [sys.executable, str(scripts / "services.py"), address], stdout=subprocess.PIPE
    )
    assert proc.stdout is not None
    readable, _, _ = select.select([proc.stdout], [], [], 10)
    assert readable, "service script did not start within 10 s"
    assert proc.stdout.readline().strip() == b"ready", "service script did not start"


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    scripts = tmp_path_factory.mktemp("lg4")
    (scripts / "services.py").write_text(SERVICES)
    (scripts / "probe.py").write_text(PROBE)
    with Lab(PREFIX, SUBNET) as lab:
        lan, iot = lab.switch("lan"), lab.switch("iot")
        router = lab.router("router", [(lan, "198.18.4.1/26"), (iot, "198.18.4.65/26")])
        infected = lab.host("infected", "198.18.4.10/26", switch=lan, gateway="198.18.4.1")
        appliance = lab.host("appliance", "198.18.4.70/26", switch=iot, gateway="198.18.4.65")
        _start_services(router, "198.18.4.1", scripts)

        seg = lab.switch("seg")
        gw = lab.host("gw", "198.18.4.129/25", switch=seg)
        infected2 = lab.host("infected2", "198.18.4.140/25", switch=seg, gateway="198.18.4.129")
        appliance2 = lab.host("appliance2", "198.18.4.150/25", switch=seg, gateway="198.18.4.129")
        _start_services(gw, "198.18.4.129", scripts)
        yield Net(lab, router, infected, appliance, seg.ns, gw, infected2, appliance2, scripts)


def pings(src: Host, dst: str) -> bool:
    return src.run(f"ping -c 2 -i 0.2 -W 1 {dst}", timeout=10).returncode == 0


def answered(net: Net, src: Host, kind: str, dst: str, port: int) -> bool:
    probe = [sys.executable, str(net.scripts / "probe.py"), kind, dst, str(port)]
    return src.run(probe, timeout=10).returncode == 0


def nft_tables(ns: str) -> str:
    return subprocess.run(
        ["ip", "netns", "exec", ns, "nft", "list", "tables"],
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    ).stdout


def test_routed_quarantine_cuts_the_culprit_off_but_keeps_dns(net: Net) -> None:
    infected, appliance, router = net.infected, net.appliance, net.router
    assert pings(infected, appliance.ip), "lab broken: no route before any quarantine"
    assert answered(net, infected, "tcp", "198.18.4.1", 8080)

    enforcer = NftablesEnforcer(
        family="inet", gateway="198.18.4.1", nft=["ip", "netns", "exec", router.ns, "nft"]
    )
    enforcer.start()
    try:
        assert "table inet lan_guard" in nft_tables(router.ns)
        assert pings(infected, appliance.ip), "an empty quarantine must not block anyone"

        started = time.perf_counter()
        enforcer.quarantine(infected.mac, infected.ip, "lab-1")
        elapsed_ms = (time.perf_counter() - started) * 1000
        print(f"\nquarantine() until the rule is in force (nft transaction): {elapsed_ms:.1f} ms")

        assert not pings(infected, appliance.ip), "culprit still reaches the appliance"
        assert not pings(appliance, infected.ip), "the appliance still reaches the culprit"
        assert not answered(net, infected, "tcp", "198.18.4.1", 8080), "router admin reachable"
        assert answered(net, infected, "udp", "198.18.4.1", 53), "DNS (udp) must stay"
        assert answered(net, infected, "tcp", "198.18.4.1", 53), "DNS (tcp) must stay"

        assert enforcer.release(infected.mac) is True
        assert pings(infected, appliance.ip), "release did not restore the route"
        assert answered(net, infected, "tcp", "198.18.4.1", 8080)
    finally:
        enforcer.close()
    assert "lan_guard" not in nft_tables(router.ns)
    assert pings(infected, appliance.ip)


def test_routed_match_by_mac_alone_and_by_ip_alone(net: Net) -> None:
    infected, appliance, router = net.infected, net.appliance, net.router
    enforcer = NftablesEnforcer(gateway="198.18.4.1", nft=["ip", "netns", "exec", router.ns, "nft"])
    enforcer.start()
    try:
        enforcer.quarantine(infected.mac, None, "lab-mac")  # the MAC set alone
        assert not pings(infected, appliance.ip)
        enforcer.release(infected.mac)
        assert pings(infected, appliance.ip)

        # Another MAC, the culprit's IP: the IP set alone (e.g. the MAC is spoofed later).
        enforcer.quarantine("02:00:00:00:99:99", infected.ip, "lab-ip")
        assert not pings(infected, appliance.ip)
        enforcer.release("02:00:00:00:99:99")
        assert pings(infected, appliance.ip)
    finally:
        enforcer.close()


def test_restart_after_a_crash_replaces_the_stale_table(net: Net) -> None:
    infected, appliance, router = net.infected, net.appliance, net.router
    nft = ["ip", "netns", "exec", router.ns, "nft"]
    crashed = NftablesEnforcer(gateway="198.18.4.1", nft=nft)
    crashed.start()
    crashed.quarantine(infected.mac, infected.ip, "before-crash")
    assert not pings(infected, appliance.ip)
    # The process dies without close(): the table stays and keeps the culprit out...
    atexit.unregister(crashed.close)
    fresh = NftablesEnforcer(gateway="198.18.4.1", nft=nft)
    fresh.start()  # ...until the next run replaces it with an empty one.
    try:
        assert pings(infected, appliance.ip)
        assert nft_tables(router.ns).count("lan_guard") == 1
    finally:
        fresh.close()
    assert "lan_guard" not in nft_tables(router.ns)


def test_bridged_quarantine_on_the_switch_in_the_path(net: Net) -> None:
    infected, appliance, gw = net.infected2, net.appliance2, net.gw
    assert pings(infected, appliance.ip), "lab broken: segment not bridged"

    enforcer = NftablesEnforcer(
        family="bridge", gateway=gw.ip, nft=["ip", "netns", "exec", net.seg_ns, "nft"]
    )
    enforcer.start()
    try:
        enforcer.quarantine(infected.mac, infected.ip, "lab-br")
        assert not pings(infected, appliance.ip), "culprit still reaches its neighbour"
        assert not pings(appliance, infected.ip), "neighbour still reaches the culprit"
        assert not answered(net, infected, "tcp", gw.ip, 8080), "gateway admin reachable"
        # ARP resolution included: the culprit's neighbour table is flushed first.
        infected.run("ip neigh flush dev eth0", timeout=5, check=True)
        assert answered(net, infected, "udp", gw.ip, 53), "DNS (udp) to the gateway must stay"
        assert answered(net, infected, "tcp", gw.ip, 53), "DNS (tcp) to the gateway must stay"
        assert enforcer.release(infected.mac) is True
        assert pings(infected, appliance.ip)
    finally:
        enforcer.close()
    assert "lan_guard" not in nft_tables(net.seg_ns)


# ---------------------------------------------------------------- end to end through a broker

KEY = "lg4-shared-key-for-the-lab"
AGENT_ID = "lg4-router"


def _publish(port: int, topic: str, payload: dict[str, Any]) -> float:
    """Publish one command (QoS 1); the monotonic time just before it was sent."""
    client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
    client.connect("127.0.0.1", port, keepalive=10)
    client.loop_start()
    try:
        sent_at = time.monotonic()
        client.publish(topic, json.dumps(payload), qos=1).wait_for_publish(timeout=5)
        return sent_at
    finally:
        client.disconnect()
        client.loop_stop()


def test_signed_command_through_mosquitto_puts_the_rule_in_force(net: Net, tmp_path: Path) -> None:
    infected, appliance, router = net.infected, net.appliance, net.router
    prefix = f"lan_guard/{AGENT_ID}"
    key = KEY.encode()
    enforcer = NftablesEnforcer(gateway="198.18.4.1", nft=["ip", "netns", "exec", router.ns, "nft"])
    enforcer.start()
    handler = CommandHandler(
        enforcer,
        agent_id=AGENT_ID,
        protected=ProtectedHosts.build(
            gateway_ip="198.18.4.1", node_ips=[router.ip, "198.18.4.65"], node_macs=[router.mac]
        ),
        key=key,
    )
    with Mosquitto() as broker, Collector(broker.port, f"{prefix}/#") as seen:
        settings = MqttSettings(
            host=broker.host,
            port=broker.port,
            agent_id=AGENT_ID,
            shared_key=KEY,
            outbox_path=str(tmp_path / "outbox.sqlite"),
        )
        sink = MqttSink(settings, command_handler=handler)
        handler.on_change = lambda payload: sink.retained("quarantine", payload)
        try:
            sink.retained("quarantine", handler.state_payload())
            sink.wait_connected(10)

            def result_of(command_id: str) -> dict[str, Any] | None:
                for message in seen.messages:
                    if message.topic == f"{prefix}/command/result":
                        body = json.loads(message.payload)
                        if body["id"] == command_id:
                            return {**body, "_at": message.at}
                return None

            def send(command: dict[str, Any], *, sign: bool = True) -> tuple[dict[str, Any], float]:
                body = (
                    signing.sign(command, key, time.time(), agent_id=AGENT_ID, topic="command")
                    if sign
                    else command
                )
                sent_at = _publish(broker.port, f"{prefix}/command", body)
                assert seen.wait_for(lambda _: result_of(command["id"]) is not None, 5)
                result = result_of(command["id"])
                assert result is not None
                latency_ms = (result.pop("_at") - sent_at) * 1000
                validate("command_result", result)
                # the agent signs its answers too, for their topic
                signing.verify(result, key, time.time(), agent_id=AGENT_ID, topic="command/result")
                return result, latency_ms

            def quarantined() -> list[str]:
                bodies = seen.payloads(f"{prefix}/quarantine")
                if not bodies:
                    return []
                state = json.loads(bodies[-1])
                validate("quarantine", state)
                return [host["mac"] for host in state["hosts"]]

            assert pings(infected, appliance.ip)
            command = {"action": "quarantine", "mac": infected.mac, "ip": infected.ip}
            result, latency_ms = send({**command, "id": "e2e-q1"})
            assert result["ok"] is True, result
            print(f"\npublish -> command/result (rule already in force): {latency_ms:.1f} ms")
            assert enforcer.installed() == ({infected.mac}, {infected.ip})
            assert seen.wait_for(lambda _: quarantined() == [infected.mac], 5)
            assert not pings(infected, appliance.ip), "command ok but the culprit is not cut off"

            # Refusals, each answered with its reason; nothing changes.
            replay = signing.sign(
                {**command, "id": "e2e-q1"}, key, time.time(), agent_id=AGENT_ID, topic="command"
            )
            replay_at = _publish(broker.port, f"{prefix}/command", replay)
            assert seen.wait_for(
                lambda msgs: any(
                    m.at >= replay_at and b"replayed" in m.payload
                    for m in msgs
                    if m.topic == f"{prefix}/command/result"
                ),
                5,
            )
            unsigned, _ = send({**command, "id": "e2e-unsigned", "ts": time.time()}, sign=False)
            assert unsigned["ok"] is False
            assert "missing signature" in unsigned["error"]
            gateway, _ = send({**command, "id": "e2e-gw", "ip": "198.18.4.1"})
            assert gateway["ok"] is False
            assert "is the gateway" in gateway["error"]
            assert enforcer.installed() == ({infected.mac}, {infected.ip})

            released, _ = send({"action": "release", "mac": infected.mac, "id": "e2e-r1"})
            assert released["ok"] is True
            assert seen.wait_for(lambda _: quarantined() == [], 5)
            assert pings(infected, appliance.ip)

            # The figure for the README: several round trips, no pings in between.
            latencies = []
            for round_no in range(10):
                for action in ("quarantine", "release"):
                    cid = f"e2e-{action[0]}{round_no}"
                    result, ms = send({**command, "action": action, "id": cid})
                    assert result["ok"] is True, result
                    latencies.append(ms)
            latencies.sort()
            print(
                f"publish -> result over {len(latencies)} commands: median "
                f"{latencies[len(latencies) // 2]:.1f} ms, max {latencies[-1]:.1f} ms"
            )
            assert enforcer.installed() == (set(), set())
        finally:
            sink.close()
            enforcer.close()
    assert "lan_guard" not in nft_tables(router.ns)


AGENT = Path(sys.prefix) / "bin" / "lan-guard-agent"


def test_the_real_agent_process_enforces_and_cleans_up_on_sigterm(net: Net, tmp_path: Path) -> None:
    """``lan-guard-agent run`` on the router, configured by env: the CLI's own wiring."""
    infected, appliance, router = net.infected, net.appliance, net.router
    uplink = net.lab.uplink_to_root("198.18.4.253", "198.18.4.254", router)
    lab_port = free_port()
    prefix = f"lan_guard/{AGENT_ID}"
    key = KEY.encode()
    with (
        Mosquitto(extra_config=f"listener {lab_port} {uplink.root_ip}") as broker,
        Collector(broker.port, f"{prefix}/#") as seen,
    ):
        agent = router.spawn(
            [
                "env",
                f"LAN_GUARD_MQTT_SHARED_KEY={KEY}",
                "LAN_GUARD_ENFORCER_BACKEND=nftables",
                f"LAN_GUARD_MQTT_OUTBOX_PATH={tmp_path / 'outbox.sqlite'}",
                str(AGENT),
                "run",
                "--interface",
                "eth0",
                "--agent-id",
                AGENT_ID,
                "--gateway-ip",
                "198.18.4.1",
                "--mqtt-host",
                uplink.root_ip,
                "--mqtt-port",
                str(lab_port),
                "--no-stdout",
            ],
            log=tmp_path / "agent.log",
        )

        def log() -> str:
            return (tmp_path / "agent.log").read_text(errors="replace")[-3000:]

        def latest(topic: str) -> dict[str, Any] | None:
            bodies = seen.payloads(f"{prefix}/{topic}")
            return json.loads(bodies[-1]) if bodies else None

        def state_is(macs: list[str]) -> bool:
            state = latest("quarantine")
            return state is not None and [h["mac"] for h in state["hosts"]] == macs

        ready = seen.wait_for(lambda _: state_is([]), 20)
        assert ready, f"no retained quarantine state from the agent:\n{log()}"
        state = latest("quarantine")
        assert state is not None
        validate("quarantine", state)
        assert state["enforcer"] == "nftables"
        assert seen.wait_for(lambda _: latest("info") is not None, 10), log()
        info = latest("info")
        assert info is not None
        assert "enforcer" in info["capabilities"]
        assert pings(infected, appliance.ip)

        def command(action: str, cid: str) -> tuple[dict[str, Any], float]:
            body = {"id": cid, "action": action, "mac": infected.mac, "ip": infected.ip}
            signed = signing.sign(body, key, time.time(), agent_id=AGENT_ID, topic="command")
            sent_at = _publish(broker.port, f"{prefix}/command", signed)

            def answered(messages: list[Any]) -> bool:
                return any(
                    m.topic == f"{prefix}/command/result" and json.loads(m.payload)["id"] == cid
                    for m in messages
                )

            assert seen.wait_for(answered, 10), f"no result for {cid}:\n{log()}"
            message = next(
                m
                for m in seen.messages
                if m.topic == f"{prefix}/command/result" and json.loads(m.payload)["id"] == cid
            )
            result = json.loads(message.payload)
            validate("command_result", result)
            return result, (message.at - sent_at) * 1000

        result, ms = command("quarantine", "agent-q1")
        assert result["ok"] is True, f"{result}\n{log()}"
        print(f"\nreal agent process: publish -> result (rule in force): {ms:.1f} ms")
        assert seen.wait_for(lambda _: state_is([infected.mac]), 5)
        assert not pings(infected, appliance.ip), "the agent's rule does not cut the culprit off"

        result, _ = command("release", "agent-r1")
        assert result["ok"] is True
        assert seen.wait_for(lambda _: state_is([]), 5)
        assert pings(infected, appliance.ip)

        # Stopping the agent lifts whatever is still quarantined: the table goes with it.
        assert command("quarantine", "agent-q2")[0]["ok"] is True
        assert "lan_guard" in nft_tables(router.ns)
        assert net.lab.stop(agent, timeout=10) == 0, log()
        assert "lan_guard" not in nft_tables(router.ns), log()
        assert pings(infected, appliance.ip)
