"""Intake of the owner's labelled examples from the site's own broker.

Topics, under the agent's own ``<prefix>/<agent_id>/``: ``training/example`` (one labelled
example, :func:`.examples.parse_example`), ``training/delete`` (forget them all), and the
agent's answer ``training/status`` (retained: how many examples it keeps, what it refused).
Every payload is signed by the integration with the site's shared key for this agent and that
sub-topic (signature format 2) and checked for freshness and replay, so another device on the
LAN can neither plant labels nor wipe them. No bridge forwards ``training/#`` (the PSOC's
bridge configuration names it as never crossing): the examples stay at the site.

:class:`Intake` is pure (payload bytes and a clock in, a decision out); :func:`serve` is the
MQTT loop around it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from sensor_agent import safejson, signing
from sensor_agent.federation.examples import (
    DELETE_TOPIC,
    EXAMPLE_TOPIC,
    STATUS_TOPIC,
    ExampleError,
    ExampleStore,
    parse_example,
)
from sensor_agent.sinks.mqtt import MqttSettings, _tls_context

_LOGGER = logging.getLogger(__name__)

# An example is a few hundred numbers at most; a delete request is tiny.
MAX_PAYLOAD_BYTES = 16_384


class Intake:
    """Checks and stores what arrives on the training topics; counts every refusal."""

    def __init__(
        self,
        store: ExampleStore,
        key: bytes,
        agent_id: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.agent_id = agent_id
        self._clock = clock
        self._verifiers = {
            sub: signing.Verifier(key, agent_id=agent_id, topic=sub, max_ids=10_000)
            for sub in (EXAMPLE_TOPIC, DELETE_TOPIC)
        }
        self.accepted = 0
        self.deleted = 0
        self.refused: Counter[str] = Counter()

    def handle(self, sub: str, raw: bytes) -> str:
        """Take one message on ``<prefix>/<agent_id>/<sub>``; returns what was done
        (``stored``, ``deleted``) or why it was refused (logged and counted)."""
        try:
            verifier = self._verifiers.get(sub)
            if verifier is None:
                raise ExampleError(f"not a training topic: {sub!r}")
            if len(raw) > MAX_PAYLOAD_BYTES:
                raise ExampleError(f"payload of {len(raw)} bytes (limit {MAX_PAYLOAD_BYTES})")
            payload = safejson.loads(raw, max_depth=4)
            if not isinstance(payload, dict):
                raise ExampleError("payload is not a JSON object")
            now = self._clock()
            verifier.verify(payload, now)
            if sub == DELETE_TOPIC:
                self.deleted += self.store.delete_all()
                _LOGGER.info("training examples deleted on the owner's request")
                return "deleted"
            self.store.add(parse_example(payload), now)
            self.accepted += 1
            return "stored"
        except (ValueError, signing.SignatureError) as err:
            reason = type(err).__name__
            # A flood of bad payloads must not flood the log: the first of each kind is a
            # warning, the rest are counted (training/status) and logged at debug level.
            level = logging.DEBUG if self.refused[reason] else logging.WARNING
            self.refused[reason] += 1
            _LOGGER.log(level, "training payload on %r refused: %s", sub, err)
            return f"refused: {err}"

    def status(self) -> dict[str, Any]:
        """The retained ``training/status`` payload (before signing)."""
        return {
            "schema": 1,
            "agent_id": self.agent_id,
            "examples": self.store.count(),
            "accepted": self.accepted,
            "deleted": self.deleted,
            "refused": sum(self.refused.values()),
        }


def serve(settings: MqttSettings, intake: Intake, stop: threading.Event) -> None:
    """Subscribe to this agent's training topics until ``stop``; after each message, publish
    the signed, retained ``training/status``. paho reconnects by itself."""
    if settings.shared_key is None:
        raise ValueError("training examples need mqtt.shared_key (they must be signed)")
    key = settings.shared_key.encode()
    client = paho.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        # A kept session: examples and a delete request sent while this process is away wait
        # at the broker (QoS 1) instead of being lost.
        client_id=f"lan-guard-{settings.agent_id}-federation",
        clean_session=False,
        protocol=paho.MQTTv311,
    )
    client.suppress_exceptions = True  # one bad message never ends the loop
    if settings.username is not None:
        client.username_pw_set(settings.username, settings.password)
    if settings.tls is not None:
        client.tls_set_context(_tls_context(settings.tls))
    client.reconnect_delay_set(1, max(1, int(settings.reconnect_max_s)))
    base = f"{settings.topic_prefix}/{settings.agent_id}/"

    def publish_status() -> None:
        payload = signing.sign(
            intake.status(), key, time.time(), agent_id=settings.agent_id, topic=STATUS_TOPIC
        )
        client.publish(base + STATUS_TOPIC, json.dumps(payload), qos=1, retain=True)

    def on_connect(client: paho.Client, *_: Any) -> None:
        client.subscribe([(base + EXAMPLE_TOPIC, 1), (base + DELETE_TOPIC, 1)])
        publish_status()

    def on_message(_client: paho.Client, _data: Any, message: paho.MQTTMessage) -> None:
        done = intake.handle(message.topic.removeprefix(base), bytes(message.payload))
        if not done.startswith("refused"):  # refusals show at the next change, not one each
            publish_status()

    client.on_connect = on_connect
    client.on_message = on_message
    client.connect_async(settings.host, settings.port, keepalive=settings.keepalive)
    client.loop_start()
    try:
        stop.wait()
    finally:
        client.disconnect()
        client.loop_stop()
