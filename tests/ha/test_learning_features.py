"""Features of an event and the per-source history (custom_components/lan_guard/learning)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from custom_components.lan_guard.learning.features import (
    FEATURE_NAMES,
    FEATURE_VERSION,
    INDEX,
    KIND_FEATURE,
    KINDS,
    N_FEATURES,
    History,
    event_ports,
    extract,
    vendor_class,
)
from tests.contract import errors

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
LAPTOP = "3c:22:fb:10:20:30"
_counter = iter(range(10**9))


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def make_event(
    kind: str = "syn_scan",
    *,
    level: int = 2,
    at: datetime = T0,
    mac: str = LAPTOP,
    vendor: str | None = "Dell Inc.",
    evidence: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A contract-valid event (schema/event.schema.json) with a fresh id."""
    number = next(_counter)
    return {
        "schema": 1,
        "id": f"{number:032x}",
        "incident_id": f"{number + 1:032x}",
        "agent_id": "pi-livingroom",
        "seq": number + 1,
        "epoch": "3f9c2e71a4b85d06c1e7f2a9b3d4e5f6",
        "kind": kind,
        "level": level,
        "source": {"mac": mac, "ip": "192.168.1.23", "vendor": vendor, "hostname": None},
        "first_seen": iso(at),
        "last_seen": iso(at + timedelta(seconds=2)),
        "detected_at": iso(at + timedelta(seconds=3)),
        "evidence": {} if evidence is None else evidence,
    }


def sweep(at: datetime, mac: str = "b8:27:eb:00:00:01") -> dict[str, Any]:
    """Home Assistant's nmap tracker sweeping the /24 (level 1)."""
    evidence = {"target_count": 254, "packets": 450, "rate": 150.0, "window_s": 3.0}
    return make_event(
        "arp_scan", level=1, at=at, mac=mac, vendor="Raspberry Pi Trading Ltd", evidence=evidence
    )


def feature(x: np.ndarray[Any, Any], name: str) -> float:
    return float(x[INDEX[name]])


def test_names_are_unique_and_match_the_vector() -> None:
    assert len(set(FEATURE_NAMES)) == N_FEATURES
    assert isinstance(FEATURE_VERSION, int)
    x = extract(make_event(), History())
    assert x.shape == (N_FEATURES,)
    assert x.dtype == np.float64
    assert feature(x, "bias") == 1.0


def test_example_events_are_contract_valid() -> None:
    assert errors("event", make_event()) == []
    assert errors("event", sweep(T0)) == []


@pytest.mark.parametrize(
    ("vendor", "expected"),
    [
        (None, "unknown"),
        ("", "unknown"),
        ("Raspberry Pi Trading Ltd", "computer"),
        ("Hangzhou Hikvision Digital Technology Co.,Ltd.", "camera"),
        ("Brother Industries, LTD.", "printer"),
        ("Google, Inc.", "media"),
        ("Espressif Inc.", "iot"),
        ("NEC Platforms, Ltd.", "network"),
        ("Apple, Inc.", "phone"),
        ("Some Unheard-of Maker", "unknown"),
    ],
)
def test_vendor_class(vendor: str | None, expected: str) -> None:
    assert vendor_class(vendor) == expected
    x = extract(make_event(vendor=vendor), History())
    assert feature(x, f"vendor_{expected}") == 1.0
    assert sum(feature(x, name) for name in FEATURE_NAMES if name.startswith("vendor_")) == 1.0


@pytest.mark.parametrize(
    ("kind", "level", "evidence"),
    [
        ("arp_scan", 1, {"target_count": 40, "packets": 60, "rate": 12.5}),
        ("syn_scan", 2, {"ports": [445, 139, 22], "packets": 6, "rate": 3.0}),
        ("session", 3, {"port": 445, "bytes": 1400, "sample": ".SMBr"}),
        ("flood", 2, {"rate": 20000.0, "packets": 200000, "scope": "source"}),
        ("arp_spoof", 3, {"ip": "192.168.1.1", "is_gateway": True}),
        ("host_left", 0, {"silent_s": 600.0}),
        ("arp_spray", 2, {"address_count": 900, "forged": 900, "packets": 900, "rate": 4000.0}),
        ("source_spray", 2, {"address_count": 120, "forged": 0, "packets": 130, "rate": 60.0}),
    ],
)
def test_kind_one_hot_and_level(kind: str, level: int, evidence: dict[str, Any]) -> None:
    event = make_event(kind, level=level, evidence=evidence)
    assert errors("event", event) == []
    x = extract(event, History())
    assert [feature(x, f"kind_{k}") for k in KINDS] == [float(k == kind) for k in KINDS]
    assert feature(x, "level") == pytest.approx(level / 3)
    assert feature(x, "gateway") == float(evidence.get("is_gateway") is True)
    if "address_count" in evidence:  # a spray's addresses count as its targets
        assert feature(x, "log_targets") > 0.8


