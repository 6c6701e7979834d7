"""Evacuation mode: start, isolate, quarantine, culprit left, restore (with a fake agent)."""

from __future__ import annotations

from typing import Any

import pytest
from homeassistant.components import persistent_notification
from homeassistant.const import EVENT_LOGBOOK_ENTRY
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from pytest_homeassistant_custom_component.common import async_capture_events

from custom_components.lan_guard.const import (
    CONF_EVACUATION_LEVEL,
    CONF_EVACUATION_RESTORE,
    CONF_EVACUATION_TRIGGER,
    DOMAIN,
    EVENT_MOBILE_APP_NOTIFICATION_ACTION,
    Label,
)
from custom_components.lan_guard.evacuation.machine import Choice
from custom_components.lan_guard.evacuation.record import Phase, Reason
from custom_components.lan_guard.evacuation.runner import (
    action_id,
    notification_id,
    parse_action,
    storage_key,
)
from custom_components.lan_guard.models import LanGuardEvent

from .conftest import example, make_event, make_state, publish, unload
from .evacuation_fixtures import (
    CULPRIT_IP,
    CULPRIT_MAC,
    HEATER,
    SWITCH,
    TV,
    host_left,
    publish_event,
    setup_evacuation,
)

pytestmark = pytest.mark.usefixtures("mqtt_mock")


def _ours(calls: list[Any]) -> list[Any]:
    """The evacuation notifications among the phone's (the event's own ones aside)."""
    return [c for c in calls if c.data["data"]["tag"].startswith(f"{DOMAIN}_evacuation_")]


def _notification(hass: HomeAssistant, entry_id: str) -> dict[str, Any]:
    notes = persistent_notification._async_get_or_create_notifications(hass)
    return dict(notes[notification_id(entry_id)])


async def test_level_2_event_isolates_quarantines_notifies_then_restores_when_culprit_leaves(
    hass: HomeAssistant, mqtt_mock: Any, hass_storage: dict[str, Any]
) -> None:
    logbook = async_capture_events(hass, EVENT_LOGBOOK_ENTRY)
    entry, manager, agent, phone = await setup_evacuation(hass, mqtt_mock)
    assert hass.states.get(SWITCH).state == "off"

    publish_event(hass, make_event(level=2))
    await hass.async_block_till_done()

    # Isolated: the TV off, the heater still off; the culprit quarantined by the agent.
    assert hass.states.get(SWITCH).state == "on"
    assert hass.states.get(TV).state == "off"
    assert hass.states.get(HEATER).state == "off"
    assert agent.actions() == [("quarantine", CULPRIT_MAC)]
    assert agent.commands[0]["ip"] == CULPRIT_IP
    attributes = hass.states.get(SWITCH).attributes
    assert attributes["phase"] == "active"
    assert attributes["reason"] == "event"
    assert attributes["isolated"] == [HEATER, TV]
    assert attributes["culprits"][0]["in_force"] is True
    assert attributes["culprits"][0]["quarantine"] == {"ok": True, "reason": None, "detail": None}
    # Persisted: the prior states, before anything was switched off.
    stored = hass_storage[storage_key(entry.entry_id)]["data"]
    assert stored["phase"] == "active"
    assert stored["appliances"][TV]["state"] == "on"
    assert stored["appliances"][HEATER]["state"] == "off"
    # Told: the phone (actionable) and a persistent notification, with the culprit's MAC and IP.
    assert len(_ours(phone)) == 1
    message = _ours(phone)[0].data["message"]
    assert CULPRIT_MAC in message and CULPRIT_IP in message and "TV" in message
    assert _ours(phone)[0].data["title"] == "LAN Guard: evacuation mode on"
    assert [a["action"] for a in _ours(phone)[0].data["data"]["actions"]] == [
        action_id(Choice.RESTORE, entry.entry_id),
        action_id(Choice.KEEP, entry.entry_id),
    ]
    assert "quarantined (agent)" in _notification(hass, entry.entry_id)["message"]
    steps = [event.data["message"] for event in logbook]
    assert steps[0].startswith("Evacuation mode started: detected SYN scan of the monitoring node")
    assert steps[1] == "Isolated: TV (input_boolean.tv)"
    assert CULPRIT_MAC in steps[2] and "quarantined" in steps[2]
    assert all(event.data["entity_id"] == SWITCH for event in logbook)

    # The culprit leaves: quarantine lifted, the TV back on, the heater left off.
    publish_event(hass, host_left())
    await hass.async_block_till_done()
    assert hass.states.get(SWITCH).state == "off"
    assert agent.actions()[-1] == ("release", CULPRIT_MAC)
    assert hass.states.get(TV).state == "on"
    assert hass.states.get(HEATER).state == "off"
    assert storage_key(entry.entry_id) not in hass_storage
    assert phone[-2].data["title"] == "LAN Guard: the culprit left"
    assert phone[-2].data["message"].endswith("has left the network. Restoring service.")
    assert "actions" not in phone[-2].data["data"]
    assert phone[-1].data["title"] == "LAN Guard: service restored"
    assert "the culprit left the network" in phone[-1].data["message"]
    assert f"{CULPRIT_MAC} ({CULPRIT_IP})" in phone[-1].data["message"]
    steps = [event.data["message"] for event in logbook]
    assert steps[-2] == f"Culprit {CULPRIT_MAC} ({CULPRIT_IP}) left the network"
    assert steps[-1].startswith("Service restored (the culprit left the network).")
    assert manager.record.phase is Phase.IDLE
    await unload(hass, entry)


