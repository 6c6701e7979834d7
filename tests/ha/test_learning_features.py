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

from custom_components.lan_guard.const import Kind
from custom_components.lan_guard.learning.features import (
    BLOCK_S,
    BUCKETS,
    FEATURE_NAMES,
    FEATURE_VERSION,
    INDEX,
    KIND_BUCKETS,
    N_FEATURES,
    History,
    Shape,
    device_class,
    event_ports,
    event_shape,
    extract,
    kind_bucket,
    vendor_class,
)
from tests.contract import errors

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
LAPTOP = "3c:22:fb:10:20:30"
CAMERA = "0c:75:d2:00:00:01"
HUE = "00:17:88:00:00:01"
ROKU = "34:5e:08:00:00:01"
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
    hostname: str | None = None,
    evidence: dict[str, Any] | None = None,
    incident: str | None = None,
) -> dict[str, Any]:
    """A contract-valid event (schema/event.schema.json) with a fresh id."""
    number = next(_counter)
    return {
        "schema": 1,
        "id": f"{number:032x}",
        "incident_id": incident or f"{number + 1:032x}",
        "agent_id": "pi-livingroom",
        "seq": number + 1,
        "epoch": "3f9c2e71a4b85d06c1e7f2a9b3d4e5f6",
        "kind": kind,
        "level": level,
        "source": {"mac": mac, "ip": "192.168.1.23", "vendor": vendor, "hostname": hostname},
        "first_seen": iso(at),
        "last_seen": iso(at + timedelta(seconds=2)),
        "detected_at": iso(at + timedelta(seconds=3)),
        "evidence": {} if evidence is None else evidence,
    }


def sweep(
    at: datetime,
    mac: str = "b8:27:eb:00:00:01",
    *,
    targets: int = 254,
    vendor: str | None = "Raspberry Pi Trading Ltd",
    incident: str | None = None,
) -> dict[str, Any]:
    """An ARP sweep (level 1): by default Home Assistant's nmap tracker sweeping the /24."""
    evidence = {"target_count": targets, "packets": 2 * targets, "rate": 150.0, "window_s": 3.0}
    return make_event(
        "arp_scan", level=1, at=at, mac=mac, vendor=vendor, evidence=evidence, incident=incident
    )


def feature(x: np.ndarray[Any, Any], name: str) -> float:
    return float(x[INDEX[name]])


def observed(events: list[dict[str, Any]], history: History | None = None) -> History:
    history = History() if history is None else history
    for event in events:
        history.observe(event)
    return history


def around_the_clock(mac: str = "b8:27:eb:00:00:01", hours: int = 14) -> list[dict[str, Any]]:
    """A sweep every 30 minutes for ``hours`` hours (a scheduled job)."""
    return [sweep(T0 + timedelta(minutes=30 * n), mac) for n in range(2 * hours)]


def test_names_are_unique_and_match_the_vector() -> None:
    assert len(set(FEATURE_NAMES)) == N_FEATURES
    assert FEATURE_VERSION == 4
    x = extract(make_event(), History())
    assert x.shape == (N_FEATURES,)
    assert x.dtype == np.float64
    assert feature(x, "bias") == 1.0


def test_example_events_are_contract_valid() -> None:
    assert errors("event", make_event()) == []
    assert errors("event", sweep(T0)) == []


@pytest.mark.parametrize(
    ("vendor", "hostname", "expected"),
    [
        (None, None, "unknown"),
        ("", None, "unknown"),
        ("Raspberry Pi Trading Ltd", None, "computer"),
        ("Hangzhou Hikvision Digital Technology Co.,Ltd.", None, "camera"),
        ("Brother Industries, LTD.", None, "printer"),
        ("Google, Inc.", None, "media"),
        ("Espressif Inc.", None, "iot"),
        ("Ring LLC", None, "iot"),
        ("Sage Electronic Engineering LLC", None, "unknown"),  # "ring" inside a word
        ("NEC Platforms, Ltd.", None, "network"),
        ("Apple, Inc.", None, "phone"),
        ("Some Unheard-of Maker", None, "unknown"),
        (None, "Philips-hue", "iot"),  # a private MAC: the host name tells
        (None, "ecobee-thermostat", "iot"),
        (None, "IPCamera", "camera"),
        (None, "DESKTOP-7F3K2", "computer"),
        ("Dell Inc.", "IPCamera", "computer"),  # the vendor wins
    ],
)
def test_device_class(vendor: str | None, hostname: str | None, expected: str) -> None:
    assert device_class(vendor, hostname) == expected
    if hostname is None:
        assert vendor_class(vendor) == expected
    x = extract(make_event(vendor=vendor, hostname=hostname), History())
    assert feature(x, f"device_{expected}") == 1.0
    assert sum(feature(x, n) for n in FEATURE_NAMES if n.startswith("device_")) == 1.0


