"""The evacuation section of the options flow."""

from __future__ import annotations

from typing import Any

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.setup import async_setup_component

from custom_components.lan_guard.const import CONF_NOTIFY_LEVEL, CONF_OFFLINE_MINUTES
from custom_components.lan_guard.evacuation_options import appliance_domains

from .conftest import make_entry

pytestmark = pytest.mark.usefixtures("mqtt_mock")

SECTION = {
    "evacuation_trigger": "verdict",
    "evacuation_level": "3",
    "evacuation_restore": "confirm",
    "isolate_entities": ["input_boolean.tv"],
    "quarantine_backend": "entity",
    "quarantine_entities": ["AA-BB-CC-DD-EE-FF = switch.laptop_block", " "],
    "quarantine_block_state": "off",
    "protected_hosts": ["192.168.1.1", " ", "AA:BB:CC:00:11:22"],
}


async def _submit(hass: HomeAssistant, section: dict[str, Any]) -> tuple[Any, Any]:
    assert await async_setup_component(
        hass, "input_boolean", {"input_boolean": {"tv": {"initial": True}}}
    )
    entry = make_entry()
    entry.add_to_hass(hass)
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.FORM
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {CONF_NOTIFY_LEVEL: "2", CONF_OFFLINE_MINUTES: 10, "evacuation": section},
    )
    return entry, result


async def test_options_store_the_evacuation_policy(hass: HomeAssistant) -> None:
    entry, result = await _submit(hass, SECTION)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    options = dict(entry.options)
    assert {key: options[key] for key in SECTION} == {
        "evacuation_trigger": "verdict",
        "evacuation_level": 3,
        "evacuation_restore": "confirm",
        "isolate_entities": ["input_boolean.tv"],
        "quarantine_backend": "entity",
        "quarantine_entities": ["aa:bb:cc:dd:ee:ff = switch.laptop_block"],
        "quarantine_block_state": "off",
        "protected_hosts": ["192.168.1.1/32", "aa:bb:cc:00:11:22"],
    }
    # Shown again as stored: the section's suggested values.
    result = await hass.config_entries.options.async_init(entry.entry_id)
    schema = result["data_schema"].schema
    section = next(value for key, value in schema.items() if key == "evacuation")
    suggested = {str(key): key.description["suggested_value"] for key in section.schema.schema}
    assert suggested["evacuation_level"] == "3"
    assert suggested["quarantine_entities"] == ["aa:bb:cc:dd:ee:ff = switch.laptop_block"]


async def test_options_refuse_a_bad_router_entity_mapping(hass: HomeAssistant) -> None:
    entry, result = await _submit(
        hass, {**SECTION, "quarantine_entities": ["aa:bb:cc:dd:ee:ff switch.laptop_block"]}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"quarantine_entities": "invalid_quarantine_entities"}
    assert result["description_placeholders"] == {"entry": "aa:bb:cc:dd:ee:ff switch.laptop_block"}
    assert entry.options == make_entry().options  # nothing saved


async def test_appliances_are_the_domains_that_turn_off(hass: HomeAssistant) -> None:
    assert await async_setup_component(hass, "input_boolean", {"input_boolean": {}})
    assert await async_setup_component(hass, "automation", {})
    domains = appliance_domains(hass)
    assert "input_boolean" in domains
    assert "automation" not in domains
