"""Quarantine of a culprit: the hosts never isolated, and the two backends that isolate.

* ``AgentEnforcer``: the agent's nftables enforcer, commanded over MQTT (signed when a key
  is set, see ``coordinator.async_send_command``); the answer on ``command/result`` is
  awaited with a timeout.
* ``EntityBlocker``: an entity of another integration that blocks a client on the owner's
  router (for example UniFi's per-client "block" switch, which is *off* while blocked),
  mapped per MAC in the options.

Every outcome carries a reason key (translated in ``common.quarantine_<reason>``) so the
owner reads why a culprit was not isolated.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import voluptuous as vol
from homeassistant.const import STATE_OFF, STATE_ON
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError

from .allowlist import Allowlist, normalize_entry
from .const import APPLIANCE_TIMEOUT, COMMAND_TIMEOUT

if TYPE_CHECKING:
    from .coordinator import LanGuardCoordinator

_ENTITY_ID = re.compile(r"^[a-z0-9_]+\.[a-z0-9_]+$")
_RECENT_RESULTS = 64
_SYS_NET = Path("/sys/class/net")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a backend did: ``reason`` names why not (``common.quarantine_<reason>``)."""

    ok: bool
    reason: str | None = None
    detail: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (storage, entity attributes)."""
        return {"ok": self.ok, "reason": self.reason, "detail": self.detail}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Outcome:
        """Inverse of ``as_dict``."""
        return cls(bool(data["ok"]), data.get("reason"), data.get("detail"))


# --------------------------------------------------------------------- protected hosts


@dataclass(frozen=True, slots=True)
class ProtectedHosts:
    """Hosts a quarantine must never touch, each group with the reason it is refused."""

    gateway: Allowlist
    agent_node: Allowlist
    ha_host: Allowlist
    protected: Allowlist
    allowlist: Allowlist

    @classmethod
    def build(
        cls,
        *,
        info: dict[str, Any] | None,
        ha_ips: Iterable[str],
        protected: Iterable[str],
        allowlist: Allowlist,
        ha_macs: Iterable[str] = (),
    ) -> ProtectedHosts:
        """From the agent's info (gateway, node), HA's own addresses and the options.

        Gateway and HA host are protected by MAC as well as by IP: a culprit can claim
        either IP, not both identities.
        """
        info = info or {}
        node = info.get("node") or {}
        gateway = [info.get("gateway"), info.get("gateway_mac")]
        return cls(
            gateway=Allowlist.parse(value for value in gateway if value),
            agent_node=Allowlist.parse(value for value in node.values() if value),
            ha_host=Allowlist.parse([*ha_ips, *ha_macs]),
            protected=Allowlist.parse(protected),
            allowlist=allowlist,
        )

    def reason(self, mac: str, ip: str | None) -> str | None:
        """Why ``mac``/``ip`` may not be quarantined (a reason key), or None."""
        if mac == "00:00:00:00:00:00" or int(mac[:2], 16) & 1:
            return "not_unicast"
        if ip is not None:
            address = ipaddress.ip_address(ip)
            # As the agent's command handler: reserved includes 255.255.255.255.
            if (
                address.is_multicast
                or address.is_unspecified
                or address.is_loopback
                or address.is_reserved
            ):
                return "not_unicast"
        host = {"mac": mac, "ip": ip}
        for reason in ("gateway", "agent_node", "ha_host", "protected", "allowlist"):
            group: Allowlist = getattr(self, reason)
            if group.contains(host):
                return reason
        return None


def interface_macs(names: Iterable[str], sys_net: Path = _SYS_NET) -> list[str]:
    """The MACs of the named network interfaces, where the system shows them (Linux sysfs).

    Blocking (reads files): run it in the executor.
    """
    macs: list[str] = []
    for name in names:
        if not name or "/" in name or name.startswith("."):
            continue
        try:
            mac = normalize_entry((sys_net / name / "address").read_text(encoding="ascii"))
        except (OSError, ValueError, UnicodeDecodeError):
            continue
        if "/" not in mac and mac.count(":") == 5 and mac != "00:00:00:00:00:00":
            macs.append(mac)
    return macs


# --------------------------------------------------------------------- backends


class QuarantineBackend(Protocol):
    """Isolates a host from the LAN and lets it back."""

    name: str

    async def async_quarantine(self, mac: str, ip: str | None) -> Outcome:
        """Cut the host off; the outcome says whether it is in force."""

    async def async_release(self, mac: str, ip: str | None) -> Outcome:
        """Let the host back."""

    @callback
    def async_close(self) -> None:
        """Stop listening (the entry unloads)."""


class AgentEnforcer:
    """The agent's nftables enforcer: a command over MQTT, its result awaited."""

    name = "agent"

    def __init__(self, coordinator: LanGuardCoordinator, timeout: float = COMMAND_TIMEOUT) -> None:
        """Listen to the agent's command results from now on."""
        self._coordinator = coordinator
        self._timeout = timeout
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        # A result can arrive before the publish returns; keep the latest few unclaimed ones.
        self._early: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._unsubscribe: CALLBACK_TYPE | None = coordinator.async_add_result_listener(
            self._async_result
        )

    @callback
    def async_close(self) -> None:
        """Stop listening; whoever still waits gets a timeout."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    async def async_quarantine(self, mac: str, ip: str | None) -> Outcome:
        """Command ``quarantine`` and await the agent's answer."""
        return await self._async_command("quarantine", mac, ip)

    async def async_release(self, mac: str, ip: str | None) -> Outcome:
        """Command ``release`` and await the agent's answer."""
        return await self._async_command("release", mac, ip)

    async def _async_command(self, action: str, mac: str, ip: str | None) -> Outcome:
        coordinator = self._coordinator
        info = coordinator.info
        if info is not None and "enforcer" not in info["capabilities"]:
            return Outcome(False, "no_enforcer")
        if not coordinator.online:
            return Outcome(False, "agent_offline")
        try:
            command_id = await coordinator.async_send_command(action, mac, ip)
        except (HomeAssistantError, vol.Invalid) as err:
            return Outcome(False, "publish_failed", str(err))
        result = self._early.pop(command_id, None)
        if result is None:
            future: asyncio.Future[dict[str, Any]] = coordinator.hass.loop.create_future()
            self._waiting[command_id] = future
            try:
                async with asyncio.timeout(self._timeout):
                    result = await future
            except TimeoutError:
                return Outcome(False, "timeout", f"{self._timeout:g}")
            finally:
                self._waiting.pop(command_id, None)
        if result["ok"]:
            return Outcome(True)
        return Outcome(False, "agent_refused", result["error"])

    @callback
    def _async_result(self, result: dict[str, Any]) -> None:
        future = self._waiting.get(result["id"])
        if future is not None:
            if not future.done():
                future.set_result(result)
            return
        self._early[result["id"]] = result
        while len(self._early) > _RECENT_RESULTS:
            self._early.popitem(last=False)


