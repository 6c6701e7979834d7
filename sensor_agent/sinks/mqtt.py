"""MQTT sink: the agent's side of the MQTT contract (``docs/architecture.md``, ``schema/``).

- Events go through the durable event store (``Outbox``) first: it gives each its ``seq``
  and ``epoch``; a row is published only once it is on disk, and stays pending until the
  broker's PUBACK (QoS 1), so a broker outage or an agent restart loses nothing. Events are
  sent in seq order and signed at publish time (fresh ``ts``) when a shared key is set.
  Acknowledged events are kept for a while: a ``replay`` command (handled by the command
  handler, ``sensor_agent.redelivery``) makes them pending again, and they go out once more.
- ``status`` is ``online`` (retained) while connected and ``offline`` as the last will;
  ``info``/``state``/``hosts``/``quarantine`` are retained and re-published on reconnect.
  ``state`` carries the store's ``epoch``, ``last_seq`` and ``oldest_seq`` as of publishing,
  so a receiver can tell what it missed.
- Every payload is signed (format 2, ``sensor_agent.signing``) for this agent and its topic.
- Commands arriving on ``<prefix>/<agent_id>/command`` go to a handler callable; its result
  (or an error result when it fails) is published on ``.../command/result``.

One supervisor thread owns the connection. Each connection is a fresh paho client (network
thread via ``loop_start``, no automatic reconnect inside paho), so when a connection dies the
events it had in flight are simply sent again, from the store, in order and freshly signed,
on the next one; receivers de-duplicate on the event ``seq`` (and ``id``). Reconnects back off
exponentially. A broker that is down at start-up is not an error: events wait in the store.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from sensor_agent import safejson
from sensor_agent.contract import (
    DEFAULT_TOPIC_PREFIX,
    RETAINED_TOPICS,
    STATUS_OFFLINE,
    STATUS_ONLINE,
    TOPIC_COMMAND,
    TOPIC_COMMAND_RESULT,
    TOPIC_EVENT,
    TOPIC_STATE,
    TOPIC_STATUS,
)
from sensor_agent.formats import default_agent_id
from sensor_agent.outbox import DEFAULT_KEEP_ROWS, DEFAULT_KEEP_S, DEFAULT_MAX_ROWS, Outbox
from sensor_agent.signing import sign
from sensor_agent.sinks import RetainedTopic

_LOGGER = logging.getLogger(__name__)
_PAHO_LOGGER = logging.getLogger(f"{__name__}.paho")

CommandHandler = Callable[[bytes], dict[str, Any]]
"""Turns a raw command payload into a command_result payload (``sensor_agent.commands``)."""

_AGENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_MAX_COMMAND_BYTES = 65_536
_INFLIGHT_MAX = 20  # events handed to paho and not yet acknowledged, per connection
_SYNC_INTERVAL_S = 1.0  # while the broker is away: stored events to disk at least this often
_RETAINED_TOPICS: tuple[str, ...] = RETAINED_TOPICS


def default_outbox_path() -> str:
    """systemd's ``$STATE_DIRECTORY``, else /var/lib (root) or ~/.local/state (a user)."""
    state_dir = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    if state_dir:
        return str(Path(state_dir) / "outbox.sqlite")
    if os.geteuid() == 0:
        return "/var/lib/lan-guard-agent/outbox.sqlite"
    return str(Path.home() / ".local/state/lan-guard-agent/outbox.sqlite")


@dataclass(frozen=True)
class TlsSettings:
    """TLS to the broker. Without ``ca_file`` the system's CA store verifies the broker."""

    ca_file: str | None = None
    cert_file: str | None = None  # client certificate, for brokers that require one
    key_file: str | None = None
    insecure: bool = False  # skip the host-name check (never the CA check)