def test_every_kind_of_the_contract_has_a_bucket_and_unknown_kinds_go_to_other() -> None:
    assert {kind.value for kind in Kind} == set(KIND_BUCKETS)
    assert set(KIND_BUCKETS.values()) | {"other"} == set(BUCKETS)
    assert kind_bucket("arp_spray") == kind_bucket("source_spray") == "spray"
    assert kind_bucket(None) == "other"
    event = make_event()
    event["kind"] = "echonet_probe"  # a kind of a newer agent: scored, as "other"
    x = extract(event, History())
    assert [feature(x, f"kind_{b}") for b in BUCKETS] == [float(b == "other") for b in BUCKETS]
    history = observed([event])
    entry = history.get(LAPTOP)
    assert entry is not None
    assert entry.block.buckets == {"other": 1}


def test_a_spray_counts_the_addresses_it_used_as_targets() -> None:
    event = make_event("source_spray", level=2, evidence={"address_count": 255, "packets": 900})
    x = extract(event, History())
    assert feature(x, "kind_spray") == 1.0
    assert feature(x, "log_targets") == pytest.approx(1.0)  # log1p(255) / log(256)
    assert event_shape(event).bucket == "spray"


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
def test_kind_bucket_and_level(kind: str, level: int, evidence: dict[str, Any]) -> None:
    event = make_event(kind, level=level, evidence=evidence)
    assert errors("event", event) == []
    x = extract(event, History())
    bucket = KIND_BUCKETS[kind]
    assert [feature(x, f"kind_{b}") for b in BUCKETS] == [float(b == bucket) for b in BUCKETS]
    assert feature(x, "level") == pytest.approx(level / 3)
    assert feature(x, "gateway") == float(evidence.get("is_gateway") is True)
    if "address_count" in evidence:  # a spray's addresses count as its targets
        assert feature(x, "log_targets") > 0.8


def test_port_shares() -> None:
    ransomware = extract(make_event(evidence={"ports": [554, 445, 9100, 80, 515, 139]}), History())
    assert feature(ransomware, "ransomware_port_share") == 1.0
    assert feature(ransomware, "other_port_share") == 0.0
    mirai = extract(make_event(evidence={"ports": [23, 2323, 5555, 37215]}), History())
    assert feature(mirai, "bot_port_share") == 1.0
    mixed = extract(make_event(evidence={"ports": [23, 445, 8080, 8443]}), History())
    shares = [feature(mixed, f"{n}_port_share") for n in ("ransomware", "bot", "other")]
    assert shares == [0.25, 0.25, 0.5]
    none = extract(make_event("arp_scan", level=1, evidence={"target_count": 9}), History())
    assert [feature(none, f"{n}_port_share") for n in ("ransomware", "bot", "other")] == [0] * 3


def test_session_port_counts_as_a_port_and_its_sample_names_the_protocol() -> None:
    assert event_ports({"port": 9100}) == {9100}
    assert event_ports({"ports": [80, "x"], "port": 445}) == {80, 445}
    x = extract(make_event("session", level=3, evidence={"port": 9100, "bytes": 16}), History())
    assert feature(x, "ransomware_port_share") == 1.0
    assert feature(x, "log_ports") > 0
    samples = {
        "...h.SMB@.......": "smb",
        "OPTIONS * RTSP/1.0..CSeq: 1....": "rtsp",
        "GET / HTTP/1.0....": "http",
        "@PJL INFO ID..": None,
    }
    for sample, protocol in samples.items():
        event = make_event("session", level=3, evidence={"port": 445, "sample": sample})
        y = extract(event, History())
        assert [feature(y, f"sample_{p}") for p in ("smb", "http", "rtsp")] == [
            float(p == protocol) for p in ("smb", "http", "rtsp")
        ]


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


