"""The start_evacuation / stop_evacuation actions."""

from __future__ import annotations

from typing import Any

import pytest
import voluptuous as vol
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ServiceValidationError

from custom_components.lan_guard.const import CONF_QUARANTINE_BACKEND, DOMAIN

from .conftest import example, publish, unload
from .evacuation_fixtures import CULPRIT_IP, CULPRIT_MAC, TV, setup_evacuation

pytestmark = pytest.mark.usefixtures("mqtt_mock")


async def test_start_with_a_culprit_then_stop(hass: HomeAssistant, mqtt_mock: Any) -> None:
    entry, manager, agent, _ = await setup_evacuation(hass, mqtt_mock)
    await hass.services.async_call(
        DOMAIN,
        "start_evacuation",
        {"config_entry_id": entry.entry_id, "mac": CULPRIT_MAC.upper(), "ip": CULPRIT_IP},
        blocking=True,
    )
    assert manager.active
    assert agent.actions() == [("quarantine", CULPRIT_MAC)]
    assert agent.commands[0]["ip"] == CULPRIT_IP
    await hass.services.async_call(
        DOMAIN, "stop_evacuation", {"config_entry_id": entry.entry_id}, blocking=True
    )
    assert not manager.active
    assert agent.actions()[-1] == ("release", CULPRIT_MAC)
    await hass.services.async_call(
        DOMAIN, "start_evacuation", {"config_entry_id": entry.entry_id}, blocking=True
    )
    assert manager.active and manager.record.culprits == {}
    assert hass.states.get(TV).state == "off"
    await unload(hass, entry)


async def test_start_by_mac_names_the_host_as_the_agent_knows_it(
    hass: HomeAssistant, mqtt_mock: Any
) -> None:
    entry, manager, agent, phone = await setup_evacuation(hass, mqtt_mock)
    publish(hass, "hosts", example("hosts"))
    await hass.async_block_till_done()
    await hass.services.async_call(
        DOMAIN,
        "start_evacuation",
        {"config_entry_id": entry.entry_id, "mac": CULPRIT_MAC},
        blocking=True,
    )
    culprit = manager.record.culprits[CULPRIT_MAC]
    assert (culprit.ip, culprit.vendor, culprit.hostname) == (
        CULPRIT_IP,
        "Raspberry Pi Foundation",
        "kids-laptop",
    )
    assert agent.commands[0]["ip"] == CULPRIT_IP  # the inventory's address
    assert (
        f"Culprit {CULPRIT_MAC} (IP {CULPRIT_IP}, vendor Raspberry Pi Foundation,"
        " host name kids-laptop): quarantined (agent)."
    ) in phone[-1].data["message"]
    await unload(hass, entry)


@pytest.mark.parametrize(
    ("mac", "ip", "key"),
    [
        ("a0:63:91:0e:12:34", "192.168.1.1", "protected_gateway"),
        ("dc:a6:32:01:02:03", None, "protected_agent_node"),
        ("02:00:00:00:00:01", "10.0.0.7", "protected_protected"),
        ("02:00:00:00:00:02", "192.168.1.77", "protected_allowlist"),
        ("01:00:5e:00:00:01", None, "protected_not_unicast"),
    ],
)
async def test_start_refuses_protected_hosts_with_a_reason(
    hass: HomeAssistant, mqtt_mock: Any, mac: str, ip: str | None, key: str
) -> None:
    entry, manager, agent, _ = await setup_evacuation(
        hass, mqtt_mock, protected_hosts=["10.0.0.7"], allowlist=["192.168.1.77"]
    )
    data = {"config_entry_id": entry.entry_id, "mac": mac}
    if ip:
        data["ip"] = ip
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(DOMAIN, "start_evacuation", data, blocking=True)
    assert err.value.translation_key == key
    assert mac in str(err.value)
    assert not manager.active and agent.commands == []
    await unload(hass, entry)


async def test_evacuation_started_on_a_gateway_shows_the_refusal(
    hass: HomeAssistant, mqtt_mock: Any
) -> None:
    from .conftest import make_event
    from .evacuation_fixtures import publish_event

    entry, manager, agent, phone = await setup_evacuation(hass, mqtt_mock)
    publish_event(hass, make_event(level=3, mac="a0:63:91:0e:12:34", ip="192.168.1.1"))
    await hass.async_block_till_done()
    assert manager.active  # the appliances are isolated all the same
    assert agent.commands == []
    assert "it is the router/gateway, which is never isolated" in phone[-1].data["message"]
    ours = [c for c in phone if c.data["data"]["tag"].startswith(f"{DOMAIN}_evacuation_")]
    publish_event(hass, make_event(level=3, mac="a0:63:91:0e:12:34", ip="192.168.1.1"))
    await hass.async_block_till_done()
    again = [c for c in phone if c.data["data"]["tag"].startswith(f"{DOMAIN}_evacuation_")]
    assert again == ours  # refused for good: no evacuation message again
    await unload(hass, entry)


async def test_without_a_backend_nothing_is_quarantined(
    hass: HomeAssistant, mqtt_mock: Any
) -> None:
    entry, manager, agent, phone = await setup_evacuation(
        hass, mqtt_mock, **{CONF_QUARANTINE_BACKEND: "none"}
    )
    await hass.services.async_call(
        DOMAIN,
        "start_evacuation",
        {"config_entry_id": entry.entry_id, "mac": CULPRIT_MAC},
        blocking=True,
    )
    assert manager.policy.backend == "none"
    assert "no quarantine backend is configured" in phone[-1].data["message"]
    assert agent.commands == []
    await manager.async_stop()
    assert not manager.active
    await unload(hass, entry)


async def test_bad_calls(hass: HomeAssistant, mqtt_mock: Any) -> None:
    entry, _, _, _ = await setup_evacuation(hass, mqtt_mock)
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN, "stop_evacuation", {"config_entry_id": "nope"}, blocking=True
        )
    assert err.value.translation_key == "entry_not_loaded"
    for bad in ({"mac": "not a mac"}, {"mac": 12}, {"mac": CULPRIT_MAC, "ip": "999.1.1.1"}):
        with pytest.raises(vol.Invalid):
            await hass.services.async_call(
                DOMAIN,
                "start_evacuation",
                {"config_entry_id": entry.entry_id, **bad},
                blocking=True,
            )
    await unload(hass, entry)
    with pytest.raises(ServiceValidationError):
        await hass.services.async_call(
            DOMAIN, "stop_evacuation", {"config_entry_id": entry.entry_id}, blocking=True
        )
