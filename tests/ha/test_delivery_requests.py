"""Delivery at run time: replay requests to the agent, lost events told to the owner, events
of a replaced store dropped, agents before 0.2 under the legacy option (mocked MQTT)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from freezegun.api import FrozenDateTimeFactory
from homeassistant.components import persistent_notification
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import async_fire_time_changed

from custom_components.lan_guard.const import (
    CONF_LEGACY_SIGNATURES,
    CONF_SIGNING_KEY,
    BadPayload,
)
from custom_components.lan_guard.coordinator import LanGuardCoordinator
from custom_components.lan_guard.delivery import REFUSED_RETRY_S
from custom_components.lan_guard.payloads import validate
from custom_components.lan_guard.signing import sign, signing_key
from sensor_agent import signing as agent_signing

from .conftest import (
    AGENT,
    BASE,
    EPOCH,
    EXAMPLE_KEY,
    make_entry,
    make_event,
    make_state,
    publish,
    setup_entry,
    unload,
)

pytestmark = pytest.mark.usefixtures("mqtt_mock")
KEY = signing_key(EXAMPLE_KEY)


def now_ts() -> float:
    return dt_util.utcnow().timestamp()


def agent_sign(payload: dict[str, Any], ts: float, topic: str = "event") -> dict[str, Any]:
    """Signed by the agent's own code, for this agent's ``topic``, as on the wire."""
    return agent_signing.sign(payload, KEY, ts, agent_id=AGENT, topic=topic)


async def later(hass: HomeAssistant, freezer: FrozenDateTimeFactory, seconds: float) -> None:
    freezer.tick(timedelta(seconds=seconds))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()


def replays(mqtt_mock: Any) -> list[dict[str, Any]]:
    """The replay commands the integration published, checked as the agent would check them."""
    commands = []
    verifier = agent_signing.Verifier(KEY, agent_id=AGENT, topic="command")
    for call in mqtt_mock.async_publish.call_args_list:
        topic, raw, _, _ = call.args
        command = json.loads(raw)
        if topic == f"{BASE}/command" and command["action"] == "replay":
            validate("command", command)
            verifier.verify(command, now=now_ts())
            commands.append(command)
    return commands


def delivery_state(last_seq: int, oldest_seq: int = 1, epoch: str = EPOCH) -> dict[str, Any]:
    return {**make_state([]), "epoch": epoch, "last_seq": last_seq, "oldest_seq": oldest_seq}


async def test_missing_events_are_asked_for_and_lost_ones_reported_in_the_owners_language(
    hass: HomeAssistant,
    mqtt_mock: Any,
    freezer: FrozenDateTimeFactory,
    hass_storage: dict[str, Any],
) -> None:
    hass.config.language = "ja"
    entry = await setup_entry(hass, make_entry(**{CONF_SIGNING_KEY: EXAMPLE_KEY}))
    coordinator: LanGuardCoordinator = entry.runtime_data.coordinator
    publish(hass, "state", agent_sign(delivery_state(10), now_ts(), "state"), retain=True)
    for seq in (11, 14):  # 12 and 13 missed (HA was away)
        publish(hass, "event", agent_sign(make_event(seq=seq), now_ts()))
    await hass.async_block_till_done()
    assert replays(mqtt_mock) == []  # they may still be on their way
    await later(hass, freezer, 2)
    [asked] = replays(mqtt_mock)
    assert (asked["after_seq"], asked["through_seq"]) == (11, 13)
    answer = {
        "id": asked["id"],
        "ok": True,
        "error": None,
        "action": "replay",
        "replay": {
            "epoch": EPOCH,
            "after_seq": 11,
            "count": 1,
            "first_seq": 13,
            "through_seq": 13,
            "last_seq": 14,
            "gap": {"first_seq": 12, "last_seq": 12},  # older than the agent keeps
        },
    }
    publish(hass, "command/result", agent_sign(answer, now_ts(), "command/result"))
    publish(hass, "event", agent_sign(make_event(seq=13), now_ts()))
    await hass.async_block_till_done()
    assert coordinator.delivery.done == 14
    assert coordinator.delivery.lost == 1
    [notification] = [
        n
        for n in persistent_notification._async_get_or_create_notifications(hass).values()
        if n["notification_id"] == f"lan_guard_lost_{entry.entry_id}"
    ]
    assert "pi-livingroom" in notification["message"]
    assert "番号 12 から 12 までのうち 1 件" in notification["message"]
    assert notification["title"] == "LAN Guard: イベントが失われました"
    assert len(coordinator.history) == 3
    await unload(hass, entry)
    stored = hass_storage[f"lan_guard.{entry.entry_id}"]["data"]["delivery"]
    assert (stored["epoch"], stored["done"], stored["lost"]) == (EPOCH, 14, 1)


async def test_events_of_a_replaced_store_are_dropped_and_a_new_one_is_fetched_whole(
    hass: HomeAssistant,
    mqtt_mock: Any,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    entry = await setup_entry(hass)
    coordinator: LanGuardCoordinator = entry.runtime_data.coordinator
    publish(hass, "state", delivery_state(500), retain=True)
    publish(hass, "event", make_event(seq=501))
    other = "f" * 32
    publish(hass, "event", make_event(seq=2, epoch=other))  # the agent's store was wiped
    publish(hass, "event", make_event(seq=502))  # late, from the old store
    await hass.async_block_till_done()
    assert len(coordinator.history) == 2
    assert coordinator.delivery.epoch == other
    assert coordinator.delivery.stale == 1
    assert f"started a new event store (epoch {other} after {EPOCH})" in caplog.text
    await later(hass, freezer, 2)
    command = json.loads(mqtt_mock.async_publish.call_args.args[1])
    assert (command["action"], command["after_seq"], command["through_seq"]) == ("replay", 0, 1)
    assert "sig" not in command  # no key, no signature
    await unload(hass, entry)


async def test_legacy_signatures_let_an_agent_before_0_2_in_without_delivery_tracking(
    hass: HomeAssistant, mqtt_mock: Any
) -> None:
    old_event = {k: v for k, v in make_event().items() if k not in ("seq", "epoch")}
    signed = sign(old_event, KEY, now_ts(), None, None)
    strict = await setup_entry(hass, make_entry(**{CONF_SIGNING_KEY: EXAMPLE_KEY}), online=False)
    publish(hass, "event", signed)
    await hass.async_block_till_done()
    assert strict.runtime_data.coordinator.bad_payloads == {BadPayload.SCHEMA: 1}
    await unload(hass, strict)
    legacy_entry = make_entry(**{CONF_SIGNING_KEY: EXAMPLE_KEY, CONF_LEGACY_SIGNATURES: True})
    legacy_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(legacy_entry.entry_id)
    await hass.async_block_till_done()
    coordinator: LanGuardCoordinator = legacy_entry.runtime_data.coordinator
    publish(hass, "event", signed)
    publish(hass, "event", signed)  # the same again: only its id tells
    await hass.async_block_till_done()
    assert [e.id for e in coordinator.history] == [old_event["id"]]
    assert coordinator.bad_payloads == {BadPayload.REPLAYED: 1}
    assert coordinator.delivery.epoch is None  # nothing to track
    await coordinator.async_send_command("release", "b8:27:eb:4c:21:9a", None)
    command = json.loads(mqtt_mock.async_publish.call_args.args[1])
    assert command["sig"] == sign(command, KEY, command["ts"], None, None)["sig"]  # format 1
    await unload(hass, legacy_entry)


def replay_result(command: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return agent_sign(
        {"id": command["id"], "action": "replay", **fields}, now_ts(), "command/result"
    )


async def test_a_refused_or_unsent_request_is_asked_again_later(
    hass: HomeAssistant, mqtt_mock: Any, freezer: FrozenDateTimeFactory
) -> None:
    entry = await setup_entry(hass, make_entry(**{CONF_SIGNING_KEY: EXAMPLE_KEY}), online=False)
    coordinator: LanGuardCoordinator = entry.runtime_data.coordinator
    publish(hass, "state", agent_sign(delivery_state(10), now_ts(), "state"), retain=True)
    publish(hass, "state", agent_sign(delivery_state(12), now_ts() + 1, "state"))
    await hass.async_block_till_done()
    await later(hass, freezer, 2)
    [first] = replays(mqtt_mock)
    someone_else = {"id": "quarantine-1", "ok": False, "error": "refused", "action": "replay"}
    publish(hass, "command/result", agent_sign(someone_else, now_ts(), "command/result"))
    refused = replay_result(first, ok=False, error="refused: too many replay requests")
    publish(hass, "command/result", refused)
    await hass.async_block_till_done()
    await later(hass, freezer, REFUSED_RETRY_S + 0.5)
    assert len(replays(mqtt_mock)) == 2
    # The broker refuses the publish: asked again once the request times out.
    mqtt_mock.async_publish.side_effect = HomeAssistantError("not connected")
    refused_again = replay_result(replays(mqtt_mock)[-1], ok=False, error="refused")
    publish(hass, "command/result", refused_again)
    await hass.async_block_till_done()
    await later(hass, freezer, REFUSED_RETRY_S + 0.5)
    assert coordinator.delivery.requests == 3
    assert coordinator.delivery.done == 10
    await unload(hass, entry)
