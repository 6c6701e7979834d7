"""The shared entity base: one device per agent, translated names, availability."""

from __future__ import annotations

import pytest
from homeassistant.components.mqtt import MQTT_CONNECTION_STATE
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.dispatcher import async_dispatcher_send

from custom_components.lan_guard.const import DOMAIN

from .conftest import AGENT, publish, setup_entry, unload

pytestmark = pytest.mark.usefixtures("mqtt_mock")
LEVEL = "sensor.lan_guard_pi_livingroom_level"


async def test_names_come_from_the_translations_and_the_device(
    hass: HomeAssistant, entity_registry: er.EntityRegistry, device_registry: dr.DeviceRegistry
) -> None:
    entry = await setup_entry(hass)
    registered = entity_registry.async_get(LEVEL)
    assert registered is not None
    assert registered.unique_id == f"{AGENT}-level"
    assert registered.translation_key == "level"
    assert registered.has_entity_name
    device = device_registry.async_get(registered.device_id)
    assert device is not None
    assert device.identifiers == {(DOMAIN, AGENT)}
    assert device.name == f"LAN Guard {AGENT}"
    assert hass.states.get(LEVEL).attributes["friendly_name"] == f"LAN Guard {AGENT} Level"
    await unload(hass, entry)


async def test_names_in_japanese(hass: HomeAssistant) -> None:
    hass.config.language = "ja"
    entry = await setup_entry(hass)
    assert hass.states.get(LEVEL).attributes["friendly_name"] == f"LAN Guard {AGENT} 警戒レベル"
    await unload(hass, entry)


async def test_available_only_while_the_agent_is_online_and_mqtt_connected(
    hass: HomeAssistant,
) -> None:
    entry = await setup_entry(hass, online=False)
    assert hass.states.get(LEVEL).state == "unavailable"
    publish(hass, "status", "online", retain=True)
    await hass.async_block_till_done()
    assert hass.states.get(LEVEL).state == "unknown"
    async_dispatcher_send(hass, MQTT_CONNECTION_STATE, False)
    await hass.async_block_till_done()
    assert hass.states.get(LEVEL).state == "unavailable"
    async_dispatcher_send(hass, MQTT_CONNECTION_STATE, True)
    publish(hass, "status", "offline")
    await hass.async_block_till_done()
    assert hass.states.get(LEVEL).state == "unavailable"
    await unload(hass, entry)
