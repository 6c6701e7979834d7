"""Acknowledge button: clears the threat after review, works while the agent is offline."""

from __future__ import annotations

import pytest
from homeassistant.components.button import DOMAIN as BUTTON_DOMAIN
from homeassistant.components.button import SERVICE_PRESS
from homeassistant.const import ATTR_ENTITY_ID
from homeassistant.core import HomeAssistant

from .conftest import make_event, publish, setup_entry, unload

pytestmark = pytest.mark.usefixtures("mqtt_mock")
BUTTON = "button.lan_guard_pi_livingroom_acknowledge"
THREAT = "binary_sensor.lan_guard_pi_livingroom_threat"


async def test_pressing_acknowledge_clears_the_threat(
    hass: HomeAssistant, hass_storage: dict[str, object]
) -> None:
    entry = await setup_entry(hass)
    event = make_event(level=3)
    publish(hass, "event", event)
    await hass.async_block_till_done()
    assert hass.states.get(THREAT).state == "on"
    await hass.services.async_call(
        BUTTON_DOMAIN, SERVICE_PRESS, {ATTR_ENTITY_ID: BUTTON}, blocking=True
    )
    assert hass.states.get(THREAT).state == "off"
    assert hass.states.get(BUTTON).state not in ("unknown", "unavailable")
    await unload(hass, entry)
    stored = hass_storage[f"lan_guard.{entry.entry_id}"]["data"]
    assert stored["acknowledged"] == {event["incident_id"]: 3}


async def test_acknowledge_is_available_while_the_agent_is_offline(hass: HomeAssistant) -> None:
    entry = await setup_entry(hass, online=False)
    assert hass.states.get(THREAT).state == "unavailable"
    assert hass.states.get(BUTTON).state == "unknown"
    await unload(hass, entry)
