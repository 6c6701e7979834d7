"""The event model: what automations see and what is stored."""

from __future__ import annotations

from homeassistant.util import dt as dt_util

from custom_components.lan_guard.const import Kind, Label
from custom_components.lan_guard.models import Incident, LanGuardEvent, Verdict

from .conftest import make_event


def test_event_data_and_record_round_trip() -> None:
    payload = make_event(level=2)
    event = LanGuardEvent(payload, dt_util.utcnow(), {"verdict": "unsure", "probability": 0.5})
    assert event.kind is Kind.SYN_SCAN
    assert event.verdict is Verdict.UNSURE
    assert event.is_threat
    assert event.detected_at.tzinfo is not None
    data = event.event_data()
    assert data["verdict"] == "unsure"
    assert data["probability"] == 0.5
    assert data["culprit"] == payload["source"]
    event.label = Label.NORMAL
    event.labelled_at = dt_util.utcnow()
    again = LanGuardEvent.from_record(event.as_record())
    assert again == event


def test_incident_summary() -> None:
    incident = Incident("a" * 32, 2, {"mac": "aa:bb:cc:dd:ee:ff", "ip": None}, {"syn_scan"})
    assert incident.summary() == {
        "incident_id": "a" * 32,
        "level": 2,
        "mac": "aa:bb:cc:dd:ee:ff",
        "ip": None,
        "kinds": ["syn_scan"],
    }
