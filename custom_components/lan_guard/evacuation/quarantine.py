"""Quarantine of a culprit: the backends that isolate a host, and HA's own MACs.

* ``AgentEnforcer``: the agent's nftables enforcer, commanded over MQTT (signed when a key
  is set) through a ``CommandChannel``; the answer on ``command/result`` is awaited with a
  timeout.
* ``EntityBlocker``: an entity of another integration that blocks a client on the owner's
  router (for example UniFi's per-client "block" switch, which is *off* while blocked),
  mapped per MAC in the options.

Every outcome carries a reason key (translated in ``common.quarantine_<reason>``) so the
owner reads why a culprit was not isolated.
"""

from __future__ import annotations

import asyncio
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

import voluptuous as vol
from homeassistant.const import STATE_OFF, STATE_ON
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError

from ..allowlist import normalize_entry
from ..const import (
    ACTION_QUARANTINE,
    ACTION_RELEASE,
    APPLIANCE_TIMEOUT,
    BACKEND_AGENT,
    BACKEND_ENTITY,
    CAPABILITY_ENFORCER,
    COMMAND_TIMEOUT,
)
from .record import Outcome

_ENTITY_ID = re.compile(r"^[a-z0-9_]+\.[a-z0-9_]+$")
_RECENT_RESULTS = 64
_SYS_NET = Path("/sys/class/net")


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


class CommandChannel(Protocol):
    """What the enforcer backend may use of the agent: commands, their answers, its reports.

    The coordinator is one; nothing else of it is within the backend's reach.
    """

    @property
    def online(self) -> bool:
        """The agent is online and HA's MQTT client connected."""

    @property
    def info(self) -> Mapping[str, Any] | None:
        """The agent's retained info (capabilities)."""

    @property
    def quarantine(self) -> Mapping[str, Any] | None:
        """The agent's retained quarantine payload (what its enforcer isolates)."""

    async def async_send_command(self, action: str, mac: str, ip: str | None) -> str:
        """Publish a command; returns its id."""

    def async_add_result_listener(
        self, listener: Callable[[dict[str, Any]], None]
    ) -> CALLBACK_TYPE:
        """Call ``listener`` with every accepted command result."""


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

    name = BACKEND_AGENT

    def __init__(self, channel: CommandChannel, timeout: float = COMMAND_TIMEOUT) -> None:
        """Listen to the agent's command results from now on."""
        self._channel = channel
        self._timeout = timeout
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        # A result can arrive before the publish returns; keep the latest few unclaimed ones.
        self._early: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._unsubscribe: CALLBACK_TYPE | None = channel.async_add_result_listener(
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
        return await self._async_command(ACTION_QUARANTINE, mac, ip)

    async def async_release(self, mac: str, ip: str | None) -> Outcome:
        """Command ``release`` and await the agent's answer."""
        return await self._async_command(ACTION_RELEASE, mac, ip)

    def listed(self) -> frozenset[str] | None:
        """The MACs the agent's retained quarantine payload lists (None: not known)."""
        payload = self._channel.quarantine
        if payload is None:
            return None
        return frozenset(host["mac"] for host in payload["hosts"])

    async def _async_command(self, action: str, mac: str, ip: str | None) -> Outcome:
        channel = self._channel
        info = channel.info
        if info is not None and CAPABILITY_ENFORCER not in info["capabilities"]:
            return Outcome(False, "no_enforcer")
        if not channel.online:
            return Outcome(False, "agent_offline")
        try:
            command_id = await channel.async_send_command(action, mac, ip)
        except (HomeAssistantError, vol.Invalid) as err:
            return Outcome(False, "publish_failed", str(err))
        result = self._early.pop(command_id, None)
        if result is None:
            future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
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

    name = BACKEND_ENTITY

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


def build_backends(
    hass: HomeAssistant,
    channel: CommandChannel,
    mapping: dict[str, str],
    block_state: str,
    timeout: float = COMMAND_TIMEOUT,
) -> dict[str, QuarantineBackend]:
    """Both backends, by name: a culprit is released by the one that quarantined it, even if
    the options name another since."""
    return {
        BACKEND_AGENT: AgentEnforcer(channel, timeout),
        BACKEND_ENTITY: EntityBlocker(hass, mapping, block_state),
    }