async def test_below_the_level_allowlisted_or_manual_policy_do_not_start(
    hass: HomeAssistant, mqtt_mock: Any
) -> None:
    entry, manager, _, _ = await setup_evacuation(
        hass, mqtt_mock, **{CONF_EVACUATION_LEVEL: 3, "allowlist": ["10.0.0.9"]}
    )
    publish_event(hass, make_event(level=2))
    publish_event(hass, make_event("session", level=3, mac="02:00:00:00:00:09", ip="10.0.0.9"))
    publish_event(hass, host_left())  # not a culprit: nothing to do
    await hass.async_block_till_done()
    assert not manager.active
    publish_event(hass, make_event("session", level=3))
    await hass.async_block_till_done()
    assert manager.active
    await manager.async_stop()
    await unload(hass, entry)

    hass.config_entries.async_update_entry(
        entry, options={**entry.options, CONF_EVACUATION_TRIGGER: "manual"}
    )
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    publish_event(hass, make_event("session", level=3))
    await hass.async_block_till_done()
    assert not entry.runtime_data.evacuation.active
    await unload(hass, entry)


class _Classifier:
    def __init__(self, verdict: str) -> None:
        self.verdict = verdict

    def assess(self, event: LanGuardEvent) -> dict[str, Any]:
        return {"verdict": self.verdict, "probability": 0.5}

    async def async_learn(self, event: LanGuardEvent, label: Label) -> None:
        return None


@pytest.mark.parametrize(
    ("verdict", "level", "starts"),
    [("alarm", 1, True), ("normal", 3, False), ("unsure", 3, False), (None, 2, True)],
)
async def test_verdict_policy_reads_the_classifier_and_falls_back_to_the_level(
    hass: HomeAssistant, mqtt_mock: Any, verdict: str | None, level: int, starts: bool
) -> None:
    entry, manager, _, _ = await setup_evacuation(
        hass, mqtt_mock, **{CONF_EVACUATION_TRIGGER: "verdict"}
    )
    # None: no classifier at all (the integration's own one is taken out).
    entry.runtime_data.coordinator.classifier = (
        _Classifier(verdict) if verdict is not None else None
    )
    publish_event(hass, make_event("arp_scan" if level == 1 else "syn_scan", level=level))
    await hass.async_block_till_done()
    assert manager.active is starts
    if starts:
        assert manager.record.reason == ("verdict" if verdict else "event")
    await unload(hass, entry)


