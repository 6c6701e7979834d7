"""The gateway is never quarantined, even when only the live network names it: its IP from
the default route (no ``network.gateway_ip``), its MAC from the kernel's ARP table or the
first ARP reply heard; and a quarantine naming an IP the hosts inventory binds to another
MAC is refused (a forged sender IP must not cut off an innocent host)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

import pytest

import sensor_agent.commands as commands_module
from sensor_agent import signing
from sensor_agent.cli import _command_handler, _wire_mqtt
from sensor_agent.commands import CommandHandler
from sensor_agent.config import AgentConfig, load
from sensor_agent.enforcer import NoEnforcer
from sensor_agent.formats import ip_bytes, mac_bytes
from sensor_agent.live import LiveAgent
from sensor_agent.pipeline import Pipeline, info_payload
from tests.agent.craft import (
    ATTACKER_IP,
    ATTACKER_MAC,
    GW_IP,
    GW_MAC,
    HOST_IP,
    HOST_MAC,
    NODE_IP,
    NODE_MAC,
    RecordingSink,
    arp_reply,
)
from tests.contract import validate

KEY = "gateway-test-shared-key"
NO_ENFORCER = "this agent has no enforcer (enforcer: none)"


class FakeSink:
    def __init__(self) -> None:
        self.retained_payloads: list[tuple[str, dict[str, Any]]] = []

    def counters(self) -> dict[str, int]:
        return {"dropped": 0, "pending": 0, "kept": 0, "reconnects": 0}

    def retained(self, topic: str, payload: dict[str, Any]) -> None:
        self.retained_payloads.append((topic, payload))


def run_style_config(overrides: dict[tuple[str, ...], Any] | None = None) -> AgentConfig:
    """What ``run`` has after reading the interface: no gateway in the configuration."""
    settings: dict[tuple[str, ...], Any] = {("agent_id",): "gw-test", ("mqtt", "host"): "h"}
    settings.update(overrides or {})
    config = load(None, environ={}, overrides=settings)
    assert config.raw["network"]["gateway_ip"] is None
    return config.with_network(ip_bytes(NODE_IP), mac_bytes(NODE_MAC), ip_bytes(GW_IP))


def quarantine(mac: str, ip: str | None) -> bytes:
    body = {"id": uuid.uuid4().hex, "action": "quarantine", "mac": mac, "ip": ip}
    return json.dumps({**body, "ts": time.time()}).encode()


def test_the_default_route_gateway_reaches_the_handler_and_the_nft_ruleset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built: dict[str, Any] = {}

    def record(kind: str, **kwargs: Any) -> NoEnforcer:
        built.update(kind=kind, **kwargs)
        return NoEnforcer()

    monkeypatch.setattr(commands_module, "build_enforcer", record)
    config = run_style_config({("enforcer", "backend"): "nftables", ("mqtt", "shared_key"): KEY})
    handler, _ = _command_handler(config, may_enforce=True)
    assert built["kind"] == "nftables" and built["gateway"] == GW_IP
    assert handler.protected.gateway_ips == {GW_IP}
    assert handler.protected.gateway_macs == frozenset()  # none configured: looked up


def test_the_gateway_by_ip_and_by_the_kernels_mac_is_refused() -> None:
    config = run_style_config({("decoys", "enabled"): False})
    handler, _ = _command_handler(config, may_enforce=False)
    agent = LiveAgent(config, [], None, kernel_gateway_mac=mac_bytes(GW_MAC))
    _wire_mqtt(FakeSink(), handler, agent.pipeline, agent.gateway_mac)
    by_ip = handler(quarantine(ATTACKER_MAC, GW_IP))
    by_mac = handler(quarantine(GW_MAC, None))
    assert (by_ip["ok"], by_ip["error"]) == (False, f"refused: {GW_IP} is the gateway")
    assert (by_mac["ok"], by_mac["error"]) == (False, f"refused: {GW_MAC} is the gateway")


def test_the_gateway_mac_learnt_from_its_first_arp_reply_is_protected_and_published() -> None:
    config = run_style_config()
    handler, _ = _command_handler(config, may_enforce=False)  # the kernel knew no MAC
    pipeline = Pipeline(config.pipeline, [])
    _wire_mqtt(FakeSink(), handler, pipeline)
    assert pipeline.gateway_mac() is None
    assert (
        handler(quarantine(GW_MAC, None))["error"] == "this agent has no enforcer (enforcer: none)"
    )
    pipeline.feed(time.time(), arp_reply(GW_MAC, GW_IP))
    assert pipeline.gateway_mac() == mac_bytes(GW_MAC)
    assert handler(quarantine(GW_MAC, None))["error"] == f"refused: {GW_MAC} is the gateway"
    info = info_payload(
        config.pipeline,
        version="0",
        interface="eth0",
        decoy_ports=[],
        decoy_errors=[],
        capabilities=["detect"],
        started_at=0.0,
        gateway_mac=pipeline.gateway_mac(),
    )
    validate("info", info)
    assert info["gateway_mac"] == GW_MAC


def test_a_stale_kernel_gateway_mac_is_published_until_the_gateway_is_heard(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The node's ARP table may be stale (or poisoned): its entry is protected and published
    until the gateway's own reply is heard, and never makes the real gateway a spoofer; the
    disagreement is logged, for the owner to check which is the router."""
    config = run_style_config({("decoys", "enabled"): False})
    sink = RecordingSink()
    agent = LiveAgent(config, [sink], None, kernel_gateway_mac=mac_bytes(HOST_MAC))
    handler, _ = _command_handler(config, may_enforce=False)
    _wire_mqtt(FakeSink(), handler, agent.pipeline, agent.gateway_mac)
    stop = threading.Event()
    agent.start()
    assert sink.last("info")["gateway_mac"] == HOST_MAC
    assert handler(quarantine(HOST_MAC, None))["error"] == f"refused: {HOST_MAC} is the gateway"
    runner = threading.Thread(target=agent.run, args=(stop, 0.05))
    runner.start()
    try:
        agent.pipeline.feed(time.time(), arp_reply(GW_MAC, GW_IP))  # as the capture would
        deadline = time.monotonic() + 5
        while sink.last("info")["gateway_mac"] != GW_MAC and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        stop.set()
        runner.join(5)
        agent.close()
    validate("info", sink.last("info"))
    assert sink.last("info")["gateway_mac"] == GW_MAC
    assert [e["kind"] for e in sink.events] == []  # the real gateway is no spoofer
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(f"is now {GW_MAC}" in m and f"had {HOST_MAC} at start" in m for m in warned)
    assert handler(quarantine(GW_MAC, None))["error"] == f"refused: {GW_MAC} is the gateway"
    # the stale entry is no longer the gateway: it may be quarantined (here: no enforcer)
    assert handler(quarantine(HOST_MAC, None))["error"] == NO_ENFORCER


