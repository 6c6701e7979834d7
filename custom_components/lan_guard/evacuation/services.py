"""Actions of evacuation mode: start it (optionally quarantining a host), stop it."""

from __future__ import annotations

from ipaddress import IPv4Address

import voluptuous as vol
from homeassistant.core import HomeAssistant, ServiceCall, callback
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import config_validation as cv

from ..allowlist import normalize_entry
from ..const import (
    ATTR_CONFIG_ENTRY_ID,
    ATTR_IP,
    ATTR_MAC,
    DOMAIN,
    SERVICE_START_EVACUATION,
    SERVICE_STOP_EVACUATION,
)
from ..runtime import LanGuardConfigEntry
from .record import Host, Reason
from .runner import EvacuationRunner


def _mac(value: object) -> str:
    text = normalize_entry(cv.string(value)) if isinstance(value, str) else ""
    if text.count(":") != 5 or "/" in text:
        raise vol.Invalid(f"{value!r} is not a MAC address")
    return text


def _ipv4(value: object) -> str:
    try:
        return str(IPv4Address(cv.string(value)))
    except ValueError as err:
        raise vol.Invalid(f"{value!r} is not an IPv4 address") from err


START_SCHEMA = vol.Schema(
    {
        vol.Required(ATTR_CONFIG_ENTRY_ID): cv.string,
        vol.Optional(ATTR_MAC): _mac,
        vol.Optional(ATTR_IP): vol.Any(None, _ipv4),
    }
)
STOP_SCHEMA = vol.Schema({vol.Required(ATTR_CONFIG_ENTRY_ID): cv.string})


def _runner(call: ServiceCall) -> EvacuationRunner:
    entry_id: str = call.data[ATTR_CONFIG_ENTRY_ID]
    entry: LanGuardConfigEntry | None = call.hass.config_entries.async_get_entry(entry_id)
    if entry is None or entry.domain != DOMAIN or entry not in _loaded(call.hass):
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="entry_not_loaded",
            translation_placeholders={"entry_id": entry_id},
        )
    return entry.runtime_data.evacuation


def _loaded(hass: HomeAssistant) -> list[LanGuardConfigEntry]:
    return hass.config_entries.async_loaded_entries(DOMAIN)


def _known_host(runner: EvacuationRunner, mac: str, ip: str | None) -> Host:
    """The host as the agent's inventory knows it (vendor, host name, its IP if none given)."""
    hosts = runner.coordinator.hosts
    for host in hosts["hosts"] if hosts is not None else []:
        if host["mac"] == mac:
            return Host(mac, ip or host.get("ip"), host.get("vendor"), host.get("hostname"))
    return Host(mac, ip)


async def _async_start(call: ServiceCall) -> None:
    runner = _runner(call)
    mac: str | None = call.data.get(ATTR_MAC)
    if mac is None:
        await runner.async_start()
        return
    host = _known_host(runner, mac, call.data.get(ATTR_IP))
    if (refusal := runner.protected().reason(host.mac, host.ip)) is not None:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key=f"protected_{refusal}",
            translation_placeholders={"host": f"{mac} ({host.ip})" if host.ip else mac},
        )
    await runner.async_start(host)


async def _async_stop(call: ServiceCall) -> None:
    await _runner(call).async_stop(Reason.OWNER)


@callback
def async_setup_evacuation_services(hass: HomeAssistant) -> None:
    """Register the evacuation actions."""
    register = hass.services.async_register
    register(DOMAIN, SERVICE_START_EVACUATION, _async_start, schema=START_SCHEMA)
    register(DOMAIN, SERVICE_STOP_EVACUATION, _async_stop, schema=STOP_SCHEMA)
