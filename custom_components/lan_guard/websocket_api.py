"""Websocket commands of the owner's inbox (the sidebar panel): list, label, evacuation.

Reading is open to every logged-in user (they already see the entities' states); anything
that changes the classifier or the isolation of the home needs an administrator. Every
list is bounded (page size, offset), and only known fields of an event leave Home
Assistant: the panel gets data, never markup, and renders every string as text.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from typing import Any

import voluptuous as vol
from homeassistant.components.websocket_api import async_register_command
from homeassistant.components.websocket_api.connection import ActiveConnection
from homeassistant.components.websocket_api.const import ERR_NOT_FOUND
from homeassistant.components.websocket_api.decorators import (
    async_response,
    require_admin,
    websocket_command,
)
from homeassistant.components.websocket_api.messages import event_message
from homeassistant.config_entries import SIGNAL_CONFIG_ENTRY_CHANGED, ConfigEntryChange
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from homeassistant.helpers.event import async_call_later

from .const import DOMAIN, MAX_EVENTS, MAX_LABELLED, Label
from .evacuation.record import Reason
from .models import LanGuardEvent, Verdict
from .runtime import LanGuardConfigEntry

# A page is what one screen shows; the whole history is at most MAX_EVENTS + MAX_LABELLED.
PAGE_SIZE_MAX = 100
PAGE_SIZE_DEFAULT = 50
# Many changes in a burst (a scan's events) become one "changed" message to the panel.
CHANGED_DELAY_S = 0.3

STATUS_ALL = "all"
STATUS_UNLABELLED = "unlabelled"
STATUS_LABELLED = "labelled"

# Evidence fields the panel shows; anything else an agent adds stays in Home Assistant.
_EVIDENCE_KEYS = (
    "target_count",
    "targets",
    "ports",
    "port",
    "packets",
    "bytes",
    "rate",
    "window_s",
    "sample",
    "handshakes",
    "ip",
    "old_mac",
    "new_mac",
    "is_gateway",
    "scope",
)
_HEX32 = vol.All(cv.string, vol.Lower, vol.Match(r"^[0-9a-f]{32}$"))


@callback
def async_setup_websocket_api(hass: HomeAssistant) -> None:
    """Register the inbox's commands (once, whatever the number of agents)."""
    for command in (
        ws_agents,
        ws_events_list,
        ws_label,
        ws_evacuation_restore,
        ws_evacuation_keep,
        ws_subscribe,
    ):
        async_register_command(hass, command)


# ----------------------------------------------------------------- what the panel shows


def _entries(hass: HomeAssistant) -> list[LanGuardConfigEntry]:
    return hass.config_entries.async_loaded_entries(DOMAIN)


def _entry(hass: HomeAssistant, entry_id: str) -> LanGuardConfigEntry | None:
    return next((entry for entry in _entries(hass) if entry.entry_id == entry_id), None)


def agent_view(entry: LanGuardConfigEntry) -> dict[str, Any]:
    """One agent: online, its classifier's figures, its evacuation (as the switch shows it)."""
    data = entry.runtime_data
    coordinator = data.coordinator
    return {
        "config_entry_id": entry.entry_id,
        "agent_id": coordinator.agent_id,
        "title": entry.title,
        "online": coordinator.online,
        "level": coordinator.level,
        "classifier": data.learner.stats(),
        "evacuation": data.evacuation.attributes(),
    }


def event_row(entry: LanGuardConfigEntry, event: LanGuardEvent) -> dict[str, Any]:
    """One line of the inbox: the event, the system's proposal, the owner's judgement."""
    payload = event.payload
    source = event.source
    assessment = event.assessment or {}
    evidence = payload["evidence"]
    return {
        "event_id": event.id,
        "config_entry_id": entry.entry_id,
        "agent_id": payload["agent_id"],
        "incident_id": event.incident_id,
        "kind": event.kind.value,
        "level": event.level,
        "detected_at": payload["detected_at"],
        "received_at": event.received_at.isoformat(),
        "culprit": {key: source.get(key) for key in ("mac", "ip", "vendor", "hostname")},
        "evidence": {key: evidence[key] for key in _EVIDENCE_KEYS if key in evidence},
        "proposal": (
            {
                "verdict": assessment.get("verdict"),
                "probability": assessment.get("probability"),
                "decided_by": assessment.get("source"),
            }
            if assessment
            else None
        ),
        "label": event.label.value if event.label else None,
        "labelled_at": event.labelled_at.isoformat() if event.labelled_at else None,
    }


def _sort_key(unlabelled_first: bool) -> Callable[[tuple[Any, LanGuardEvent]], tuple[Any, ...]]:
    def key(item: tuple[Any, LanGuardEvent]) -> tuple[Any, ...]:
        event = item[1]
        # Newest first; the unlabelled ones (the questions) above the answered ones.
        return (unlabelled_first and event.label is not None, -event.received_at.timestamp())

    return key


@websocket_command({vol.Required("type"): "lan_guard/inbox/agents"})
@callback
def ws_agents(hass: HomeAssistant, connection: ActiveConnection, msg: dict[str, Any]) -> None:
    """The loaded agents with their classifier and evacuation."""
    connection.send_result(msg["id"], {"agents": [agent_view(e) for e in _entries(hass)]})


