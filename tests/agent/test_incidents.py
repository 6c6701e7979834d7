"""Incidents: first crossing, escalation, rate-limited updates, closing, host_left."""

from __future__ import annotations

from itertools import count
from typing import Any

from sensor_agent.detectors import Detection
from sensor_agent.incidents import IncidentConfig, IncidentTracker
from tests.contract import validate_from_pipeline

MAC = bytes.fromhex("001b21420042")
OTHER = bytes.fromhex("3c22fb1f001f")
IP = bytes((198, 18, 10, 66))
T0 = 1_795_597_200.0


def identify(mac: bytes, ip: bytes | None) -> dict[str, Any]:
    return {
        "mac": mac.hex(":"),
        "ip": ".".join(map(str, ip)) if ip else None,
        "vendor": None,
        "hostname": None,
    }


def detection(kind: str, level: int, now: float, mac: bytes = MAC, n: int = 1) -> Detection:
    return Detection(kind, level, mac, IP, now - 1, now, lambda: {"packets": n})


def tracker(**config: Any) -> IncidentTracker:
    ids = count(1)
    return IncidentTracker(
        "test-agent", identify, IncidentConfig(**config), id_factory=lambda: f"{next(ids):032x}"
    )


def test_first_crossing_emits_a_valid_event() -> None:
    t = tracker()
    event = t.on_detection(detection("arp_scan", 1, T0), T0)
    assert event is not None
    validate_from_pipeline("event", event)
    assert event["incident_id"] == f"{1:032x}"
    assert (event["kind"], event["level"], event["agent_id"]) == ("arp_scan", 1, "test-agent")
    assert event["detected_at"].endswith("Z")
    assert t.level() == 1


def test_escalation_emits_at_once_in_the_same_incident() -> None:
    t = tracker(update_interval_s=60)
    first = t.on_detection(detection("arp_scan", 1, T0), T0)
    second = t.on_detection(detection("syn_scan", 2, T0 + 1), T0 + 1)
    third = t.on_detection(detection("session", 3, T0 + 2), T0 + 2)
    assert first and second and third
    assert first["incident_id"] == second["incident_id"] == third["incident_id"]
    assert [e["level"] for e in (first, second, third)] == [1, 2, 3]
    assert len({e["id"] for e in (first, second, third)}) == 3
    assert t.level() == 3
    assert t.state_items()[0]["kinds"] == ["arp_scan", "syn_scan", "session"]


def test_updates_are_rate_limited_and_the_latest_is_sent_when_due() -> None:
    t = tracker(update_interval_s=60)
    assert t.on_detection(detection("arp_scan", 1, T0), T0) is not None
    for i in range(1, 30):
        assert t.on_detection(detection("arp_scan", 1, T0 + i, n=i), T0 + i) is None
    assert t.tick(T0 + 59) == []
    due = t.tick(T0 + 60)
    assert len(due) == 1
    assert due[0]["evidence"] == {"packets": 29}
    assert t.tick(T0 + 200) == []  # nothing new held back


def test_update_after_the_interval_goes_out_directly() -> None:
    t = tracker(update_interval_s=10)
    t.on_detection(detection("syn_scan", 2, T0), T0)
    assert t.on_detection(detection("syn_scan", 2, T0 + 11), T0 + 11) is not None


def test_incident_closes_after_quiet_and_a_new_one_starts() -> None:
    t = tracker(close_after_s=300)
    first = t.on_detection(detection("arp_scan", 1, T0), T0)
    t.tick(T0 + 299)
    assert MAC in t.open
    t.tick(T0 + 301)
    assert MAC not in t.open and t.level() == 0
    assert MAC in t  # still a recent culprit
    again = t.on_detection(detection("arp_scan", 1, T0 + 400), T0 + 400)
    assert first and again and again["incident_id"] != first["incident_id"]


def test_held_back_update_is_sent_before_closing() -> None:
    t = tracker(update_interval_s=60, close_after_s=30)
    t.on_detection(detection("arp_scan", 1, T0), T0)
    t.on_detection(detection("arp_scan", 1, T0 + 5, n=7), T0 + 5)
    events = t.tick(T0 + 40)
    assert [e["evidence"] for e in events] == [{"packets": 7}]
    assert MAC not in t.open


def test_flush_sends_everything_held_back() -> None:
    t = tracker(update_interval_s=60)
    t.on_detection(detection("arp_scan", 1, T0), T0)
    t.on_detection(detection("arp_scan", 1, T0 + 1, n=2), T0 + 1)
    assert len(t.flush(T0 + 2)) == 1


def test_sources_are_separate_incidents_and_capped() -> None:
    t = tracker(max_open=1)
    a = t.on_detection(detection("arp_scan", 1, T0), T0)
    b = t.on_detection(detection("arp_scan", 1, T0 + 1, mac=OTHER), T0 + 1)
    assert a and b and a["incident_id"] != b["incident_id"]
    assert list(t.open) == [OTHER]
    assert t.evictions == 1


def test_host_left_event_only_for_culprits() -> None:
    t = tracker()
    assert t.host_left_event(MAC, IP, T0, 300) is None
    first = t.on_detection(detection("session", 3, T0), T0)
    left = t.host_left_event(MAC, IP, T0 + 400, 300)
    assert first and left
    assert (left["kind"], left["level"]) == ("host_left", 0)
    assert left["incident_id"] == first["incident_id"]
    assert left["evidence"] == {"silent_s": 300}
    validate_from_pipeline("event", left)