async def test_confirm_policy_waits_for_the_owner_and_keep_holds_isolation(
    hass: HomeAssistant, mqtt_mock: Any
) -> None:
    entry, manager, agent, phone = await setup_evacuation(
        hass, mqtt_mock, **{CONF_EVACUATION_RESTORE: "confirm"}
    )
    publish_event(hass, make_event(level=2))
    await hass.async_block_till_done()
    publish_event(hass, host_left())
    await hass.async_block_till_done()
    assert manager.record.phase is Phase.CULPRIT_LEFT
    assert hass.states.get(SWITCH).state == "on"
    assert hass.states.get(SWITCH).attributes["phase"] == "culprit_left"
    assert hass.states.get(TV).state == "off"
    assert phone[-1].data["title"] == "LAN Guard: the culprit left"
    assert phone[-1].data["data"]["actions"] == [
        {"action": action_id(Choice.RESTORE, entry.entry_id), "title": "Restore service"}
    ]
    # Someone else's button, then ours.
    hass.bus.async_fire(
        EVENT_MOBILE_APP_NOTIFICATION_ACTION, {"action": "LAN_GUARD_EVAC_RESTORE_x"}
    )
    hass.bus.async_fire(EVENT_MOBILE_APP_NOTIFICATION_ACTION, {"action": "OTHER"})
    await hass.async_block_till_done()
    assert manager.active
    hass.bus.async_fire(
        EVENT_MOBILE_APP_NOTIFICATION_ACTION,
        {"action": action_id(Choice.RESTORE, entry.entry_id)},
    )
    await hass.async_block_till_done()
    assert not manager.active
    assert hass.states.get(TV).state == "on"
    assert agent.actions()[-1] == ("release", CULPRIT_MAC)
    await unload(hass, entry)


async def test_alarm_after_the_culprit_left_has_a_defined_outcome_in_the_logbook(
    hass: HomeAssistant, mqtt_mock: Any
) -> None:
    """The event notification asks "Normal or Alarm?"; the owner answers after the culprit
    left. Evacuation stays waiting for the owner (no host_left would come again), says so in
    the logbook and asks again where to restore."""
    logbook = async_capture_events(hass, EVENT_LOGBOOK_ENTRY)
    entry, manager, agent, phone = await setup_evacuation(
        hass, mqtt_mock, **{CONF_EVACUATION_RESTORE: "confirm"}
    )
    event = make_event(level=2)
    publish_event(hass, event)
    await hass.async_block_till_done()
    publish_event(hass, host_left())
    await hass.async_block_till_done()
    assert manager.record.phase is Phase.CULPRIT_LEFT
    commands = len(agent.commands)

    alarm = f"LAN_GUARD_ALARM_{event['id']}"  # the event notification's button
    hass.bus.async_fire(EVENT_MOBILE_APP_NOTIFICATION_ACTION, {"action": alarm})
    await hass.async_block_till_done()
    assert manager.record.phase is Phase.CULPRIT_LEFT
    assert hass.states.get(SWITCH).attributes["phase"] == "culprit_left"
    assert len(agent.commands) == commands  # nobody to isolate
    assert logbook[-1].data["message"] == (
        f"You marked the activity of {CULPRIT_MAC} ({CULPRIT_IP}) as an alarm. It has already"
        " left the network: there is nothing more to isolate."
    )
    assert logbook[-1].data["entity_id"] == SWITCH
    asked = _ours(phone)[-1].data
    assert asked["title"] == "LAN Guard: the culprit left"
    assert [a["title"] for a in asked["data"]["actions"]] == ["Restore service"]
    # The persistent notification has no buttons: it links to the inbox, which has them.
    assert _notification(hass, entry.entry_id)["message"].endswith(
        "[Answer in the LAN Guard inbox](/lan-guard)"
    )
    # ... and the owner's "Restore service" still ends it.
    hass.bus.async_fire(
        EVENT_MOBILE_APP_NOTIFICATION_ACTION,
        {"action": action_id(Choice.RESTORE, entry.entry_id)},
    )
    await hass.async_block_till_done()
    assert not manager.active
    assert hass.states.get(TV).state == "on"
    await unload(hass, entry)


