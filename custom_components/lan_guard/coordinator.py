"""The runtime of one agent: MQTT intake, the agent's model, and the event pipeline.

Every message from the agent enters through ``_async_message_received`` and is refused
(counted, logged once per reason) unless it is JSON within the bounds of ``intake`` (size,
nesting, strings, items, numbers, dates), follows the contract, names this agent and, when a
key is set, is signed for this agent and topic, fresh and not replayed; nothing it contains
makes the callback raise. An accepted event is then checked against the delivery state
(``delivery.py``: duplicates and events of a replaced store are dropped, what is missing is
asked for with a ``replay`` command, what is gone is reported) and goes through
``async_process_event``, the one place where an event becomes visible: the verdict is
attached there (classifier hook) before history, incidents, listeners (event entity,
evacuation, notifications) and the bus event see it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, TypeAlias

import voluptuous as vol
from homeassistant.components import mqtt
from homeassistant.config_entries import ConfigEntry
from homeassistant.core import CALLBACK_TYPE, Event, HassJob, HomeAssistant, callback
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.device_registry import CONNECTION_NETWORK_MAC
from homeassistant.helpers.event import async_call_later, async_track_time_interval
from homeassistant.helpers.json import json_dumps
from homeassistant.util import dt as dt_util

from . import issues, notifications
from .allowlist import Allowlist
from .const import (
    CONF_AGENT_ID,
    CONF_ALLOWLIST,
    CONF_LEGACY_SIGNATURES,
    CONF_NOTIFY_LEVEL,
    CONF_OFFLINE_MINUTES,
    CONF_SIGNING_KEY,
    CONF_TOPIC_PREFIX,
    DEFAULT_NOTIFY_LEVEL,
    DEFAULT_OFFLINE_MINUTES,
    DOMAIN,
    EVENT_LAN_GUARD,
    EVENT_MOBILE_APP_NOTIFICATION_ACTION,
    EVENTS_WINDOW,
    EVENTS_WINDOW_REFRESH,
    STATUS_ONLINE,
    TOPIC_COMMAND,
    TOPIC_COMMAND_RESULT,
    TOPIC_EVENT,
    TOPIC_HOSTS,
    TOPIC_INFO,
    TOPIC_QUARANTINE,
    TOPIC_STATE,
    TOPIC_STATUS,
    BadPayload,
    Label,
)
from .delivery import DeliveryTracker
from .delivery_requests import DeliveryRequests
from .history import EventHistory
from .intake import MAX_BYTES, OFF_LOOP_BYTES, Decoded, Refused, decode
from .models import EventClassifier, Incident, LanGuardEvent
from .payloads import parse_timestamp, validate
from .signing import PayloadVerifier, SignatureError, signing_key
from .untrusted import printable

_LOGGER = logging.getLogger(__name__)

EventListener: TypeAlias = Callable[[LanGuardEvent], None]
LabelListener: TypeAlias = Callable[[LanGuardEvent, Label], Awaitable[None]]
ResultListener: TypeAlias = Callable[[dict[str, Any]], None]
AckListener: TypeAlias = Callable[[datetime], None]

# Retained topics: a retained message may be old, so only its signature is checked.
_RETAINED = (TOPIC_INFO, TOPIC_STATE, TOPIC_HOSTS, TOPIC_QUARANTINE)
_SCHEMA_OF = {
    TOPIC_INFO: "info",
    TOPIC_STATE: "state",
    TOPIC_HOSTS: "hosts",
    TOPIC_QUARANTINE: "quarantine",
    TOPIC_EVENT: "event",
    TOPIC_COMMAND_RESULT: "command_result",
}


@dataclass(frozen=True, slots=True)
class RefusedPayload:
    """The last refused payload of one reason (diagnostics)."""

    topic: str
    reason: str
    at: datetime


class LanGuardCoordinator:
    """Everything HA knows about one agent; entities read it and subscribe to its updates."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry,
        classifier: EventClassifier | None = None,
    ) -> None:
        """Read the entry; nothing is subscribed until ``async_start``."""
        self.hass = hass
        self.entry = entry
        self.agent_id: str = entry.data[CONF_AGENT_ID]
        self.base_topic = f"{entry.data[CONF_TOPIC_PREFIX]}/{self.agent_id}"
        options = entry.options
        self.notify_level: int = int(options.get(CONF_NOTIFY_LEVEL, DEFAULT_NOTIFY_LEVEL))
        self.offline_minutes: float = float(
            options.get(CONF_OFFLINE_MINUTES, DEFAULT_OFFLINE_MINUTES)
        )
        self.allowlist = Allowlist.parse(options.get(CONF_ALLOWLIST, []))
        secret: str | None = options.get(CONF_SIGNING_KEY) or None
        # Agents before 0.2: signature format 1, no seq (their events are not tracked).
        self.legacy: bool = bool(options.get(CONF_LEGACY_SIGNATURES, False))
        self.verifier = (
            PayloadVerifier(signing_key(secret), self.agent_id, accept_legacy=self.legacy)
            if secret
            else None
        )
        self.history = EventHistory(hass, entry.entry_id)
        # Asks the agent for events HA missed (QoS 1 only reaches the broker).
        self.delivery_requests = DeliveryRequests(
            hass, entry, self.history, self._async_publish_command, lambda: self.mqtt_connected
        )

        # Extension points: a classifier gives verdicts; evacuation, notifications and the
        # entities listen to events, labels and command results.
        self.classifier = classifier
        self._unsubscribe: list[CALLBACK_TYPE] = []
        self._update_listeners: list[CALLBACK_TYPE] = []
        self._refresh_scheduled = False
        self._event_listeners: list[EventListener] = []
        self._label_listeners: list[LabelListener] = []
        self._result_listeners: list[ResultListener] = []
        self._ack_listeners: list[AckListener] = []

        # The agent as last reported.
        self.status: str | None = None
        self.info: dict[str, Any] | None = None
        self.agent_state: dict[str, Any] | None = None
        self.hosts: dict[str, Any] | None = None
        self.quarantine: dict[str, Any] | None = None
        self.incidents: dict[str, Incident] = {}
        self.incidents_known = False
        self.mqtt_connected = False
        self.subscribed = asyncio.Event()

        # Big retained payloads being decoded off the loop, and the newest waiting per topic.
        self._decoding: set[str] = set()
        self._waiting: dict[str, bytes] = {}
        self.bad_payloads: Counter[BadPayload] = Counter()
        self.last_refused: dict[BadPayload, RefusedPayload] = {}
        self._offline_timer: CALLBACK_TYPE | None = None

    # ----------------------------------------------------------------- life cycle

    async def async_start(self) -> None:
        """Load the history, then subscribe to the agent's topics and HA's own events."""
        await self.history.async_load()
        hass = self.hass
        self.mqtt_connected = mqtt.is_connected(hass)
        wildcard = f"{self.base_topic}/#"
        # Kept here, not on the entry: an entry being deleted is listened to once more
        # (to lift its quarantines) after its own unload.
        self._unsubscribe += [
            mqtt.async_subscribe_connection_status(hass, self._async_connection_changed),
            mqtt.async_on_subscribe_done(hass, wildcard, 1, self._async_subscribed),
            await mqtt.async_subscribe(
                hass, wildcard, self._async_message_received, qos=1, encoding=None
            ),
            hass.bus.async_listen(
                EVENT_MOBILE_APP_NOTIFICATION_ACTION, self._async_notification_action
            ),
            async_track_time_interval(
                hass,
                self._async_refresh_window,
                EVENTS_WINDOW_REFRESH,
                cancel_on_shutdown=True,
            ),
            self._cancel_offline_timer,
            self.delivery_requests.cancel,
        ]
        # No status yet counts as offline: an agent that never shows up is reported too.
        self._start_offline_timer()

    async def async_stop(self) -> None:
        """Unsubscribe, stop the timers, write the history."""
        while self._unsubscribe:
            self._unsubscribe.pop()()
        await self.history.async_flush()

    async def async_wait_online(self, wait_s: float) -> bool:
        """Wait (at most ``wait_s`` seconds) until the agent is heard online."""
        online = asyncio.Event()

        @callback
        def check() -> None:
            if self.online:
                online.set()

        remove = self.async_add_listener(check)
        try:
            check()
            async with asyncio.timeout(wait_s):
                await online.wait()
        except TimeoutError:
            return False
        finally:
            remove()
        return True

    # ----------------------------------------------------------------- listeners

    @callback
    def async_add_listener(self, update: CALLBACK_TYPE) -> CALLBACK_TYPE:
        """Call ``update`` whenever anything an entity shows may have changed."""
        self._update_listeners.append(update)
        return lambda: self._update_listeners.remove(update)

    @callback
    def async_add_event_listener(self, listener: EventListener) -> CALLBACK_TYPE:
        """Call ``listener`` with every accepted event, after its verdict is attached."""
        self._event_listeners.append(listener)
        return lambda: self._event_listeners.remove(listener)

    @callback
    def async_add_label_listener(self, listener: LabelListener) -> CALLBACK_TYPE:
        """Await ``listener`` after the owner labels an event (service or phone button)."""
        self._label_listeners.append(listener)
        return lambda: self._label_listeners.remove(listener)

    @callback
    def async_add_result_listener(self, listener: ResultListener) -> CALLBACK_TYPE:
        """Call ``listener`` with every accepted command result of this agent."""
        self._result_listeners.append(listener)
        return lambda: self._result_listeners.remove(listener)

    @callback
    def async_add_ack_listener(self, listener: AckListener) -> CALLBACK_TYPE:
        """Call ``listener`` with the time whenever the owner acknowledges the incidents."""
        self._ack_listeners.append(listener)
        return lambda: self._ack_listeners.remove(listener)

    @callback
    def async_update_listeners(self) -> None:
        """Tell the entities to refresh."""
        for update in list(self._update_listeners):
            update()

    @callback
    def _async_update_listeners_soon(self) -> None:
        """Refresh the entities once for all the agent's messages of one loop iteration: HA's
        MQTT client hands over many at a time when the agent catches up after an outage, and
        refreshing every entity for each event would make catching up slow."""
        if not self._refresh_scheduled:
            self._refresh_scheduled = True
            self.hass.loop.call_soon(self._async_refresh_entities)

    @callback
    def _async_refresh_entities(self) -> None:
        self._refresh_scheduled = False
        self.async_update_listeners()

    # ----------------------------------------------------------------- derived state

    @property
    def delivery(self) -> DeliveryTracker:
        """Which of the agent's events were processed (stored with the history)."""
        return self.history.delivery

    @property
    def online(self) -> bool:
        """The agent said it is online and HA's MQTT client is connected."""
        return self.mqtt_connected and self.status == STATUS_ONLINE

    @property
    def level(self) -> int:
        """Highest level among open incidents (0 when none)."""
        return max((incident.level for incident in self.incidents.values()), default=0)

    def threat_incidents(self) -> list[Incident]:
        """Open incidents at or above the notify level, not allowlisted, not acknowledged."""
        return [
            incident
            for incident in self.incidents.values()
            if incident.level >= self.notify_level
            and not self.allowlist.contains(incident.source)
            and incident.level > self.history.acknowledged.get(incident.incident_id, 0)
        ]

    def events_in_window(self) -> int:
        """Threat events received in the last 24 hours."""
        return self.history.count_threats_since(dt_util.utcnow() - EVENTS_WINDOW)

    # ----------------------------------------------------------------- owner actions

    @callback
    def async_acknowledge(self) -> None:
        """The owner reviewed the open incidents: clear the threat until one escalates."""
        for incident in self.incidents.values():
            self.history.acknowledged[incident.incident_id] = incident.level
            notifications.async_dismiss(self.hass, incident.incident_id)
        self.history.schedule_save()
        now = dt_util.utcnow()
        for listener in list(self._ack_listeners):
            listener(now)
        self.async_update_listeners()

    async def async_label(self, event: LanGuardEvent, label: Label) -> None:
        """Store the owner's label with the event and let learners know."""
        self.history.label(event, label)
        # The label is stored: a failing learner is logged, never the owner's problem.
        learners = [] if self.classifier is None else [self.classifier.async_learn]
        for learn in [*learners, *self._label_listeners]:
            try:
                await learn(event, label)
            except Exception:
                _LOGGER.exception("Learning the label of event %s failed", event.id)
        self.async_update_listeners()

    async def async_send_command(self, action: str, mac: str, ip: str | None) -> str:
        """Publish a (signed, when a key is set) command to the agent; returns its id."""
        command_id = uuid.uuid4().hex
        await self._async_publish_command(
            {"id": command_id, "action": action, "mac": mac, "ip": ip}
        )
        return command_id

    async def _async_publish_command(self, command: dict[str, Any]) -> None:
        """Stamp, sign (for this agent's command topic) and publish a command."""
        command = {**command, "ts": dt_util.utcnow().timestamp()}
        if self.verifier is not None:
            command = self.verifier.sign_command(command, command["ts"], TOPIC_COMMAND)
        validate("command", command)
        await mqtt.async_publish(
            self.hass,
            f"{self.base_topic}/{TOPIC_COMMAND}",
            json_dumps(command),
            qos=1,
        )

    # ----------------------------------------------------------------- MQTT intake

    @callback
    def _async_subscribed(self) -> None:
        """(Re)subscribed: with a clean session, anything published meanwhile was missed."""
        self.subscribed.set()
        self.delivery_requests.resubscribed()

    @callback
    def _async_connection_changed(self, connected: bool) -> None:
        self.mqtt_connected = connected
        self.async_update_listeners()

    @callback
    def _async_message_received(self, msg: mqtt.ReceiveMessage) -> None:
        """Route one message by its topic below ``<prefix>/<agent_id>/``; never raises."""
        topic = msg.topic.removeprefix(f"{self.base_topic}/")
        raw = msg.payload.encode() if isinstance(msg.payload, str) else bytes(msg.payload)
        try:
            if topic == TOPIC_STATUS:
                self._async_handle_status(raw)
            elif topic not in _SCHEMA_OF or (not raw and topic in _RETAINED):
                return  # our own commands, a newer agent's topics, a retained message cleared
            elif topic in _RETAINED and (len(raw) > OFF_LOOP_BYTES or topic in self._decoding):
                self._async_decode_off_loop(topic, raw)
            else:
                decoded = decode(_SCHEMA_OF[topic], raw, dt_util.utcnow(), legacy=self.legacy)
                self._async_take(topic, decoded)
        except Exception as err:  # a bug, not the sender's fault: counted, with its traceback
            self._refuse(topic, BadPayload.HANDLER_ERROR, repr(err), exc_info=True)

    @callback
    def _async_decode_off_loop(self, topic: str, raw: bytes) -> None:
        """Decode a big retained payload in a worker thread, so the event loop never waits.

        Per topic one is decoded at a time and the next waits, so they keep their order; a
        newer retained payload replaces the waiting one (it says all the older one did), so
        memory stays bounded however fast they come.
        """
        if self._waiting.get(topic) is not None:
            _LOGGER.debug("A newer %s replaces the one waiting to be decoded", topic)
        self._waiting[topic] = raw
        if topic not in self._decoding:
            self._decoding.add(topic)
            self.entry.async_create_task(
                self.hass, self._async_decode_worker(topic), f"{DOMAIN} decode {topic}"
            )

    async def _async_decode_worker(self, topic: str) -> None:
        try:
            while (raw := self._waiting.pop(topic, None)) is not None:
                decoded = await self.hass.async_add_executor_job(
                    partial(decode, legacy=self.legacy), _SCHEMA_OF[topic], raw, dt_util.utcnow()
                )
                try:
                    self._async_take(topic, decoded)
                except Exception as err:  # as in _async_message_received
                    self._refuse(topic, BadPayload.HANDLER_ERROR, repr(err), exc_info=True)
        finally:
            self._decoding.discard(topic)

    @callback
    def _async_take(self, topic: str, decoded: Decoded | Refused) -> None:
        """Accept (or refuse) a decoded payload and hand it to its handler."""
        payload = self._accept(topic, decoded)
        if payload is None:
            return
        if topic == TOPIC_EVENT:
            self._async_handle_event(payload)
        elif topic == TOPIC_COMMAND_RESULT:
            self.delivery_requests.result(payload)
            for listener in list(self._result_listeners):
                listener(payload)
        elif topic == TOPIC_INFO:
            self._async_handle_info(payload)
        elif topic == TOPIC_STATE:
            self._async_handle_state(payload)
        elif topic == TOPIC_HOSTS:
            self.hosts = payload
            self.async_update_listeners()
        else:
            self.quarantine = payload
            self.async_update_listeners()

    def _accept(self, topic: str, decoded: Decoded | Refused) -> dict[str, Any] | None:
        """The validated payload, or None after counting and logging why it was refused."""
        if isinstance(decoded, Refused):
            self._refuse(topic, decoded.reason, decoded.detail)
            return None
        payload: dict[str, Any] = decoded.payload
        if topic != TOPIC_COMMAND_RESULT and payload["agent_id"] != self.agent_id:
            self._refuse(topic, BadPayload.AGENT_MISMATCH, f"agent_id is {payload['agent_id']!r}")
            return None
        if self.verifier is not None:
            # The signature covers the bytes as sent: verify the decoded payload, not the
            # validated one (validation coerces, e.g. a level of 2.0 becomes 2).
            # Events with a seq are de-duplicated by it (an event published again on request
            # keeps its id), every other live payload by its id.
            now = dt_util.utcnow().timestamp()
            try:
                if topic in _RETAINED:
                    self.verifier.verify_retained(topic, decoded.sent)
                elif topic == TOPIC_EVENT and "seq" in payload:
                    self.verifier.verify_fresh(topic, decoded.sent, now)
                else:
                    self.verifier.verify_live(topic, decoded.sent, now)
            except SignatureError as err:
                self._refuse(topic, err.reason, str(err))
                return None
        payload.pop("sig", None)
        payload.pop("ts", None)
        return payload

    def _refuse(
        self, topic: str, reason: BadPayload, detail: str, *, exc_info: bool = False
    ) -> None:
        """Count, remember and log (once per reason at warning level) a refused payload;
        ``exc_info``: a handler failed, logged once as an error with its traceback."""
        first = reason not in self.bad_payloads
        self.bad_payloads[reason] += 1
        # The detail may quote the sender (a key, a value): one bounded line in the log.
        detail = printable(detail)
        self.last_refused[reason] = RefusedPayload(topic, detail, dt_util.utcnow())
        level = (logging.ERROR if exc_info else logging.WARNING) if first else logging.DEBUG
        _LOGGER.log(
            level,
            "Refused a payload on %s/%s (%s): %s%s",
            self.base_topic,
            topic,
            reason.value,
            detail,
            " (further refusals of this kind are logged at debug level)" if first else "",
            exc_info=exc_info and first,
        )

    # ----------------------------------------------------------------- handlers

    @callback
    def _async_handle_status(self, raw: bytes) -> None:
        if len(raw) > MAX_BYTES["status"]:
            self._refuse(TOPIC_STATUS, BadPayload.TOO_LARGE, f"status of {len(raw)} bytes")
            return
        try:
            status = validate("status", raw.decode("utf-8").strip()) if raw else "offline"
        except (UnicodeDecodeError, vol.Invalid):
            self._refuse(TOPIC_STATUS, BadPayload.SCHEMA, "status is not 'online' or 'offline'")
            return
        self.status = status
        if status == STATUS_ONLINE:
            self._cancel_offline_timer()
            issues.async_delete_agent_offline(self.hass, self.entry)
        else:
            self._start_offline_timer()
        self.async_update_listeners()

    @callback
    def _async_handle_event(self, payload: dict[str, Any]) -> None:
        """Process a new event once; drop duplicates and events of a replaced store."""
        if "seq" not in payload:  # an agent before 0.2: only its id tells a duplicate
            if payload["id"] in self.history:
                self._refuse(TOPIC_EVENT, BadPayload.REPLAYED, f"event {payload['id']} seen")
                return
        elif not self.delivery_requests.take(payload):
            return
        self.async_process_event(payload)
        self.delivery_requests.processed()

    @callback
    def _async_handle_info(self, info: dict[str, Any]) -> None:
        self.info = info
        registry = dr.async_get(self.hass)
        if device := registry.async_get_device(identifiers={(DOMAIN, self.agent_id)}):
            registry.async_update_device(device.id, sw_version=info["version"])
            if node_mac := info["node"]["mac"]:
                registry.async_update_device(
                    device.id, merge_connections={(CONNECTION_NETWORK_MAC, node_mac)}
                )
        self.async_update_listeners()

    @callback
    def _async_handle_state(self, state: dict[str, Any]) -> None:
        """The agent's open incidents replace ours, except news newer than the state."""
        self.agent_state = state
        updated_at = parse_timestamp(state["updated_at"])
        listed = {item["incident_id"]: item for item in state["incidents"]}
        for incident_id, incident in list(self.incidents.items()):
            if incident_id not in listed and (
                incident.updated_at is None or incident.updated_at <= updated_at
            ):
                del self.incidents[incident_id]
        for incident_id, item in listed.items():
            known = self.incidents.get(incident_id)
            if known is not None and known.updated_at and known.updated_at > updated_at:
                known.level = max(known.level, item["level"])
                known.kinds.update(item["kinds"])
                continue
            self.incidents[incident_id] = Incident(
                incident_id, item["level"], item["source"], set(item["kinds"]), updated_at
            )
        stale_acks = set(self.history.acknowledged) - set(self.incidents)
        for incident_id in stale_acks:
            del self.history.acknowledged[incident_id]
        if stale_acks:
            self.history.schedule_save()
        self.incidents_known = True
        if "epoch" in state:  # what the agent created and keeps: anything we missed?
            self.delivery_requests.state(state)
        self._async_update_listeners_soon()

    @callback
    def async_process_event(self, payload: dict[str, Any]) -> LanGuardEvent:
        """The one place an accepted event becomes visible (see the module docstring)."""
        event = LanGuardEvent(payload, dt_util.utcnow())
        if self.classifier is not None:
            try:
                event.assessment = self.classifier.assess(event)
            except Exception:  # a verdict must never cost the event itself
                _LOGGER.exception("No verdict for event %s: the classifier failed", event.id)
        self.history.add(event)
        if event.is_threat:
            self._update_incident(event)
        for listener in list(self._event_listeners):
            try:
                listener(event)
            except Exception:  # one broken consumer must not starve the others
                _LOGGER.exception("An event listener failed on event %s", event.id)
        self.hass.bus.async_fire(
            EVENT_LAN_GUARD,
            {
                "agent_id": self.agent_id,
                "config_entry_id": self.entry.entry_id,
                **event.event_data(),
            },
        )
        self._async_update_listeners_soon()
        return event

    def _update_incident(self, event: LanGuardEvent) -> None:
        incident = self.incidents.get(event.incident_id)
        detected_at = event.detected_at
        if incident is None:
            # MQTT keeps order per topic only: a state that is newer than this event and
            # no longer lists its incident has already closed it, so do not reopen it.
            state = self.agent_state
            if (
                state is not None
                and parse_timestamp(state["updated_at"]) >= detected_at
                and event.incident_id not in {i["incident_id"] for i in state["incidents"]}
            ):
                return
            incident = Incident(event.incident_id, event.level, dict(event.source))
            self.incidents[event.incident_id] = incident
        incident.level = max(incident.level, event.level)
        incident.source = dict(event.source)
        incident.kinds.add(event.kind.value)
        if incident.updated_at is None or detected_at > incident.updated_at:
            incident.updated_at = detected_at
        self.incidents_known = True

    async def _async_notification_action(self, ha_event: Event) -> None:
        """A phone notification button: LAN_GUARD_<NORMAL|ALARM>_<event id>."""
        parsed = notifications.parse_action(ha_event.data.get("action"))
        if parsed is None:
            return
        label, event_id = parsed
        if (event := self.history.get(event_id)) is None:
            # An answer outlives the event history: the classifier kept what it learns from.
            # It knows none of another agent's events (that agent's entry learns those).
            if self.classifier is not None and await self.classifier.async_learn_id(
                event_id, label
            ):
                _LOGGER.info("Event %s labelled %s from a notification", event_id, label.value)
                self.async_update_listeners()
            return
        _LOGGER.info("Event %s labelled %s from a notification", event_id, label.value)
        await self.async_label(event, label)

    # ----------------------------------------------------------------- timers

    @callback
    def _async_refresh_window(self, _now: datetime) -> None:
        self.async_update_listeners()

    def _start_offline_timer(self) -> None:
        if self._offline_timer is None:
            self._offline_timer = async_call_later(
                self.hass,
                self.offline_minutes * 60,
                HassJob(self._async_offline_too_long, cancel_on_shutdown=True),
            )

    @callback
    def _cancel_offline_timer(self) -> None:
        if self._offline_timer is not None:
            self._offline_timer()
            self._offline_timer = None

    @callback
    def _async_offline_too_long(self, _now: datetime) -> None:
        self._offline_timer = None
        issues.async_create_agent_offline(self.hass, self.entry, self.offline_minutes)
