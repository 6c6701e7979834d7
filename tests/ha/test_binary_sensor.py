"""Threat binary sensor: on for open incidents at or above the notify level; restore."""

from __future__ import annotations

import pytest
from homeassistant.core import HomeAssistant, State
from pytest_homeassistant_custom_component.common import mock_restore_cache

from custom_components.lan_guard.const import CONF_NOTIFY_LEVEL

from .conftest import make_entry, make_event, make_state, publish, setup_entry, unload

pytestmark = pytest.mark.usefixtures("mqtt_mock")
THREAT = "binary_sensor.lan_guard_pi_livingroom_threat"


async def test_threat_follows_incidents_at_the_notify_level(hass: HomeAssistant) -> None:
    entry = await setup_entry(hass, make_entry(**{CONF_NOTIFY_LEVEL: 2}))
    threat = hass.states.get(THREAT)
    assert threat.state == "unknown"
    assert threat.attributes["device_class"] == "safety"
    publish(hass, "event", make_event(level=1, kind="arp_scan"))
    await hass.async_block_till_done()
    assert hass.states.get(THREAT).state == "off"
    event = make_event(level=2)
    publish(hass, "event", event)
    await hass.async_block_till_done()
    threat = hass.states.get(THREAT)
    assert threat.state == "on"
    assert threat.attributes["notify_level"] == 2
    assert [i["incident_id"] for i in threat.attributes["incidents"]] == [event["incident_id"]]
    assert threat.attributes["incidents"][0]["mac"] == "b8:27:eb:4c:21:9a"
    # The agent says the incident is over.
    publish(hass, "state", make_state([]), retain=True)
    await hass.async_block_till_done()
    assert hass.states.get(THREAT).state == "off"
    await unload(hass, entry)


@pytest.mark.parametrize("last", ["on", "off"])
async def test_threat_survives_a_restart(hass: HomeAssistant, last: str) -> None:
    mock_restore_cache(hass, [State(THREAT, last)])
    entry = await setup_entry(hass)
    assert hass.states.get(THREAT).state == last
    publish(hass, "state", make_state([{"incident_id": "d" * 32, "level": 3}]), retain=True)
    await hass.async_block_till_done()
    assert hass.states.get(THREAT).state == "on"
    await unload(hass, entry)