async def test_a_false_alarm_among_two_culprits_keeps_the_other_isolated(
    hass: HomeAssistant, mqtt_mock: Any
) -> None:
    logbook = async_capture_events(hass, EVENT_LOGBOOK_ENTRY)
    entry, manager, agent, _ = await setup_evacuation(hass, mqtt_mock)
    other = "02:00:00:00:00:42"
    first = make_event(level=2)
    publish_event(hass, first)
    publish_event(hass, make_event(level=3, mac=other, ip="192.168.1.42"))
    await hass.async_block_till_done()
    await hass.services.async_call(
        DOMAIN, "label_event", {"event_id": first["id"], "verdict": "normal"}, blocking=True
    )
    await hass.async_block_till_done()
    assert agent.actions()[-1] == ("release", CULPRIT_MAC)
    assert list(manager.record.culprits) == [other]
    assert manager.active and hass.states.get(TV).state == "off"
    assert logbook[-1].data["message"] == (
        f"{CULPRIT_MAC} ({CULPRIT_IP}) was a false alarm: its quarantine is lifted."
    )
    await unload(hass, entry)


async def test_keep_isolated_button_stops_automatic_restore(
    hass: HomeAssistant, mqtt_mock: Any
) -> None:
    entry, manager, _, _ = await setup_evacuation(hass, mqtt_mock)
    await manager.async_keep()  # nothing running: nothing to hold
    assert not manager.record.hold
    publish_event(hass, make_event(level=2))
    await hass.async_block_till_done()
    hass.bus.async_fire(
        EVENT_MOBILE_APP_NOTIFICATION_ACTION, {"action": action_id(Choice.KEEP, entry.entry_id)}
    )
    await hass.async_block_till_done()
    assert manager.record.hold
    publish_event(hass, host_left())
    await hass.async_block_till_done()
    assert manager.record.phase is Phase.CULPRIT_LEFT  # held: the owner decides
    await manager.async_stop()
    assert not manager.active
    await unload(hass, entry)


async def test_hosts_inventory_reports_the_culprit_gone(
    hass: HomeAssistant, mqtt_mock: Any
) -> None:
    entry, manager, agent, _ = await setup_evacuation(hass, mqtt_mock)
    event = make_event(level=2)
    publish_event(hass, event)
    await hass.async_block_till_done()
    hosts = example("hosts")
    culprit = next(h for h in hosts["hosts"] if h["mac"] == CULPRIT_MAC)
    # An inventory older than the scan says nothing about leaving.
    culprit.update(present=False, last_seen="2020-01-01T00:00:00.000Z")
    publish(hass, "hosts", hosts)  # live: a broker sets retain only on subscription
    await hass.async_block_till_done()
    assert manager.active
    publish(hass, "state", make_state([]))  # an unrelated update
    await hass.async_block_till_done()
    assert manager.active
    hosts = example("hosts")
    culprit = next(h for h in hosts["hosts"] if h["mac"] == CULPRIT_MAC)
    culprit.update(present=False, last_seen=event["last_seen"])
    publish(hass, "hosts", hosts)  # live: a broker sets retain only on subscription
    await hass.async_block_till_done()
    assert not manager.active
    assert agent.actions()[-1] == ("release", CULPRIT_MAC)
    await unload(hass, entry)


