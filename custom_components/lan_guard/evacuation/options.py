"""The evacuation section of the options form: its fields, defaults, validation, and the
policy the state machine reads from the stored options.

The quarantine backend is offered as the agent's ``info`` allows: its enforcer only when the
agent reports one (or is not known yet). A form whose choices leave nothing that can
quarantine a culprit says so; a choice that cannot work is refused with the reason.
"""

from __future__ import annotations

import re
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

from ..allowlist import normalize_entry
from ..const import (
    BACKEND_AGENT,
    BACKEND_ENTITY,
    BACKEND_NONE,
    CAPABILITY_ENFORCER,
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
from .machine import Policy, Trigger
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
_LINES = re.compile(r"[\n,;]")


class InvalidOption(Exception):
    """``args``: (field, error key, the offending entry)."""


def policy_from_options(options: Mapping[str, Any]) -> Policy:
    """What the state machine follows, from the stored options."""
    values = {**DEFAULTS, **options}
    return Policy(
        trigger=Trigger(values[CONF_EVACUATION_TRIGGER]),
        level=int(values[CONF_EVACUATION_LEVEL]),
        auto_restore=values[CONF_EVACUATION_RESTORE] == RESTORE_AUTO,
        isolate=tuple(values[CONF_ISOLATE_ENTITIES]),
        backend=str(values[CONF_QUARANTINE_BACKEND]),
    )


def lines(value: Any) -> list[str]:
    """The entries of a one-per-line text field (a list is taken as it is)."""
    items = _LINES.split(value) if isinstance(value, str) else list(value or [])
    return [item.strip() for item in items if item.strip()]


def has_enforcer(info: Mapping[str, Any] | None) -> bool | None:
    """Whether the agent reports an enforcer (None: its info is not known)."""
    if info is None:
        return None
    return CAPABILITY_ENFORCER in info["capabilities"]


def backends(info: Mapping[str, Any] | None) -> list[str]:
    """The backends worth offering: not the agent's enforcer when it reports none."""
    offered = [BACKEND_ENTITY, BACKEND_NONE]
    return offered if has_enforcer(info) is False else [BACKEND_AGENT, *offered]


def _select(options: list[str], key: str) -> SelectSelector:
    return SelectSelector(
        SelectSelectorConfig(options=options, mode=SelectSelectorMode.DROPDOWN, translation_key=key)
    )


def _multiline() -> TextSelector:
    return TextSelector(TextSelectorConfig(multiline=True))


def appliance_domains(hass: HomeAssistant) -> list[str]:
    """Domains with a ``turn_off`` action (switch, light, fan, media_player, ...)."""
    return sorted(
        domain
        for domain, services in hass.services.async_services().items()
        if "turn_off" in services and domain not in _NOT_APPLIANCES
    )


def section_schema(hass: HomeAssistant, info: Mapping[str, Any] | None) -> section:
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
        vol.Optional(CONF_QUARANTINE_BACKEND): _select(backends(info), CONF_QUARANTINE_BACKEND),
        vol.Optional(CONF_QUARANTINE_ENTITIES): _multiline(),
        vol.Optional(CONF_QUARANTINE_BLOCK_STATE): _select(
            [STATE_OFF, STATE_ON], CONF_QUARANTINE_BLOCK_STATE
        ),
        vol.Optional(CONF_PROTECTED_HOSTS): _multiline(),
    }
    return section(vol.Schema(fields), {"collapsed": True})


def suggested(options: Mapping[str, Any], info: Mapping[str, Any] | None) -> dict[str, Any]:
    """The section's values as the form shows them (from the options, or the form being
    fixed); a backend the agent cannot use is shown as "none"."""
    values = {key: options.get(key, default) for key, default in DEFAULTS.items()}
    values[CONF_EVACUATION_LEVEL] = str(values[CONF_EVACUATION_LEVEL])
    if values[CONF_QUARANTINE_BACKEND] not in backends(info):
        values[CONF_QUARANTINE_BACKEND] = BACKEND_NONE
    for key in (CONF_QUARANTINE_ENTITIES, CONF_PROTECTED_HOSTS):
        values[key] = "\n".join(lines(values[key]))
    return values


def cannot_quarantine(values: Mapping[str, Any], info: Mapping[str, Any] | None) -> bool:
    """Whether, as chosen, no culprit can be quarantined (only appliances are isolated)."""
    backend = values.get(CONF_QUARANTINE_BACKEND, BACKEND_AGENT)
    if backend == BACKEND_AGENT:
        return has_enforcer(info) is False
    if backend == BACKEND_ENTITY:
        return not lines(values.get(CONF_QUARANTINE_ENTITIES))
    return True


def parse(values: Mapping[str, Any], info: Mapping[str, Any] | None) -> dict[str, Any]:
    """The options to store from the section's input; ``InvalidOption`` names a bad entry."""
    protected: list[str] = []
    for entry in lines(values.get(CONF_PROTECTED_HOSTS)):
        try:
            protected.append(normalize_entry(entry))
        except ValueError as err:
            raise InvalidOption(CONF_PROTECTED_HOSTS, "invalid_protected_hosts", entry) from err
    try:
        mapping = parse_entity_map(lines(values.get(CONF_QUARANTINE_ENTITIES)))
    except ValueError as err:
        raise InvalidOption(
            CONF_QUARANTINE_ENTITIES, "invalid_quarantine_entities", str(err)
        ) from err
    merged = {**DEFAULTS, **values}
    backend = merged[CONF_QUARANTINE_BACKEND]
    if backend == BACKEND_AGENT and has_enforcer(info) is False:
        raise InvalidOption(CONF_QUARANTINE_BACKEND, "agent_has_no_enforcer", "")
    if backend == BACKEND_ENTITY and not mapping:
        raise InvalidOption(CONF_QUARANTINE_ENTITIES, "no_quarantine_entities", "")
    return {
        CONF_EVACUATION_TRIGGER: merged[CONF_EVACUATION_TRIGGER],
        CONF_EVACUATION_LEVEL: int(merged[CONF_EVACUATION_LEVEL]),
        CONF_EVACUATION_RESTORE: merged[CONF_EVACUATION_RESTORE],
        CONF_ISOLATE_ENTITIES: list(merged[CONF_ISOLATE_ENTITIES]),
        CONF_QUARANTINE_BACKEND: backend,
        CONF_QUARANTINE_ENTITIES: [f"{mac} = {entity}" for mac, entity in mapping.items()],
        CONF_QUARANTINE_BLOCK_STATE: merged[CONF_QUARANTINE_BLOCK_STATE],
        CONF_PROTECTED_HOSTS: protected,
    }