def test_port_shares() -> None:
    ransomware = extract(make_event(evidence={"ports": [554, 445, 9100, 80, 515, 139]}), History())
    assert feature(ransomware, "ransomware_port_share") == 1.0
    assert feature(ransomware, "other_port_share") == 0.0
    mirai = extract(make_event(evidence={"ports": [23, 2323]}), History())
    assert feature(mirai, "telnet_port_share") == 1.0
    mixed = extract(make_event(evidence={"ports": [23, 445, 8080, 8443]}), History())
    shares = [feature(mixed, f"{n}_port_share") for n in ("ransomware", "telnet", "other")]
    assert shares == [0.25, 0.25, 0.5]
    none = extract(make_event("arp_scan", level=1, evidence={"target_count": 9}), History())
    assert [feature(none, f"{n}_port_share") for n in ("ransomware", "telnet", "other")] == [0] * 3


def test_session_port_counts_as_a_port() -> None:
    assert event_ports({"port": 9100}) == {9100}
    assert event_ports({"ports": [80, "x"], "port": 445}) == {80, 445}
    x = extract(make_event("session", level=3, evidence={"port": 9100, "bytes": 16}), History())
    assert feature(x, "ransomware_port_share") == 1.0
    assert feature(x, "log_ports") > 0


def test_counts_are_log_scaled_and_monotonic() -> None:
    small = extract(
        make_event(evidence={"target_count": 10, "packets": 10, "bytes": 600}), History()
    )
    large = extract(
        make_event(evidence={"target_count": 250, "packets": 10**5, "bytes": 10**7}), History()
    )
    for name in ("log_targets", "log_packets", "log_bytes"):
        assert 0 < feature(small, name) < feature(large, name) <= 2.0
    by_list = extract(make_event(evidence={"targets": ["192.168.1.2", "192.168.1.3"]}), History())
    assert feature(by_list, "log_targets") == pytest.approx(math.log1p(2) / math.log(256))
    negative = extract(make_event(evidence={"packets": -5, "rate": "fast"}), History())
    assert feature(negative, "log_packets") == 0.0
    assert feature(negative, "log_rate") == 0.0


def test_a_new_source_then_a_known_one() -> None:
    history = History()
    first = sweep(T0)
    x = extract(first, history)
    assert feature(x, "source_new") == 1.0
    assert feature(x, "since_last") == 1.0
    assert len(history) == 0  # extract only reads
    history.observe(first)
    y = extract(sweep(T0 + timedelta(seconds=120)), history)
    assert feature(y, "source_new") == 0.0
    assert feature(y, "source_seen") > 0
    assert feature(y, "source_seen_kind") > 0
    assert 0 < feature(y, "since_last") < 1
    other = extract(make_event(at=T0 + timedelta(seconds=130)), history)  # another MAC
    assert feature(other, "source_new") == 1.0


def test_periodic_sweep_has_a_rhythm() -> None:
    history = History()
    for n in range(6):
        history.observe(sweep(T0 + timedelta(seconds=120 * n + (n % 2))))
    on_time = extract(sweep(T0 + timedelta(seconds=720)), history)
    assert feature(on_time, "repeat_regularity") > 0.9
    assert feature(on_time, "repeat_in_rhythm") == 1.0
    assert feature(on_time, "repeat_period") == pytest.approx(
        math.log1p(120) / math.log(86400), rel=0.01
    )
    missed_one = extract(sweep(T0 + timedelta(seconds=840)), history)
    assert feature(missed_one, "repeat_in_rhythm") == 1.0
    off_beat = extract(sweep(T0 + timedelta(seconds=660)), history)
    assert feature(off_beat, "repeat_in_rhythm") == 0.0