def test_shapes() -> None:
    assert event_shape(sweep(T0, targets=10)) == Shape("sweep", "few", frozenset())
    assert event_shape(sweep(T0, targets=40)).size == "some"
    assert event_shape(sweep(T0, targets=253)).size == "many"
    assert event_shape(make_event(evidence={"ports": [22, 80, 443]})).size == "few"
    assert event_shape(make_event(evidence={"ports": list(range(100))})).size == "many"
    session = event_shape(make_event("session", level=3, evidence={"port": 445}))
    assert session == Shape("session", "-", frozenset({445}))


def test_a_label_speaks_for_the_same_shape_only() -> None:
    burst, sweep_all = Shape("sweep", "few", frozenset()), Shape("sweep", "many", frozenset())
    assert burst.matches(sweep_all, "normal")  # a whole sweep approved: its first ten too
    assert not sweep_all.matches(burst, "normal")  # a burst approved says nothing of a sweep
    assert sweep_all.matches(burst, "alarm")  # a bad burst: a bad sweep is worse
    assert not burst.matches(sweep_all, "alarm")  # a bad sweep does not taint the bursts
    printer = Shape("port_scan", "few", frozenset({80, 443, 515, 9100}))
    tool = Shape("port_scan", "few", frozenset({80, 515, 9100}))
    ransomware = Shape("port_scan", "few", frozenset({80, 515, 9100, 445, 139, 554}))
    assert tool.matches(printer, "normal")
    assert not ransomware.matches(printer, "normal")
    nmap = Shape("port_scan", "many", frozenset(range(1, 200)))
    another_sample = Shape("port_scan", "many", frozenset(range(1000, 1100)))
    assert another_sample.matches(nmap, "normal")
    assert not Shape("session", "-", frozenset({445})).matches(printer, "normal")


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
    assert 0 < feature(y, "since_last") < 1
    other = extract(make_event(at=T0 + timedelta(seconds=130)), history)  # another MAC
    assert feature(other, "source_new") == 1.0


def test_host_age_and_a_quiet_device_that_wakes_up() -> None:
    history = History()
    weeks_ago = T0 - timedelta(days=20)
    history.observe_hosts(
        [
            {"mac": CAMERA, "first_seen": iso(weeks_ago)},
            {"mac": "02:00:00:00:00:07", "first_seen": iso(T0 - timedelta(minutes=3))},
            {"mac": 5, "first_seen": "x"},  # ignored
            {"mac": "02:00:00:00:00:08", "first_seen": "not a time"},
        ]
    )
    # An agent restart resets its inventory: the earliest first_seen is kept.
    history.observe_hosts([{"mac": CAMERA, "first_seen": iso(T0)}])
    assert history.host_first_seen(CAMERA) == weeks_ago.timestamp()
    camera = sweep(T0, CAMERA, vendor="Hangzhou Hikvision Digital Technology Co.,Ltd.")
    x = extract(camera, history)
    assert feature(x, "host_age") == pytest.approx(math.log1p(20) / math.log(31))
    assert feature(x, "quiet_host_wakes") == 1.0
    guest = extract(sweep(T0, "02:00:00:00:00:07"), history)
    assert feature(guest, "quiet_host_wakes") == 0.0  # a device that just joined
    assert feature(extract(sweep(T0, "02:00:00:00:00:09"), history), "host_age") == 0.0
    history.observe(camera)
    later = extract(sweep(T0 + timedelta(hours=2), CAMERA, vendor=None), history)
    assert feature(later, "quiet_host_wakes") == 1.0  # still within its first block
    much_later = extract(sweep(T0 + timedelta(hours=7), CAMERA, vendor=None), history)
    assert feature(much_later, "quiet_host_wakes") == 0.0


