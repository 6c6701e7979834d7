"""Actions: label an event (training data), export the stored events and labels."""

from __future__ import annotations

from typing import Any

import voluptuous as vol
from homeassistant.core import (
    HomeAssistant,
    ServiceCall,
    ServiceResponse,
    SupportsResponse,
    callback,
)
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import config_validation as cv

from .const import (
    ATTR_CONFIG_ENTRY_ID,
    ATTR_EVENT_ID,
    ATTR_LABELLED_ONLY,
    ATTR_VERDICT,
    DOMAIN,
    SERVICE_EXPORT_EVENTS,
    SERVICE_LABEL_EVENT,
    Label,
)
from .runtime import LanGuardConfigEntry

LABEL_SCHEMA = vol.Schema(
    {
        vol.Required(ATTR_EVENT_ID): vol.All(cv.string, vol.Lower, vol.Match(r"^[0-9a-f]{32}$")),
        vol.Required(ATTR_VERDICT): vol.Coerce(Label),
    }
)
EXPORT_SCHEMA = vol.Schema(
    {
        vol.Optional(ATTR_CONFIG_ENTRY_ID): cv.string,
        vol.Optional(ATTR_LABELLED_ONLY, default=False): cv.boolean,
    }
)


def _loaded_entries(hass: HomeAssistant) -> list[LanGuardConfigEntry]:
    return hass.config_entries.async_loaded_entries(DOMAIN)


async def _async_label_event(call: ServiceCall) -> None:
    event_id: str = call.data[ATTR_EVENT_ID]
    for entry in _loaded_entries(call.hass):
        coordinator = entry.runtime_data.coordinator
        if (event := coordinator.history.get(event_id)) is not None:
            await coordinator.async_label(event, call.data[ATTR_VERDICT])
            return
    raise ServiceValidationError(
        translation_domain=DOMAIN,
        translation_key="unknown_event",
        translation_placeholders={"event_id": event_id},
    )


async def _async_export_events(call: ServiceCall) -> ServiceResponse:
    entries = _loaded_entries(call.hass)
    if (wanted := call.data.get(ATTR_CONFIG_ENTRY_ID)) is not None:
        entries = [entry for entry in entries if entry.entry_id == wanted]
        if not entries:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="entry_not_loaded",
                translation_placeholders={"entry_id": wanted},
            )
    labelled_only: bool = call.data[ATTR_LABELLED_ONLY]
    agents: list[Any] = [
        {
            "agent_id": entry.runtime_data.coordinator.agent_id,
            "config_entry_id": entry.entry_id,
            "events": entry.runtime_data.coordinator.history.export(labelled_only),
        }
        for entry in entries
    ]
    return {"agents": agents}


@callback
def async_setup_services(hass: HomeAssistant) -> None:
    """Register the integration's actions."""
    hass.services.async_register(
        DOMAIN, SERVICE_LABEL_EVENT, _async_label_event, schema=LABEL_SCHEMA
    )
    hass.services.async_register(
        DOMAIN,
        SERVICE_EXPORT_EVENTS,
        _async_export_events,
        schema=EXPORT_SCHEMA,
        supports_response=SupportsResponse.ONLY,
    )
