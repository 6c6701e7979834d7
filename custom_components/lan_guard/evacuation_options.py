"""The evacuation section of the options form: its fields, defaults and validation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import voluptuous as vol
from homeassistant.const import STATE_OFF, STATE_ON
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import section
from homeassistant.helpers.selector import (
    EntitySelector,
    EntitySelectorConfig,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
    TextSelectorConfig,
)

from .allowlist import normalize_entry
from .const import (
    BACKEND_AGENT,
    BACKEND_ENTITY,
    BACKEND_NONE,
    CONF_EVACUATION_LEVEL,
    CONF_EVACUATION_RESTORE,
    CONF_EVACUATION_TRIGGER,
    CONF_ISOLATE_ENTITIES,
    CONF_PROTECTED_HOSTS,
    CONF_QUARANTINE_BACKEND,
    CONF_QUARANTINE_BLOCK_STATE,
    CONF_QUARANTINE_ENTITIES,
    DEFAULT_EVACUATION_LEVEL,
    RESTORE_AUTO,
    RESTORE_CONFIRM,
    TRIGGER_LEVEL,
    TRIGGER_MANUAL,
    TRIGGER_VERDICT,
)
from .quarantine import parse_entity_map

DEFAULTS: dict[str, Any] = {
    CONF_EVACUATION_TRIGGER: TRIGGER_LEVEL,
    CONF_EVACUATION_LEVEL: DEFAULT_EVACUATION_LEVEL,
    CONF_EVACUATION_RESTORE: RESTORE_AUTO,
    CONF_ISOLATE_ENTITIES: [],
    CONF_QUARANTINE_BACKEND: BACKEND_AGENT,
    CONF_QUARANTINE_ENTITIES: [],
    CONF_QUARANTINE_BLOCK_STATE: STATE_OFF,
    CONF_PROTECTED_HOSTS: [],
}
# Domains whose entities cannot be "switched off" in a useful sense, though they have turn_off.
_NOT_APPLIANCES = frozenset({"homeassistant", "automation", "script", "scene", "group"})


class InvalidOption(Exception):
    """``args``: (field, error key, the offending entry)."""


def _select(options: list[str], key: str) -> SelectSelector:
    return SelectSelector(
        SelectSelectorConfig(options=options, mode=SelectSelectorMode.DROPDOWN, translation_key=key)
    )


def appliance_domains(hass: HomeAssistant) -> list[str]:
    """Domains with a ``turn_off`` action (switch, light, fan, media_player, ...)."""
    return sorted(
        domain
        for domain, services in hass.services.async_services().items()
        if "turn_off" in services and domain not in _NOT_APPLIANCES
    )


def section_schema(hass: HomeAssistant) -> section:
    """The collapsible evacuation section of the options form."""
    fields = {
        vol.Optional(CONF_EVACUATION_TRIGGER): _select(
            [TRIGGER_LEVEL, TRIGGER_VERDICT, TRIGGER_MANUAL], CONF_EVACUATION_TRIGGER
        ),
        vol.Optional(CONF_EVACUATION_LEVEL): _select(["1", "2", "3"], "notify_level"),
        vol.Optional(CONF_EVACUATION_RESTORE): _select(
            [RESTORE_AUTO, RESTORE_CONFIRM], CONF_EVACUATION_RESTORE
        ),
        vol.Optional(CONF_ISOLATE_ENTITIES): EntitySelector(
            EntitySelectorConfig(domain=appliance_domains(hass), multiple=True)
        ),
        vol.Optional(CONF_QUARANTINE_BACKEND): _select(
            [BACKEND_AGENT, BACKEND_ENTITY, BACKEND_NONE], CONF_QUARANTINE_BACKEND
        ),
        vol.Optional(CONF_QUARANTINE_ENTITIES): TextSelector(TextSelectorConfig(multiple=True)),
        vol.Optional(CONF_QUARANTINE_BLOCK_STATE): _select(
            [STATE_OFF, STATE_ON], CONF_QUARANTINE_BLOCK_STATE
        ),
        vol.Optional(CONF_PROTECTED_HOSTS): TextSelector(TextSelectorConfig(multiple=True)),
    }
    return section(vol.Schema(fields), {"collapsed": True})


def suggested(options: Mapping[str, Any]) -> dict[str, Any]:
    """The section's current values (from the entry's options, or the form being fixed)."""
    values = {key: options.get(key, default) for key, default in DEFAULTS.items()}
    values[CONF_EVACUATION_LEVEL] = str(values[CONF_EVACUATION_LEVEL])
    return values


def parse(values: Mapping[str, Any]) -> dict[str, Any]:
    """The options to store from the section's input; ``InvalidOption`` names a bad entry."""
    protected: list[str] = []
    for entry in values.get(CONF_PROTECTED_HOSTS, []):
        if not entry.strip():
            continue
        try:
            protected.append(normalize_entry(entry))
        except ValueError as err:
            raise InvalidOption(CONF_PROTECTED_HOSTS, "invalid_protected_hosts", entry) from err
    mapping_entries = [entry for entry in values.get(CONF_QUARANTINE_ENTITIES, []) if entry.strip()]
    try:
        mapping = parse_entity_map(mapping_entries)
    except ValueError as err:
        raise InvalidOption(
            CONF_QUARANTINE_ENTITIES, "invalid_quarantine_entities", str(err)
        ) from err
    merged = {**DEFAULTS, **values}
    return {
        CONF_EVACUATION_TRIGGER: merged[CONF_EVACUATION_TRIGGER],
        CONF_EVACUATION_LEVEL: int(merged[CONF_EVACUATION_LEVEL]),
        CONF_EVACUATION_RESTORE: merged[CONF_EVACUATION_RESTORE],
        CONF_ISOLATE_ENTITIES: list(merged[CONF_ISOLATE_ENTITIES]),
        CONF_QUARANTINE_BACKEND: merged[CONF_QUARANTINE_BACKEND],
        CONF_QUARANTINE_ENTITIES: [f"{mac} = {entity}" for mac, entity in mapping.items()],
        CONF_QUARANTINE_BLOCK_STATE: merged[CONF_QUARANTINE_BLOCK_STATE],
        CONF_PROTECTED_HOSTS: protected,
    }