async def test_labels_start_and_end_evacuation(hass: HomeAssistant, mqtt_mock: Any) -> None:
    entry, manager, agent, _ = await setup_evacuation(hass, mqtt_mock, **{CONF_EVACUATION_LEVEL: 3})
    event = make_event(level=2)
    publish_event(hass, event)
    await hass.async_block_till_done()
    assert not manager.active
    await hass.services.async_call(
        DOMAIN, "label_event", {"event_id": event["id"], "verdict": "alarm"}, blocking=True
    )
    await hass.async_block_till_done()
    assert manager.active
    assert manager.record.reason == Reason.LABEL
    assert hass.states.get(TV).state == "off"
    await hass.services.async_call(
        DOMAIN, "label_event", {"event_id": event["id"], "verdict": "normal"}, blocking=True
    )
    await hass.async_block_till_done()
    assert not manager.active
    assert hass.states.get(TV).state == "on"
    assert agent.actions() == [("quarantine", CULPRIT_MAC), ("release", CULPRIT_MAC)]
    left = host_left()
    publish_event(hass, left)
    await hass.async_block_till_done()
    await hass.services.async_call(
        DOMAIN, "label_event", {"event_id": left["id"], "verdict": "alarm"}, blocking=True
    )
    assert not manager.active  # not a threat: a label does not make it one
    await unload(hass, entry)


async def test_a_second_culprit_joins_and_both_must_leave(
    hass: HomeAssistant, mqtt_mock: Any
) -> None:
    entry, manager, agent, phone = await setup_evacuation(hass, mqtt_mock)
    other = "02:00:00:00:00:42"
    publish_event(hass, make_event(level=2))
    await hass.async_block_till_done()
    publish_event(hass, make_event(level=2))  # the same culprit again: nothing new
    await hass.async_block_till_done()
    publish_event(hass, make_event(level=3, mac=other, ip="192.168.1.42"))
    await hass.async_block_till_done()
    assert agent.actions() == [("quarantine", CULPRIT_MAC), ("quarantine", other)]
    assert phone[-1].data["title"] == "LAN Guard: one more culprit"
    assert other in phone[-1].data["message"]
    publish_event(hass, host_left())
    await hass.async_block_till_done()
    assert manager.active
    publish_event(hass, host_left(other, "192.168.1.42"))
    await hass.async_block_till_done()
    assert not manager.active
    assert sorted(agent.actions()[2:]) == [("release", other), ("release", CULPRIT_MAC)]
    await unload(hass, entry)


async def test_a_culprit_that_comes_back_is_quarantined_again(
    hass: HomeAssistant, mqtt_mock: Any
) -> None:
    entry, manager, agent, phone = await setup_evacuation(
        hass, mqtt_mock, **{CONF_EVACUATION_RESTORE: "confirm"}
    )
    publish_event(hass, make_event(level=2))
    await hass.async_block_till_done()
    agent.answer = "silent"
    manager.coordinator.status = "offline"  # the next command fails fast
    publish_event(hass, host_left())
    await hass.async_block_till_done()
    assert manager.record.phase is Phase.CULPRIT_LEFT
    manager.coordinator.status = "online"
    agent.answer = "ok"
    publish_event(hass, make_event(level=2))
    await hass.async_block_till_done()
    assert manager.record.phase is Phase.ACTIVE
    assert not manager.record.culprits[CULPRIT_MAC].left
    assert _ours(phone)[-1].data["title"] == "LAN Guard: the culprit is back"
    assert (
        _ours(phone)[-1]
        .data["message"]
        .startswith("pi-livingroom: a culprit that had left is back on the network.")
    )
    await unload(hass, entry)


async def test_a_culprit_back_with_a_new_ip_is_quarantined_at_the_new_ip(
    hass: HomeAssistant, mqtt_mock: Any
) -> None:
    entry, manager, agent, _ = await setup_evacuation(
        hass, mqtt_mock, **{CONF_EVACUATION_RESTORE: "confirm"}
    )
    publish_event(hass, make_event(level=2))
    await hass.async_block_till_done()
    publish_event(hass, host_left())
    await hass.async_block_till_done()
    assert manager.record.phase is Phase.CULPRIT_LEFT
    publish_event(hass, make_event(level=2, ip="192.168.1.99"))
    await hass.async_block_till_done()
    assert manager.record.culprits[CULPRIT_MAC].ip == "192.168.1.99"
    assert [command["ip"] for command in agent.commands] == [CULPRIT_IP, "192.168.1.99"]
    await unload(hass, entry)