def test_irregular_source_has_no_rhythm() -> None:
    history = History()
    for seconds in (0, 50, 700, 760, 3000):
        history.observe(sweep(T0 + timedelta(seconds=seconds)))
    x = extract(sweep(T0 + timedelta(seconds=3500)), history)
    assert feature(x, "repeat_regularity") < 0.5
    too_few = History()
    too_few.observe(sweep(T0))
    too_few.observe(sweep(T0 + timedelta(seconds=120)))
    y = extract(sweep(T0 + timedelta(seconds=240)), too_few)
    assert feature(y, "repeat_in_rhythm") == 0.0
    assert feature(y, "repeat_period") == 0.0


def test_recent_escalation() -> None:
    history = History()
    history.observe(make_event("arp_scan", level=1, evidence={"target_count": 254}))
    soon = extract(make_event(at=T0 + timedelta(minutes=5)), history)
    assert feature(soon, "source_recent_level") == pytest.approx(1 / 3)
    later = extract(make_event(at=T0 + timedelta(hours=2)), history)
    assert feature(later, "source_recent_level") == 0.0


def test_labels_of_the_source_and_of_the_behaviour() -> None:
    history = History()
    nmap = make_event(evidence={"ports": [22, 80, 443, 8080]})
    history.observe(nmap)
    history.add_label(LAPTOP, "normal", ("syn_scan", frozenset({22, 80, 443, 8080})))
    same = extract(
        make_event(at=T0 + timedelta(hours=1), evidence={"ports": [22, 80, 443]}), history
    )
    assert feature(same, "source_normal_labels") == pytest.approx(math.log1p(1) / math.log(10))
    assert feature(same, "behaviour_normal_labels") == feature(same, "source_normal_labels")
    assert feature(same, "source_alarm_labels") == 0.0
    ransomware = make_event(at=T0 + timedelta(hours=1), evidence={"ports": [554, 445, 9100]})
    different = extract(ransomware, history)
    assert feature(different, "source_normal_labels") > 0
    assert feature(different, "behaviour_normal_labels") == 0.0  # not the approved behaviour

    assert feature(same, "behaviour_vouched") == 1.0
    assert feature(same, "unvouched") == 0.0
    assert feature(different, "behaviour_vouched") == 0.0
    assert feature(different, "unvouched") == 1.0  # the approval was for other ports

    history.add_label(LAPTOP, "alarm", ("syn_scan", frozenset({554, 445, 9100})))
    tainted = extract(ransomware, history)
    assert feature(tainted, "behaviour_vouched") == 0.0
    assert feature(tainted, "source_alarm_labels") > 0
    assert feature(tainted, "behaviour_alarm_labels") > 0
    history.add_label(LAPTOP, "alarm", ("syn_scan", frozenset({554, 445, 9100})), -1)
    taken_back = extract(ransomware, history)
    assert feature(taken_back, "source_alarm_labels") == 0.0
    assert feature(taken_back, "behaviour_alarm_labels") == 0.0


def test_a_behaviour_is_the_labelled_ports_or_a_wide_scan() -> None:
    history = History()
    history.observe(make_event(evidence={"ports": [80, 443, 515, 9100]}))
    history.add_label(LAPTOP, "normal", ("syn_scan", frozenset({80, 443, 515, 9100})))
    later = T0 + timedelta(hours=1)

    def vouched(ports: list[int]) -> float:
        return feature(
            extract(make_event(at=later, evidence={"ports": ports}), history), "behaviour_vouched"
        )

    assert vouched([80, 515, 9100]) == 1.0  # the printer tool, a subset of what was approved
    assert vouched([80, 515, 9100, 445, 139, 554]) == 0.0  # ransomware adds its own ports
    assert vouched([22, 3389]) == 0.0
    top = list(range(1, 200))
    history.add_label(LAPTOP, "normal", ("syn_scan", frozenset(top)))
    assert vouched(list(range(1000, 1100))) == 1.0  # another sample of a wide nmap scan
    assert vouched([23, 2323]) == 0.0


