"""The classifier inside Home Assistant: verdicts on entities, bus and notifications, labels
that train it, storage across restarts, the accuracy sensor and the model actions."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

import pytest
from freezegun.api import FrozenDateTimeFactory
from homeassistant.components.persistent_notification import (
    _async_get_or_create_notifications,
)
from homeassistant.core import HomeAssistant, ServiceCall
from homeassistant.exceptions import ServiceValidationError
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import (
    async_capture_events,
    async_fire_time_changed,
    async_mock_service,
)

from custom_components.lan_guard.const import (
    CONF_NOTIFY_TARGETS,
    DOMAIN,
    EVENT_LAN_GUARD,
)
from custom_components.lan_guard.learner import Learner
from custom_components.lan_guard.learning.features import FEATURE_VERSION
from custom_components.lan_guard.learning.model import DEFAULT_ALARM_FROM, MIN_EXPORT_LABELS
from custom_components.lan_guard.learning.policy import DEFAULT_ASK_FROM
from custom_components.lan_guard.notifications import notification_id

from .conftest import make_entry, make_event, publish, setup_entry, unload

pytestmark = pytest.mark.usefixtures("mqtt_mock")

ACTIVITY = "event.lan_guard_pi_livingroom_activity"
CULPRIT = "sensor.lan_guard_pi_livingroom_last_culprit"
ACCURACY = "sensor.lan_guard_pi_livingroom_classifier_accuracy"
OWNER_LAPTOP = "3c:22:fb:10:20:30"
NMAP_PORTS = [21, 22, 23, 25, 53, 80, 110, 139, 443, 445, 3389, 8080]


@pytest.fixture
def phone(hass: HomeAssistant) -> list[ServiceCall]:
    return async_mock_service(hass, "notify", "mobile_app_pixel")


def owner_scan() -> dict[str, Any]:
    """The owner's nmap from the laptop: a level 2 scan of many ports."""
    event = make_event("syn_scan", level=2, mac=OWNER_LAPTOP)
    event["evidence"] = {"ports": NMAP_PORTS, "packets": 24, "rate": 800.0}
    return event


async def deliver(hass: HomeAssistant, event: dict[str, Any]) -> None:
    publish(hass, "event", event)
    await hass.async_block_till_done()


async def label(hass: HomeAssistant, event: dict[str, Any], verdict: str) -> None:
    await hass.services.async_call(
        DOMAIN, "label_event", {"event_id": event["id"], "verdict": verdict}, blocking=True
    )


async def teach_owner_scans(hass: HomeAssistant, count: int) -> None:
    """The owner labels ``count`` of the laptop's scans normal."""
    for _ in range(count):
        event = owner_scan()
        await deliver(hass, event)
        await label(hass, event, "normal")


def storage_key(entry_id: str) -> str:
    return f"{DOMAIN}.{entry_id}.classifier"


async def test_the_verdict_travels_with_the_event(hass: HomeAssistant) -> None:
    entry = await setup_entry(hass)
    bus = async_capture_events(hass, EVENT_LAN_GUARD)
    event = make_event("session", level=3)
    await deliver(hass, event)
    stored = entry.runtime_data.coordinator.history.get(event["id"])
    assert stored is not None
    assert stored.assessment is not None
    probability = stored.assessment["probability"]
    assert probability > 0.9
    assert stored.assessment == {
        "verdict": "alarm",
        "probability": probability,
        "decided_by": "prior",
        "labels": 0,
        "feature_version": FEATURE_VERSION,
    }
    # Every place the verdict is shown says what decided it and on how many labels.
    said = {"verdict": "alarm", "probability": probability, "decided_by": "prior", "labels": 0}
    assert {key: bus[0].data[key] for key in said} == said
    attributes = hass.states.get(ACTIVITY).attributes
    assert {key: attributes[key] for key in said} == said
    culprit = hass.states.get(CULPRIT).attributes
    assert {key: culprit[key] for key in said} == said

    await teach_owner_scans(hass, 2)
    later = make_event("session", level=3)
    await deliver(hass, later)
    assert (bus[-1].data["decided_by"], bus[-1].data["labels"]) == ("model", 2)
    assert hass.states.get(ACTIVITY).attributes["decided_by"] == "model"
    await unload(hass, entry)


