"""``lan-guard-agent replay`` with broker settings, as a subprocess, against a real mosquitto."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from sensor_agent import signing
from sensor_agent.outbox import Outbox
from sensor_agent.synth import CULPRIT
from tests.broker import Collector, Mosquitto, Received, free_port
from tests.contract import validate

pytestmark = pytest.mark.broker

AGENT = "cli-test"
PREFIX = f"lan_guard/{AGENT}"
KEY = "cli-test-shared-key-0123"
REPO = Path(__file__).resolve().parents[2]
# The demo LAN's node and gateway (sensor_agent.synth), so every level is detected.
DEMO_NETWORK = (
    "--node-ip",
    "192.0.2.10",
    "--node-mac",
    "b8:27:eb:0a:00:0a",
    "--gateway-ip",
    "192.0.2.1",
)


def agent_command() -> list[str]:
    script = Path(sys.executable).with_name("lan-guard-agent")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from sensor_agent.cli import main; sys.exit(main())"]


def run_agent(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*agent_command(), *args],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def demo_pcap(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("capture") / "demo.pcap"
    done = run_agent("generate", "demo", str(path))
    assert done.returncode == 0, done.stderr
    return path


def replay(pcap: Path, port: int, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return run_agent(
        "replay",
        str(pcap),
        "--agent-id",
        AGENT,
        *DEMO_NETWORK,
        "--mqtt-host",
        "127.0.0.1",
        "--mqtt-port",
        str(port),
        "--no-stdout",
        "--events-jsonl",
        str(tmp_path / "events.jsonl"),
        env={"LAN_GUARD_MQTT_OUTBOX_PATH": str(tmp_path / "outbox.sqlite"), **env},
    )


def payloads(messages: list[Received], name: str) -> list[Any]:
    return [json.loads(m.payload) for m in messages if m.topic == f"{PREFIX}/{name}"]


def as_logged(payload: dict[str, Any]) -> dict[str, Any]:
    """An event as the JSON-lines log has it: as detected, without what the event store and
    signing add."""
    return {k: v for k, v in payload.items() if k not in ("ts", "sig", "seq", "epoch")}


def test_replay_publishes_signed_events_and_retained_state_over_mqtt(
    demo_pcap: Path, tmp_path: Path
) -> None:
    with (
        Mosquitto(users={"agent": "agent-pass", "ha": "ha-pass"}) as broker,
        Collector(broker.port, f"{PREFIX}/#", username="ha", password="ha-pass") as seen,
    ):
        started = time.time()
        done = replay(
            demo_pcap,
            broker.port,
            tmp_path,
            LAN_GUARD_MQTT_USERNAME="agent",
            LAN_GUARD_MQTT_PASSWORD="agent-pass",
            LAN_GUARD_MQTT_SHARED_KEY=KEY,
        )
        assert done.returncode == 0, done.stderr
        logged = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
        assert len(logged) >= 5  # the demo: arp_scan, syn_scan, session, host_left
        assert seen.wait_for(lambda m: len(payloads(m, "event")) >= len(logged), 10)
        assert seen.wait_for(lambda m: m[-1].payload == b"offline", 10)
        messages = list(seen.messages)
    events = payloads(messages, "event")
    assert [as_logged(e) for e in events] == logged  # the same events, in the same order
    assert [e["seq"] for e in events] == list(range(1, len(logged) + 1))
    assert {"arp_scan", "syn_scan", "session", "host_left"} <= {e["kind"] for e in events}
    verifier = signing.Verifier(KEY.encode(), agent_id=AGENT, topic="event")
    for event in events:
        validate("event", event)
        verifier.verify(event, time.time())  # signed at publish time: fresh
        assert event["ts"] >= started
    states, hosts = payloads(messages, "state"), payloads(messages, "hosts")
    assert states and hosts
    for state in states:
        validate("state", state)
        signing.verify(state, KEY.encode(), time.time(), agent_id=AGENT, topic="state")
    assert (states[-1]["last_seq"], states[-1]["oldest_seq"]) == (len(logged), 1)
    for inventory in hosts:
        validate("hosts", inventory)
    assert states[-1]["counters"]["events"] == len(logged)
    assert states[-1]["counters"]["outbox_dropped"] == 0
    status = [m.payload for m in messages if m.topic == f"{PREFIX}/status"]
    assert status == [b"online", b"offline"]
    outbox = Outbox(tmp_path / "outbox.sqlite")
    assert outbox.pending == 0  # everything acknowledged before the agent exited
    assert outbox.kept == len(logged)  # and kept for a subscriber that missed them
    assert states[-1]["epoch"] == outbox.epoch
    outbox.close()


def test_replay_with_the_broker_down_keeps_events_for_the_next_run(
    demo_pcap: Path, tmp_path: Path
) -> None:
    port = free_port()
    first = replay(demo_pcap, port, tmp_path)
    assert first.returncode == 0, first.stderr
    assert f"cannot connect to MQTT broker 127.0.0.1:{port}" in first.stderr
    assert "wait in the outbox" in first.stderr
    logged = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    outbox = Outbox(tmp_path / "outbox.sqlite")
    assert outbox.pending == len(logged)
    outbox.close()
    with (
        Mosquitto(port=port) as broker,
        Collector(broker.port, f"{PREFIX}/event") as seen,
    ):
        second = replay(demo_pcap, port, tmp_path)  # the next start sends the backlog first
        assert second.returncode == 0, second.stderr
        assert seen.wait_for(lambda m: len(m) >= 2 * len(logged), 10)
    events = [json.loads(m.payload) for m in seen.messages]
    assert [as_logged(e) for e in events[: len(logged)]] == logged
    assert len({e["id"] for e in events}) == 2 * len(logged)
    assert [e["seq"] for e in events] == list(range(1, 2 * len(logged) + 1))  # one numbering


def test_a_bad_broker_setting_is_refused_with_the_key_named(
    demo_pcap: Path, tmp_path: Path
) -> None:
    done = replay(demo_pcap, 1883, tmp_path, LAN_GUARD_MQTT_SHARED_KEY="short")
    assert done.returncode != 0
    assert "shared_key" in done.stderr
    locked = Outbox(tmp_path / "outbox.sqlite")
    try:
        done = replay(demo_pcap, free_port(), tmp_path)
    finally:
        locked.close()
    assert done.returncode != 0
    assert "locked by another process" in done.stderr
    assert "Traceback" not in done.stderr


def test_replay_leaves_retained_info_state_and_hosts_for_a_later_subscriber(
    demo_pcap: Path, tmp_path: Path
) -> None:
    """Home Assistant discovers agents from the retained ``info``: a subscriber that comes
    after the replay finished still finds it (interface ``replay:<file>``), with the final
    state and hosts, all valid."""
    with Mosquitto() as broker:
        done = replay(demo_pcap, broker.port, tmp_path)
        assert done.returncode == 0, done.stderr
        with Collector(broker.port, f"{PREFIX}/#") as late:
            assert late.wait_for(
                lambda m: (
                    {"info", "state", "hosts", "status"} <= {x.topic.rsplit("/", 1)[1] for x in m}
                ),
                10,
            )
            messages = list(late.messages)
    assert all(m.retain for m in messages)  # only what the broker kept
    (info,) = payloads(messages, "info")
    validate("info", info)
    assert info["agent_id"] == AGENT
    assert info["interface"] == f"replay:{demo_pcap.name}"
    assert info["node"] == {"ip": "192.0.2.10", "mac": "b8:27:eb:0a:00:0a"}
    assert info["gateway"] == "192.0.2.1"
    assert {"detect", "hosts"} <= set(info["capabilities"])
    (state,) = payloads(messages, "state")
    validate("state", state)
    logged = (tmp_path / "events.jsonl").read_text().splitlines()
    assert state["counters"]["events"] == len(logged) > 0
    # Every event was delivered before the agent stopped: none is still waiting.
    assert state["counters"]["outbox_pending"] == 0
    (hosts,) = payloads(messages, "hosts")
    validate("hosts", hosts)
    assert (CULPRIT.mac, CULPRIT.ip) in {(h["mac"], h["ip"]) for h in hosts["hosts"]}
    assert [m.payload for m in messages if m.topic == f"{PREFIX}/status"] == [b"offline"]
