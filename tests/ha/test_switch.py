"""The evacuation mode switch: by hand on and off, always available, attributes."""

from __future__ import annotations

from typing import Any

import pytest
from homeassistant.core import HomeAssistant

from .conftest import publish, unload
from .evacuation_fixtures import HEATER, SWITCH, TV, setup_evacuation

pytestmark = pytest.mark.usefixtures("mqtt_mock")


async def test_switch_on_by_hand_isolates_and_off_restores(
    hass: HomeAssistant, mqtt_mock: Any
) -> None:
    entry, _, agent, phone = await setup_evacuation(hass, mqtt_mock)
    await hass.services.async_call("switch", "turn_on", {"entity_id": SWITCH}, blocking=True)
    state = hass.states.get(SWITCH)
    assert state.state == "on"
    assert state.attributes["reason"] == "manual"
    assert state.attributes["culprits"] == []
    assert state.attributes["trigger_policy"] == "level"
    assert state.attributes["restore_policy"] == "auto"
    assert hass.states.get(TV).state == "off"
    assert "No culprit to quarantine." in phone[-1].data["message"]
    assert "started by hand" in phone[-1].data["message"]
    assert agent.commands == []
    # Turning it on again changes nothing.
    await hass.services.async_call("switch", "turn_on", {"entity_id": SWITCH}, blocking=True)
    assert len(phone) == 1

    publish(hass, "status", "offline")
    await hass.async_block_till_done()
    assert hass.states.get(SWITCH).state == "on"  # available while the agent is away

    await hass.services.async_call("switch", "turn_off", {"entity_id": SWITCH}, blocking=True)
    state = hass.states.get(SWITCH)
    assert state.state == "off"
    assert state.attributes["phase"] == "idle"
    assert hass.states.get(TV).state == "on"
    assert hass.states.get(HEATER).state == "off"
    assert phone[-1].data["title"] == "LAN Guard: service restored"
    assert "ended by you" in phone[-1].data["message"]
    # Off again: nothing to do.
    await hass.services.async_call("switch", "turn_off", {"entity_id": SWITCH}, blocking=True)
    assert len(phone) == 2
    await unload(hass, entry)