def test_slow_probing_is_flagged_for_scans_only() -> None:
    def slow(kind: str, rate: Any) -> float:
        return feature(extract(make_event(kind, evidence={"rate": rate}), History()), "slow_probe")

    assert slow("arp_scan", 0.2) == 1.0
    assert slow("syn_scan", 0.9) == 1.0
    assert slow("arp_scan", 150.0) == 0.0  # nmap -sn, arp-scan
    assert slow("arp_scan", 2.0) == 0.0  # a printer's discovery
    assert slow("arp_scan", 0) == 0.0  # no rate measured is not slow
    assert slow("arp_scan", None) == 0.0
    assert slow("session", 0.1) == 0.0


def test_escalation_within_the_open_incident() -> None:
    history = History()
    sweep_event = make_event("arp_scan", level=1, evidence={"target_count": 254})
    history.observe(sweep_event)
    scan = make_event(at=T0 + timedelta(seconds=20))
    scan["incident_id"] = sweep_event["incident_id"]
    assert feature(extract(scan, history), "incident_escalation") == 1.0
    history.observe(scan)
    update = make_event(at=T0 + timedelta(seconds=80))  # the same level again
    update["incident_id"] = sweep_event["incident_id"]
    assert feature(extract(update, history), "incident_escalation") == 0.0
    other_incident = make_event(level=3, at=T0 + timedelta(hours=3))
    assert feature(extract(other_incident, history), "incident_escalation") == 0.0
    unnamed = make_event(level=3, at=T0 + timedelta(seconds=90))
    unnamed["incident_id"] = None
    assert feature(extract(unnamed, history), "incident_escalation") == 0.0
    history.observe(unnamed)
    entry = history.get(LAPTOP)
    assert entry is not None
    assert (entry.incident, entry.incident_level) == ("", 3)


def test_a_known_source_out_of_rhythm_is_unvouched() -> None:
    history = History()
    for n in range(4):
        history.observe(sweep(T0 + timedelta(seconds=120 * n)))
    in_rhythm = extract(sweep(T0 + timedelta(seconds=480)), history)
    assert feature(in_rhythm, "unvouched") == 0.0  # its own routine
    off_beat = extract(sweep(T0 + timedelta(seconds=3000)), history)
    assert feature(off_beat, "unvouched") == 1.0
    assert feature(extract(sweep(T0, mac="02:00:00:00:00:09"), history), "unvouched") == 0.0
    router = History()  # a host map every 10-20 minutes: a routine, though off the beat
    for seconds in (0, 600, 1500, 2600, 3300):
        router.observe(sweep(T0 + timedelta(seconds=seconds)))
    routine = extract(sweep(T0 + timedelta(seconds=4250)), router)
    assert feature(routine, "repeat_in_rhythm") == 0.0
    assert feature(routine, "unvouched") == 0.0
    history.add_label("b8:27:eb:00:00:01", "normal", ("arp_scan", frozenset()))
    assert feature(extract(sweep(T0 + timedelta(seconds=3000)), history), "unvouched") == 0.0


def test_time_of_day_in_the_home_time_zone() -> None:
    japan = timezone(timedelta(hours=9))
    midnight_tokyo = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)  # 00:00 JST
    x = extract(make_event(at=midnight_tokyo), History(), japan)
    assert feature(x, "time_sin") == pytest.approx(0.0, abs=1e-9)
    assert feature(x, "time_cos") == pytest.approx(1.0)
    six = extract(make_event(at=midnight_tokyo + timedelta(hours=6)), History(), japan)
    assert feature(six, "time_sin") == pytest.approx(1.0)
    utc = extract(make_event(at=midnight_tokyo), History())  # 15:00 UTC
    assert feature(utc, "time_sin") == pytest.approx(math.sin(2 * math.pi * 15 / 24))


def test_history_is_bounded() -> None:
    history = History(max_sources=3, max_times=4)
    macs = [f"02:00:00:00:00:{n:02x}" for n in range(5)]
    for n, mac in enumerate(macs):
        for k in range(6):
            history.observe(sweep(T0 + timedelta(seconds=100 * n + k), mac=mac))
    assert len(history) == 3
    assert history.get(macs[0]) is None  # the least recently seen went first
    entry = history.get(macs[4])
    assert entry is not None
    assert len(entry.times) == 4
    assert entry.seen == 6
    for _ in range(40):
        history.add_label(macs[4], "normal", ("arp_scan", frozenset()))
    assert len(entry.labelled) == 16


