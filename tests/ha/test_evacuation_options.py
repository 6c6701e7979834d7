"""The evacuation section of the options flow: stored as entered, offered as the agent allows."""

from __future__ import annotations

from typing import Any

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers.selector import TextSelector
from homeassistant.setup import async_setup_component

from custom_components.lan_guard.const import CONF_NOTIFY_LEVEL, CONF_OFFLINE_MINUTES
from custom_components.lan_guard.evacuation.machine import Policy, Trigger
from custom_components.lan_guard.evacuation.options import (
    appliance_domains,
    policy_from_options,
)

from .conftest import make_entry, publish, setup_entry, unload
from .evacuation_fixtures import info_without_enforcer

pytestmark = pytest.mark.usefixtures("mqtt_mock")

SECTION = {
    "evacuation_trigger": "verdict",
    "evacuation_level": "3",
    "evacuation_restore": "confirm",
    "isolate_entities": ["input_boolean.tv"],
    "quarantine_backend": "entity",
    "quarantine_entities": "AA-BB-CC-DD-EE-FF = switch.laptop_block\n ",
    "quarantine_block_state": "off",
    "protected_hosts": "192.168.1.1\n \nAA:BB:CC:00:11:22",
}
GENERAL = {CONF_NOTIFY_LEVEL: "2", CONF_OFFLINE_MINUTES: 10}


def _section(result: dict[str, Any]) -> Any:
    schema = result["data_schema"].schema
    return next(value for key, value in schema.items() if key == "evacuation")


async def _submit(hass: HomeAssistant, section: dict[str, Any]) -> tuple[Any, Any]:
    assert await async_setup_component(
        hass, "input_boolean", {"input_boolean": {"tv": {"initial": True}}}
    )
    entry = make_entry()
    entry.add_to_hass(hass)
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.FORM
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {**GENERAL, "evacuation": section}
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
    assert policy_from_options(options) == Policy(
        Trigger.VERDICT, 3, auto_restore=False, isolate=("input_boolean.tv",), backend="entity"
    )
    # Shown again as stored: the section's suggested values, one entry per line.
    result = await hass.config_entries.options.async_init(entry.entry_id)
    section = _section(result)
    suggested = {str(key): key.description["suggested_value"] for key in section.schema.schema}
    assert suggested["evacuation_level"] == "3"
    assert suggested["quarantine_entities"] == "aa:bb:cc:dd:ee:ff = switch.laptop_block"
    assert suggested["protected_hosts"] == "192.168.1.1/32\naa:bb:cc:00:11:22"


async def test_lists_are_one_entry_per_line_without_an_add_button(hass: HomeAssistant) -> None:
    """A list field of HA's form reads "Add <label>" ("追加<label>" in Japanese): none here."""
    entry = make_entry()
    entry.add_to_hass(hass)
    result = await hass.config_entries.options.async_init(entry.entry_id)
    fields = [*result["data_schema"].schema.values(), *_section(result).schema.schema.values()]
    texts = [field for field in fields if isinstance(field, TextSelector)]
    assert texts
    assert not any(field.config.get("multiple") for field in texts)


async def test_options_refuse_a_bad_router_entity_mapping(hass: HomeAssistant) -> None:
    entry, result = await _submit(
        hass, {**SECTION, "quarantine_entities": "aa:bb:cc:dd:ee:ff switch.laptop_block"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"quarantine_entities": "invalid_quarantine_entities"}
    assert result["description_placeholders"]["entry"] == "aa:bb:cc:dd:ee:ff switch.laptop_block"
    assert entry.options == make_entry().options  # nothing saved


async def test_a_router_entity_backend_needs_a_mapping(hass: HomeAssistant) -> None:
    _, result = await _submit(hass, {**SECTION, "quarantine_entities": ""})
    assert result["errors"] == {"quarantine_entities": "no_quarantine_entities"}


async def test_the_backend_is_offered_as_the_agents_capabilities_allow(
    hass: HomeAssistant,
) -> None:
    entry = await setup_entry(hass)  # the example agent reports its enforcer
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert _offered(result) == ["agent", "entity", "none"]
    assert result["description_placeholders"]["warning"] == ""

    # While the form is open the agent restarts without its enforcer: asking for it is
    # refused with the reason, and the form now offers what can act, warning that nothing
    # can quarantine a culprit as long as none is chosen.
    publish(hass, "info", info_without_enforcer())
    await hass.async_block_till_done()
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {**GENERAL, "evacuation": {"quarantine_backend": "agent"}}
    )
    assert result["errors"] == {"quarantine_backend": "agent_has_no_enforcer"}
    assert _offered(result) == ["entity", "none"]
    section = _section(result).schema.schema
    suggested = {str(key): key.description["suggested_value"] for key in section}
    assert suggested["quarantine_backend"] == "none"
    assert "no culprit can be quarantined" in result["description_placeholders"]["warning"]
    # Saved with no backend: the options are stored all the same.
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {**GENERAL, "evacuation": {"quarantine_backend": "none"}}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options["quarantine_backend"] == "none"
    await hass.async_block_till_done()
    await unload(hass, entry)


def _offered(result: dict[str, Any]) -> list[str]:
    section = _section(result).schema.schema
    selector = next(value for key, value in section.items() if key == "quarantine_backend")
    options: list[str] = selector.config["options"]
    return options


async def test_the_warning_in_japanese(hass: HomeAssistant) -> None:
    hass.config.language = "ja"
    entry = make_entry(quarantine_backend="none")
    entry.add_to_hass(hass)
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert "原因端末を隔離できません" in result["description_placeholders"]["warning"]


async def test_appliances_are_the_domains_that_turn_off(hass: HomeAssistant) -> None:
    assert await async_setup_component(hass, "input_boolean", {"input_boolean": {}})
    assert await async_setup_component(hass, "automation", {})
    domains = appliance_domains(hass)
    assert "input_boolean" in domains
    assert "automation" not in domains
