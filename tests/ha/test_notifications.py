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
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import async_mock_service

from custom_components.lan_guard.allowlist import Allowlist
from custom_components.lan_guard.const import (
    CONF_ALLOWLIST,
    CONF_NOTIFY_LEVEL,
    CONF_NOTIFY_TARGETS,
    DOMAIN,
    Label,
)
from custom_components.lan_guard.models import IncidentView, LanGuardEvent
from custom_components.lan_guard.notifications import (
    Delivery,
    Rendered,
    action_id,
    notification_id,
    parse_action,
    push_decision,
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


async def test_the_buttons_judge_the_incidents_most_telling_event(
    hass: HomeAssistant, phone: list[ServiceCall]
) -> None:
    entry = await notify_setup(hass)
    incident = "c" * 32
    scan = make_event(level=2, incident_id=incident)
    session = make_event(level=3, kind="session", incident_id=incident)
    publish(hass, "event", scan)
    await hass.async_block_till_done()
    publish(hass, "event", session)
    await hass.async_block_till_done()
    actions = [[a["action"] for a in call.data["data"]["actions"]] for call in phone]
    assert actions == [
        [f"LAN_GUARD_NORMAL_{scan['id']}", f"LAN_GUARD_ALARM_{scan['id']}"],
        [f"LAN_GUARD_NORMAL_{session['id']}", f"LAN_GUARD_ALARM_{session['id']}"],
    ]
    # Both arrive before the first notification is sent: it shows the incident as it is.
    publish(hass, "event", make_event(level=2, incident_id="f" * 32))
    publish(hass, "event", make_event(level=3, kind="session", incident_id="f" * 32))
    await hass.async_block_till_done()
    assert all("(level 3)" in call.data["title"] for call in phone[2:])
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
        ({}, make_event(level=1, kind="arp_scan")),  # below the notify level (2)
        ({CONF_ALLOWLIST: ["b8:27:eb:4c:21:9a"]}, make_event(level=3)),  # trusted host
        ({CONF_NOTIFY_LEVEL: 3}, make_event(level=2)),
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
    stored = entry.runtime_data.coordinator.history.get(event["id"])
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
    assert entry.runtime_data.coordinator.history.get(event["id"]).label is None
    await unload(hass, entry)


async def test_acknowledging_dismisses_the_incidents_notification(
    hass: HomeAssistant, phone: list[ServiceCall]
) -> None:
    entry = await notify_setup(hass)
    publish(hass, "event", make_event(level=2))
    await hass.async_block_till_done()
    assert len(_async_get_or_create_notifications(hass)) == 1
    entry.runtime_data.coordinator.async_acknowledge()
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


def _texts() -> dict[str, str]:
    return {
        f"component.lan_guard.common.{key}": text
        for key, text in json.loads(EN.read_text(encoding="utf-8"))["common"].items()
    }


def _render(*events: dict[str, Any]) -> Rendered:
    view = IncidentView.of([LanGuardEvent(event, dt_util.utcnow()) for event in events])
    assert view is not None
    return render(_texts(), {}, view, "pi")


def test_an_arp_scan_tells_how_many_addresses() -> None:
    shown = _render(make_event("arp_scan", level=1))
    assert shown.title == "LAN Guard: arp_scan (level 1)"  # no kind names given: the raw kind
    assert shown.summary == "pi detected arp_scan from kids-laptop."
    assert ("Addresses probed", "48") in shown.fields
    sample = ", ".join(f"192.168.1.{n}" for n in range(1, 7))
    assert ("Addresses", f"{sample} and 42 more") in shown.fields
    assert not any(name.startswith("Ports") for name, _ in shown.fields)


def test_a_syn_scan_counts_ports_and_says_how_many_are_not_listed() -> None:
    ports = list(range(1, 31))
    event = make_event("syn_scan", level=2)
    event["evidence"].update(ports=ports, target_count=30)
    shown = _render(event)
    listed = ", ".join(str(port) for port in ports[:20])
    assert ("Ports", f"{listed} and 10 more") in shown.fields
    assert ("Ports probed", "30") in shown.fields
    assert not any(name == "Addresses probed" for name, _ in shown.fields)
    # A short list is shown whole.
    assert ("Ports", "554, 445, 9100, 80, 515, 139") in _render(make_event(level=2)).fields


def test_a_long_sample_is_cut_with_an_ellipsis() -> None:
    event = make_event("session", level=3)
    event["evidence"]["sample"] = "A" * 200
    assert ("Data sent", "A" * 79 + "…") in _render(event).fields


def test_a_spray_lists_the_addresses_it_used() -> None:
    fields = dict(_render(make_event("arp_spray", level=2)).fields)
    assert fields["Addresses used"] == "10.4.17.203, 10.201.9.44, 10.77.130.5 and 61 more"


def test_a_session_names_its_port_once() -> None:
    event = make_event("session", level=3)
    event["evidence"]["ports"] = [445]
    names = [name for name, _ in _render(event).fields]
    assert "Port" in names and "Ports" not in names
    event["evidence"]["ports"] = [139, 445]
    assert ("Ports", "139, 445") in _render(event).fields


def test_flood_and_spoofing_show_their_own_evidence() -> None:
    flood = dict(_render(make_event("flood", level=2)).fields)
    assert flood["Frames per second"] == "12500"
    spoof = dict(_render(make_event("arp_spoof", level=3)).fields)
    assert spoof["Address claimed"] == "192.168.1.1"
    assert spoof["MAC address it replaced"] == "a0:63:91:0e:12:34"


async def test_an_incident_keeps_showing_its_most_severe_event(
    hass: HomeAssistant, phone: list[ServiceCall]
) -> None:
    """A level-3 session, then the scan's level-2 update: still level 3, with the sample."""
    entry = await notify_setup(hass)
    incident = "d" * 32
    session = make_event("session", level=3, incident_id=incident)
    publish(hass, "event", session)
    await hass.async_block_till_done()
    publish(hass, "event", make_event("syn_scan", level=2, incident_id=incident))
    await hass.async_block_till_done()

    notifications = _async_get_or_create_notifications(hass)
    assert list(notifications) == [notification_id(incident)]  # one, updated in place
    persistent = notifications[notification_id(incident)]
    assert persistent["title"] == "LAN Guard: Session with the monitoring node (level 3)"
    assert "Also seen: SYN scan of the monitoring node." in persistent["message"]
    assert "PC NETWORK PROGRAM 1.0" in persistent["message"]  # the level-3 sample
    assert f"- **Event ID**: {session['id']}" in persistent["message"]
    assert len(phone) == 2
    update = phone[-1].data
    assert update["title"] == persistent["title"]
    assert "Data sent: ....SMBr" in update["message"]
    assert update["data"]["tag"] == phone[0].data["data"]["tag"] == notification_id(incident)
    # The buttons still judge the session; the update does not ring the phone again.
    assert update["data"]["actions"][1]["action"] == f"LAN_GUARD_ALARM_{session['id']}"
    assert update["data"]["alert_once"] is True
    assert update["data"]["push"] == {"interruption-level": "passive"}
    assert "alert_once" not in phone[0].data["data"]
    # The last culprit is the incident's most severe event too.
    culprit = hass.states.get("sensor.lan_guard_pi_livingroom_last_culprit")
    assert culprit.attributes["kind"] == "session"
    assert culprit.attributes["level"] == 3
    assert culprit.attributes["kinds"] == ["session", "syn_scan"]
    assert culprit.attributes["event_id"] == session["id"]
    await unload(hass, entry)


async def test_a_phone_is_alerted_again_only_when_the_incident_escalates(
    hass: HomeAssistant, phone: list[ServiceCall]
) -> None:
    entry = await notify_setup(hass)
    incident = "e" * 32
    for kind, level in (("syn_scan", 2), ("syn_scan", 2), ("session", 3), ("syn_scan", 2)):
        publish(hass, "event", make_event(kind, level=level, incident_id=incident))
        await hass.async_block_till_done()
    alerts = [call.data["data"].get("alert_once") is not True for call in phone]
    assert alerts == [True, False, True, False]
    assert push_decision(None, _view(2)) is Delivery.PUSH
    assert push_decision(2, _view(2)) is Delivery.SILENT
    assert push_decision(2, _view(3)) is Delivery.PUSH
    await unload(hass, entry)


def _view(level: int) -> IncidentView:
    view = IncidentView.of([LanGuardEvent(make_event(level=level), dt_util.utcnow())])
    assert view is not None
    return view


async def test_the_persistent_notification_says_where_to_answer(
    hass: HomeAssistant, phone: list[ServiceCall]
) -> None:
    """It has no buttons: it links to the inbox at the event the buttons are for."""
    entry = await notify_setup(hass)
    incident = "a" * 32
    session = make_event("session", level=3, incident_id=incident)
    publish(hass, "event", session)
    publish(hass, "event", make_event(level=2, incident_id=incident))
    await hass.async_block_till_done()
    message = _async_get_or_create_notifications(hass)[notification_id(incident)]["message"]
    assert message.endswith(f"[Answer in the LAN Guard inbox](/lan-guard?event={session['id']})")
    assert phone[-1].data["data"]["url"] == f"/lan-guard?event={session['id']}"
    assert "LAN Guard inbox" not in phone[-1].data["message"]  # the phone has the buttons
    await unload(hass, entry)


async def test_a_failing_phone_raises_a_repair_issue_until_it_works(
    hass: HomeAssistant, phone: list[ServiceCall], issue_registry: ir.IssueRegistry
) -> None:
    async_mock_service(
        hass, "notify", "broken_phone", raise_exception=HomeAssistantError("phone is off")
    )
    entry = await setup_entry(
        hass, make_entry(**{CONF_NOTIFY_TARGETS: ["broken_phone", "mobile_app_pixel"]})
    )
    publish(hass, "event", make_event(level=2))
    await hass.async_block_till_done()
    issue = issue_registry.async_get_issue(DOMAIN, f"notify_failed_{entry.entry_id}")
    assert issue is not None
    assert issue.translation_placeholders["targets"] == "notify.broken_phone (phone is off)"
    hass.config_entries.async_update_entry(
        entry, options={**entry.options, CONF_NOTIFY_TARGETS: ["mobile_app_pixel"]}
    )
    await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    publish(hass, "event", make_event(level=2))
    await hass.async_block_till_done()
    assert issue_registry.async_get_issue(DOMAIN, f"notify_failed_{entry.entry_id}") is None
    await unload(hass, entry)


def test_the_kinds_of_version_3_show_their_own_evidence() -> None:
    stealth = dict(_render(make_event("stealth_scan", level=2)).fields)
    assert stealth["Ports probed"] == "6" and stealth["Probe types"] == "fin"
    assert stealth["Forged source addresses (decoys)"] == "192.168.1.201, 192.168.1.202"
    assert "Addresses probed" not in stealth
    assert dict(_render(make_event("udp_scan", level=2)).fields)["Probe types"] == "udp"
    ndp = dict(_render(make_event("ndp_spoof", level=3)).fields)
    assert ndp["Address claimed"] == "fe80::a263:91ff:fe0e:1234"
    assert ndp["MAC address it replaced"] == "a0:63:91:0e:12:34"
    ra = dict(_render(make_event("rogue_ra", level=3)).fields)
    assert ra["Prefixes offered"] == "2001:db8:bad::"
    assert ra["The LAN's router (MAC)"] == "a0:63:91:0e:12:34"
    assert "Address claimed" not in ra
    dhcp = dict(_render(make_event("rogue_dhcp", level=3)).fields)
    assert (dhcp["Router offered"], dhcp["DNS servers offered"]) == ("192.168.1.23",) * 2
    assert dhcp["The LAN's DHCP server (MAC)"] == "a0:63:91:0e:12:34"
    starve = dict(_render(make_event("dhcp_starvation", level=2)).fields)
    assert starve["Client MAC addresses asked for"] == "32"
    cache = dict(_render(make_event("cache_exhaustion", level=2)).fields)
    assert cache["Addresses used"] == "192.168.1.100, 192.168.1.101, 192.168.1.102 and 211 more"
    assert "Addresses probed" not in cache
    echonet = dict(_render(make_event("echonet_sweep", level=2)).fields)
    assert echonet["ECHONET Lite requests"] == "Get"
    assert echonet["ECHONET Lite objects"].startswith("192.168.1.2/027d01, ")
    slow = dict(_render(make_event("arp_scan.slow", level=1)).fields)
    assert slow["Paced sweep, seen over"] == "15 min"


def test_a_scan_through_the_router_says_where_it_came_from() -> None:
    event = make_event("syn_scan", level=2)
    event["evidence"].update(via_gateway=True, source_ips=["203.0.113.9"])
    assert ("Came through the router, from", "203.0.113.9") in _render(event).fields
