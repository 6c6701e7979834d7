"""How the CLI wires MQTT: the command handler exists even without an enforcer (commands
refused with the reason, retained ``quarantine`` saying ``enforcer: none``), and the MQTT
sink's outbox and connection figures are in the state counters. Real mosquitto on
127.0.0.1; the ``run`` test captures on ``lo`` (root)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from paho.mqtt import publish

from sensor_agent.cli import _command_handler, _wire_mqtt
from sensor_agent.config import AgentConfig, load
from sensor_agent.enforcer import NoEnforcer
from sensor_agent.pipeline import Pipeline
from sensor_agent.sinks.mqtt import MqttSettings, MqttSink
from tests.agent.craft import base_config
from tests.broker import Collector, Mosquitto
from tests.contract import validate, validate_from_pipeline

pytestmark = pytest.mark.broker

AGENT_BIN = str(Path(sys.executable).parent / "lan-guard-agent")
AGENT_ID = "wiring-test"
PREFIX = f"lan_guard/{AGENT_ID}"
KEY = "wiring-test-shared-key"
CULPRIT_MAC = "00:1b:21:42:00:42"


def config(backend: str = "none", **mqtt: str) -> AgentConfig:
    overrides: dict[tuple[str, ...], Any] = {
        ("agent_id",): AGENT_ID,
        ("mqtt", "host"): "127.0.0.1",
        ("enforcer", "backend"): backend,
        ("network", "node_ip"): "198.18.10.10",
    }
    overrides.update({("mqtt", key): value for key, value in mqtt.items()})
    return load(None, environ={}, overrides=overrides)


def command(action: str = "quarantine") -> bytes:
    body = {"id": uuid.uuid4().hex, "action": action, "mac": CULPRIT_MAC, "ts": time.time()}
    return json.dumps(body).encode()


def test_backend_none_still_answers_commands_with_a_clear_refusal() -> None:
    handler, capabilities = _command_handler(config("none"), may_enforce=True)
    assert isinstance(handler.enforcer, NoEnforcer)
    assert "enforcer" not in capabilities
    for action in ("quarantine", "release"):
        result = handler(command(action))
        validate("command_result", result)
        assert result["ok"] is False
        assert result["error"] == "this agent has no enforcer (enforcer: none)"
    state = handler.state_payload()
    validate("quarantine", state)
    assert state["enforcer"] == "none" and state["hosts"] == []


def test_replay_never_enforces_even_when_nftables_is_configured() -> None:
    handler, capabilities = _command_handler(config("nftables", shared_key=KEY), may_enforce=False)
    assert handler.enforcer.kind == "none"  # no firewall change from a replay
    assert capabilities == ["detect", "hosts", "signing"]
    assert handler.state_payload()["enforcer"] == "none"


def test_signing_is_a_capability_and_commands_must_be_signed() -> None:
    handler, capabilities = _command_handler(config(shared_key=KEY), may_enforce=True)
    assert "signing" in capabilities
    result = handler(command())
    assert result["ok"] is False and "sig" in result["error"]  # refused before the enforcer


def test_state_counters_carry_the_outbox_backlog_and_the_reconnects(tmp_path: Path) -> None:
    handler, _ = _command_handler(config(), may_enforce=True)
    with Mosquitto() as broker:
        settings = MqttSettings(
            host="127.0.0.1",
            port=broker.port,
            agent_id=AGENT_ID,
            outbox_path=str(tmp_path / "outbox.sqlite"),
            reconnect_min_s=0.1,
            reconnect_max_s=0.2,
        )
        sink = MqttSink(settings, command_handler=handler)
        try:
            pipeline = Pipeline(base_config(agent_id=AGENT_ID), [sink])
            _wire_mqtt(sink, handler, pipeline)
            sink.wait_connected(10)
            counters = pipeline.counters()
            assert (counters["outbox_pending"], counters["mqtt_reconnects"]) == (0, 0)
            broker.stop()
            deadline = time.monotonic() + 10
            while sink.connected and time.monotonic() < deadline:
                time.sleep(0.02)
            for n in range(3):  # the broker is away: these wait in the outbox
                sink.event(example_event(n))
            assert pipeline.counters()["outbox_pending"] == 3
            broker.start()
            sink.wait_connected(10)
            deadline = time.monotonic() + 10
            while pipeline.counters()["outbox_pending"] and time.monotonic() < deadline:
                time.sleep(0.02)
            state = pipeline.state_payload(time.time())
        finally:
            sink.close()
    validate_from_pipeline("state", state)
    assert state["counters"]["outbox_pending"] == 0
    assert state["counters"]["mqtt_reconnects"] == 1
    assert state["counters"]["outbox_dropped"] == 0
    assert state["counters"]["evictions"] == 0


def example_event(n: int) -> dict[str, Any]:
    path = Path(__file__).resolve().parents[2] / "schema" / "examples" / "event.arp_scan.json"
    event: dict[str, Any] = json.loads(path.read_text("utf-8"))
    event.update(id=uuid.uuid4().hex, agent_id=AGENT_ID)
    event["evidence"]["packets"] = n
    return event


@pytest.mark.skipif(os.geteuid() != 0, reason="packet capture needs root (CAP_NET_RAW)")
def test_run_without_enforcer_refuses_commands_over_mqtt(tmp_path: Path) -> None:
    """``run -i lo`` with a broker and ``enforcer.backend = none``: the retained
    ``quarantine`` says so, and a command on the command topic gets a refusal result."""
    with Mosquitto() as broker, Collector(broker.port, f"{PREFIX}/#") as seen:
        env = {
            **os.environ,
            "LAN_GUARD_MQTT_OUTBOX_PATH": str(tmp_path / "outbox.sqlite"),
            "LAN_GUARD_DECOYS_ENABLED": "false",
            "LAN_GUARD_ENFORCER_BACKEND": "none",
        }
        log = tmp_path / "agent.log"
        argv = [AGENT_BIN, "run", "-i", "lo", "--agent-id", AGENT_ID, "--no-stdout"]
        argv += ["--mqtt-host", "127.0.0.1", "--mqtt-port", str(broker.port)]
        with log.open("w") as err:
            proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, env=env)
        try:
            topics = {f"{PREFIX}/info", f"{PREFIX}/quarantine"}
            assert seen.wait_for(lambda m: topics <= {x.topic for x in m}, 20), log.read_text()
            # The agent subscribes to commands just after publishing its retained payloads:
            # a command may come too early to be heard, so send one a second (at most 10).
            result_topic = f"{PREFIX}/command/result"
            sent: list[str] = []
            for _ in range(10):
                raw = command()
                sent.append(json.loads(raw)["id"])
                publish.single(
                    f"{PREFIX}/command", raw, qos=1, hostname="127.0.0.1", port=broker.port
                )
                if seen.wait_for(lambda m: any(x.topic == result_topic for x in m), 1):
                    break
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=15)
        assert code == 0, log.read_text()
        messages = list(seen.messages)
    results = [json.loads(m.payload) for m in messages if m.topic == result_topic]
    assert results, log.read_text()
    result = results[0]
    validate("command_result", result)
    assert result["id"] in sent
    assert result["ok"] is False
    assert result["error"] == "this agent has no enforcer (enforcer: none)"
    quarantine = [json.loads(m.payload) for m in messages if m.topic == f"{PREFIX}/quarantine"]
    validate("quarantine", quarantine[-1])
    assert quarantine[-1]["enforcer"] == "none"
    info = [json.loads(m.payload) for m in messages if m.topic == f"{PREFIX}/info"][-1]
    validate("info", info)
    assert info["interface"] == "lo" and "enforcer" not in info["capabilities"]
    states = [json.loads(m.payload) for m in messages if m.topic == f"{PREFIX}/state"]
    assert states, "the final state is published on a clean stop"
    validate("state", states[-1])
    assert {"outbox_pending", "mqtt_reconnects", "evictions"} <= states[-1]["counters"].keys()


def test_the_sink_and_the_replay_command_share_one_event_store(tmp_path: Path) -> None:
    """A replay re-queues in the store the sink publishes from (no broker needed here)."""
    from sensor_agent import signing
    from sensor_agent.cli import _mqtt
    from tests.broker import free_port

    sink, handler, capabilities = _mqtt(
        config(
            shared_key=KEY,
            outbox_path=str(tmp_path / "store.sqlite"),
            port=str(free_port()),  # nobody listens: the events wait in the store
        ),
        may_enforce=False,
    )
    try:
        sink.event({"id": "a" * 32})
        body = {"id": "r1", "action": "replay", "after_seq": 0, "ts": time.time()}
        signed = signing.sign(body, KEY.encode(), time.time(), agent_id=AGENT_ID, topic="command")
        result = handler(json.dumps(signed).encode())
        epoch = sink.delivery()["epoch"]
    finally:
        sink.close()
    validate("command_result", result)
    assert result["ok"] is True, result
    assert result["replay"]["epoch"] == epoch
    assert (result["replay"]["count"], result["replay"]["last_seq"]) == (1, 1)
    assert "signing" in capabilities