@websocket_command(
    {
        vol.Required("type"): "lan_guard/events/list",
        vol.Optional("config_entry_id"): cv.string,
        vol.Optional("verdict"): vol.Coerce(Verdict),
        vol.Optional("status", default=STATUS_ALL): vol.In(
            [STATUS_ALL, STATUS_UNLABELLED, STATUS_LABELLED]
        ),
        vol.Optional("unlabelled_first", default=True): cv.boolean,
        vol.Optional("limit", default=PAGE_SIZE_DEFAULT): vol.All(
            vol.Coerce(int), vol.Range(min=1, max=PAGE_SIZE_MAX)
        ),
        vol.Optional("offset", default=0): vol.All(
            vol.Coerce(int), vol.Range(min=0, max=MAX_EVENTS + MAX_LABELLED)
        ),
    }
)
@callback
def ws_events_list(hass: HomeAssistant, connection: ActiveConnection, msg: dict[str, Any]) -> None:
    """One page of threat events, filtered, the unlabelled ones first (a spam view)."""
    entries = _entries(hass)
    if (wanted := msg.get("config_entry_id")) is not None:
        entries = [entry for entry in entries if entry.entry_id == wanted]
    verdict: Verdict | None = msg.get("verdict")
    status: str = msg["status"]
    found = [
        (entry, event)
        for entry in entries
        for event in entry.runtime_data.coordinator.history
        if event.is_threat
        and (verdict is None or event.verdict is verdict)
        and (status == STATUS_ALL or (status == STATUS_UNLABELLED) == (event.label is None))
    ]
    found.sort(key=_sort_key(msg["unlabelled_first"]))
    page = found[msg["offset"] : msg["offset"] + msg["limit"]]
    connection.send_result(
        msg["id"],
        {
            "events": [event_row(entry, event) for entry, event in page],
            "total": len(found),
            "unlabelled": sum(
                1
                for entry in entries
                for event in entry.runtime_data.coordinator.history
                if event.is_threat and event.label is None
            ),
        },
    )


# ----------------------------------------------------------------- what the owner does


@websocket_command(
    {
        vol.Required("type"): "lan_guard/label",
        vol.Required("event_id"): _HEX32,
        vol.Required("verdict"): vol.Coerce(Label),
    }
)
@require_admin
@async_response
async def ws_label(hass: HomeAssistant, connection: ActiveConnection, msg: dict[str, Any]) -> None:
    """The owner's judgement of an event: stored, learned, acted on (as the buttons do)."""
    for entry in _entries(hass):
        coordinator = entry.runtime_data.coordinator
        event = coordinator.history.get(msg["event_id"])
        if event is None or not event.is_threat:
            continue
        await coordinator.async_label(event, msg["verdict"])
        connection.send_result(
            msg["id"], {"event": event_row(entry, event), "agent": agent_view(entry)}
        )
        return
    connection.send_error(msg["id"], ERR_NOT_FOUND, "Unknown event")


def _evacuation_command(name: str) -> Callable[..., Any]:
    """A command on one agent's evacuation: restore service, or keep it isolated."""

    @websocket_command(
        {
            vol.Required("type"): f"lan_guard/evacuation/{name}",
            vol.Required("config_entry_id"): cv.string,
        }
    )
    @require_admin
    @async_response
    async def handler(
        hass: HomeAssistant, connection: ActiveConnection, msg: dict[str, Any]
    ) -> None:
        entry = _entry(hass, msg["config_entry_id"])
        if entry is None:
            connection.send_error(msg["id"], ERR_NOT_FOUND, "Unknown agent")
            return
        evacuation = entry.runtime_data.evacuation
        if name == "restore":
            await evacuation.async_stop(Reason.OWNER)
        else:
            await evacuation.async_keep()
        connection.send_result(msg["id"], {"agent": agent_view(entry)})

    return handler


ws_evacuation_restore = _evacuation_command("restore")
ws_evacuation_keep = _evacuation_command("keep")


# ----------------------------------------------------------------- live updates


@websocket_command({vol.Required("type"): "lan_guard/inbox/subscribe"})
@callback
def ws_subscribe(hass: HomeAssistant, connection: ActiveConnection, msg: dict[str, Any]) -> None:
    """Say "changed" (at most every CHANGED_DELAY_S) when any agent, event, label or
    evacuation changes; the panel then asks again. Agents loaded later are followed too."""
    watcher = _Watcher(hass, lambda: connection.send_message(_changed(msg["id"])))
    connection.subscriptions[msg["id"]] = watcher.async_stop
    connection.send_result(msg["id"])


def _changed(msg_id: int) -> dict[str, Any]:
    return event_message(msg_id, {"changed": True})


class _Watcher:
    """Follows the listeners of every loaded agent; re-attaches when entries change."""

    def __init__(self, hass: HomeAssistant, send: Callable[[], None]) -> None:
        self._hass = hass
        self._send = send
        self._attached: list[CALLBACK_TYPE] = []
        self._pending: CALLBACK_TYPE | None = None
        self._unsub_entries = async_dispatcher_connect(
            hass, SIGNAL_CONFIG_ENTRY_CHANGED, self._async_entry_changed
        )
        self._attach()

    def _attach(self) -> None:
        self._detach()
        for entry in _entries(self._hass):
            data = entry.runtime_data
            self._attached.append(data.coordinator.async_add_listener(self._async_changed))
            self._attached.append(data.evacuation.async_add_listener(self._async_changed))

    def _detach(self) -> None:
        while self._attached:
            remove = self._attached.pop()
            # An agent unloaded meanwhile may have dropped its listeners already.
            with suppress(ValueError):
                remove()

    @callback
    def _async_entry_changed(self, change: ConfigEntryChange, entry: Any) -> None:
        if entry.domain == DOMAIN:
            self._attach()
            self._async_changed()

    @callback
    def _async_changed(self) -> None:
        if self._pending is None:
            self._pending = async_call_later(self._hass, CHANGED_DELAY_S, self._async_send)

    @callback
    def _async_send(self, _now: Any) -> None:
        self._pending = None
        self._send()

    @callback
    def async_stop(self) -> None:
        """The panel unsubscribed or closed."""
        self._unsub_entries()
        self._detach()
        if self._pending is not None:
            self._pending()
            self._pending = None
