"""Quarantine: protected hosts, the agent's enforcer (awaited results) and a router entity."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from pytest_homeassistant_custom_component.common import (
    async_fire_mqtt_message,
    async_mock_service,
)

from custom_components.lan_guard.allowlist import Allowlist
from custom_components.lan_guard.const import (
    CONF_QUARANTINE_BACKEND,
    CONF_QUARANTINE_ENTITIES,
)
from custom_components.lan_guard.evacuation.protected import ProtectedHosts
from custom_components.lan_guard.evacuation.quarantine import (
    AgentEnforcer,
    EntityBlocker,
    interface_macs,
    parse_entity_map,
)
from custom_components.lan_guard.evacuation.record import Outcome

from .conftest import BASE, example, make_event, publish, unload
from .evacuation_fixtures import (
    CULPRIT_IP,
    CULPRIT_MAC,
    info_without_enforcer,
    publish_event,
    setup_evacuation,
)

pytestmark = pytest.mark.usefixtures("mqtt_mock")


GATEWAY_MAC = "a0:63:91:0e:12:34"
HA_MAC = "02:42:c0:a8:01:02"


def _info() -> dict[str, Any]:
    return {**example("info"), "gateway_mac": GATEWAY_MAC}


def _protected(**kwargs: Any) -> ProtectedHosts:
    return ProtectedHosts.build(
        info=kwargs.get("info", _info()),
        ha_ips=kwargs.get("ha_ips", ["192.168.1.2", "fe80::1"]),
        ha_macs=kwargs.get("ha_macs", [HA_MAC]),
        protected=kwargs.get("protected", ["192.168.1.50", "aa:bb:cc:00:11:22"]),
        allowlist=Allowlist.parse(kwargs.get("allowlist", ["192.168.1.128/25"])),
    )


@pytest.mark.parametrize(
    ("mac", "ip", "reason"),
    [
        ("02:00:00:00:00:10", "192.168.1.1", "gateway"),  # the agent's info names the gateway
        (GATEWAY_MAC, "192.168.1.77", "gateway"),  # ... and its MAC, whatever IP it claims
        (GATEWAY_MAC, None, "gateway"),
        (HA_MAC, "192.168.1.78", "ha_host"),  # HA's own MAC with another IP
        ("02:00:00:00:00:08", "240.0.0.1", "not_unicast"),  # reserved, as the agent refuses
        ("02:00:00:00:00:09", "255.255.255.255", "not_unicast"),
        ("dc:a6:32:01:02:03", None, "agent_node"),  # the agent's node by MAC
        ("02:00:00:00:00:01", "192.168.1.5", "agent_node"),  # ... or by IP
        ("02:00:00:00:00:02", "192.168.1.2", "ha_host"),
        ("02:00:00:00:00:03", "192.168.1.50", "protected"),
        ("aa:bb:cc:00:11:22", "192.168.1.51", "protected"),
        ("02:00:00:00:00:04", "192.168.1.200", "allowlist"),
        ("01:00:5e:00:00:01", "192.168.1.60", "not_unicast"),
        ("00:00:00:00:00:00", None, "not_unicast"),
        ("02:00:00:00:00:05", "224.0.0.1", "not_unicast"),
        ("02:00:00:00:00:06", "127.0.0.1", "not_unicast"),
        ("02:00:00:00:00:07", "0.0.0.0", "not_unicast"),
        (CULPRIT_MAC, CULPRIT_IP, None),
        (CULPRIT_MAC, None, None),
    ],
)
def test_protected_hosts_give_their_reason(mac: str, ip: str | None, reason: str | None) -> None:
    assert _protected().reason(mac, ip) == reason


def test_protected_hosts_without_agent_info() -> None:
    protected = _protected(info=None, ha_ips=[], ha_macs=[], protected=[], allowlist=[])
    assert protected.reason(GATEWAY_MAC, "192.168.1.1") is None
    older_agent = example("info")
    older_agent.pop("gateway_mac", None)
    assert _protected(info=older_agent).reason(GATEWAY_MAC, "192.168.1.77") is None


def test_interface_macs_read_what_the_system_shows(tmp_path: Path) -> None:
    for name, address in (
        ("eth0", "02:42:C0:A8:01:02\n"),
        ("lo", "00:00:00:00:00:00\n"),
        ("ib0", "80:00:02:08:fe:80:00:00:00:00:00:00:00:02:c9:03:00:0b:6c:1d\n"),
    ):
        (tmp_path / name).mkdir()
        (tmp_path / name / "address").write_text(address, encoding="ascii")
    names = ["eth0", "lo", "ib0", "gone", "../eth0", ""]
    assert interface_macs(names, tmp_path) == [HA_MAC]


async def test_the_gateways_mac_is_never_quarantined(hass: HomeAssistant, mqtt_mock: Any) -> None:
    entry, manager, agent, _ = await setup_evacuation(hass, mqtt_mock)
    publish(hass, "info", _info())
    publish_event(hass, make_event(level=2, mac=GATEWAY_MAC, ip="192.168.1.77"))
    await hass.async_block_till_done()
    culprit = manager.record.culprits[GATEWAY_MAC]
    assert culprit.quarantine == Outcome(False, "protected_gateway")
    assert agent.actions() == []
    await unload(hass, entry)


async def test_home_assistants_own_macs_are_protected(hass: HomeAssistant, mqtt_mock: Any) -> None:
    with patch(
        "custom_components.lan_guard.evacuation.runner.interface_macs", return_value=[HA_MAC]
    ) as read:
        entry, manager, _, _ = await setup_evacuation(hass, mqtt_mock)
    assert read.call_args.args[0]  # the names of HA's network adapters
    assert manager.protected().reason(HA_MAC, "192.168.1.79") == "ha_host"
    await unload(hass, entry)


def test_outcome_round_trip() -> None:
    outcome = Outcome(False, "timeout", "10")
    assert Outcome.from_dict(outcome.as_dict()) == outcome


def test_entity_map_parsing() -> None:
    assert parse_entity_map(["AA-BB-CC-DD-EE-FF = Switch.Laptop_Block", " "]) == {
        "aa:bb:cc:dd:ee:ff": "switch.laptop_block"
    }
    for bad in [
        "aa:bb:cc:dd:ee:ff",
        "not a mac = switch.x",
        "aa:bb:cc:dd:ee:ff = nope",
        "10.0.0.1 = switch.x",
    ]:
        with pytest.raises(ValueError):
            parse_entity_map([bad])


async def _agent_backend(hass: HomeAssistant, mqtt_mock: Any) -> tuple[Any, AgentEnforcer, Any]:
    entry, manager, agent, _ = await setup_evacuation(hass, mqtt_mock)
    backend = manager.backends["agent"]
    assert isinstance(backend, AgentEnforcer)
    return entry, backend, agent


async def test_agent_enforcer_awaits_the_answer(hass: HomeAssistant, mqtt_mock: Any) -> None:
    entry, backend, agent = await _agent_backend(hass, mqtt_mock)
    assert await backend.async_quarantine(CULPRIT_MAC, CULPRIT_IP) == Outcome(True)
    agent.answer = "refuse"
    assert await backend.async_release(CULPRIT_MAC, None) == Outcome(
        False, "agent_refused", "refused: nft failed"
    )
    assert agent.actions() == [("quarantine", CULPRIT_MAC), ("release", CULPRIT_MAC)]
    await unload(hass, entry)


async def test_agent_enforcer_answer_after_the_publish(hass: HomeAssistant, mqtt_mock: Any) -> None:
    """The usual order on a real broker: the answer arrives while the command awaits it."""
    entry, backend, _ = await _agent_backend(hass, mqtt_mock)

    async def answer_later(topic: str, payload: Any, qos: int = 0, retain: bool = False) -> None:
        command = json.loads(payload)
        result = {"id": command["id"], "ok": True, "error": None}
        hass.loop.call_later(
            0.01,
            lambda: async_fire_mqtt_message(hass, f"{BASE}/command/result", json.dumps(result)),
        )

    mqtt_mock.async_publish.side_effect = answer_later
    assert await backend.async_quarantine(CULPRIT_MAC, CULPRIT_IP) == Outcome(True)
    await unload(hass, entry)


async def test_agent_enforcer_timeout_offline_no_enforcer_and_publish_failure(
    hass: HomeAssistant, mqtt_mock: Any
) -> None:
    with patch("custom_components.lan_guard.evacuation.runner.COMMAND_TIMEOUT", 0.05):
        entry, backend, agent = await _agent_backend(hass, mqtt_mock)
    agent.answer = "silent"
    assert await backend.async_quarantine(CULPRIT_MAC, CULPRIT_IP) == Outcome(
        False, "timeout", "0.05"
    )
    # A late answer and answers nobody waits for are kept only a little while.
    for index in range(80):
        result = {"id": f"unknown{index}", "ok": True, "error": None}
        async_fire_mqtt_message(hass, f"{BASE}/command/result", json.dumps(result))
    await hass.async_block_till_done()
    assert len(backend._early) == 64

    publish(hass, "status", "offline")
    await hass.async_block_till_done()
    assert await backend.async_quarantine(CULPRIT_MAC, CULPRIT_IP) == Outcome(
        False, "agent_offline"
    )
    publish(hass, "status", "online")
    publish(hass, "info", info_without_enforcer())
    await hass.async_block_till_done()
    assert await backend.async_quarantine(CULPRIT_MAC, CULPRIT_IP) == Outcome(False, "no_enforcer")
    publish(hass, "info", example("info"))
    await hass.async_block_till_done()
    mqtt_mock.async_publish.side_effect = HomeAssistantError("broker gone")
    assert await backend.async_quarantine(CULPRIT_MAC, CULPRIT_IP) == Outcome(
        False, "publish_failed", "broker gone"
    )
    await unload(hass, entry)
    backend.async_close()  # twice is harmless


async def test_router_entity_blocks_and_unblocks(hass: HomeAssistant, mqtt_mock: Any) -> None:
    await _block_switch(hass)
    entry, manager, agent, _ = await setup_evacuation(
        hass,
        mqtt_mock,
        **{
            CONF_QUARANTINE_BACKEND: "entity",
            CONF_QUARANTINE_ENTITIES: [f"{CULPRIT_MAC} = input_boolean.laptop_allowed"],
        },
    )
    assert isinstance(manager.backends["entity"], EntityBlocker)
    assert manager.policy.backend == "entity"
    publish_event(hass, make_event(level=2))
    await hass.async_block_till_done()
    assert hass.states.get("input_boolean.laptop_allowed").state == "off"  # blocked
    assert manager.record.culprits[CULPRIT_MAC].in_force
    # The agent's own (empty) quarantine says nothing about the router's block.
    publish(hass, "quarantine", {**example("quarantine"), "hosts": []})
    await hass.async_block_till_done()
    assert agent.commands == []  # the agent is not asked
    await manager.async_stop()
    assert hass.states.get("input_boolean.laptop_allowed").state == "on"
    await unload(hass, entry)


async def _block_switch(hass: HomeAssistant) -> None:
    from homeassistant.setup import async_setup_component

    assert await async_setup_component(
        hass, "input_boolean", {"input_boolean": {"laptop_allowed": {"initial": True}}}
    )


async def test_router_entity_failures(hass: HomeAssistant) -> None:
    hass.states.async_set("switch.stuck", "on")
    hass.states.async_set("sensor.no_service", "on")
    async_mock_service(hass, "switch", "turn_off")  # accepts, changes nothing
    blocker = EntityBlocker(
        hass,
        {
            "02:00:00:00:00:01": "switch.stuck",
            "02:00:00:00:00:02": "sensor.no_service",
            "02:00:00:00:00:03": "switch.gone",
        },
        "off",
    )
    assert await blocker.async_quarantine("02:00:00:00:00:09", None) == Outcome(
        False, "no_mapped_entity", "02:00:00:00:00:09"
    )
    assert await blocker.async_quarantine("02:00:00:00:00:03", None) == Outcome(
        False, "entity_missing", "switch.gone"
    )
    stuck = await blocker.async_quarantine("02:00:00:00:00:01", None)
    assert stuck == Outcome(False, "entity_failed", "switch.stuck is on, not off")
    no_service = await blocker.async_quarantine("02:00:00:00:00:02", None)
    assert no_service.reason == "entity_failed" and "sensor.no_service" in str(no_service.detail)
    blocker.async_close()