async def test_a_question_asks_with_the_buttons_within_the_daily_budget(
    hass: HomeAssistant, phone: list[ServiceCall]
) -> None:
    entry = await setup_entry(
        hass,
        make_entry(**{CONF_NOTIFY_TARGETS: ["notify.mobile_app_pixel"], "questions_per_day": 1}),
    )
    # Devices the classifier knows nothing of, sweeping a few dozen addresses: it is unsure.
    sweeps = [
        make_event(
            "arp_scan",
            level=1,
            mac=f"02:00:00:00:00:{n:02x}",
            evidence={"target_count": 40, "packets": 40, "rate": 150.0, "window_s": 0.3},
        )
        for n in range(3)
    ]
    for event in sweeps:
        await deliver(hass, event)
    history = entry.runtime_data.coordinator.history
    verdicts = [history.get(e["id"]).assessment["verdict"] for e in sweeps]  # type: ignore[union-attr]
    assert verdicts == ["unsure", "normal", "normal"]  # one question a day, as configured
    assert len(phone) == 1
    lines = phone[0].data["message"].splitlines()
    assert any(line.startswith("Verdict: Unsure") for line in lines)
    assert lines[-1].startswith("LAN Guard is not sure about this one.")
    assert [a["action"] for a in phone[0].data["data"]["actions"]] == [
        f"LAN_GUARD_NORMAL_{sweeps[0]['id']}",
        f"LAN_GUARD_ALARM_{sweeps[0]['id']}",
    ]
    learner = entry.runtime_data.learner
    assert isinstance(learner, Learner)
    assert list(learner.classifier.questions.open) == [sweeps[0]["id"]]
    hass.bus.async_fire(
        "mobile_app_notification_action", {"action": f"LAN_GUARD_NORMAL_{sweeps[0]['id']}"}
    )
    await hass.async_block_till_done()
    assert hass.states.get(ACCURACY).attributes["labels_normal"] == 1
    assert learner.expired_questions() == []  # answered: nothing to withdraw
    await unload(hass, entry)


