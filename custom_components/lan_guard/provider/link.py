"""The site channel's I/O for one agent: MQTT in and out, the evacuation runner, the owner.

What is decided lives in ``channel`` (pure); this module verifies what comes in, carries the
decisions out and publishes, signed with the agent's shared key (the site key) in format 2
for ``<agent_id>`` and the whole sub-topic (``site/request``, ...), which the provider's
bridge carries to and from its PSOC.

Without a signing key nothing is published or accepted (the PSOC verifies every payload, and
a request must be verified here). Without "may see" only the integration's own retained
consent is corrected, should an earlier one still say more than the owner allows now.
Requests are bounded in size (``intake``), checked like the agent's command results
(signature for this agent and sub-topic, ``ts`` within 300 s, an id never seen before) and
handled one at a time, at most ``MAX_PENDING`` at once; every refusal is counted.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from homeassistant.components import mqtt, persistent_notification
from homeassistant.config_entries import ConfigEntry
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers.json import json_dumps
from homeassistant.helpers.translation import async_get_translations
from homeassistant.util import dt as dt_util

from ..const import (
    CONF_AGENT_ID,
    CONF_SIGNING_KEY,
    CONF_TOPIC_PREFIX,
    DOMAIN,
    PROVIDER_NOTIFICATION_PREFIX,
    TOPIC_SITE_ACK,
    TOPIC_SITE_CONSENT,
    TOPIC_SITE_EVACUATION,
    TOPIC_SITE_LABEL,
    TOPIC_SITE_PROVIDER_LABEL,
    TOPIC_SITE_REQUEST,
    TOPIC_SITE_REQUEST_RESULT,
    TOPIC_SITE_VERDICT,
    Label,
)
from ..coordinator import LanGuardCoordinator
from ..evacuation.record import Host, Reason
from ..evacuation.runner import EvacuationRunner
from ..intake import Refused, decode, loads
from ..learner import Learner
from ..models import LanGuardEvent
from ..notifications import async_notify_targets
from ..signing import PayloadVerifier, SignatureError, sign, signing_key
from ..untrusted import DETAIL, inert, printable
from . import channel
from .channel import Consent, Do, Evacuation, Tell

_LOGGER = logging.getLogger(__name__)

# Requests at once, the one being handled included (an evacuation step may wait for the
# agent); more are answered "failed" at once.
MAX_PENDING: Final = 8
_SCHEMA_OF: Final = {
    TOPIC_SITE_REQUEST: "site_request",
    TOPIC_SITE_PROVIDER_LABEL: "site_provider_label",
}
_COMMON = f"component.{DOMAIN}.common."


def iso(moment: datetime) -> str:
    """A contract timestamp."""
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ProviderLink:
    """The site channel of one agent (one config entry)."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry,
        coordinator: LanGuardCoordinator,
        learner: Learner,
        evacuation: EvacuationRunner,
    ) -> None:
        """Read the owner's consent and the key; nothing runs until ``async_start``."""
        self.hass = hass
        self.entry = entry
        self.coordinator = coordinator
        self.learner = learner
        self.evacuation = evacuation
        self.consent = Consent.from_options(entry.options)
        self.agent_id: str = entry.data[CONF_AGENT_ID]
        self.base_topic = f"{entry.data[CONF_TOPIC_PREFIX]}/{self.agent_id}"
        secret: str | None = entry.options.get(CONF_SIGNING_KEY) or None
        self._key = signing_key(secret) if secret else None
        # Its own replay guard: request ids are the provider's, not the agent's.
        self._verifier = PayloadVerifier(self._key, self.agent_id) if self._key else None
        self.requests: Counter[str] = Counter()  # by outcome
        self.labels: Counter[str] = Counter()  # provider labels: learned, or why not
        self.published: Counter[str] = Counter()  # by sub-topic
        self.refused: Counter[str] = Counter()  # by reason
        self.last_refused: str | None = None
        self._provider_reason: str | None = None
        self._sent_evacuation: Evacuation | None = None
        self._lock = asyncio.Lock()
        self._pending = 0
        self._unsubscribe: list[CALLBACK_TYPE] = []
        self.subscribed = asyncio.Event()  # the broker took the request subscription

    @property
    def on(self) -> bool:
        """The provider sees this site (and there is a key to sign with)."""
        return self._key is not None and self.consent.may_see

    # ----------------------------------------------------------------- life cycle

    async def async_start(self) -> None:
        """Publish the consent and the evacuation state, follow the owner, take requests."""
        hass = self.hass
        if self._key is None:
            if self.consent.may_see:
                _LOGGER.warning(
                    "%s: the provider may see this site, but no signing key is set: the site"
                    " channel stays off (the provider verifies every payload)",
                    self.agent_id,
                )
            return
        if not self.consent.may_see:
            self._unsubscribe.append(
                await mqtt.async_subscribe(
                    hass, self._topic(TOPIC_SITE_CONSENT), self._async_consent_seen, qos=1
                )
            )
            return
        coordinator = self.coordinator
        self._unsubscribe += [
            mqtt.async_on_subscribe_done(
                hass, self._topic(TOPIC_SITE_REQUEST), 1, self.subscribed.set
            ),
            await mqtt.async_subscribe(
                hass,
                self._topic(TOPIC_SITE_REQUEST),
                self._async_message_received,
                qos=1,
                encoding=None,
            ),
            await mqtt.async_subscribe(
                hass,
                self._topic(TOPIC_SITE_PROVIDER_LABEL),
                self._async_message_received,
                qos=1,
                encoding=None,
            ),
            coordinator.async_add_event_listener(self._async_event),
            coordinator.async_add_label_listener(self._async_owner_label),
            coordinator.async_add_ack_listener(self._async_ack),
            self.evacuation.async_add_listener(self._async_evacuation_changed),
        ]
        await self._async_publish_consent()
        self._async_evacuation_changed()

    async def async_stop(self) -> None:
        """Stop listening (the entry unloads); a request being handled finishes first."""
        while self._unsubscribe:
            self._unsubscribe.pop()()
        async with self._lock:
            pass

    def diagnostics(self) -> dict[str, Any]:
        """What the channel did (no identities)."""
        return {
            "may_see": self.consent.may_see,
            "may_evacuate": self.consent.may_evacuate,
            "on": self.on,
            "requests": dict(self.requests),
            "provider_labels": dict(self.labels),
            "published": dict(self.published),
            "refused": dict(self.refused),
            "last_refused": self.last_refused,
            "remembered_ids": self._verifier.remembered_ids if self._verifier else 0,
        }

    # ----------------------------------------------------------------- publishing

    def _topic(self, sub: str) -> str:
        return f"{self.base_topic}/{sub}"

    async def _async_publish(
        self, sub: str, payload: Mapping[str, Any], retain: bool = False
    ) -> None:
        """Sign ``payload`` for this agent's ``sub`` and publish it (QoS 1)."""
        assert self._key is not None  # nothing publishes without a key
        signed = sign(payload, self._key, dt_util.utcnow().timestamp(), self.agent_id, sub)
        try:
            await mqtt.async_publish(
                self.hass, self._topic(sub), json_dumps(signed), qos=1, retain=retain
            )
        except Exception as err:  # MQTT gone: the provider misses this one, the site goes on
            _LOGGER.warning("Could not publish %s for the provider: %s", sub, err)
            return
        self.published[sub] += 1

    def _later(self, sub: str, payload: Mapping[str, Any] | None, retain: bool = False) -> None:
        if payload is not None:
            self.entry.async_create_background_task(
                self.hass, self._async_publish(sub, payload, retain), f"{DOMAIN} publish {sub}"
            )

    async def _async_publish_consent(self) -> None:
        payload = channel.consent_payload(self.agent_id, self.consent, iso(dt_util.utcnow()))
        await self._async_publish(TOPIC_SITE_CONSENT, payload, retain=True)

    @callback
    def _async_consent_seen(self, msg: mqtt.ReceiveMessage) -> None:
        """Our own retained consent: one that says more than the owner allows now (written
        before the owner turned "may see" off) is replaced by the current one."""
        assert self._verifier is not None  # subscribed only with a key
        try:
            stored = loads(msg.payload, 4096)
            if not isinstance(stored, dict):
                return
            self._verifier.verify_retained(TOPIC_SITE_CONSENT, stored)
        except (ValueError, SignatureError):
            return  # not ours (or cleared): nothing of ours to correct
        if stored.get("may_see") or stored.get("may_evacuate"):
            payload = channel.consent_payload(self.agent_id, self.consent, iso(dt_util.utcnow()))
            self._later(TOPIC_SITE_CONSENT, payload, retain=True)

    @callback
    def _async_evacuation_changed(self) -> None:
        view = channel.evacuation_of(self.evacuation.record, self._provider_reason)
        if view == self._sent_evacuation:
            return
        self._sent_evacuation = view
        self._later(
            TOPIC_SITE_EVACUATION,
            channel.evacuation_payload(self.agent_id, view, iso(dt_util.utcnow())),
            retain=True,
        )

    @callback
    def _async_event(self, event: LanGuardEvent) -> None:
        if event.assessment is not None:
            self._later(
                TOPIC_SITE_VERDICT,
                channel.verdict_payload(
                    self.agent_id, uuid.uuid4().hex, event.id, event.assessment
                ),
            )

    async def _async_owner_label(self, event: LanGuardEvent, label: Label) -> None:
        payload = channel.label_payload(
            self.agent_id, uuid.uuid4().hex, event.id, label.value, iso(dt_util.utcnow())
        )
        await self._async_publish(TOPIC_SITE_LABEL, payload)

    @callback
    def _async_ack(self, at: datetime) -> None:
        self._later(TOPIC_SITE_ACK, channel.ack_payload(self.agent_id, uuid.uuid4().hex, iso(at)))

    # ----------------------------------------------------------------- intake

    @callback
    def _async_message_received(self, msg: mqtt.ReceiveMessage) -> None:
        """A request or label from the provider: checked, then handled; never raises."""
        sub = msg.topic.removeprefix(f"{self.base_topic}/")
        payload = self._accept(sub, msg.payload)
        if payload is None:
            return
        if sub == TOPIC_SITE_PROVIDER_LABEL:
            self.entry.async_create_background_task(
                self.hass, self._async_provider_label(payload), f"{DOMAIN} provider label"
            )
            return
        if self._pending >= MAX_PENDING:
            self._refuse("busy", f"request {payload['id']}: {MAX_PENDING} already waiting")
            self._later(
                TOPIC_SITE_REQUEST_RESULT,
                channel.result_payload(
                    self.agent_id, payload["id"], False, "failed", "too many requests at once"
                ),
            )
            return
        self._pending += 1
        self.entry.async_create_background_task(
            self.hass, self._async_request(payload), f"{DOMAIN} provider request"
        )

    def _accept(self, sub: str, raw: bytes | bytearray | str) -> dict[str, Any] | None:
        assert self._verifier is not None  # subscribed only with a key
        decoded = decode(_SCHEMA_OF[sub], raw, dt_util.utcnow())
        if isinstance(decoded, Refused):
            self._refuse(decoded.reason.value, decoded.detail)
            return None
        payload: dict[str, Any] = decoded.payload
        if payload["agent_id"] != self.agent_id:
            self._refuse("agent_mismatch", f"agent_id is {payload['agent_id']!r}")
            return None
        try:
            self._verifier.verify_live(sub, decoded.sent, dt_util.utcnow().timestamp())
        except SignatureError as err:
            self._refuse(err.reason.value, str(err))
            return None
        return payload

    def _refuse(self, reason: str, detail: str) -> None:
        first = reason not in self.refused
        self.refused[reason] += 1
        self.last_refused = f"{reason}: {printable(detail)}"
        _LOGGER.log(
            logging.WARNING if first else logging.DEBUG,
            "Refused a payload from the provider for %s (%s): %s",
            self.agent_id,
            reason,
            printable(detail),
        )

    # ----------------------------------------------------------------- handling

    async def _async_provider_label(self, payload: dict[str, Any]) -> None:
        """The operator's judgement teaches the classifier, unless the owner judged first."""
        event = self.coordinator.history.get(payload["event_id"])
        if event is None:
            self.labels["unknown_event"] += 1
            return
        if event.label is not None:
            self.labels["owner_labelled"] += 1  # the owner's own judgement wins
            return
        try:
            await self.learner.async_learn(event, Label(payload["label"]))
        except Exception:
            _LOGGER.exception("Learning the provider's label of event %s failed", event.id)
            self.labels["failed"] += 1
            return
        self.labels[payload["label"]] += 1
        _LOGGER.info(
            "%s: event %s labelled %s by the provider's operator %s",
            self.agent_id,
            event.id,
            payload["label"],
            printable(payload["operator"]),
        )

    async def _async_request(self, request: dict[str, Any]) -> None:
        try:
            async with self._lock:
                await self._async_handle(request)
        finally:
            self._pending -= 1

    async def _async_handle(self, request: dict[str, Any]) -> None:
        runner = self.evacuation
        before = channel.evacuation_of(runner.record, self._provider_reason)
        decision = channel.decide(request, self.consent, before)
        _LOGGER.info(
            "%s: the provider's operator %s asks to %s: %s",
            self.agent_id,
            printable(request["operator"]),
            request["action"],
            decision.do.value,
        )
        try:
            if decision.do is Do.START:
                self._provider_reason = printable(request["reason"], channel.MAX_TEXT) or None
                culprit = channel.culprit_host(request)
                host = Host(*culprit) if culprit else None
                await runner.async_start(host, Reason.PROVIDER)
            elif decision.do is Do.STOP:
                await runner.async_stop(Reason.PROVIDER)
        except Exception:
            _LOGGER.exception("The provider's request %s failed", request["id"])
        ok, outcome, error = channel.answer(decision, runner.active)
        self.requests[outcome] += 1
        tell = decision.tell if ok or decision.do is Do.NOTHING else Tell.FAILED
        await self._async_tell(tell, request)
        await self._async_publish(
            TOPIC_SITE_REQUEST_RESULT,
            channel.result_payload(self.agent_id, request["id"], ok, outcome, error),
        )

    async def _async_tell(self, tell: Tell, request: Mapping[str, Any]) -> None:
        """The owner reads what their provider did or asks, and why (persistent notification
        and phones). The operator's name and words are the network's: inert."""
        if tell is Tell.NOTHING:
            return
        texts = await async_get_translations(
            self.hass, self.hass.config.language, "common", [DOMAIN]
        )
        culprit = channel.culprit_host(request)
        who = (
            f"{inert(culprit[0])} ({inert(culprit[1])})" if culprit and culprit[1] else None
        ) or (inert(culprit[0]) if culprit else texts[f"{_COMMON}none"])
        values = {
            "agent": self.agent_id,
            "operator": inert(request["operator"]),
            "reason": inert(request["reason"], DETAIL) or texts[f"{_COMMON}none"],
            "culprit": who,
        }
        title = texts[f"{_COMMON}provider_{tell.value}_title"]
        text = texts[f"{_COMMON}provider_{tell.value}_message"].format(**values)
        notification_id = f"{PROVIDER_NOTIFICATION_PREFIX}{self.entry.entry_id}"
        persistent_notification.async_create(self.hass, text, title, notification_id)
        await async_notify_targets(
            self.hass,
            self.entry,
            title,
            text,
            {"tag": notification_id, "group": DOMAIN},
            about="the provider's request",
        )
