"""A PSOC worker: reads every site's topics from the PSOC broker and stores them.

Several workers share the load through one MQTT shared subscription
(``$share/<group>/sites/+/lan_guard/+/<sub>``): the broker hands each message to one of
them. A message is acknowledged (PUBACK, paho's manual acks) only after the transaction
that stored it committed, and each worker keeps a persistent session under a fixed client
id, so a worker that dies gets its unacknowledged messages again when it comes back; the
store's idempotent inserts make a message delivered twice harmless.

Retained payloads (state, info, consent, ...) are not sent to shared subscriptions, so at
each (re)connection a worker also subscribes plainly to the retained topics for a few
seconds, which brings the current copies, and then drops that subscription; live copies
come through the shared subscription, once. (A live message on a retained topic in those
seconds comes twice; retained facts are newer-wins, so that is harmless.) MQTT 3.1.1: its
per-message cost in paho is about half that of MQTT 5's properties.

Three threads, one direction: paho's loop owns the MQTT connection and queues what comes
in; a decoder takes it in batches and checks it (``psoc.ingest.decode``: bounds, contract,
the site's signature); a writer stores each checked batch in one transaction and only then
acknowledges it. The decoder checks the next batch while the writer waits for the database
(at most one checked batch waits for the writer). A bad message is refused and counted,
never stops a loop; a database outage holds the batch (unacknowledged, so nothing is lost)
and retries.
"""

from __future__ import annotations

import json
import logging
import queue
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError

from psoc import signatures, topics
from psoc.ingest import decode as d
from psoc.store import IngestResult, ReplayRequest, Store

_LOGGER = logging.getLogger(__name__)

SNAPSHOT_S = 3.0  # how long the plain subscription to retained topics is held
_CONFLICTS = ("40001", "40P01")  # serialization failure, deadlock: PostgreSQL rolled back


@dataclass(frozen=True)
class BrokerSettings:
    """How a PSOC process reaches the PSOC broker."""

    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None  # TLS when set
    group: str = "lan-guard-psoc"

    def client(self, client_id: str = "") -> paho.Client:
        """A paho client for this broker: with an id, a persistent session (the broker keeps
        its subscriptions and queued messages while it is away; ``max_inflight_messages`` in
        the broker's configuration bounds what is unacknowledged); without, a clean one."""
        client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=not client_id,
            protocol=paho.MQTTv311,
        )
        client.suppress_exceptions = True
        if self.username is not None:
            client.username_pw_set(self.username, self.password)
        if self.ca_file:
            client.tls_set_context(ssl.create_default_context(cafile=self.ca_file))
        client.reconnect_delay_set(1, 10)
        return client


def replay_command(request: ReplayRequest, key: bytes, now: float) -> bytes:
    """The agent's ``replay`` command (``schema/command.schema.json``) for ``request``, signed
    for that agent's ``command`` topic. The agent answers for its current event store: its
    result names the store (``epoch``), and a new store is followed from its ``state``."""
    payload: dict[str, object] = {
        "id": request.command_id,
        "action": "replay",
        "after_seq": request.after_seq,
    }
    if request.through_seq is not None:
        payload["through_seq"] = request.through_seq
    signed = signatures.sign(payload, key, request.agent_id, "command", now)
    return json.dumps(signed, separators=(",", ":")).encode()


@dataclass(frozen=True)
class _Message:
    topic: str
    payload: bytes
    mid: int
    qos: int
    retain: bool


@dataclass(frozen=True)
class _Checked:
    """A batch through the decoder: what to store, what was refused, what to acknowledge."""

    messages: list[_Message]
    records: list[d.Decoded]
    refused: Counter[tuple[str, str]]


class _Stopping(Exception):
    """The worker stops while waiting for the database: the batch stays unacknowledged."""