def parse_entity_map(entries: Iterable[str]) -> dict[str, str]:
    """``["aa:bb:cc:dd:ee:ff = switch.block_laptop", ...]`` -> {mac: entity id}.

    ``ValueError`` names the entry that is not a MAC and an entity id.
    """
    mapping: dict[str, str] = {}
    for entry in entries:
        if not entry.strip():
            continue
        mac, sep, entity_id = entry.partition("=")
        entity_id = entity_id.strip().lower()
        try:
            normal = normalize_entry(mac)
        except ValueError:
            normal = ""
        if not sep or normal.count(":") != 5 or not _ENTITY_ID.fullmatch(entity_id):
            raise ValueError(entry)
        mapping[normal] = entity_id
    return mapping


class EntityBlocker:
    """A router integration's entity that blocks one client, mapped per MAC."""

    name = "entity"

    def __init__(self, hass: HomeAssistant, mapping: dict[str, str], block_state: str) -> None:
        """``block_state`` is the state meaning "blocked" (``off`` for UniFi's switches)."""
        self._hass = hass
        self._mapping = mapping
        self._block_state = block_state

    @callback
    def async_close(self) -> None:
        """Nothing to stop."""

    async def async_quarantine(self, mac: str, ip: str | None) -> Outcome:
        """Put the mapped entity into its blocking state."""
        return await self._async_set(mac, self._block_state)

    async def async_release(self, mac: str, ip: str | None) -> Outcome:
        """Put the mapped entity into its other state."""
        return await self._async_set(mac, STATE_ON if self._block_state == STATE_OFF else STATE_OFF)

    async def _async_set(self, mac: str, target: str) -> Outcome:
        entity_id = self._mapping.get(mac)
        if entity_id is None:
            return Outcome(False, "no_mapped_entity", mac)
        if self._hass.states.get(entity_id) is None:
            return Outcome(False, "entity_missing", entity_id)
        domain = entity_id.partition(".")[0]
        try:
            async with asyncio.timeout(APPLIANCE_TIMEOUT):
                await self._hass.services.async_call(
                    domain, f"turn_{target}", {"entity_id": entity_id}, blocking=True
                )
        except (HomeAssistantError, vol.Invalid, TimeoutError) as err:
            return Outcome(False, "entity_failed", f"{entity_id}: {err or type(err).__name__}")
        state = self._hass.states.get(entity_id)
        if state is None or state.state != target:
            seen = state.state if state else None
            return Outcome(False, "entity_failed", f"{entity_id} is {seen}, not {target}")
        return Outcome(True)