def test_a_camera_or_plug_that_scans() -> None:
    camera = "Hangzhou Hikvision Digital Technology Co.,Ltd."
    bot = extract(sweep(T0, CAMERA, targets=180, vendor=camera), History())
    assert feature(bot, "quiet_class_scan") == 1.0
    few = extract(sweep(T0, CAMERA, targets=12, vendor=camera), History())
    assert feature(few, "quiet_class_scan") == 0.0  # resolving a dozen peers is not scanning
    laptop = extract(sweep(T0, LAPTOP, targets=254, vendor="Dell Inc."), History())
    assert feature(laptop, "quiet_class_scan") == 0.0
    session = make_event("session", level=3, mac=CAMERA, vendor=camera, evidence={"port": 445})
    assert feature(extract(session, History()), "quiet_class_scan") == 0.0
    # A hub's own sweep around the clock is its routine, not a compromise.
    hub = [sweep(T0 + timedelta(minutes=30 * n), HUE, targets=60) for n in range(28)]
    history = observed(hub)
    routine = extract(sweep(T0 + timedelta(hours=14), HUE, targets=60, vendor="Signify"), history)
    assert feature(routine, "routine") == 1.0
    assert feature(routine, "quiet_class_scan") == 0.0
    bigger = extract(sweep(T0 + timedelta(hours=14), HUE, targets=200, vendor="Signify"), history)
    assert feature(bigger, "quiet_class_scan") == 1.0  # another shape than its routine


def test_first_of_kind_new_hour_and_grown_compare_with_the_habits_before_the_block() -> None:
    # A streaming box: small bursts at every hour of a day, then a whole sweep at 03:00 and a
    # port scan: its first port scan, at an hour it never kept, a sweep ten times its bursts.
    history = History()
    start = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)
    for n in range(40):  # 06:00-20:00 over two days
        day, hour = divmod(n, 20)
        history.observe(sweep(start + timedelta(days=day, hours=hour * 0.7), ROKU, targets=25))
    night = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
    big = sweep(night, ROKU, targets=250)
    x = extract(big, history)
    assert feature(x, "first_of_kind") == 0.0
    assert feature(x, "new_hour") == 1.0
    assert feature(x, "grown") == pytest.approx((math.log2(10) - 1) / 3)
    history.observe(big)
    scan = make_event(at=night + timedelta(minutes=1), mac=ROKU, evidence={"ports": [22, 80, 23]})
    y = extract(scan, history)
    assert feature(y, "first_of_kind") == 1.0
    # The whole block keeps saying so (a bot scanning for two hours)...
    again = extract(sweep(night + timedelta(hours=1), ROKU, targets=240), history)
    assert feature(again, "grown") > 0
    assert feature(again, "new_hour") == 1.0
    # ...and twice its largest is still its own range.
    usual = extract(sweep(night + timedelta(hours=2), ROKU, targets=45), history)
    assert feature(usual, "grown") == 0.0
    # Once the block is over, what it did is part of its habits.
    history.observe(sweep(night + timedelta(seconds=BLOCK_S + 60), ROKU, targets=250))
    settled = extract(sweep(night + timedelta(seconds=BLOCK_S + 120), ROKU, targets=250), history)
    assert feature(settled, "grown") == 0.0
    assert feature(settled, "new_hour") == 0.0


def test_new_hour_needs_a_day_of_habits() -> None:
    history = observed([sweep(T0 + timedelta(minutes=10 * n), ROKU, targets=20) for n in range(6)])
    young = extract(sweep(T0 + timedelta(hours=9), ROKU, targets=20), history)
    assert feature(young, "new_hour") == 0.0  # a few hours of a device say nothing of its hours


def test_a_schedule_around_the_clock_is_a_routine_a_minute_cadence_is_not() -> None:
    history = observed(around_the_clock())
    on_time = extract(sweep(T0 + timedelta(hours=14)), history)
    assert feature(on_time, "routine") == 1.0
    assert feature(on_time, "repeat_regularity") > 0.9
    assert feature(on_time, "repeat_period") == pytest.approx(
        math.log1p(1800) / math.log(86400), rel=0.01
    )
    assert feature(on_time, "unvouched") == 0.0
    gone_quiet = extract(sweep(T0 + timedelta(hours=20)), history)
    assert feature(gone_quiet, "routine") == 0.0  # more than three periods since the last
    # A bot's scan reported every minute for an hour: steady, but not around the clock.
    bot = observed([sweep(T0 + timedelta(minutes=n), CAMERA, targets=200) for n in range(60)])
    update = extract(sweep(T0 + timedelta(minutes=60), CAMERA, targets=200), bot)
    assert feature(update, "repeat_regularity") > 0.9
    assert feature(update, "routine") == 0.0
    assert feature(update, "unvouched") == 1.0
    # Another shape of the scheduled source is not excused by its routine.
    other = extract(sweep(T0 + timedelta(hours=14), targets=12), history)
    assert feature(other, "routine") == 0.0