async def test_an_answer_outlives_the_event_history(
    hass: HomeAssistant, phone: list[ServiceCall], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("custom_components.lan_guard.history.MAX_EVENTS", 5)
    entry = await setup_entry(
        hass, make_entry(**{CONF_NOTIFY_TARGETS: ["notify.mobile_app_pixel"]})
    )
    alarm = make_event("session", level=3, mac="00:1e:c9:aa:bb:cc")
    await deliver(hass, alarm)
    assert len(phone) == 1
    for n in range(10):  # many events later the history no longer holds it
        await deliver(hass, make_event("arp_scan", level=1, mac=f"02:00:00:00:01:{n:02x}"))
    assert entry.runtime_data.coordinator.history.get(alarm["id"]) is None
    hass.bus.async_fire(
        "mobile_app_notification_action", {"action": f"LAN_GUARD_ALARM_{alarm['id']}"}
    )
    await hass.async_block_till_done()
    assert hass.states.get(ACCURACY).attributes["labels_alarm"] == 1  # learned all the same
    # The action works the same way; an event nobody kept is refused with the reason.
    await label(hass, alarm, "alarm")  # the same answer: counted once
    assert hass.states.get(ACCURACY).attributes["labels"] == 1
    with pytest.raises(ServiceValidationError) as unknown:
        await label(hass, {"id": "f" * 32}, "normal")
    assert unknown.value.translation_key == "unknown_event"
    await unload(hass, entry)


async def test_labels_teach_and_the_model_takes_over(
    hass: HomeAssistant, phone: list[ServiceCall]
) -> None:
    entry = await setup_entry(
        hass, make_entry(**{CONF_NOTIFY_TARGETS: ["notify.mobile_app_pixel"]})
    )
    assert hass.states.get(ACCURACY).state == "unknown"
    await teach_owner_scans(hass, 6)
    state = hass.states.get(ACCURACY)
    assert state.attributes["labels"] == 6
    assert state.attributes["labels_normal"] == 6
    assert state.attributes["decided_by"] == "model"
    assert 0.0 <= float(state.state) <= 100.0
    asked_so_far = len(phone)

    later = owner_scan()
    await deliver(hass, later)
    assert hass.states.get(ACTIVITY).attributes["verdict"] == "normal"
    assert len(phone) == asked_so_far  # normal: logged only
    # Labelling the same event again counts once.
    await label(hass, later, "normal")
    await label(hass, later, "normal")
    assert hass.states.get(ACCURACY).attributes["labels"] == 7

    ransomware = make_event("syn_scan", level=2, mac="00:1e:c9:aa:bb:cc")
    ransomware["evidence"] = {"ports": [554, 445, 9100, 80, 515, 139], "packets": 12}
    await deliver(hass, ransomware)
    assert hass.states.get(ACTIVITY).attributes["verdict"] == "alarm"
    assert len(phone) == asked_so_far + 1
    assert "Verdict: Alarm" in phone[-1].data["message"].splitlines()[-2]

    # A phone button is a label too.
    hass.bus.async_fire(
        "mobile_app_notification_action", {"action": f"LAN_GUARD_ALARM_{ransomware['id']}"}
    )
    await hass.async_block_till_done()
    assert hass.states.get(ACCURACY).attributes["labels_alarm"] == 1
    await unload(hass, entry)


async def test_a_model_verdict_may_notify_below_the_notify_level(
    hass: HomeAssistant, phone: list[ServiceCall]
) -> None:
    entry = await setup_entry(
        hass, make_entry(**{CONF_NOTIFY_TARGETS: ["notify.mobile_app_pixel"]})
    )
    await teach_owner_scans(hass, 3)
    camera = "c0:56:e3:01:02:03"
    for _ in range(3):  # the owner says a camera's telnet scans are alarms
        scan = make_event("syn_scan", level=2, mac=camera)
        scan["evidence"] = {"ports": [23, 2323], "packets": 40}
        await deliver(hass, scan)
        await label(hass, scan, "alarm")
    before = len(phone)
    await deliver(hass, make_event("arp_scan", level=1, mac=camera))  # then it sweeps the LAN
    attributes = hass.states.get(ACTIVITY).attributes
    assert attributes["verdict"] in {"unsure", "alarm"}
    assert len(phone) == before + 1  # level 1 is below the notify level, the model tells
    await unload(hass, entry)


async def test_the_model_survives_a_restart(
    hass: HomeAssistant, hass_storage: dict[str, Any]
) -> None:
    entry = await setup_entry(hass)
    await teach_owner_scans(hass, 3)
    await unload(hass, entry)
    stored = hass_storage[storage_key(entry.entry_id)]["data"]
    assert stored["feature_version"] == FEATURE_VERSION
    assert stored["own"]["labels"] == {"normal": 3, "alarm": 0}
    assert "incidents" in stored["pushes"]

    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert hass.states.get(ACCURACY).attributes["labels"] == 3
    await unload(hass, entry)


async def test_another_feature_version_starts_afresh(
    hass: HomeAssistant, hass_storage: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    entry = make_entry()
    hass_storage[storage_key(entry.entry_id)] = {
        "version": 1,
        "minor_version": 1,
        "key": storage_key(entry.entry_id),
        "data": {"format": 1, "feature_version": FEATURE_VERSION + 7, "model": {}},
    }
    with caplog.at_level(logging.WARNING):
        await setup_entry(hass, entry)
    assert "feature version" in caplog.text
    learner = entry.runtime_data.learner
    assert isinstance(learner, Learner)
    assert learner.reset_reason is not None
    assert learner.stats()["labels"] == 0
    await unload(hass, entry)
    assert hass_storage[storage_key(entry.entry_id)]["data"]["feature_version"] == FEATURE_VERSION


async def test_reset_export_and_import(hass: HomeAssistant) -> None:
    entry = await setup_entry(hass)
    with pytest.raises(ServiceValidationError) as refused:
        await hass.services.async_call(
            DOMAIN, "export_model", {}, blocking=True, return_response=True
        )
    assert refused.value.translation_key == "model_not_exportable"

    await teach_owner_scans(hass, MIN_EXPORT_LABELS)
    response = await hass.services.async_call(
        DOMAIN,
        "export_model",
        {"config_entry_id": entry.entry_id},
        blocking=True,
        return_response=True,
    )
    assert response is not None
    (agent,) = response["agents"]
    model = agent["model"]
    assert model["labels"] == {"normal": MIN_EXPORT_LABELS, "alarm": 0}
    text = json.dumps(model)
    assert OWNER_LAPTOP not in text
    assert "192.168." not in text
    for stored in entry.runtime_data.coordinator.history:
        assert stored.id not in text

    await hass.services.async_call(DOMAIN, "reset_model", {}, blocking=True)
    assert hass.states.get(ACCURACY).attributes["labels"] == 0
    assert hass.states.get(ACCURACY).attributes["decided_by"] == "prior"

    await hass.services.async_call(DOMAIN, "import_model", {"model": model}, blocking=True)
    attributes = hass.states.get(ACCURACY).attributes
    assert (attributes["labels"], attributes["imported_models"]) == (0, 1)
    assert attributes["imported_labels"] == MIN_EXPORT_LABELS
    assert attributes["decided_by"] == "model"
    # Importing the same model again changes nothing.
    await hass.services.async_call(DOMAIN, "import_model", {"model": model}, blocking=True)
    assert hass.states.get(ACCURACY).attributes["imported_labels"] == MIN_EXPORT_LABELS

    with pytest.raises(ServiceValidationError) as bad:
        await hass.services.async_call(
            DOMAIN, "import_model", {"model": {**model, "feature_version": 0}}, blocking=True
        )
    assert bad.value.translation_key == "model_not_importable"
    with pytest.raises(ServiceValidationError) as missing:
        await hass.services.async_call(
            DOMAIN, "reset_model", {"config_entry_id": "nope"}, blocking=True
        )
    assert missing.value.translation_key == "entry_not_loaded"
    await unload(hass, entry)


async def test_removing_the_agent_deletes_its_model(
    hass: HomeAssistant, hass_storage: dict[str, Any]
) -> None:
    entry = await setup_entry(hass)
    await teach_owner_scans(hass, 1)
    await unload(hass, entry)
    assert storage_key(entry.entry_id) in hass_storage
    assert await hass.config_entries.async_remove(entry.entry_id)
    await hass.async_block_till_done()
    assert storage_key(entry.entry_id) not in hass_storage


async def test_a_classifier_failure_loses_no_event(
    hass: HomeAssistant, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    entry = await setup_entry(hass)
    learner = entry.runtime_data.learner
    assert isinstance(learner, Learner)

    def broken(payload: dict[str, Any]) -> Any:
        raise ValueError("broken on purpose")

    monkeypatch.setattr(learner.classifier, "assess", broken)
    event = make_event("session", level=3)
    await deliver(hass, event)
    assert "classifier failed on event" in caplog.text
    stored = entry.runtime_data.coordinator.history.get(event["id"])
    assert stored is not None
    assert stored.assessment is not None
    assert (stored.assessment["verdict"], stored.assessment["decided_by"]) == ("alarm", "rule")
    await unload(hass, entry)


async def test_diagnostics_show_the_classifier(hass: HomeAssistant) -> None:
    from custom_components.lan_guard.diagnostics import async_get_config_entry_diagnostics

    entry = await setup_entry(hass)
    await teach_owner_scans(hass, 2)
    diagnostics = await async_get_config_entry_diagnostics(hass, entry)
    classifier = diagnostics["classifier"]
    assert classifier["labels"] == 2
    assert classifier["feature_version"] == FEATURE_VERSION
    assert classifier["alarm_from"] == DEFAULT_ALARM_FROM
    assert (classifier["questions_per_day"], classifier["ask_from"]) == (3, DEFAULT_ASK_FROM)
    assert classifier["reset_reason"] is None
    await unload(hass, entry)


async def test_pushes_follow_the_policy_across_a_restart(
    hass: HomeAssistant, phone: list[ServiceCall]
) -> None:
    """An incident L1 -> L2 -> L2 -> L3: one push when first judged alarm, one per escalated
    level, silent updates; the policy's state is stored, so a restart rings nobody again."""
    entry = await setup_entry(
        hass, make_entry(**{CONF_NOTIFY_TARGETS: ["notify.mobile_app_pixel"]})
    )
    incident, bot = "a" * 32, "00:1e:c9:aa:bb:cc"
    steps = [("arp_scan", 1), ("syn_scan", 2), ("syn_scan", 2), ("session", 3)]
    for kind, level in steps:
        await deliver(hass, make_event(kind, level=level, incident_id=incident, mac=bot))
    rings = [call.data["data"].get("alert_once") is not True for call in phone]
    firsts = [call.data["message"].split("\n", 1)[0] for call in phone]
    # The new source's sweep is asked about (a push), the scans alarm: level 2 escalates,
    # its repeat updates silently, the session escalates again.
    assert firsts[0].startswith("Is this normal? ARP scan")
    assert rings == [True, True, False, True]
    assert firsts[1:] == [
        "Escalated to level 2: SYN scan of the monitoring node",
        "Update: SYN scan of the monitoring node (level 2)",
        "Escalated to level 3: Session with the monitoring node",
    ]
    learner = entry.runtime_data.learner
    headline = phone[-1].data["data"]["actions"][0]["action"].rsplit("_", 1)[1]
    assert learner.can_learn(headline)  # the event its buttons answer is kept
    await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    await deliver(hass, make_event("syn_scan", level=2, incident_id=incident, mac=bot))
    assert len(phone) == 5
    assert phone[-1].data["data"]["alert_once"] is True  # remembered: an update, silent
    await unload(hass, entry)


async def test_an_unanswered_question_is_withdrawn_quietly(
    hass: HomeAssistant, phone: list[ServiceCall], freezer: FrozenDateTimeFactory
) -> None:
    entry = await setup_entry(
        hass, make_entry(**{CONF_NOTIFY_TARGETS: ["notify.mobile_app_pixel"]})
    )
    question = make_event("arp_scan", level=1, mac="02:00:00:00:00:07")
    await deliver(hass, question)
    alarm = make_event("session", level=3, mac="00:1e:c9:aa:bb:cc")
    await deliver(hass, alarm)
    history = entry.runtime_data.coordinator.history
    assert [history.get(e["id"]).verdict for e in (question, alarm)] == ["unsure", "alarm"]  # type: ignore[union-attr]
    learner = entry.runtime_data.learner
    learner.classifier.questions.open[alarm["id"]] = dt_util.utcnow().timestamp()  # asked too
    assert len(phone) == 2
    freezer.tick(timedelta(hours=23))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert len(phone) == 2  # not yet
    freezer.tick(timedelta(hours=1, minutes=11))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    # The question's notification goes, on the phone and in HA; the alarm's stays.
    assert len(phone) == 3
    assert phone[-1].data["message"] == "clear_notification"
    assert phone[-1].data["data"] == {"tag": notification_id(question["incident_id"])}
    shown = _async_get_or_create_notifications(hass)
    assert list(shown) == [notification_id(alarm["incident_id"])]
    assert learner.classifier.questions.open == {}
    # Asked again later, its incident pushes afresh (its notification is gone).
    assert not learner.pushes.pushed(question["incident_id"])
    await unload(hass, entry)