def test_info_without_a_known_gateway_mac_says_null_and_older_payloads_still_validate() -> None:
    config = run_style_config()
    info = info_payload(
        config.pipeline,
        version="0",
        interface="eth0",
        decoy_ports=[],
        decoy_errors=[],
        capabilities=["detect"],
        started_at=0.0,
    )
    validate("info", info)
    assert info["gateway_mac"] is None
    del info["gateway_mac"]
    validate("info", info)  # optional: agents before it are still valid


def test_a_quarantine_whose_ip_belongs_to_another_mac_is_refused() -> None:
    config = run_style_config()
    handler, _ = _command_handler(config, may_enforce=False)
    pipeline = Pipeline(config.pipeline, [])
    _wire_mqtt(FakeSink(), handler, pipeline)
    now = time.time()
    pipeline.feed(now, arp_reply(HOST_MAC, HOST_IP))
    # heard once, the binding could be one forged frame: it protects nobody yet
    assert "no enforcer" in handler(quarantine(ATTACKER_MAC, HOST_IP))["error"]
    pipeline.feed(now + 1.5, arp_reply(HOST_MAC, HOST_IP))  # heard again, a second later
    pipeline.tick(now + 2.5)
    forged = handler(quarantine(ATTACKER_MAC, HOST_IP))
    validate("command_result", forged)
    assert forged["ok"] is False
    assert forged["error"] == (
        f"refused: {HOST_IP} belongs to {HOST_MAC} in the agent's hosts inventory, "
        f"not {ATTACKER_MAC}"
    )
    # the IP's own MAC, and an IP the inventory does not know, reach the enforcer
    assert "no enforcer" in handler(quarantine(HOST_MAC, HOST_IP))["error"]
    assert "no enforcer" in handler(quarantine(ATTACKER_MAC, ATTACKER_IP))["error"]


class Enforcing(NoEnforcer):
    """An enforcer that would act (so a quarantine is checked in full) and records it."""

    kind = "nftables"  # type: ignore[assignment]

    def __init__(self) -> None:
        self.quarantined: list[str] = []

    def quarantine(self, mac: str, ip: str | None, command_id: str) -> None:
        self.quarantined.append(mac)


def enforcing_handler(monkeypatch: pytest.MonkeyPatch) -> tuple[CommandHandler, Enforcing]:
    enforcer = Enforcing()
    monkeypatch.setattr(commands_module, "build_enforcer", lambda kind, **_: enforcer)
    config = run_style_config(
        {
            ("decoys", "enabled"): False,
            ("enforcer", "backend"): "nftables",
            ("mqtt", "shared_key"): KEY,
        }
    )
    handler, _ = _command_handler(config, may_enforce=True)
    return handler, enforcer


def signed_quarantine(handler: CommandHandler, mac: str, ip: str | None) -> bytes:
    body = {"id": uuid.uuid4().hex, "action": "quarantine", "mac": mac, "ip": ip}
    signed = signing.sign(
        body, KEY.encode(), time.time(), agent_id=handler.agent_id, topic="command"
    )
    return json.dumps(signed).encode()


def test_a_quarantine_before_the_agent_knows_its_lan_waits_for_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The MQTT sink delivers commands before the pipeline exists (a restarted agent hears
    Home Assistant's quarantines at once): the gateway's MAC must not slip through then."""
    handler, enforcer = enforcing_handler(monkeypatch)
    config = run_style_config({("decoys", "enabled"): False})
    agent = LiveAgent(config, [], None, kernel_gateway_mac=mac_bytes(GW_MAC))
    results: list[dict[str, Any]] = []
    early = threading.Thread(
        target=lambda: results.append(handler(signed_quarantine(handler, GW_MAC, None)))
    )
    early.start()
    time.sleep(0.2)
    assert results == []  # waiting for the agent's view of the LAN
    _wire_mqtt(FakeSink(), handler, agent.pipeline, agent.gateway_mac)
    early.join(5)
    assert results[0]["error"] == f"refused: {GW_MAC} is the gateway"
    assert enforcer.quarantined == []


def test_a_quarantine_is_refused_when_the_lan_view_never_comes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    handler, enforcer = enforcing_handler(monkeypatch)
    handler.wire_timeout_s = 0.1
    result = handler(signed_quarantine(handler, HOST_MAC, HOST_IP))
    validate("command_result", result)
    assert result["error"] == "refused: the agent is starting (it cannot check the target yet)"
    assert (
        handler(signed_quarantine(handler, GW_MAC, GW_IP))["error"]
        == f"refused: {GW_IP} is the gateway"
    )
    assert enforcer.quarantined == []
