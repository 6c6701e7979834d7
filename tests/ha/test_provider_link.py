"""The site channel in a real Home Assistant with a real mosquitto on 127.0.0.1.

The provider's side is the PSOC's own code (``psoc.sitechannel`` builds requests and labels,
``psoc.signatures`` signs and verifies them with the site key), published into the broker
the site's bridge would deliver them to; Home Assistant's MQTT integration and LAN Guard's
take it from there. What Home Assistant publishes is read back from the broker and checked
against ``schema/site/`` and the PSOC's verification.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from homeassistant.components import mqtt, persistent_notification
from homeassistant.core import HomeAssistant, callback
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.lan_guard.const import (
    BACKEND_NONE,
    CONF_PROVIDER_MAY_EVACUATE,
    CONF_PROVIDER_MAY_SEE,
    CONF_QUARANTINE_BACKEND,
    CONF_SIGNING_KEY,
    PROVIDER_NOTIFICATION_PREFIX,
    Label,
)
from custom_components.lan_guard.diagnostics import async_get_config_entry_diagnostics
from custom_components.lan_guard.evacuation.record import Reason
from custom_components.lan_guard.provider.link import MAX_PENDING
from custom_components.lan_guard.runtime import LanGuardData
from custom_components.lan_guard.signing import sign
from psoc import signatures, sitechannel
from tests.broker import Mosquitto
from tests.contract import site_errors

from .conftest import AGENT, BASE, make_entry, make_event, unload, until

pytestmark = [pytest.mark.broker]

KEY = "site-channel-key-0123456789"
CULPRIT = {"mac": "b8:27:eb:4c:21:9a", "ip": "192.168.1.23"}
SCHEMA_OF = {
    "site/consent": "consent",
    "site/evacuation": "evacuation",
    "site/verdict": "verdict",
    "site/label": "label",
    "site/ack": "ack",
    "site/request/result": "request_result",
}


@pytest.fixture
async def broker(socket_enabled: None) -> AsyncIterator[Mosquitto]:
    with Mosquitto() as running:
        yield running


@pytest.fixture
async def mqtt_entry(
    hass: HomeAssistant, socket_enabled: None, mock_hass_config: None, broker: Mosquitto
) -> AsyncIterator[MockConfigEntry]:
    """HA's real MQTT integration, connected to the test broker."""
    entry = MockConfigEntry(
        domain=mqtt.DOMAIN,
        data={mqtt.CONF_BROKER: broker.host, "port": broker.port},
        options={mqtt.CONF_BIRTH_MESSAGE: {}, mqtt.CONF_WILL_MESSAGE: {}},
        version=mqtt.CONFIG_ENTRY_VERSION,
        minor_version=mqtt.CONFIG_ENTRY_MINOR_VERSION,
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await until(lambda: mqtt.is_connected(hass), 10, "HA's MQTT client to connect")
    yield entry
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


class Provider:
    """The provider's end of the channel at the site broker: sends as the PSOC does and
    records (verified) what the site published, by sub-topic."""

    def __init__(self, hass: HomeAssistant) -> None:
        self.hass = hass
        self.seen: dict[str, list[dict[str, Any]]] = {}

    async def listen(self) -> None:
        @callback
        def received(msg: mqtt.ReceiveMessage) -> None:
            sub = msg.topic.removeprefix(f"{BASE}/")
            if sub not in SCHEMA_OF or not msg.payload:
                return
            payload = json.loads(msg.payload)
            signatures.verify(payload, KEY.encode(), AGENT, sub, time.time(), fresh=False)
            assert site_errors(SCHEMA_OF[sub], payload) == [], (sub, payload)
            self.seen.setdefault(sub, []).append(payload)

        self.unsubscribe = await mqtt.async_subscribe(self.hass, f"{BASE}/site/#", received)

    def of(self, sub: str) -> list[dict[str, Any]]:
        return self.seen.get(sub, [])

    async def send(
        self, sub: str, payload: dict[str, Any], *, key: str = KEY, at: float | None = None
    ) -> str:
        signed = signatures.sign(payload, key.encode(), AGENT, sub, at or time.time())
        raw = json.dumps(signed)
        await mqtt.async_publish(self.hass, f"{BASE}/{sub}", raw, qos=1)
        return raw

    async def request(self, action: str, reason: str = "ransomware-like scan") -> str:
        payload = sitechannel.request_payload(
            AGENT, action, incident_id="5d" * 16, culprit=CULPRIT, reason=reason, operator="alice"
        )
        self.last_raw = await self.send("site/request", payload)
        return str(payload["id"])

    async def result(self, request_id: str) -> dict[str, Any]:
        await until(
            lambda: any(r["id"] == request_id for r in self.of("site/request/result")),
            10,
            f"the answer to {request_id}",
        )
        return next(r for r in self.of("site/request/result") if r["id"] == request_id)


async def lan_guard(hass: HomeAssistant, **options: Any) -> MockConfigEntry:
    entry = make_entry(**{CONF_SIGNING_KEY: KEY, CONF_QUARANTINE_BACKEND: BACKEND_NONE, **options})
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    if entry.runtime_data.provider.on:
        await asyncio.wait_for(entry.runtime_data.provider.subscribed.wait(), 10)
    return entry


def told(hass: HomeAssistant, entry: MockConfigEntry) -> dict[str, Any]:
    notes = persistent_notification._async_get_or_create_notifications(hass)
    return dict(notes[f"{PROVIDER_NOTIFICATION_PREFIX}{entry.entry_id}"])


async def send_event(hass: HomeAssistant, level: int = 3) -> str:
    event = make_event(level=level)
    signed = sign(event, KEY.encode(), time.time(), AGENT, "event")
    await mqtt.async_publish(hass, f"{BASE}/event", json.dumps(signed), qos=1)
    return str(event["id"])


@pytest.mark.usefixtures("mqtt_entry")
async def test_a_consenting_site_follows_its_provider_and_tells_the_owner(
    hass: HomeAssistant,
) -> None:
    provider = Provider(hass)
    await provider.listen()
    entry = await lan_guard(hass, **{CONF_PROVIDER_MAY_SEE: True, CONF_PROVIDER_MAY_EVACUATE: True})
    data: LanGuardData = entry.runtime_data
    await until(lambda: provider.of("site/evacuation"), 10, "the evacuation state")
    [consent] = provider.of("site/consent")
    assert (consent["may_see"], consent["may_evacuate"]) == (True, True)
    assert provider.of("site/evacuation")[-1]["active"] is False

    # the operator starts evacuation mode; the owner is told who and why, as text
    started = await provider.request("start_evacuation", "scan <img src=x> of [the LAN](x)")
    assert (await provider.result(started))["outcome"] == "started"
    assert data.evacuation.active and data.evacuation.record.reason is Reason.PROVIDER
    assert CULPRIT["mac"] in data.evacuation.record.culprits
    await until(lambda: provider.of("site/evacuation")[-1]["active"], 10, "evacuation on")
    state = provider.of("site/evacuation")[-1]
    assert (state["started_by"], state["culprits"]) == ("provider", [CULPRIT])
    assert state["reason"] == "scan <img src=x> of [the LAN](x)"  # data for the PSOC
    note = told(hass, entry)
    assert "alice" in note["message"] and "<img" not in note["message"]
    assert "\uff3bthe LAN\uff3d" in note["message"]  # inert: no link, no image
    assert note["title"] == "LAN Guard: your provider started evacuation mode"

    # the same request again, an old one, one for another agent, one with another key
    await mqtt.async_publish(hass, f"{BASE}/site/request", provider.last_raw, qos=1)
    old = sitechannel.request_payload(
        AGENT, "stop_evacuation", incident_id="5d" * 16, culprit=None, reason="", operator="eve"
    )
    await provider.send("site/request", old, at=time.time() - 600)
    other = {**old, "id": "other-agent", "agent_id": "pi-kitchen"}
    await provider.send("site/request", other)
    await provider.send("site/request", {**old, "id": "forged"}, key="another-key-0123456789")
    await until(lambda: sum(data.provider.refused.values()) >= 4, 10, "four refusals")
    assert dict(data.provider.refused) == {
        "replayed": 1,
        "stale": 1,
        "agent_mismatch": 1,
        "signature_bad": 1,
    }
    assert [r["id"] for r in provider.of("site/request/result")] == [started]  # one answer

    # the operator ends it; then the owner's own evacuation is theirs to end
    stopped = await provider.request("stop_evacuation", "the culprit is gone")
    assert (await provider.result(stopped))["outcome"] == "stopped"
    assert not data.evacuation.active
    assert told(hass, entry)["title"] == "LAN Guard: your provider ended evacuation mode"
    await until(lambda: not provider.of("site/evacuation")[-1]["active"], 10, "evacuation off")
    await data.evacuation.async_start()
    suggested = await provider.request("stop_evacuation")
    refused = await provider.result(suggested)
    assert (refused["outcome"], refused["ok"]) == ("refused", False)
    assert data.evacuation.active
    assert "suggests ending" in told(hass, entry)["message"]
    await data.evacuation.async_stop()

    # verdicts, the owner's label and acknowledgement go to the provider; its label to the
    # classifier only (not the owner's history, no evacuation)
    event_id = await send_event(hass)
    await until(lambda: provider.of("site/verdict"), 10, "a verdict")
    assert provider.of("site/verdict")[0]["event_id"] == event_id
    event = data.coordinator.history.get(event_id)
    assert event is not None
    before = data.learner.stats()
    label = sitechannel.label_payload(AGENT, event_id, "alarm", "bob")
    await provider.send("site/provider_label", label)
    await until(lambda: data.provider.labels["alarm"] == 1, 10, "the provider's label")
    assert data.learner.stats() != before and event.label is None
    assert not data.evacuation.active
    await provider.send(
        "site/provider_label", sitechannel.label_payload(AGENT, "0" * 32, "normal", "bob")
    )
    await until(lambda: data.provider.labels["unknown_event"] == 1, 10, "an unknown event")
    await data.coordinator.async_label(event, Label.NORMAL)
    await until(lambda: provider.of("site/label"), 10, "the owner's label")
    assert (provider.of("site/label")[0]["label"], provider.of("site/label")[0]["by"]) == (
        "normal",
        "owner",
    )
    await provider.send(
        "site/provider_label", sitechannel.label_payload(AGENT, event_id, "alarm", "bob")
    )
    await until(lambda: data.provider.labels["owner_labelled"] == 1, 10, "the owner's label wins")
    data.coordinator.async_acknowledge()
    await until(lambda: provider.of("site/ack"), 10, "the acknowledgement")

    diagnostics = await async_get_config_entry_diagnostics(hass, entry)
    assert diagnostics["provider"]["requests"] == {"started": 1, "stopped": 1, "refused": 1}
    assert diagnostics["provider"]["refused"]["stale"] == 1
    provider.unsubscribe()
    await unload(hass, entry)


@pytest.mark.usefixtures("mqtt_entry")
async def test_without_consent_the_provider_is_refused_and_the_owner_asked(
    hass: HomeAssistant,
) -> None:
    provider = Provider(hass)
    await provider.listen()
    entry = await lan_guard(hass, **{CONF_PROVIDER_MAY_SEE: True})
    data: LanGuardData = entry.runtime_data
    asked = await provider.request("start_evacuation")
    result = await provider.result(asked)
    assert (result["ok"], result["outcome"]) == (False, "refused")
    assert "not allowed" in (result["error"] or "")
    assert not data.evacuation.active
    note = told(hass, entry)
    assert note["title"] == "LAN Guard: your provider asks you to start evacuation mode"
    assert CULPRIT["mac"] in note["message"]
    assert provider.of("site/consent")[0]["may_evacuate"] is False
    provider.unsubscribe()
    await unload(hass, entry)


@pytest.mark.usefixtures("mqtt_entry")
async def test_a_site_its_provider_may_not_see_publishes_nothing_but_a_withdrawal(
    hass: HomeAssistant,
) -> None:
    provider = Provider(hass)
    await provider.listen()
    # an earlier consent of this site, still retained at the broker
    earlier = {"schema": 1, "agent_id": AGENT, "may_see": True, "may_evacuate": True}
    earlier["updated_at"] = "2026-11-25T20:00:00.000Z"
    signed = signatures.sign(earlier, KEY.encode(), AGENT, "site/consent", time.time() - 60)
    await mqtt.async_publish(hass, f"{BASE}/site/consent", json.dumps(signed), qos=1, retain=True)
    await until(lambda: provider.of("site/consent"), 10, "the earlier consent")
    entry = await lan_guard(hass)
    data: LanGuardData = entry.runtime_data
    await until(lambda: len(provider.of("site/consent")) == 2, 10, "the withdrawal")
    assert provider.of("site/consent")[-1]["may_see"] is False
    await provider.request("start_evacuation")
    event_id = await send_event(hass)
    await until(lambda: data.coordinator.history.get(event_id), 10, "the event")
    await asyncio.sleep(0.2)  # time for a verdict or an answer to come back, were one sent
    assert set(provider.seen) == {"site/consent"} and len(provider.of("site/consent")) == 2
    assert not data.evacuation.active and data.provider.diagnostics()["on"] is False
    for junk in ("[1]", "not json", json.dumps({**signed, "sig": "0" * 64})):
        await mqtt.async_publish(hass, f"{BASE}/site/consent", junk, qos=1)
    await asyncio.sleep(0.2)
    assert len(provider.of("site/consent")) == 2  # nothing of ours to correct
    provider.unsubscribe()
    await unload(hass, entry)


@pytest.mark.usefixtures("mqtt_entry")
async def test_without_a_key_the_channel_stays_off(
    hass: HomeAssistant, caplog: pytest.LogCaptureFixture
) -> None:
    entry = await lan_guard(hass, **{CONF_SIGNING_KEY: "", CONF_PROVIDER_MAY_SEE: True})
    assert "no signing key is set" in caplog.text
    assert entry.runtime_data.provider.on is False
    await unload(hass, entry)


@pytest.mark.usefixtures("mqtt_entry")
async def test_requests_are_bounded_and_a_failure_is_answered(
    hass: HomeAssistant, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = Provider(hass)
    await provider.listen()
    entry = await lan_guard(hass, **{CONF_PROVIDER_MAY_SEE: True, CONF_PROVIDER_MAY_EVACUATE: True})
    data: LanGuardData = entry.runtime_data
    release = asyncio.Event()

    async def stuck(*args: Any) -> None:
        await release.wait()
        raise RuntimeError("the runner broke")

    monkeypatch.setattr(data.evacuation, "async_start", stuck)
    await mqtt.async_publish(hass, f"{BASE}/site/request", "not json", qos=1)
    ids = [await provider.request("start_evacuation") for _ in range(MAX_PENDING + 1)]
    busy = await provider.result(ids[-1])
    assert (busy["ok"], busy["outcome"], busy["error"]) == (
        False,
        "failed",
        "too many requests at once",
    )
    release.set()
    for request_id in ids[:-1]:
        assert (await provider.result(request_id))["outcome"] == "failed"
    assert dict(data.provider.refused) == {"not_json": 1, "busy": 1}
    assert told(hass, entry)["title"] == "LAN Guard: your provider's request failed"
    provider.unsubscribe()
    await unload(hass, entry)
