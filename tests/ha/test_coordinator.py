"""The agent's runtime: MQTT intake, refusals, incidents, listeners and the hooks."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest.mock import AsyncMock, Mock

import pytest
from homeassistant.components.mqtt import MQTT_CONNECTION_STATE
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.dispatcher import async_dispatcher_send
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import (
    MockMqttReasonCode,
    async_capture_events,
)

from custom_components.lan_guard.const import (
    CONF_SIGNING_KEY,
    EVENT_LAN_GUARD,
    BadPayload,
    Label,
)
from custom_components.lan_guard.coordinator import LanGuardCoordinator
from custom_components.lan_guard.models import LanGuardEvent
from custom_components.lan_guard.signing import sign, signing_key
from sensor_agent import signing as agent_signing

from .conftest import (
    AGENT,
    BASE,
    EXAMPLE_KEY,
    example,
    make_entry,
    make_event,
    make_state,
    publish,
    setup_entry,
    unload,
)

pytestmark = pytest.mark.usefixtures("mqtt_mock")
KEY = signing_key(EXAMPLE_KEY)
THREAT = "binary_sensor.lan_guard_pi_livingroom_threat"


def now_ts() -> float:
    return dt_util.utcnow().timestamp()


def agent_sign(payload: dict[str, Any], ts: float, topic: str = "event") -> dict[str, Any]:
    """Signed by the agent's own code, for this agent's ``topic``, as on the wire."""
    return agent_signing.sign(payload, KEY, ts, agent_id=AGENT, topic=topic)


async def test_an_event_goes_everywhere_once(hass: HomeAssistant) -> None:
    entry = await setup_entry(hass)
    coordinator: LanGuardCoordinator = entry.runtime_data.coordinator
    bus = async_capture_events(hass, EVENT_LAN_GUARD)
    seen: list[LanGuardEvent] = []
    coordinator.async_add_event_listener(seen.append)
    event = make_event(level=3, kind="session")
    publish(hass, "event", event)
    await hass.async_block_till_done()
    assert [e.id for e in seen] == [event["id"]]
    assert coordinator.history.get(event["id"]) is seen[0]
    assert coordinator.incidents[event["incident_id"]].level == 3
    assert len(bus) == 1
    assert bus[0].data["agent_id"] == AGENT
    assert bus[0].data["config_entry_id"] == entry.entry_id
    assert bus[0].data["event_id"] == event["id"]
    assert bus[0].data["kind"] == "session"
    assert bus[0].data["culprit"] == event["source"]
    assert bus[0].data["evidence"] == event["evidence"]
    assert bus[0].data["verdict"] == "alarm"  # the classifier's level prior
    # The same event again (a QoS 1 redelivery, or published again on request) is dropped:
    # a normal part of delivery, counted there, not a refused payload.
    publish(hass, "event", event)
    await hass.async_block_till_done()
    assert len(bus) == 1
    assert coordinator.delivery.duplicates == 1
    assert not coordinator.bad_payloads
    await unload(hass, entry)


BAD_PAYLOADS = [
    ("event", b"not json", BadPayload.NOT_JSON),
    ("event", b"\xff\xfe", BadPayload.NOT_JSON),
    ("event", json.dumps({"kind": "arp_scan"}), BadPayload.SCHEMA),
    ("event", json.dumps(make_event(level=7)), BadPayload.SCHEMA),
    ("event", json.dumps(make_event(agent_id="someone-else")), BadPayload.AGENT_MISMATCH),
    ("state", json.dumps({**example("state"), "level": "high"}), BadPayload.SCHEMA),
    ("hosts", b"[]", BadPayload.SCHEMA),
    ("info", json.dumps({**example("info"), "agent_id": "other"}), BadPayload.AGENT_MISMATCH),
    ("quarantine", b"{", BadPayload.NOT_JSON),
    ("command/result", json.dumps({"id": "x"}), BadPayload.SCHEMA),
    ("status", b"maybe", BadPayload.SCHEMA),
    ("status", b"\xff", BadPayload.SCHEMA),
]


@pytest.mark.parametrize(("topic", "raw", "reason"), BAD_PAYLOADS)
async def test_bad_payloads_are_refused_counted_and_logged_once(
    hass: HomeAssistant,
    *,
    entity_registry: er.EntityRegistry,
    caplog: pytest.LogCaptureFixture,
    topic: str,
    raw: str | bytes,
    reason: BadPayload,
) -> None:
    entry = await setup_entry(hass)
    coordinator: LanGuardCoordinator = entry.runtime_data.coordinator
    entities = len(entity_registry.entities)
    states = {s.entity_id: s.state for s in hass.states.async_all()}
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="custom_components.lan_guard"):
        for _ in range(3):
            publish(hass, topic, raw)
            await hass.async_block_till_done()
    assert coordinator.bad_payloads == {reason: 3}
    assert coordinator.last_refused[reason].topic == topic
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert f"{BASE}/{topic}" in warnings[0].getMessage()
    assert reason.value in warnings[0].getMessage()
    assert len([r for r in caplog.records if r.levelno == logging.DEBUG]) >= 2
    assert len(entity_registry.entities) == entities
    assert {s.entity_id: s.state for s in hass.states.async_all()} == states
    assert len(coordinator.history) == 0
    await unload(hass, entry)


async def test_with_a_key_only_signed_fresh_unique_payloads_pass(hass: HomeAssistant) -> None:
    entry = await setup_entry(hass, make_entry(**{CONF_SIGNING_KEY: EXAMPLE_KEY}), online=False)
    coordinator: LanGuardCoordinator = entry.runtime_data.coordinator
    publish(hass, "status", "online", retain=True)
    good = agent_sign(make_event(), now_ts())
    publish(hass, "event", good)
    unsigned = make_event()
    publish(hass, "event", unsigned)
    forged = {**agent_sign(make_event(), now_ts()), "level": 3}
    publish(hass, "event", forged)
    wrong_key = agent_signing.sign(
        make_event(), b"not the key", now_ts(), agent_id=AGENT, topic="event"
    )
    publish(hass, "event", wrong_key)
    other_agent = agent_signing.sign(
        make_event(), KEY, now_ts(), agent_id="pi-garage", topic="event"
    )
    publish(hass, "event", {**other_agent, "agent_id": AGENT})
    other_topic = agent_sign(make_event(), now_ts(), topic="state")
    publish(hass, "event", other_topic)
    stale = agent_sign(make_event(), now_ts() - 3600)
    publish(hass, "event", stale)
    old_format = sign(make_event(), KEY, now_ts(), None, None)
    publish(hass, "event", old_format)
    publish(hass, "event", good)  # replayed: the same seq
    await hass.async_block_till_done()
    assert [e.id for e in coordinator.history] == [good["id"]]
    assert "sig" not in coordinator.history.get(good["id"]).payload  # type: ignore[union-attr]
    assert coordinator.bad_payloads == {
        BadPayload.SIGNATURE_MISSING: 1,
        BadPayload.SIGNATURE_BAD: 4,
        BadPayload.STALE: 1,
        BadPayload.SIGNATURE_LEGACY: 1,
    }
    assert coordinator.delivery.duplicates == 1
    # Retained payloads: a day old is fine, an older one than already seen is a replay.
    old = sign(example("info"), KEY, now_ts() - 86_400, AGENT, "info")
    publish(hass, "info", sign(example("info"), KEY, now_ts(), AGENT, "info"), retain=True)
    publish(hass, "info", old)
    publish(hass, "info", example("info"))  # unsigned
    await hass.async_block_till_done()
    assert coordinator.info is not None
    assert coordinator.bad_payloads[BadPayload.REPLAYED] == 1
    assert coordinator.bad_payloads[BadPayload.SIGNATURE_MISSING] == 2
    await unload(hass, entry)


async def test_a_signature_is_checked_on_the_payload_as_sent(hass: HomeAssistant) -> None:
    """A contract-valid level of 2.0 is signed as 2.0; validation makes it 2 afterwards."""
    entry = await setup_entry(hass, make_entry(**{CONF_SIGNING_KEY: EXAMPLE_KEY}))
    coordinator: LanGuardCoordinator = entry.runtime_data.coordinator
    event = {**make_event(), "level": 2.0}
    publish(hass, "event", agent_sign(event, now_ts()))
    await hass.async_block_till_done()
    assert BadPayload.SIGNATURE_BAD not in coordinator.bad_payloads
    accepted = coordinator.history.get(event["id"])
    assert accepted is not None
    assert type(accepted.payload["level"]) is int
    await unload(hass, entry)


async def test_availability_follows_status_and_the_mqtt_connection(hass: HomeAssistant) -> None:
    entry = await setup_entry(hass, online=False)
    coordinator: LanGuardCoordinator = entry.runtime_data.coordinator
    assert hass.states.get(THREAT).state == "unavailable"
    publish(hass, "status", "online", retain=True)
    await hass.async_block_till_done()
    assert coordinator.online
    assert hass.states.get(THREAT).state != "unavailable"
    async_dispatcher_send(hass, MQTT_CONNECTION_STATE, False)
    await hass.async_block_till_done()
    assert hass.states.get(THREAT).state == "unavailable"
    async_dispatcher_send(hass, MQTT_CONNECTION_STATE, True)
    await hass.async_block_till_done()
    assert hass.states.get(THREAT).state != "unavailable"
    publish(hass, "status", "offline")
    await hass.async_block_till_done()
    assert hass.states.get(THREAT).state == "unavailable"
    publish(hass, "status", b"")  # retained status cleared: offline too
    await hass.async_block_till_done()
    assert coordinator.status == "offline"
    await unload(hass, entry)


async def test_the_agents_state_closes_stale_incidents_but_not_newer_news(
    hass: HomeAssistant,
) -> None:
    entry = await setup_entry(hass)
    coordinator: LanGuardCoordinator = entry.runtime_data.coordinator
    start = datetime.now(UTC)
    old = make_event(level=2, detected_at=start)
    publish(hass, "event", old)
    await hass.async_block_till_done()
    assert set(coordinator.incidents) == {old["incident_id"]}
    # A state from before the event does not know it yet: the incident stays open.
    publish(hass, "state", make_state([], updated_at=start - timedelta(seconds=5)), retain=True)
    await hass.async_block_till_done()
    assert set(coordinator.incidents) == {old["incident_id"]}
    # The agent lists another incident and no longer the first: the first closes.
    other = {"incident_id": "a" * 32, "level": 1, "mac": "00:11:22:33:44:55"}
    publish(hass, "state", make_state([other], updated_at=start + timedelta(seconds=5)))
    await hass.async_block_till_done()
    assert set(coordinator.incidents) == {"a" * 32}
    assert coordinator.level == 1
    # An event newer than the state raises its incident's level; an older state keeps it.
    publish(
        hass,
        "event",
        make_event(level=3, incident_id="a" * 32, detected_at=start + timedelta(seconds=9)),
    )
    await hass.async_block_till_done()
    publish(hass, "state", make_state([other], updated_at=start + timedelta(seconds=7)))
    await hass.async_block_till_done()
    assert coordinator.incidents["a" * 32].level == 3
    publish(hass, "state", make_state([], updated_at=start + timedelta(seconds=20)))
    await hass.async_block_till_done()
    assert coordinator.incidents == {}
    assert coordinator.level == 0
    await unload(hass, entry)


async def test_retained_topics_update_the_model(hass: HomeAssistant) -> None:
    entry = await setup_entry(hass)
    coordinator: LanGuardCoordinator = entry.runtime_data.coordinator
    publish(hass, "hosts", example("hosts"), retain=True)
    publish(hass, "quarantine", example("quarantine"), retain=True)
    publish(hass, "state", example("state"), retain=True)
    await hass.async_block_till_done()
    assert coordinator.hosts == example("hosts")
    assert coordinator.quarantine == example("quarantine")
    assert coordinator.agent_state == example("state")
    # Clearing a retained message is not an error, and keeps what is known.
    publish(hass, "hosts", b"")
    publish(hass, "command", json.dumps(example("command.release")))  # our own topic
    publish(hass, "something/new", b"{}")  # a newer agent's topic
    await hass.async_block_till_done()
    assert coordinator.hosts == example("hosts")
    assert not coordinator.bad_payloads
    await unload(hass, entry)


async def test_commands_are_signed_and_results_reach_listeners(
    hass: HomeAssistant, mqtt_mock: Any
) -> None:
    entry = await setup_entry(hass, make_entry(**{CONF_SIGNING_KEY: EXAMPLE_KEY}))
    coordinator: LanGuardCoordinator = entry.runtime_data.coordinator
    results: list[dict[str, Any]] = []
    coordinator.async_add_result_listener(results.append)
    command_id = await coordinator.async_send_command("quarantine", "b8:27:eb:4c:21:9a", None)
    topic, raw, qos, retain = mqtt_mock.async_publish.call_args.args
    assert (topic, qos, retain) == (f"{BASE}/command", 1, False)
    command = json.loads(raw)
    assert command["id"] == command_id
    agent_signing.Verifier(KEY, agent_id=AGENT, topic="command").verify(command, now=now_ts())
    result = agent_sign(
        {"id": command_id, "ok": True, "error": None, "action": "quarantine"},
        now_ts(),
        topic="command/result",
    )
    publish(hass, "command/result", result)
    await hass.async_block_till_done()
    assert [r["id"] for r in results] == [command_id]
    await unload(hass, entry)


async def test_unsigned_commands_without_a_key(hass: HomeAssistant, mqtt_mock: Any) -> None:
    entry = await setup_entry(hass)
    await entry.runtime_data.coordinator.async_send_command(
        "release", "b8:27:eb:4c:21:9a", "192.168.1.23"
    )
    command = json.loads(mqtt_mock.async_publish.call_args.args[1])
    assert "sig" not in command
    assert command["ip"] == "192.168.1.23"
    await unload(hass, entry)


class FakeClassifier:
    """Stands for the classifier: a verdict per event, learns from labels."""

    def __init__(self, verdict: str) -> None:
        self.verdict = verdict
        self.learned: list[tuple[str, Label]] = []

    def assess(self, event: LanGuardEvent) -> dict[str, Any]:
        return {"verdict": self.verdict, "probability": 0.9, "source": "model"}

    async def async_learn(self, event: LanGuardEvent, label: Label) -> None:
        self.learned.append((event.id, label))


async def test_the_classifier_hook_sees_events_first_and_learns_labels(
    hass: HomeAssistant,
) -> None:
    entry = await setup_entry(hass)
    coordinator: LanGuardCoordinator = entry.runtime_data.coordinator
    classifier = FakeClassifier("alarm")
    coordinator.classifier = classifier
    seen: list[dict[str, Any] | None] = []
    coordinator.async_add_event_listener(lambda event: seen.append(event.assessment))
    bus = async_capture_events(hass, EVENT_LAN_GUARD)
    label_listener = AsyncMock()
    coordinator.async_add_label_listener(label_listener)
    event = make_event(level=2)
    publish(hass, "event", event)
    await hass.async_block_till_done()
    assert seen == [{"verdict": "alarm", "probability": 0.9, "source": "model"}]
    assert bus[0].data["verdict"] == "alarm"
    assert bus[0].data["probability"] == 0.9
    stored = coordinator.history.get(event["id"])
    assert stored is not None
    await coordinator.async_label(stored, Label.NORMAL)
    assert classifier.learned == [(event["id"], Label.NORMAL)]
    label_listener.assert_awaited_once_with(stored, Label.NORMAL)
    await unload(hass, entry)


async def test_acknowledge_clears_the_threat_until_an_incident_escalates(
    hass: HomeAssistant,
) -> None:
    entry = await setup_entry(hass)
    coordinator: LanGuardCoordinator = entry.runtime_data.coordinator
    event = make_event(level=2)
    publish(hass, "event", event)
    await hass.async_block_till_done()
    assert hass.states.get(THREAT).state == "on"
    coordinator.async_acknowledge()
    await hass.async_block_till_done()
    assert hass.states.get(THREAT).state == "off"
    assert coordinator.history.acknowledged == {event["incident_id"]: 2}
    publish(hass, "event", make_event(level=2, incident_id=event["incident_id"]))
    await hass.async_block_till_done()
    assert hass.states.get(THREAT).state == "off"
    publish(hass, "event", make_event(level=3, incident_id=event["incident_id"]))
    await hass.async_block_till_done()
    assert hass.states.get(THREAT).state == "on"
    # When the agent closes the incident, its acknowledgement is forgotten.
    publish(hass, "state", make_state([]), retain=True)
    await hass.async_block_till_done()
    assert coordinator.history.acknowledged == {}
    assert hass.states.get(THREAT).state == "off"
    await unload(hass, entry)


async def test_allowlisted_sources_are_no_threat(hass: HomeAssistant) -> None:
    entry = await setup_entry(hass, make_entry(allowlist=["192.168.1.0/24"]))
    publish(hass, "event", make_event(level=3, ip="192.168.1.40"))
    await hass.async_block_till_done()
    assert entry.runtime_data.coordinator.level == 3
    assert hass.states.get(THREAT).state == "off"
    publish(hass, "event", make_event(level=3, ip="10.0.0.5"))
    await hass.async_block_till_done()
    assert hass.states.get(THREAT).state == "on"
    await unload(hass, entry)


async def test_host_left_is_information_not_an_incident(hass: HomeAssistant) -> None:
    entry = await setup_entry(hass)
    coordinator: LanGuardCoordinator = entry.runtime_data.coordinator
    publish(hass, "event", make_event("host_left", level=0))
    await hass.async_block_till_done()
    assert len(coordinator.history) == 1
    assert coordinator.incidents == {}
    assert coordinator.history.last_threat() is None
    await unload(hass, entry)


async def test_subscription_is_reported_when_acknowledged(
    hass: HomeAssistant, mqtt_client_mock: Any
) -> None:
    # The broker holds its SUBACKs back until the test delivers them.
    withheld: list[int] = []
    sent = asyncio.Event()

    def subscribe_without_ack(topic: Any, qos: int = 0) -> tuple[int, int]:
        withheld.append(len(withheld) + 10_000)
        sent.set()
        return (0, withheld[-1])

    mqtt_client_mock.subscribe.side_effect = subscribe_without_ack
    entry = await setup_entry(hass)
    subscribed = entry.runtime_data.coordinator.subscribed
    async with asyncio.timeout(5):  # the MQTT client batches subscriptions after a cooldown
        await sent.wait()
    await hass.async_block_till_done()
    assert not subscribed.is_set()
    # HA subscribes one batch at a time, each after the previous SUBACK: ack as they come.
    acked = 0
    async with asyncio.timeout(5):  # fails instead of hanging
        while not subscribed.is_set():
            for mid in withheld[acked:]:
                mqtt_client_mock.on_subscribe(Mock(), 0, mid, [MockMqttReasonCode()], None)
            acked = len(withheld)
            await asyncio.sleep(0.01)
    await unload(hass, entry)


async def test_a_late_event_does_not_reopen_an_incident_the_state_closed(
    hass: HomeAssistant,
) -> None:
    """The agent publishes state and events on different topics; MQTT orders each topic only."""
    entry = await setup_entry(hass)
    coordinator: LanGuardCoordinator = entry.runtime_data.coordinator
    start = datetime.now(UTC)
    publish(hass, "state", make_state([], updated_at=start + timedelta(seconds=60)))
    publish(hass, "event", make_event(level=2, detected_at=start))  # older than the state
    await hass.async_block_till_done()
    assert coordinator.incidents == {}
    assert len(coordinator.history) == 1  # still recorded and shown
    listed = {"incident_id": "b" * 32, "level": 1}
    publish(hass, "state", make_state([listed], updated_at=start + timedelta(seconds=70)))
    publish(hass, "event", make_event(level=2, incident_id="b" * 32, detected_at=start))
    publish(hass, "event", make_event(level=3, detected_at=start + timedelta(seconds=80)))
    await hass.async_block_till_done()
    assert coordinator.incidents["b" * 32].level == 2  # listed: the event updates it
    assert sorted(c.level for c in coordinator.incidents.values()) == [2, 3]  # and a new one
    await unload(hass, entry)


class BrokenClassifier:
    """A classifier (or listener) with a bug: the event must still go everywhere."""

    def assess(self, event: LanGuardEvent) -> dict[str, Any]:
        raise ValueError("bug in assess")

    async def async_learn(self, event: LanGuardEvent, label: Label) -> None:
        raise ValueError("bug in learn")


async def test_a_failing_hook_never_costs_an_event_or_a_label(
    hass: HomeAssistant, caplog: pytest.LogCaptureFixture
) -> None:
    entry = await setup_entry(hass)
    coordinator: LanGuardCoordinator = entry.runtime_data.coordinator
    coordinator.classifier = BrokenClassifier()

    def broken_listener(event: LanGuardEvent) -> None:
        raise RuntimeError("bug in a listener")

    seen: list[str] = []
    coordinator.async_add_event_listener(broken_listener)
    coordinator.async_add_event_listener(lambda event: seen.append(event.id))
    coordinator.async_add_label_listener(AsyncMock(side_effect=RuntimeError("bug")))
    bus = async_capture_events(hass, EVENT_LAN_GUARD)
    event = make_event(level=3)
    publish(hass, "event", event)
    await hass.async_block_till_done()
    assert seen == [event["id"]]
    assert len(bus) == 1
    assert bus[0].data["verdict"] is None
    assert hass.states.get(THREAT).state == "on"
    stored = coordinator.history.get(event["id"])
    assert stored is not None
    await coordinator.async_label(stored, Label.ALARM)
    assert stored.label is Label.ALARM
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("classifier failed" in m for m in messages)
    assert any("event listener failed" in m for m in messages)
    assert sum("Learning the label" in m for m in messages) == 2
    await unload(hass, entry)