def test_scanning_for_minutes_on_end_is_sustained_a_schedule_of_seconds_is_not() -> None:
    def windowed(at: datetime, mac: str, window: float) -> dict[str, Any]:
        event = sweep(at, mac, targets=200)
        event["evidence"]["window_s"] = window
        return event

    bot = observed([windowed(T0 + timedelta(minutes=n), CAMERA, 12.0) for n in range(9)])
    scanning = extract(windowed(T0 + timedelta(minutes=9), CAMERA, 12.0), bot)
    assert feature(scanning, "sustained") == 1.0  # ten windows of 12 s in ten minutes
    tracker = observed([windowed(T0 + timedelta(minutes=2 * n), LAPTOP, 1.8) for n in range(5)])
    scheduled = extract(windowed(T0 + timedelta(minutes=10), LAPTOP, 1.8), tracker)
    assert feature(scheduled, "sustained") == 0.0  # seconds of sweeping every two minutes
    slow = extract(windowed(T0, "02:00:00:00:00:44", 185.0), History())
    assert feature(slow, "sustained") == 1.0  # nmap -T2: three minutes for one sweep
    odd = windowed(T0, "02:00:00:00:00:45", 5.0)
    odd["evidence"]["window_s"] = True
    assert feature(extract(odd, History()), "sustained") == 0.0


def test_irregular_source_has_no_rhythm() -> None:
    history = observed([sweep(T0 + timedelta(seconds=s)) for s in (0, 50, 700, 760, 3000)])
    x = extract(sweep(T0 + timedelta(seconds=3500)), history)
    assert feature(x, "repeat_regularity") < 0.5
    assert feature(x, "routine") == 0.0
    too_few = observed([sweep(T0), sweep(T0 + timedelta(seconds=120))])
    assert feature(extract(sweep(T0 + timedelta(seconds=240)), too_few), "repeat_period") == 0.0


def test_recent_escalation() -> None:
    history = observed([make_event(level=2)])
    soon = extract(make_event("session", level=3, at=T0 + timedelta(minutes=5)), history)
    assert feature(soon, "source_recent_level") == pytest.approx(0.5)
    later = extract(make_event(at=T0 + timedelta(hours=2)), history)
    assert feature(later, "source_recent_level") == 0.0
    sweeps = observed([sweep(T0)])
    assert feature(extract(sweep(T0 + timedelta(minutes=2)), sweeps), "source_recent_level") == 0


def test_the_incident_escalation_path() -> None:
    history = History()
    incident = "a" * 32
    first = sweep(T0, LAPTOP, vendor="Dell Inc.", incident=incident)
    assert feature(extract(first, history), "incident_steps") == 0.0
    history.observe(first)
    scan = make_event(at=T0 + timedelta(seconds=20), incident=incident)
    x = extract(scan, history)
    assert feature(x, "incident_escalation") == 1.0
    assert feature(x, "incident_steps") == pytest.approx(1 / 3)
    history.observe(scan)
    session = make_event("session", level=3, at=T0 + timedelta(seconds=30), incident=incident)
    y = extract(session, history)
    assert feature(y, "incident_steps") == pytest.approx(2 / 3)
    update = make_event(at=T0 + timedelta(seconds=80), incident=incident)  # the same level again
    assert feature(extract(update, history), "incident_escalation") == 0.0
    other_incident = make_event(level=3, at=T0 + timedelta(hours=3))
    assert feature(extract(other_incident, history), "incident_escalation") == 0.0
    assert feature(extract(other_incident, history), "incident_steps") == 0.0
    unnamed = make_event(level=3, at=T0 + timedelta(seconds=90))
    unnamed["incident_id"] = None
    assert feature(extract(unnamed, history), "incident_escalation") == 0.0
    history.observe(unnamed)
    entry = history.get(LAPTOP)
    assert entry is not None
    assert (entry.incident, entry.incident_level) == ("", 3)


