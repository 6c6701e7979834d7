"""Repair issues raised by the integration (the fix flows are in ``repairs.py``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir

from .const import CONF_AGENT_ID, DOMAIN, ISSUE_AGENT_OFFLINE, ISSUE_MQTT_NOT_SETUP

if TYPE_CHECKING:
    from homeassistant.config_entries import ConfigEntry


def agent_offline_issue_id(entry_id: str) -> str:
    """One offline issue per agent (config entry)."""
    return f"{ISSUE_AGENT_OFFLINE}_{entry_id}"


def async_create_agent_offline(hass: HomeAssistant, entry: ConfigEntry, minutes: float) -> None:
    """The agent has been offline (or silent) for longer than the owner's limit."""
    ir.async_create_issue(
        hass,
        DOMAIN,
        agent_offline_issue_id(entry.entry_id),
        is_fixable=True,
        severity=ir.IssueSeverity.ERROR,
        translation_key=ISSUE_AGENT_OFFLINE,
        translation_placeholders={"agent": entry.data[CONF_AGENT_ID], "minutes": f"{minutes:g}"},
        data={"entry_id": entry.entry_id},
    )


def async_delete_agent_offline(hass: HomeAssistant, entry: ConfigEntry) -> None:
    """The agent is back (or its entry is gone)."""
    ir.async_delete_issue(hass, DOMAIN, agent_offline_issue_id(entry.entry_id))


def async_create_mqtt_not_setup(hass: HomeAssistant) -> None:
    """LAN Guard needs HA's MQTT integration, which is missing or not loaded."""
    ir.async_create_issue(
        hass,
        DOMAIN,
        ISSUE_MQTT_NOT_SETUP,
        is_fixable=False,
        severity=ir.IssueSeverity.ERROR,
        translation_key=ISSUE_MQTT_NOT_SETUP,
        learn_more_url="https://www.home-assistant.io/integrations/mqtt/",
    )


def async_delete_mqtt_not_setup(hass: HomeAssistant) -> None:
    """MQTT is available again."""
    ir.async_delete_issue(hass, DOMAIN, ISSUE_MQTT_NOT_SETUP)