@dataclass(frozen=True)
class MqttSettings:
    """How to reach the broker and where the agent's topics live."""

    host: str
    port: int = 1883
    username: str | None = None
    password: str | None = None
    tls: TlsSettings | None = None
    topic_prefix: str = DEFAULT_TOPIC_PREFIX
    agent_id: str = field(default_factory=default_agent_id)
    client_id: str | None = None  # default: lan-guard-<agent_id>
    keepalive: int = 30
    shared_key: str | None = None  # signs every payload (HMAC-SHA256) when set
    outbox_path: str = field(default_factory=default_outbox_path)
    outbox_max: int = DEFAULT_MAX_ROWS
    replay_events: int = DEFAULT_KEEP_ROWS  # acknowledged events kept for replay ...
    replay_age_s: float = DEFAULT_KEEP_S  # ... and for at most this long
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0
    connect_timeout_s: float = 5.0
    flush_timeout_s: float = 2.0  # on close: how long to wait for pending events to be sent

    def __post_init__(self) -> None:
        problems = []
        if not self.host:
            problems.append("host: must not be empty")
        if not 0 < self.port < 65536:
            problems.append(f"port: {self.port} is not a TCP port")
        if not _AGENT_ID.match(self.agent_id):
            problems.append(f"agent_id: {self.agent_id!r} must be 1-64 of A-Z a-z 0-9 _ -")
        if not self.topic_prefix or any(c in self.topic_prefix for c in "#+\0"):
            problems.append(f"topic_prefix: {self.topic_prefix!r} must be a non-empty topic")
        if self.keepalive < 5:
            problems.append(f"keepalive: {self.keepalive} s is below 5 s")
        if self.password is not None and self.username is None:
            problems.append("password: set without a username")
        if self.shared_key is not None and len(self.shared_key) < 16:
            problems.append("shared_key: use at least 16 characters")
        if self.outbox_max < 1:
            problems.append(f"outbox_max: {self.outbox_max} must be at least 1")
        if self.replay_events < 0 or self.replay_age_s < 0:
            problems.append("replay_events/replay_age_s: must not be negative")
        if not 0 < self.reconnect_min_s <= self.reconnect_max_s:
            problems.append("reconnect_min_s/reconnect_max_s: need 0 < min <= max")
        if problems:
            raise ValueError("invalid MQTT settings: " + "; ".join(problems))

    def topic(self, name: str) -> str:
        """``<prefix>/<agent_id>/<name>``."""
        return f"{self.topic_prefix}/{self.agent_id}/{name}"

    def open_outbox(self) -> Outbox:
        """The event store these settings describe (``OutboxError`` when unusable)."""
        return Outbox(
            self.outbox_path,
            self.outbox_max,
            keep_rows=self.replay_events,
            keep_s=self.replay_age_s,
        )


class MqttConnectionError(RuntimeError):
    """The broker could not be reached or refused the connection (the message says why)."""


def _tls_context(tls: TlsSettings) -> ssl.SSLContext:
    """Build the TLS context once, so a wrong file is reported at start-up."""
    try:
        context = ssl.create_default_context(cafile=tls.ca_file)
        if tls.cert_file:
            context.load_cert_chain(tls.cert_file, tls.key_file)
    except (OSError, ssl.SSLError) as err:
        raise ValueError(f"invalid MQTT TLS settings: {err}") from err
    if tls.insecure:
        context.check_hostname = False
    return context


def _command_id(raw: bytes) -> str:
    """The command's id if the payload is JSON with a usable one, else ''."""
    try:
        command = safejson.loads(raw, max_depth=8)  # json.loads alone recurses per level
    except (ValueError, UnicodeDecodeError):
        return ""
    value = command.get("id") if isinstance(command, dict) else None
    return value if isinstance(value, str) and len(value) <= 64 else ""


def error_result(command_id: str, error: str) -> dict[str, Any]:
    """A command_result payload that reports a failure."""
    return {"id": command_id, "ok": False, "error": error[:512]}


def _no_handler(raw: bytes) -> dict[str, Any]:
    return error_result(_command_id(raw), "this agent accepts no commands (no enforcer set up)")


def state_with_delivery(state: Mapping[str, Any], store: Outbox) -> dict[str, Any]:
    """The ``state`` payload as published: with the store's ``epoch``, ``last_seq`` and
    ``oldest_seq`` at this moment."""
    return {**state, **store.delivery()}