def test_labels_of_the_shape_and_of_the_source() -> None:
    history = History()
    nmap = make_event(evidence={"ports": [22, 80, 443, 8080]})
    history.observe(nmap)
    history.add_label(LAPTOP, "normal", history.incident_shapes(LAPTOP))
    same = extract(
        make_event(at=T0 + timedelta(hours=1), evidence={"ports": [22, 80, 443]}), history
    )
    assert feature(same, "shape_normal_labels") == pytest.approx(math.log1p(1) / math.log(10))
    assert feature(same, "shape_vouched") == 1.0
    assert feature(same, "unvouched") == 0.0
    assert feature(same, "other_normal_labels") == 0.0
    ransomware = make_event(at=T0 + timedelta(hours=1), evidence={"ports": [554, 445, 9100]})
    different = extract(ransomware, history)
    assert feature(different, "shape_vouched") == 0.0  # the approval was for other ports
    assert feature(different, "other_normal_labels") > 0
    assert feature(different, "unvouched") == 1.0

    condemned = Shape("port_scan", "few", frozenset({554, 445, 9100}))
    history.add_label(LAPTOP, "alarm", [condemned])
    tainted = extract(ransomware, history)
    assert feature(tainted, "shape_vouched") == 0.0
    assert feature(tainted, "shape_alarm_labels") > 0
    assert feature(extract(nmap, history), "other_alarm_labels") > 0
    history.add_label(LAPTOP, "alarm", [condemned], -1)
    taken_back = extract(ransomware, history)
    assert feature(taken_back, "shape_alarm_labels") == 0.0


def test_a_label_covers_the_shapes_of_its_incident() -> None:
    # The owner answers a weekly scanner's notification (its latest event, a session): the
    # sweep and the port scan of that incident are vouched too, next week as well.
    history = History()
    incident = "b" * 32
    week = [
        sweep(T0, "dc:a6:32:00:00:09", targets=10, incident=incident),
        sweep(T0 + timedelta(seconds=60), "dc:a6:32:00:00:09", targets=254, incident=incident),
        make_event(
            at=T0 + timedelta(seconds=70),
            mac="dc:a6:32:00:00:09",
            evidence={"ports": list(range(1, 101))},
            incident=incident,
        ),
        make_event(
            "session",
            level=3,
            at=T0 + timedelta(seconds=80),
            mac="dc:a6:32:00:00:09",
            evidence={"port": 80, "sample": "GET / HTTP/1.0...."},
            incident=incident,
        ),
    ]
    observed(week, history)
    shapes = history.incident_shapes("dc:a6:32:00:00:09")
    assert {s.bucket for s in shapes} == {"sweep", "port_scan", "session"}
    assert Shape("sweep", "few", frozenset()) not in shapes  # a prefix of the whole sweep
    history.add_label("dc:a6:32:00:00:09", "normal", shapes)
    for event in week:
        moved = dict(event, first_seen=iso(T0 + timedelta(days=7)), incident_id="c" * 32)
        assert feature(extract(moved, history), "shape_vouched") == 1.0, event["kind"]


def test_slow_probing_is_flagged_for_scans_with_a_telling_rate() -> None:
    def slow(kind: str, rate: Any, **evidence: Any) -> float:
        event = make_event(kind, evidence={"rate": rate, **evidence})
        return feature(extract(event, History()), "slow_probe")

    assert slow("arp_scan", 2.8, target_count=175) == 1.0  # nmap -T2
    assert slow("syn_scan", 0.1, ports=[22, 80, 443]) == 1.0  # nmap -T1
    assert slow("arp_scan", 150.0, target_count=254) == 0.0  # nmap -sn, arp-scan
    assert slow("arp_scan", 20.0, target_count=254) == 0.0  # a router's paced host map
    assert slow("arp_scan", 1.5, target_count=12) == 0.0  # a burst after an ordinary ARP
    assert slow("arp_scan", 0.3, target_count=12) == 1.0  # a dozen addresses in 40 s
    assert slow("arp_scan", 0, target_count=254) == 0.0  # no rate measured is not slow
    assert slow("arp_scan", None, target_count=254) == 0.0
    assert slow("session", 0.1) == 0.0


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
    history = History()
    history.observe(make_event(at=midnight_tokyo), japan)
    entry = history.get(LAPTOP)
    assert entry is not None
    assert entry.block.hours == 1 << 0  # midnight in Tokyo, not 15:00


def test_history_is_bounded() -> None:
    history = History(max_sources=3, max_times=4, max_hosts=2)
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
        history.add_label(macs[4], "normal", [Shape("sweep", "many", frozenset())])
    assert len(entry.labelled) == 32
    history.observe_hosts([{"mac": mac, "first_seen": iso(T0)} for mac in macs])
    assert history.host_first_seen(macs[0]) is None
    assert history.host_first_seen(macs[4]) is not None
    shapes = History()
    for n in range(40):  # a source of endless shapes keeps a bounded table of them
        shapes.observe(make_event(at=T0 + timedelta(hours=n), evidence={"ports": [n, n + 1, 2]}))
        shapes.observe(sweep(T0 + timedelta(hours=n), LAPTOP, targets=10 + n * 7))
    laptop = shapes.get(LAPTOP)
    assert laptop is not None
    assert len(laptop.shape_hours) <= 16
    assert len(laptop.incident_shapes) <= 8


