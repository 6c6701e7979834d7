"""Notifications: persistent + actionable phone notifications, in the user's language."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from homeassistant.components.persistent_notification import (
    _async_get_or_create_notifications,
)
from homeassistant.core import HomeAssistant, ServiceCall
from homeassistant.exceptions import HomeAssistantError
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import async_mock_service

from custom_components.lan_guard.allowlist import Allowlist
from custom_components.lan_guard.const import (
    CONF_ALLOWLIST,
    CONF_NOTIFY_LEVEL,
    CONF_NOTIFY_TARGETS,
    Label,
)
from custom_components.lan_guard.models import LanGuardEvent
from custom_components.lan_guard.notifications import (
    action_id,
    notification_id,
    parse_action,
    render,
    wanted,
)

from .conftest import make_entry, make_event, publish, setup_entry, unload

pytestmark = pytest.mark.usefixtures("mqtt_mock")
EN = Path(__file__).resolve().parents[2] / "custom_components/lan_guard/translations/en.json"


@pytest.fixture
def phone(hass: HomeAssistant) -> list[ServiceCall]:
    return async_mock_service(hass, "notify", "mobile_app_pixel")


async def notify_setup(hass: HomeAssistant, **options: Any) -> Any:
    return await setup_entry(
        hass,
        make_entry(**{CONF_NOTIFY_TARGETS: ["notify.mobile_app_pixel"], **options}),
    )


async def test_a_threat_notifies_the_phone_with_buttons(
    hass: HomeAssistant, phone: list[ServiceCall]
) -> None:
    entry = await notify_setup(hass)
    event = make_event(level=2, kind="syn_scan")
    publish(hass, "event", event)
    await hass.async_block_till_done()
    assert len(phone) == 1
    data = phone[0].data
    assert data["title"] == "LAN Guard: SYN scan of the monitoring node (level 2)"
    message = data["message"]
    assert message.splitlines()[0] == (
        "pi-livingroom detected SYN scan of the monitoring node from kids-laptop."
    )
    for line in (
        "MAC address: b8:27:eb:4c:21:9a",
        "IP address: 192.168.1.23",
        "Vendor: Raspberry Pi Foundation",
        "Host name: kids-laptop",
        "Ports: 554, 445, 9100, 80, 515, 139",
        f"Event ID: {event['id']}",
    ):
        assert line in message.splitlines(), line
    assert data["data"]["actions"] == [
        {"action": f"LAN_GUARD_NORMAL_{event['id']}", "title": "Normal"},
        {"action": f"LAN_GUARD_ALARM_{event['id']}", "title": "Alarm"},
    ]
    assert data["data"]["tag"] == notification_id(event["incident_id"])
    notifications = _async_get_or_create_notifications(hass)
    persistent = notifications[notification_id(event["incident_id"])]
    assert persistent["title"] == data["title"]
    assert "- **MAC address**: b8:27:eb:4c:21:9a" in persistent["message"]
    await unload(hass, entry)


async def test_each_event_has_its_own_action_ids(
    hass: HomeAssistant, phone: list[ServiceCall]
) -> None:
    entry = await notify_setup(hass)
    incident = "c" * 32
    publish(hass, "event", make_event(level=2, incident_id=incident))
    publish(hass, "event", make_event(level=3, kind="session", incident_id=incident))
    await hass.async_block_till_done()
    actions = [a["action"] for call in phone for a in call.data["data"]["actions"]]
    assert len(actions) == len(set(actions)) == 4
    # One persistent notification per incident, showing the newest event.
    notifications = _async_get_or_create_notifications(hass)
    assert "level 3" in notifications[notification_id(incident)]["title"]
    await unload(hass, entry)


async def test_notifications_in_japanese(hass: HomeAssistant, phone: list[ServiceCall]) -> None:
    hass.config.language = "ja"
    entry = await notify_setup(hass)
    publish(hass, "event", make_event(level=3, kind="session"))
    await hass.async_block_till_done()
    data = phone[0].data
    assert data["title"] == "LAN Guard: 監視ノードとの通信セッション（レベル3）"  # noqa: RUF001
    assert "MACアドレス: b8:27:eb:4c:21:9a" in data["message"].splitlines()
    assert "送信されたデータ: " in data["message"]
    assert [a["title"] for a in data["data"]["actions"]] == ["正常", "警報"]
    await unload(hass, entry)


@pytest.mark.parametrize(
    ("options", "event"),
    [
        # judged normal by the classifier's prior, and no question asked
        ({"questions_per_day": 0}, make_event(level=1, kind="arp_scan")),
        ({CONF_ALLOWLIST: ["b8:27:eb:4c:21:9a"]}, make_event(level=3)),  # trusted host
        ({}, make_event("host_left", level=0)),  # information only
    ],
)
async def test_no_notification_when_the_policy_says_so(
    hass: HomeAssistant, phone: list[ServiceCall], options: dict[str, Any], event: dict[str, Any]
) -> None:
    entry = await notify_setup(hass, **options)
    publish(hass, "event", event)
    await hass.async_block_till_done()
    assert phone == []
    assert _async_get_or_create_notifications(hass) == {}
    await unload(hass, entry)


async def test_the_notify_level_applies_when_the_level_rule_decides(
    hass: HomeAssistant, phone: list[ServiceCall], monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = await notify_setup(hass, **{CONF_NOTIFY_LEVEL: 3})
    learner = entry.runtime_data.classifier

    def cannot_judge(payload: dict[str, Any]) -> Any:
        raise ValueError("no verdict for this one")

    monkeypatch.setattr(learner.classifier, "assess", cannot_judge)
    publish(hass, "event", make_event(level=2))
    await hass.async_block_till_done()
    assert phone == []  # the rule's "unsure" at level 2 is below the notify level (3)
    publish(hass, "event", make_event(level=3, kind="session"))
    await hass.async_block_till_done()
    assert len(phone) == 1
    await unload(hass, entry)


async def test_a_failing_target_is_logged_and_the_others_still_notified(
    hass: HomeAssistant, phone: list[ServiceCall], caplog: pytest.LogCaptureFixture
) -> None:
    async_mock_service(
        hass, "notify", "broken_phone", raise_exception=HomeAssistantError("phone is off")
    )
    entry = await setup_entry(
        hass,
        make_entry(**{CONF_NOTIFY_TARGETS: ["missing_phone", "broken_phone", "mobile_app_pixel"]}),
    )
    with caplog.at_level(logging.WARNING):
        publish(hass, "event", make_event(level=2))
        await hass.async_block_till_done()
    assert len(phone) == 1
    messages = [r.getMessage() for r in caplog.records if r.name.endswith("notifications")]
    assert any("notify.missing_phone" in m for m in messages)
    assert any("notify.broken_phone" in m and "phone is off" in m for m in messages)
    assert len(_async_get_or_create_notifications(hass)) == 1
    await unload(hass, entry)


async def test_a_button_press_labels_the_event(
    hass: HomeAssistant, phone: list[ServiceCall]
) -> None:
    entry = await notify_setup(hass)
    event = make_event(level=2)
    publish(hass, "event", event)
    await hass.async_block_till_done()
    alarm = phone[0].data["data"]["actions"][1]["action"]
    hass.bus.async_fire("mobile_app_notification_action", {"action": alarm})
    await hass.async_block_till_done()
    stored = entry.runtime_data.history.get(event["id"])
    assert stored.label is Label.ALARM
    assert stored.labelled_at is not None
    culprit = hass.states.get("sensor.lan_guard_pi_livingroom_last_culprit")
    assert culprit.attributes["label"] == "alarm"
    # The owner changes their mind.
    normal = phone[0].data["data"]["actions"][0]["action"]
    hass.bus.async_fire("mobile_app_notification_action", {"action": normal})
    await hass.async_block_till_done()
    assert stored.label is Label.NORMAL
    await unload(hass, entry)


@pytest.mark.parametrize(
    "action",
    [None, 42, "OPEN_DOOR", "LAN_GUARD_MAYBE_" + "a" * 32, "LAN_GUARD_ALARM_" + "f" * 32],
)
async def test_other_actions_are_ignored(hass: HomeAssistant, action: Any) -> None:
    entry = await setup_entry(hass)
    event = make_event(level=2)
    publish(hass, "event", event)
    await hass.async_block_till_done()
    hass.bus.async_fire("mobile_app_notification_action", {"action": action})
    await hass.async_block_till_done()
    assert entry.runtime_data.history.get(event["id"]).label is None
    await unload(hass, entry)


async def test_acknowledging_dismisses_the_incidents_notification(
    hass: HomeAssistant, phone: list[ServiceCall]
) -> None:
    entry = await notify_setup(hass)
    publish(hass, "event", make_event(level=2))
    await hass.async_block_till_done()
    assert len(_async_get_or_create_notifications(hass)) == 1
    entry.runtime_data.async_acknowledge()
    assert _async_get_or_create_notifications(hass) == {}
    await unload(hass, entry)


def test_action_ids_round_trip() -> None:
    event_id = "0123456789abcdef0123456789abcdef"
    for label in Label:
        assert parse_action(action_id(label, event_id)) == (label, event_id)


def test_the_classifiers_normal_verdict_is_not_notified() -> None:
    event = LanGuardEvent(make_event(level=3), received_at=None)  # type: ignore[arg-type]
    nobody = Allowlist.parse([])
    assert wanted(event, 2, nobody)
    event.assessment = {"verdict": "unsure", "probability": 0.5}
    assert wanted(event, 2, nobody)
    event.assessment = {"verdict": "normal", "probability": 0.1}
    assert not wanted(event, 2, nobody)
    event.assessment = {"verdict": "normal", "probability": 0.1, "decided_by": "prior"}
    assert not wanted(event, 2, nobody)  # the prior judges before any label
    low = LanGuardEvent(make_event(level=1, kind="arp_scan"), received_at=None)  # type: ignore[arg-type]
    low.assessment = {"verdict": "alarm", "probability": 0.9, "decided_by": "prior"}
    assert wanted(low, 2, nobody)  # a bot's sweep: below the notify level, judged alarm
    low.assessment = {"verdict": "unsure", "probability": 0.5, "decided_by": "rule"}
    assert not wanted(low, 2, nobody)  # the level rule: the notify level decides


def test_an_arp_scan_tells_how_many_addresses() -> None:
    texts = {
        f"component.lan_guard.common.{key}": text
        for key, text in json.loads(EN.read_text(encoding="utf-8"))["common"].items()
    }
    event = LanGuardEvent(make_event("arp_scan", level=1), dt_util.utcnow())
    title, summary, fields = render(texts, {}, event, "pi")
    assert title == "LAN Guard: arp_scan (level 1)"  # no kind names given: the raw kind
    assert summary == "pi detected arp_scan from kids-laptop."
    assert ("Addresses probed", "48") in fields