def test_history_round_trip() -> None:
    history = History()
    for n in range(5):
        history.observe(sweep(T0 + timedelta(seconds=120 * n)))
    history.add_label("b8:27:eb:00:00:01", "normal", ("arp_scan", frozenset()))
    stored = json.loads(json.dumps(history.to_dict()))
    assert stored["sources"]["b8:27:eb:00:00:01"]["incident_level"] == 1
    restored = History.from_dict(stored)
    probe = sweep(T0 + timedelta(seconds=600))
    np.testing.assert_array_equal(extract(probe, history), extract(probe, restored))
    with pytest.raises(ValueError, match="feature version"):
        History.from_dict({**stored, "version": FEATURE_VERSION + 1})
    shrunk = History.from_dict({**stored, "max_sources": 0})
    assert len(shrunk) == 0


def test_missing_evidence_and_odd_values() -> None:
    event = make_event(evidence={})
    del event["evidence"]
    event["first_seen"] = None
    x = extract(event, History())
    assert np.all(np.isfinite(x))
    assert feature(x, "log_ports") == 0.0
    unknown_kind = make_event()
    unknown_kind["kind"] = "something_new"
    y = extract(unknown_kind, History())
    assert sum(feature(y, f"kind_{k}") for k in KINDS) == 0.0
    naive = make_event()
    naive["first_seen"] = "2026-11-25T12:00:00"  # no zone: read as UTC
    assert np.all(np.isfinite(extract(naive, History())))


_PORTS = st.lists(st.integers(0, 65535), max_size=300)
_EVIDENCE = st.fixed_dictionaries(
    {},
    optional={
        "target_count": st.integers(0, 10**6),
        "ports": _PORTS,
        "port": st.integers(0, 65535),
        "packets": st.integers(0, 10**12),
        "bytes": st.integers(0, 10**15),
        "rate": st.floats(0, 1e9, allow_nan=False),
        "is_gateway": st.booleans(),
    },
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    kind=st.sampled_from(KINDS),
    level=st.integers(0, 3),
    evidence=_EVIDENCE,
    vendor=st.one_of(st.none(), st.text(max_size=40)),
    offsets=st.lists(st.integers(0, 10**7), max_size=8),
)
def test_any_valid_event_gives_bounded_finite_features(
    kind: str, level: int, evidence: dict[str, Any], vendor: str | None, offsets: list[int]
) -> None:
    history = History()
    for offset in sorted(offsets):
        history.observe(make_event(kind, level=level, at=T0 + timedelta(seconds=offset)))
    when = T0 + timedelta(seconds=max(offsets, default=0) + 1)
    x = extract(make_event(kind, level=level, at=when, vendor=vendor, evidence=evidence), history)
    assert np.all(np.isfinite(x))
    assert np.all(x >= -1.0)
    assert np.all(x <= 2.0)


def test_kinds_of_version_3_count_as_the_kind_they_resemble() -> None:
    from custom_components.lan_guard.const import Kind

    assert {kind.value for kind in Kind} == set(KIND_FEATURE)
    assert set(KIND_FEATURE.values()) <= set(KINDS)
    history = History()
    evidence = {"ports": [22, 80, 443], "slow": True, "rate": 0.02}
    stealth = make_event("stealth_scan", evidence=evidence)
    assert not errors("event", stealth)
    x = extract(stealth, history)
    assert x[INDEX["kind_syn_scan"]] == 1.0
    assert x[INDEX["slow_probe"]] == 1.0
    history.observe(stealth)
    again = extract(make_event("udp_scan", evidence={"ports": [53]}), history)
    assert again[INDEX["source_seen_kind"]] > 0  # the same family as the stealth scan
    decoy = extract(make_event("echonet_control", level=3, evidence={"decoy": True}), History())
    assert decoy[INDEX["kind_session"]] == 1.0
    claims = extract(make_event("cache_exhaustion", evidence={"target_count": 214}), History())
    assert claims[INDEX["kind_arp_spray"]] == 1.0  # many addresses claimed by one sender