async def test_a_failed_quarantine_is_retried_on_the_next_event_quietly(
    hass: HomeAssistant, mqtt_mock: Any
) -> None:
    entry, manager, agent, phone = await setup_evacuation(hass, mqtt_mock)
    agent.answer = "refuse"
    publish_event(hass, make_event(level=2))
    await hass.async_block_till_done()
    assert "the agent refused (refused: nft failed)" in _ours(phone)[-1].data["message"]
    publish_event(hass, make_event(level=2))  # still refused: no second message
    await hass.async_block_till_done()
    assert len(_ours(phone)) == 1
    agent.answer = "ok"
    publish_event(hass, make_event(level=2))
    await hass.async_block_till_done()
    assert manager.record.culprits[CULPRIT_MAC].in_force
    assert "the culprit is isolated now" in _ours(phone)[-1].data["message"]
    assert agent.actions() == [("quarantine", CULPRIT_MAC)] * 3
    await unload(hass, entry)


async def test_notify_failure_is_logged_not_raised(
    hass: HomeAssistant, mqtt_mock: Any, caplog: pytest.LogCaptureFixture
) -> None:
    entry, manager, _, _ = await setup_evacuation(
        hass, mqtt_mock, notify_targets=["notify.missing_phone"]
    )
    publish_event(hass, make_event(level=2))
    await hass.async_block_till_done()
    assert manager.active
    assert "Could not notify notify.missing_phone of evacuation" in caplog.text
    await unload(hass, entry)


def test_notification_actions_round_trip() -> None:
    entry_id = "01JABCDEF0123456789ABCDEFG"
    assert parse_action(action_id(Choice.KEEP, entry_id)) == (Choice.KEEP, entry_id)
    assert parse_action(action_id(Choice.RESTORE, entry_id)) == (Choice.RESTORE, entry_id)
    assert parse_action("LAN_GUARD_EVAC_PANIC_x") is None
    assert parse_action("LAN_GUARD_EVAC_RESTORE_") is None
    assert parse_action(None) is None
    assert parse_action("LAN_GUARD_ALARM_x") is None


async def test_restore_clears_an_old_incomplete_issue(
    hass: HomeAssistant, mqtt_mock: Any, issue_registry: ir.IssueRegistry
) -> None:
    entry, manager, agent, _ = await setup_evacuation(hass, mqtt_mock)
    publish_event(hass, make_event(level=2))
    await hass.async_block_till_done()
    agent.answer = "refuse"
    await manager.async_stop()
    issue = issue_registry.async_get_issue(DOMAIN, f"evacuation_incomplete_{entry.entry_id}")
    assert issue is not None
    assert CULPRIT_MAC in issue.translation_placeholders["items"]
    assert manager.active  # the quarantine is still in force: the switch says so
    assert hass.states.get(TV).state == "on"  # what could be restored, was
    assert manager.record.appliances == {}
    agent.answer = "ok"
    await manager.async_stop()
    assert not manager.active
    assert issue_registry.async_get_issue(DOMAIN, f"evacuation_incomplete_{entry.entry_id}") is None
    await unload(hass, entry)


async def test_diagnostics_show_the_evacuation_without_identities(
    hass: HomeAssistant, mqtt_mock: Any
) -> None:
    from custom_components.lan_guard.diagnostics import async_get_config_entry_diagnostics

    entry, _, _, _ = await setup_evacuation(
        hass, mqtt_mock, protected_hosts=["192.168.1.9"], quarantine_entities=[]
    )
    publish_event(hass, make_event(level=2))
    await hass.async_block_till_done()
    diagnostics = await async_get_config_entry_diagnostics(hass, entry)
    evacuation = diagnostics["evacuation"]
    assert evacuation["phase"] == "active"
    assert evacuation["culprits"][0]["mac"] == "**REDACTED**"
    assert evacuation["culprits"][0]["in_force"] is True
    assert diagnostics["entry"]["options"]["protected_hosts"] == "**REDACTED**"
    assert CULPRIT_MAC not in str(evacuation)
    await unload(hass, entry)
