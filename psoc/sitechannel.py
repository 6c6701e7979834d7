"""The PSOC's side of the site channel: signed requests and labels to a site's Home Assistant.

Topics (``schema/site/request.schema.json``, ``schema/site/provider_label.schema.json``):
``sites/<site_id>/lan_guard/<agent_id>/site/request`` and ``.../site/provider_label`` on the
PSOC broker, ``<prefix>/<agent_id>/site/...`` at the site once the bridge has carried them.
The integration honours a request only when its owner allowed the provider to act, answers
on ``site/request/result``, and feeds a provider label to its classifier.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from psoc import signatures, topics
from psoc.ingest.worker import BrokerSettings

REQUEST_ACTIONS = ("start_evacuation", "stop_evacuation")


def request_payload(
    agent_id: str,
    action: str,
    *,
    incident_id: str,
    culprit: dict[str, str | None] | None,
    reason: str,
    operator: str,
    request_id: str | None = None,
) -> dict[str, Any]:
    if action not in REQUEST_ACTIONS:
        raise ValueError(f"unknown request {action!r}")
    return {
        "schema": 1,
        "id": request_id or secrets.token_hex(16),
        "agent_id": agent_id,
        "action": action,
        "incident_id": incident_id,
        "culprit": culprit,
        "reason": reason[:512],
        "operator": operator[:80],
    }


def label_payload(agent_id: str, event_id: str, label: str, operator: str) -> dict[str, Any]:
    if label not in ("normal", "alarm"):
        raise ValueError(f"unknown label {label!r}")
    return {
        "schema": 1,
        "id": secrets.token_hex(16),
        "agent_id": agent_id,
        "event_id": event_id,
        "label": label,
        "operator": operator[:80],
    }


class SiteChannel:
    """Publishes signed payloads to sites over its own MQTT connection (the console's)."""

    def __init__(self, broker: BrokerSettings, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._client = broker.client()
        self._connected = threading.Event()
        self._client.on_connect = lambda *args: self._connected.set()
        self._client.connect_async(broker.host, broker.port, keepalive=30)
        self._client.loop_start()

    def send(
        self,
        site_id: str,
        key: bytes,
        sub: str,
        payload: dict[str, Any],
        timeout: float = 5.0,
        *,
        retain: bool = False,
    ) -> None:
        """Sign ``payload`` for the site's agent topic ``sub`` and publish it (QoS 1, retained
        when asked: a state the site needs whenever it connects, like the global model);
        raises ``TimeoutError`` when the broker is not there to take it."""
        if sub not in topics.INBOUND:
            raise ValueError(f"{sub!r} is not a topic the PSOC may send to a site")
        agent_id = str(payload["agent_id"])
        signed = signatures.sign(payload, key, agent_id, sub, self._clock())
        if not self._connected.wait(timeout):
            raise TimeoutError("not connected to the PSOC broker")
        info = self._client.publish(
            topics.agent_topic(site_id, agent_id, sub),
            json.dumps(signed, separators=(",", ":")),
            qos=1,
            retain=retain,
        )
        info.wait_for_publish(timeout)
        if not info.is_published():
            raise TimeoutError("the PSOC broker did not acknowledge the request")

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