class _Connection:
    """State of one broker connection (one paho client); touched under the sink's lock."""

    def __init__(self, client: paho.Client) -> None:
        self.client = client
        self.connack: ReasonCode | None = None
        self.subscribed = False  # the broker acknowledged the command subscription
        self.closed = False
        self.inflight: dict[int, int | None] = {}  # mid -> outbox seq (None: not an event)
        self.early_acks: set[int] = set()  # PUBACKs that beat the registration of their mid


class MqttSink:
    """``Sink`` that publishes over MQTT; see the module doc. Thread-safe."""

    def __init__(
        self,
        settings: MqttSettings,
        command_handler: CommandHandler | None = None,
        clock: Callable[[], float] = time.time,
        outbox: Outbox | None = None,
    ) -> None:
        """``outbox``: the event store, when the command handler needs it too (replays);
        by default the sink opens the one its settings describe."""
        self.settings = settings
        self._tls = _tls_context(settings.tls) if settings.tls else None
        self._key = settings.shared_key.encode("utf-8") if settings.shared_key else None
        self._handler = command_handler or _no_handler
        self._clock = clock
        self._outbox = outbox if outbox is not None else settings.open_outbox()
        self._cond = threading.Condition()
        self._retained: dict[RetainedTopic, Mapping[str, Any]] = {}
        self._dirty: set[RetainedTopic] = set()
        self._conn: _Connection | None = None
        self._connected = threading.Event()
        self._stop = threading.Event()
        self._closed = False
        self._published = 0
        self._acknowledged = 0
        self._connections = 0
        self._failures = 0
        self.last_error: str | None = None
        """Why the last connection attempt failed or the connection was lost (None: fine)."""
        self._thread = threading.Thread(
            target=self._run, name=f"lan-guard-mqtt-{settings.agent_id}", daemon=True
        )
        self._thread.start()

    # -- Sink protocol (called from the pipeline's thread) -------------------------------

    def event(self, event: Mapping[str, Any]) -> None:
        """Store the event durably, then let the supervisor publish it."""
        if self._closed:
            raise RuntimeError("MqttSink is closed")
        self._outbox.append(event)
        with self._cond:
            self._cond.notify_all()

    def retained(self, topic: RetainedTopic, payload: Mapping[str, Any]) -> None:
        """Publish (now, and after every reconnect) the latest payload of a retained topic."""
        if topic not in _RETAINED_TOPICS:
            raise ValueError(f"not a retained topic: {topic!r}")
        with self._cond:
            self._retained[topic] = dict(payload)
            self._dirty.add(topic)
            self._cond.notify_all()

    def close(self) -> None:
        """Send what can be sent within ``flush_timeout_s``, say ``offline``, disconnect."""
        if self._closed:
            return
        with self._cond:
            self._stop.set()
            self._cond.notify_all()
        s = self.settings
        self._thread.join(2 * s.connect_timeout_s + s.flush_timeout_s + 5)
        if self._thread.is_alive():
            _LOGGER.error("MQTT supervisor did not stop in time")
        self._closed = True
        if self._outbox.pending:
            _LOGGER.warning(
                "%d event(s) wait in the outbox %s for the next start",
                self._outbox.pending,
                self._outbox.path,
            )
        self._outbox.close()

    # -- observation ----------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def delivery(self) -> dict[str, Any]:
        """The event store's ``epoch``, ``last_seq`` and ``oldest_seq`` (as in ``state``)."""
        return self._outbox.delivery()

    def counters(self) -> dict[str, int]:
        """published / acknowledged events, pending, kept and dropped outbox rows,
        reconnects."""
        return {
            "published": self._published,
            "acknowledged": self._acknowledged,
            "pending": self._outbox.pending,
            "kept": self._outbox.kept,
            "dropped": self._outbox.dropped,
            "reconnects": max(0, self._connections - 1),
        }

    def wait_connected(self, timeout: float) -> None:
        """Block until connected; raise ``MqttConnectionError`` with the reason as soon as a
        connection attempt fails (wrong password, TLS, refused), or on timeout."""
        with self._cond:
            failures = self._failures
            self._cond.wait_for(
                lambda: self._connected.is_set() or self._failures > failures, timeout
            )
        if not self._connected.is_set():
            reason = self.last_error or "no answer from the broker"
            raise MqttConnectionError(
                f"not connected to {self.settings.host}:{self.settings.port} "
                f"after {timeout:g} s: {reason}"
            )

    # -- supervisor thread -------------------------------------------------------------

    def _run(self) -> None:
        delay = self.settings.reconnect_min_s
        while True:  # at least one attempt, even if close() came first (a short replay)
            if self._session():
                delay = self.settings.reconnect_min_s
            if self._stop.is_set():
                break
            # Back off, with jitter so many agents do not stampede. Meanwhile the stored
            # events go to disk every second: a power cut during a broker outage must not
            # lose what was stored (nor hand its seqs to other events after the restart).
            wake = time.monotonic() + delay * random.uniform(0.5, 1.0)
            while not self._stop.is_set() and (left := wake - time.monotonic()) > 0:
                self._outbox.sync()
                with self._cond:
                    self._cond.wait_for(self._stop.is_set, min(left, _SYNC_INTERVAL_S))
            delay = min(delay * 2, self.settings.reconnect_max_s)

    def _fail(self, message: str) -> None:
        if message != self.last_error:
            _LOGGER.error("%s (retrying with back-off)", message)
        with self._cond:
            self.last_error = message
            self._failures += 1
            self._cond.notify_all()

    def _new_client(self) -> paho.Client:
        s = self.settings
        client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=s.client_id or f"lan-guard-{s.agent_id}",
            clean_session=True,
            protocol=paho.MQTTv311,
            reconnect_on_failure=False,  # the supervisor reconnects, with a fresh client
        )
        client.suppress_exceptions = True  # logged (below) instead of ending the network loop
        client.enable_logger(_PAHO_LOGGER)
        client.connect_timeout = s.connect_timeout_s
        client.max_inflight_messages_set(_INFLIGHT_MAX + 10)  # + room for retained/results
        client.will_set(s.topic(TOPIC_STATUS), STATUS_OFFLINE, qos=1, retain=True)
        if s.username is not None:
            client.username_pw_set(s.username, s.password)
        if self._tls is not None:
            client.tls_set_context(self._tls)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    def _session(self) -> bool:
        """Connect, serve until the connection ends; True if the broker accepted us."""
        s = self.settings
        client = self._new_client()
        conn = _Connection(client)
        client.user_data_set(conn)
        try:
            client.connect(s.host, s.port, keepalive=s.keepalive)
        except (OSError, ValueError) as err:  # refused, unreachable, TLS failure, bad host
            self._fail(f"cannot connect to MQTT broker {s.host}:{s.port}: {err}")
            return False
        client.loop_start()
        try:
            with self._cond:
                # Even when closing: a replay closes right after its last event, which must
                # still be delivered (the flush after connecting is bounded too).
                self._cond.wait_for(
                    lambda: conn.connack is not None or conn.closed, s.connect_timeout_s
                )
                accepted = conn.connack is not None and not conn.connack.is_failure
                if conn.connack is not None and conn.connack.is_failure:
                    self._fail(
                        f"MQTT broker {s.host}:{s.port} refused the connection: {conn.connack}"
                    )
                elif conn.connack is None:
                    what = "closed the connection on" if conn.closed else "did not answer"
                    self._fail(f"MQTT broker {s.host}:{s.port} {what} CONNECT")
                if accepted:
                    self._conn = conn
            if accepted:
                self._serve(conn)
            return accepted
        finally:
            with self._cond:
                self._conn = None
                self._connected.clear()
            client.disconnect()
            client.loop_stop()

    def _serve(self, conn: _Connection) -> None:
        """Publish status, retained payloads and events until the connection ends."""
        s = self.settings
        self._connections += 1
        _LOGGER.info("connected to MQTT broker %s:%d", s.host, s.port)
        self.last_error = None
        # Status and retained payloads first: the broker handles one connection's packets in
        # order, so once the SUBACK is back they are stored for any later subscriber.
        self._publish(conn, TOPIC_STATUS, STATUS_ONLINE.encode(), retain=True)
        with self._cond:
            retained = [(t, self._retained[t]) for t in sorted(self._retained)]
            self._dirty.clear()
        for topic, payload in retained:
            self._publish(conn, topic, self._encode(topic, payload), retain=True)
        conn.client.subscribe(s.topic(TOPIC_COMMAND), qos=1)
        with self._cond:
            # "connected" means commands can arrive: wait for the subscription's SUBACK.
            self._cond.wait_for(lambda: conn.subscribed or conn.closed, s.connect_timeout_s)
            if conn.subscribed:
                self._connected.set()
                self._cond.notify_all()
            elif not conn.closed:
                _LOGGER.warning("no SUBACK for %s; commands may not arrive", s.topic(TOPIC_COMMAND))
        deadline = float("inf")  # set when close() is called
        while True:
            with self._cond:
                if self._stop.is_set() and deadline == float("inf"):
                    deadline = time.monotonic() + s.flush_timeout_s
                self._cond.wait_for(
                    lambda: self._has_work(conn), min(deadline - time.monotonic(), 3600.0)
                )
                if conn.closed:
                    self._fail(f"lost the connection to MQTT broker {s.host}:{s.port}")
                    return
                if self._stop.is_set() and (self._flushed(conn) or time.monotonic() >= deadline):
                    break
                retained = [(t, self._retained[t]) for t in sorted(self._dirty)]
                self._dirty.clear()
                sending = {seq for seq in conn.inflight.values() if seq is not None}
            for topic, payload in retained:
                self._publish(conn, topic, self._encode(topic, payload), retain=True)
            room = _INFLIGHT_MAX - len(sending)
            if room > 0:
                # The oldest pending rows that are not in flight: new events, those a broken
                # connection left unacknowledged, and those a replay made pending again.
                entries = [
                    e for e in self._outbox.after(0, room + len(sending)) if e.seq not in sending
                ][:room]
                if entries and entries[-1].seq > self._outbox.synced_seq:
                    self._outbox.sync()  # never publish a seq a power cut could hand out again
                for entry in entries:
                    body = self._encode(TOPIC_EVENT, entry.payload)
                    self._publish(conn, TOPIC_EVENT, body, seq=entry.seq)
                    self._published += 1
        self._say_goodbye(conn)

    def _has_work(self, conn: _Connection) -> bool:
        """Called under the lock: is there something for the supervisor to do?"""
        if conn.closed or self._stop.is_set() or self._dirty:
            return True
        in_flight = self._events_in_flight(conn)
        return self._outbox.pending > in_flight and in_flight < _INFLIGHT_MAX

    def _flushed(self, conn: _Connection) -> bool:
        return self._outbox.pending == 0 and not self._dirty and not conn.inflight

    @staticmethod
    def _events_in_flight(conn: _Connection) -> int:
        return sum(1 for seq in conn.inflight.values() if seq is not None)

    def _say_goodbye(self, conn: _Connection) -> None:
        """A clean stop: ``offline`` replaces the retained ``online`` (no will is sent)."""
        info = conn.client.publish(
            self.settings.topic(TOPIC_STATUS), STATUS_OFFLINE.encode(), qos=1, retain=True
        )
        try:
            info.wait_for_publish(timeout=2.0)
        except (RuntimeError, ValueError) as err:
            _LOGGER.warning("could not publish status offline: %s", err)

    def _encode(self, topic: str, payload: Mapping[str, Any]) -> bytes:
        """The bytes published on sub-topic ``topic``: state with the store's delivery
        fields, signed for this agent and topic when a key is set."""
        if topic == TOPIC_STATE:
            payload = state_with_delivery(payload, self._outbox)
        if self._key is not None:
            payload = sign(
                payload, self._key, self._clock(), agent_id=self.settings.agent_id, topic=topic
            )
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    def _publish(
        self,
        conn: _Connection,
        name: str,
        body: bytes,
        retain: bool = False,
        seq: int | None = None,
    ) -> None:
        """QoS 1 publish; remember its mid so its PUBACK can be matched (events: by seq)."""
        info = conn.client.publish(self.settings.topic(name), body, qos=1, retain=retain)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            _LOGGER.warning("publish on %s failed: %s", name, paho.error_string(info.rc))
        with self._cond:
            if info.mid in conn.early_acks:
                conn.early_acks.discard(info.mid)
            else:
                conn.inflight[info.mid] = seq
                return
        if seq is not None:
            self._acknowledge(seq)

    def _acknowledge(self, seq: int) -> None:
        self._outbox.acknowledge(seq)
        with self._cond:
            self._acknowledged += 1
            # The retained state counted the events still waiting when it was built; once
            # they are all delivered it says so, not "pending" until the next state.
            state = self._retained.get("state") or {}
            counters = state.get("counters")
            if self._outbox.pending == 0 and counters and counters.get("outbox_pending"):
                self._retained["state"] = {**state, "counters": {**counters, "outbox_pending": 0}}
                self._dirty.add("state")
                self._cond.notify_all()

    # -- paho callbacks (the connection's network thread) ------------------------------

    def _on_connect(
        self,
        client: paho.Client,
        conn: _Connection,
        flags: paho.ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        with self._cond:
            conn.connack = reason
            self._cond.notify_all()

    def _on_subscribe(
        self,
        client: paho.Client,
        conn: _Connection,
        mid: int,
        reasons: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        with self._cond:
            if any(reason.is_failure for reason in reasons):
                _LOGGER.error(
                    "the broker refused the subscription to %s", self.settings.topic(TOPIC_COMMAND)
                )
            conn.subscribed = True
            self._cond.notify_all()

    def _on_disconnect(
        self,
        client: paho.Client,
        conn: _Connection,
        flags: paho.DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        with self._cond:
            conn.closed = True
            self._connected.clear()
            self._cond.notify_all()

    def _on_publish(
        self,
        client: paho.Client,
        conn: _Connection,
        mid: int,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        with self._cond:
            if mid not in conn.inflight:
                conn.early_acks.add(mid)
                return
            seq = conn.inflight[mid]
        # Acknowledged in the store before it leaves ``inflight``: in between, the supervisor
        # would take the row for one that still waits to be sent, and send it twice.
        if seq is not None:
            self._acknowledge(seq)
        with self._cond:
            conn.inflight.pop(mid, None)
            self._cond.notify_all()

    def _on_message(self, client: paho.Client, conn: _Connection, msg: paho.MQTTMessage) -> None:
        raw = bytes(msg.payload)
        result = self._handle_command(raw)
        try:
            body = self._encode(TOPIC_COMMAND_RESULT, result)
        except (TypeError, ValueError) as err:
            _LOGGER.error("command handler returned a result that is not JSON: %s", err)
            body = self._encode(
                TOPIC_COMMAND_RESULT, error_result(_command_id(raw), "internal error")
            )
        self._publish(conn, TOPIC_COMMAND_RESULT, body)
        with self._cond:  # a replay made events pending again: the supervisor sends them
            self._cond.notify_all()

    def _handle_command(self, raw: bytes) -> dict[str, Any]:
        """Run the handler; any failure becomes an error result (never an exception)."""
        if len(raw) > _MAX_COMMAND_BYTES:
            return error_result("", f"command larger than {_MAX_COMMAND_BYTES} bytes")
        try:
            result = self._handler(raw)
        except Exception as err:
            _LOGGER.exception("command handler failed")
            return error_result(_command_id(raw), f"internal error: {type(err).__name__}: {err}")
        if not isinstance(result, dict) or not {"id", "ok", "error"} <= result.keys():
            _LOGGER.error("command handler returned a malformed result: %r", result)
            return error_result(_command_id(raw), "internal error: malformed result")
        return result
