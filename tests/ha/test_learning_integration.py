"""The classifier inside Home Assistant: verdicts on entities, bus and notifications, labels
that train it, storage across restarts, the accuracy sensor and the model actions."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from homeassistant.core import HomeAssistant, ServiceCall
from homeassistant.exceptions import ServiceValidationError
from pytest_homeassistant_custom_component.common import (
    async_capture_events,
    async_mock_service,
)

from custom_components.lan_guard.const import (
    CONF_NOTIFY_TARGETS,
    DOMAIN,
    EVENT_LAN_GUARD,
)
from custom_components.lan_guard.learner import Learner
from custom_components.lan_guard.learning.features import FEATURE_VERSION
from custom_components.lan_guard.learning.model import (
    DEFAULT_ALARM_FROM,
    DEFAULT_NORMAL_BELOW,
    MIN_EXPORT_LABELS,
)

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
    assert bus[0].data["verdict"] == "alarm"
    assert bus[0].data["probability"] == pytest.approx(0.9)
    attributes = hass.states.get(ACTIVITY).attributes
    assert (attributes["verdict"], attributes["probability"]) == ("alarm", pytest.approx(0.9))
    culprit = hass.states.get(CULPRIT).attributes
    assert (culprit["verdict"], culprit["probability"]) == ("alarm", pytest.approx(0.9))
    stored = entry.runtime_data.coordinator.history.get(event["id"])
    assert stored is not None
    assert stored.assessment == {
        "verdict": "alarm",
        "probability": 0.9,
        "source": "prior",
        "feature_version": FEATURE_VERSION,
    }
    await unload(hass, entry)


async def test_an_unsure_prior_verdict_asks_with_the_buttons(
    hass: HomeAssistant, phone: list[ServiceCall]
) -> None:
    entry = await setup_entry(
        hass, make_entry(**{CONF_NOTIFY_TARGETS: ["notify.mobile_app_pixel"]})
    )
    await deliver(hass, make_event("arp_scan", level=1))  # the level rule: below the notify level
    assert phone == []
    event = owner_scan()
    await deliver(hass, event)
    assert len(phone) == 1
    lines = phone[0].data["message"].splitlines()
    assert "Verdict: Unsure (50%)" in lines
    assert lines[-1].startswith("LAN Guard is not sure about this one.")
    assert [a["action"] for a in phone[0].data["data"]["actions"]] == [
        f"LAN_GUARD_NORMAL_{event['id']}",
        f"LAN_GUARD_ALARM_{event['id']}",
    ]
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
    assert stored["model"]["labels"] == {"normal": 3, "alarm": 0}

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
    assert hass.states.get(ACCURACY).attributes["labels"] == MIN_EXPORT_LABELS

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
    assert (stored.assessment["verdict"], stored.assessment["source"]) == ("alarm", "prior")
    await unload(hass, entry)


async def test_diagnostics_show_the_classifier(hass: HomeAssistant) -> None:
    from custom_components.lan_guard.diagnostics import async_get_config_entry_diagnostics

    entry = await setup_entry(hass)
    await teach_owner_scans(hass, 2)
    diagnostics = await async_get_config_entry_diagnostics(hass, entry)
    classifier = diagnostics["classifier"]
    assert classifier["labels"] == 2
    assert classifier["feature_version"] == FEATURE_VERSION
    assert (classifier["normal_below"], classifier["alarm_from"]) == (
        DEFAULT_NORMAL_BELOW,
        DEFAULT_ALARM_FROM,
    )
    assert classifier["reset_reason"] is None
    await unload(hass, entry)