class Worker:
    """One worker process's MQTT intake and writer (see the module doc)."""

    def __init__(
        self,
        store: Store,
        broker: BrokerSettings,
        *,
        client_id: str = "lan-guard-psoc-worker",
        clock: Callable[[], float] = time.time,
        batch_max: int = 500,
        batch_wait_s: float = 0.05,
        gap_interval_s: float = 2.0,
    ) -> None:
        self.store = store
        self.broker = broker
        self._clock = clock
        self._batch_max = batch_max
        self._batch_wait_s = batch_wait_s
        self._gap_interval_s = gap_interval_s
        # bounded by the broker: it sends at most max_inflight_messages unacknowledged
        self._queue: queue.Queue[_Message] = queue.Queue()
        self._checked: queue.Queue[_Checked] = queue.Queue(maxsize=1)
        self._stop = threading.Event()
        self._keys: dict[str, bytes] = {}
        self._keys_at = 0.0
        # a fixed id: the broker keeps this worker's session and unacknowledged messages
        self._client = broker.client(client_id)
        self._client.manual_ack_set(True)
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe
        self._decoder = threading.Thread(target=self._decode_loop, name="psoc-decoder", daemon=True)
        self._writer = threading.Thread(target=self._write_loop, name="psoc-writer", daemon=True)
        self._gapper = threading.Thread(target=self._gap_loop, name="psoc-gaps", daemon=True)
        self.connected = threading.Event()
        self.stored = 0
        self.rejected: Counter[tuple[str, str]] = Counter()

    # -- life cycle --------------------------------------------------------------------

    def start(self) -> Worker:
        self._client.connect_async(
            self.broker.host,
            self.broker.port,
            keepalive=30,
        )
        self._client.loop_start()
        self._decoder.start()
        self._writer.start()
        self._gapper.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._decoder.join(10)
        self._writer.join(10)
        self._gapper.join(10)
        self._client.disconnect()
        self._client.loop_stop()

    def run(self, stop: threading.Event) -> None:
        """Serve until ``stop`` is set (the CLI's signal handler sets it)."""
        self.start()
        stop.wait()
        self.stop()

    # -- MQTT side -----------------------------------------------------------------------

    def _on_connect(
        self,
        client: paho.Client,
        userdata: object,
        flags: paho.ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            _LOGGER.error("the PSOC broker refused the connection: %s", reason)
            return
        group = self.broker.group
        shared = [topics.agent_topic("+", "+", sub) for sub in topics.OUTBOUND]
        shared.append(topics.bridge_topic("+"))
        client.subscribe([(f"$share/{group}/{t}", 1) for t in shared])
        snapshot = [topics.agent_topic("+", "+", sub) for sub in sorted(topics.RETAINED)]
        snapshot.append(topics.bridge_topic("+"))
        client.subscribe([(t, 1) for t in snapshot])
        timer = threading.Timer(SNAPSHOT_S, client.unsubscribe, args=(snapshot,))
        timer.daemon = True
        timer.start()
        _LOGGER.info("connected to the PSOC broker %s:%d", self.broker.host, self.broker.port)
        self.connected.set()

    def _on_subscribe(
        self,
        client: paho.Client,
        userdata: object,
        mid: int,
        reasons: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        refused = [reason for reason in reasons if reason.is_failure]
        if refused:
            _LOGGER.error(
                "the PSOC broker refused %d subscription(s): %s", len(refused), refused[0]
            )
        else:
            _LOGGER.info("subscribed to %d topic filters", len(reasons))

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        self._queue.put(_Message(msg.topic, bytes(msg.payload), msg.mid, msg.qos, bool(msg.retain)))

    def publish(self, topic: str, body: bytes) -> None:
        self._client.publish(topic, body, qos=1)

    # -- writer --------------------------------------------------------------------------

    def _decode_loop(self) -> None:
        while not self._stop.is_set():
            batch = self._take()
            if not batch:
                continue
            try:
                checked = self._decode(batch, self._clock())
            except _Stopping:
                return
            while not self._stop.is_set():
                try:
                    self._checked.put(checked, timeout=0.2)
                    break
                except queue.Full:
                    continue

    def _write_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._handle(self._checked.get(timeout=0.2))
            except queue.Empty:
                continue

    def _gap_loop(self) -> None:
        """Sequence checks on their own thread (and connection): they never hold up intake."""
        while not self._stop.wait(self._gap_interval_s):
            self._gaps()

    def _take(self) -> list[_Message]:
        """The next batch: the first message, and whatever else arrives within
        ``batch_wait_s`` (up to ``batch_max``). The wait bounds the added latency; it pays
        for itself many times, since a transaction's fixed cost is far above an event's."""
        try:
            batch = [self._queue.get(timeout=0.2)]
        except queue.Empty:
            return []
        deadline = time.monotonic() + self._batch_wait_s
        while len(batch) < self._batch_max:
            try:
                batch.append(self._queue.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                break
        return batch

    def _site_key(self, site_id: str, now: float) -> bytes | None:
        """The site's key; raises ``Rejected`` for a site the PSOC does not know."""
        if site_id not in self._keys and now - self._keys_at > 2.0:  # a site added meanwhile
            self._keys = self._waiting_out_outages(self.store.site_keys)
            self._keys_at = now
        if site_id not in self._keys:
            raise d.Rejected("unknown_site")
        return self._keys[site_id]

    def _waiting_out_outages(self, read: Callable[[], dict[str, bytes]]) -> dict[str, bytes]:
        delay = 0.5
        while not self._stop.is_set():
            try:
                return read()
            except SQLAlchemyError as err:
                _LOGGER.warning("database unavailable (%s); retrying in %.1f s", err, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, 10.0)
        raise _Stopping

    def _decode(self, batch: list[_Message], now: float) -> _Checked:
        records: list[d.Decoded] = []
        refused: Counter[tuple[str, str]] = Counter()
        for message in batch:
            where = topics.parse(message.topic)
            if where is None or where.sub in topics.INBOUND:
                continue  # not a site's message (our own requests have no business here)
            try:
                records.append(
                    d.decode(where, message.payload, self._site_key(where.site_id, now), now)
                )
            except d.Rejected as err:
                refused[(where.site_id, err.reason)] += 1
                _LOGGER.debug("refused %s: %s", message.topic, err)
            except (ValueError, TypeError, KeyError, RecursionError) as err:
                # a payload the checks did not foresee: refused and counted, the loop goes on
                refused[(where.site_id, "undecodable")] += 1
                _LOGGER.error("could not check %s: %r", message.topic, err)
        return _Checked(batch, records, refused)

    def _handle(self, batch: _Checked) -> None:
        delay = 0.5
        conflicts = 0
        while not self._stop.is_set():
            now = self._clock()
            records, refused = batch.records, batch.refused.copy()
            try:
                result = self.store.ingest(records, now)
            except DBAPIError as err:
                if getattr(err.orig, "sqlstate", None) in _CONFLICTS and conflicts < 5:
                    conflicts += 1  # another transaction won a race: at once, again
                    _LOGGER.info("batch in conflict (%s); again", err.orig)
                    continue
                if err.connection_invalidated or isinstance(err, OperationalError):
                    _LOGGER.warning(
                        "database unavailable (%s); retrying in %.1f s", err.orig, delay
                    )
                    self._stop.wait(delay)
                    delay = min(delay * 2, 10.0)
                    continue
                result = self._one_by_one(records, now, refused)
            except SQLAlchemyError:
                result = self._one_by_one(records, now, refused)
            refused.update(result.rejected)
            try:
                self.store.count(refused)
            except SQLAlchemyError:
                _LOGGER.exception("could not count refusals %s", dict(refused))
            for message in batch.messages:
                self._client.ack(message.mid, message.qos)
            self.stored += result.events_new
            self.rejected.update(refused)
            return
        # stopping: the batch stays unacknowledged and comes back to this session later

    def _one_by_one(
        self, records: list[d.Decoded], now: float, refused: Counter[tuple[str, str]]
    ) -> IngestResult:
        """A batch the database refused as a whole: store what it takes, count the rest."""
        total = IngestResult()
        for record in records:
            try:
                one = self.store.ingest([record], now)
            except SQLAlchemyError as err:
                _LOGGER.error(
                    "store refused a %s from site %s: %s",
                    type(record).__name__,
                    record.site_id,
                    err,
                )
                refused[(record.site_id, "store_error")] += 1
                continue
            total.events_new += one.events_new
            total.rejected.update(one.rejected)
        return total

    def _gaps(self) -> None:
        try:
            requests, lost = self.store.check_gaps(self._clock())
            self.store.count(lost)
        except SQLAlchemyError:
            _LOGGER.exception("sequence check failed")
            return
        for request in requests:
            self._ask_replay(request)

    def _ask_replay(self, request: ReplayRequest) -> None:
        key = self._keys.get(request.site_id) or self.store.site_keys().get(request.site_id)
        if key is None:
            return
        self.publish(
            topics.agent_topic(request.site_id, request.agent_id, "command"),
            replay_command(request, key, self._clock()),
        )