def test_history_round_trip() -> None:
    history = observed(around_the_clock())
    history.add_label("b8:27:eb:00:00:01", "normal", history.incident_shapes("b8:27:eb:00:00:01"))
    history.observe_hosts([{"mac": CAMERA, "first_seen": iso(T0)}])
    stored = json.loads(json.dumps(history.to_dict()))
    restored = History.from_dict(stored)
    for probe in (sweep(T0 + timedelta(hours=14)), sweep(T0, CAMERA, targets=200)):
        np.testing.assert_array_equal(extract(probe, history), extract(probe, restored))
    with pytest.raises(ValueError, match="feature version"):
        History.from_dict({**stored, "version": FEATURE_VERSION + 1})
    shrunk = History.from_dict({**stored, "max_sources": 0, "max_hosts": 0})
    assert len(shrunk) == 0
    assert shrunk.host_first_seen(CAMERA) is None


def test_missing_evidence_and_odd_values() -> None:
    event = make_event(evidence={})
    del event["evidence"]
    event["first_seen"] = None
    x = extract(event, History())
    assert np.all(np.isfinite(x))
    assert feature(x, "log_ports") == 0.0
    naive = make_event()
    naive["first_seen"] = "2026-11-25T12:00:00"  # no zone: read as UTC
    assert np.all(np.isfinite(extract(naive, History())))
    odd = make_event(vendor=None, hostname=None)
    odd["source"]["hostname"] = 7
    odd["evidence"] = {"target_count": True, "sample": 5}
    assert np.all(np.isfinite(extract(odd, History())))


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
        "sample": st.text(max_size=80),
    },
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    kind=st.sampled_from([*KIND_BUCKETS, "arp_spray"]),
    level=st.integers(0, 3),
    evidence=_EVIDENCE,
    vendor=st.one_of(st.none(), st.text(max_size=40)),
    hostname=st.one_of(st.none(), st.text(max_size=70)),
    offsets=st.lists(st.integers(0, 10**7), max_size=8),
)
def test_any_valid_event_gives_bounded_finite_features(
    *,
    kind: str,
    level: int,
    evidence: dict[str, Any],
    vendor: str | None,
    hostname: str | None,
    offsets: list[int],
) -> None:
    history = History()
    for offset in sorted(offsets):
        history.observe(make_event(kind, level=level, at=T0 + timedelta(seconds=offset)))
    when = T0 + timedelta(seconds=max(offsets, default=0) + 1)
    event = make_event(
        kind, level=level, at=when, vendor=vendor, hostname=hostname, evidence=evidence
    )
    x = extract(event, history)
    assert np.all(np.isfinite(x))
    assert np.all(x >= -1.0)
    assert np.all(x <= 2.0)


def test_kinds_of_version_3_count_as_the_kind_they_resemble() -> None:
    evidence = {"ports": [22, 80, 443], "slow": True, "rate": 0.02}
    stealth = make_event("stealth_scan", evidence=evidence)
    assert not errors("event", stealth)
    x = extract(stealth, History())
    assert x[INDEX["kind_port_scan"]] == 1.0
    assert x[INDEX["slow_probe"]] == 1.0  # paced, as the agent says
    udp = make_event("udp_scan", evidence={"ports": [53]})
    assert event_shape(udp).bucket == event_shape(stealth).bucket == "port_scan"
    decoy = extract(make_event("echonet_control", level=3, evidence={"decoy": True}), History())
    assert decoy[INDEX["kind_session"]] == 1.0
    claims = extract(make_event("cache_exhaustion", evidence={"target_count": 214}), History())
    assert claims[INDEX["kind_spray"]] == 1.0  # many addresses claimed by one sender
    for kind, bucket in (
        ("ipv6_sweep", "sweep"),
        ("rogue_ra", "spoof"),
        ("dhcp_starvation", "flood"),
    ):
        assert kind_bucket(kind) == bucket
