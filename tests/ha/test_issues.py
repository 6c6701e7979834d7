"""Repair issues: one offline issue per agent, one for missing MQTT."""

from __future__ import annotations

from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir

from custom_components.lan_guard import issues
from custom_components.lan_guard.const import DOMAIN

from .conftest import make_entry


async def test_offline_issue_per_entry(
    hass: HomeAssistant, issue_registry: ir.IssueRegistry
) -> None:
    first, second = make_entry(), make_entry()
    issues.async_create_agent_offline(hass, first, 10)
    issues.async_create_agent_offline(hass, second, 2.5)
    created = issue_registry.async_get_issue(DOMAIN, issues.agent_offline_issue_id(second.entry_id))
    assert created is not None
    assert created.severity is ir.IssueSeverity.ERROR
    assert created.data == {"entry_id": second.entry_id}
    assert created.translation_placeholders == {"agent": "pi-livingroom", "minutes": "2.5"}
    issues.async_delete_agent_offline(hass, first)
    assert not issue_registry.async_get_issue(DOMAIN, issues.agent_offline_issue_id(first.entry_id))
    assert issue_registry.async_get_issue(DOMAIN, issues.agent_offline_issue_id(second.entry_id))


async def test_mqtt_issue_comes_and_goes(
    hass: HomeAssistant, issue_registry: ir.IssueRegistry
) -> None:
    issues.async_create_mqtt_not_setup(hass)
    issue = issue_registry.async_get_issue(DOMAIN, "mqtt_not_setup")
    assert issue is not None
    assert not issue.is_fixable
    issues.async_delete_mqtt_not_setup(hass)
    assert issue_registry.async_get_issue(DOMAIN, "mqtt_not_setup") is None
