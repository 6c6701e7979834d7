"""A TEST DOUBLE of the Home Assistant integration's site-channel side (not the integration).

It speaks the HA <-> PSOC contract (``schema/site/``) over real MQTT at a site's broker. The
PSOC's own test process cannot run Home Assistant (its test plugin is off there), so the
console's tests use it for the site that refuses its provider (``may_evacuate=False``); the
consenting site runs the real integration in-process in ``tests/ha/test_psoc_e2e.py``. It:

- publishes the owner's consent (``site/consent``, retained) and evacuation state
  (``site/evacuation``, retained), signed with the site key;
- answers signed ``site/request`` payloads: verified (signature, freshness, replay, agent id);
  ``start_evacuation`` is honoured only when the owner allowed the provider to act, else
  refused with the reason; ``stop_evacuation`` always ends a provider-started evacuation;
- records ``site/provider_label`` payloads in ``labels`` (where the integration would feed
  its classifier) after the same checks;
- gives each agent event a verdict by the level rule (the integration's rule before it has
  learnt anything) on ``site/verdict``, as the integration would with its classifier.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from psoc import signatures
from sensor_agent.signing import ReplayGuard


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class HomeAssistantDouble:
    """See the module doc. ``port``: the site broker; ``key``: the site key."""

    def __init__(
        self, port: int, key: bytes, *, agent_id: str, may_evacuate: bool, prefix: str = "lan_guard"
    ) -> None:
        self.key = key
        self.agent_id = agent_id
        self.may_evacuate = may_evacuate
        self.prefix = prefix
        self.labels: list[dict[str, Any]] = []
        self.requests: list[tuple[dict[str, Any], str]] = []  # (request, outcome)
        self.refused: list[str] = []  # why a payload was not accepted
        self.evacuating = False
        self._guard = ReplayGuard()
        self._cond = threading.Condition()
        self._client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311
        )
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._subscribed = threading.Event()
        self._client.on_subscribe = lambda *args: self._subscribed.set()
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()
        if not self._subscribed.wait(10):
            raise TimeoutError("the HA double could not subscribe")

    def topic(self, sub: str) -> str:
        return f"{self.prefix}/{self.agent_id}/{sub}"

    def _publish(self, sub: str, payload: dict[str, Any], retain: bool = False) -> None:
        signed = signatures.sign(payload, self.key, self.agent_id, sub, time.time())
        self._client.publish(self.topic(sub), json.dumps(signed), qos=1, retain=retain)

    def _on_connect(self, client: paho.Client, *args: Any) -> None:
        client.subscribe(
            [(self.topic(s), 1) for s in ("site/request", "site/provider_label", "event")]
        )
        self.publish_consent()
        self.publish_evacuation(False, None, None, [])

    def publish_consent(self) -> None:
        self._publish(
            "site/consent",
            {
                "schema": 1,
                "agent_id": self.agent_id,
                "may_see": True,
                "may_evacuate": self.may_evacuate,
                "updated_at": _iso(time.time()),
            },
            retain=True,
        )

    def publish_evacuation(
        self, active: bool, by: str | None, reason: str | None, culprits: list[dict[str, Any]]
    ) -> None:
        self.evacuating = active
        self._publish(
            "site/evacuation",
            {
                "schema": 1,
                "agent_id": self.agent_id,
                "active": active,
                "started_by": by,
                "reason": reason,
                "culprits": culprits,
                "updated_at": _iso(time.time()),
            },
            retain=True,
        )

    def _check(self, payload: dict[str, Any], sub: str) -> bool:
        try:
            signatures.verify(payload, self.key, self.agent_id, sub, time.time(), fresh=True)
            self._guard.check(str(payload["id"]), float(payload["ts"]), time.time())
        except (signatures.SignatureError, KeyError) as err:
            self.refused.append(str(err))
            return False
        return True

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        try:
            payload = json.loads(msg.payload)
        except ValueError:
            self.refused.append("not JSON")
            return
        sub = msg.topic.split("/", 2)[2]
        if sub == "event":
            verdict = {3: "alarm", 2: "unsure"}.get(payload.get("level"), "normal")
            self._publish(
                "site/verdict",
                {
                    "schema": 1,
                    "id": uuid.uuid4().hex,
                    "agent_id": self.agent_id,
                    "event_id": payload["id"],
                    "verdict": verdict,
                    "probability": None,
                    "decided_by": "level_rule",
                },
            )
            return
        if not self._check(payload, sub):
            return
        with self._cond:
            if sub == "site/provider_label":
                self.labels.append(payload)
            else:
                self._answer(payload)
            self._cond.notify_all()

    def _answer(self, request: dict[str, Any]) -> None:
        action = request.get("action")
        if action == "start_evacuation" and not self.may_evacuate:
            outcome, error = (
                "refused",
                "the owner has not allowed the provider to start evacuation mode",
            )
        elif action == "start_evacuation":
            culprit = request.get("culprit")
            self.publish_evacuation(
                True, "provider", request.get("reason"), [culprit] if culprit else []
            )
            outcome, error = "started", None
        elif action == "stop_evacuation":
            self.publish_evacuation(False, None, "stopped at the provider's request", [])
            outcome, error = "stopped", None
        else:
            outcome, error = "failed", f"unknown action {action!r}"
        self.requests.append((request, outcome))
        self._publish(
            "site/request/result",
            {
                "schema": 1,
                "id": request["id"],
                "agent_id": self.agent_id,
                "ok": error is None,
                "outcome": outcome,
                "error": error,
            },
        )

    def wait_for(self, predicate: Any, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self), timeout)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
