"""Slow sweeps: paced under the fast windows, found over a long horizon with bounded memory."""

from __future__ import annotations

import sys
from datetime import datetime

from sensor_agent.detectors.slow_sweep import SlowSweepDetector
from sensor_agent.formats import ip_bytes, mac_bytes
from tests.agent.craft import (
    ATTACKER_IP,
    ATTACKER_MAC,
    GW_IP,
    HOST_IP,
    HOST_MAC,
    T0,
    arp_request,
    make_pipeline,
    tcp,
)
from tests.contract import validate_from_pipeline

MAC = mac_bytes(ATTACKER_MAC)
IP4 = ip_bytes(ATTACKER_IP)


def _sweep_until_found(interval_s: float, limit: int = 200) -> float:
    """Seconds from the first ARP request to the slow detection, one request per interval."""
    det = SlowSweepDetector()
    for i in range(limit):
        found = det.on_dark_arp(T0 + i * interval_s, MAC, IP4, bytes([198, 18, 10, 100 + i]))
        if found is not None:
            assert (found.kind, found.level) == ("arp_scan", 1)
            assert found.evidence()["slow"] is True
            return i * interval_s
    raise AssertionError("never found")


def test_arp_sweep_at_one_request_per_1_to_2_s_is_found_within_30_s() -> None:
    assert _sweep_until_found(1.0) <= 30
    assert _sweep_until_found(2.0) <= 30


def test_arp_sweep_at_one_request_per_30_s_is_found_within_15_minutes() -> None:
    assert _sweep_until_found(30.0) <= 15 * 60


def test_syn_scan_at_one_port_per_30_to_60_s_is_level_2_within_10_minutes() -> None:
    for interval in (30.0, 60.0):
        det = SlowSweepDetector()
        found = None
        for i in range(20):
            found = det.on_port(T0 + i * interval, MAC, IP4, "syn_scan", 1000 + i)
            if found is not None:
                break
        assert found is not None and (found.kind, found.level) == ("syn_scan", 2)
        assert found.last_seen - T0 <= 600
        assert len(found.evidence()["ports"]) >= 5


def test_an_episode_is_reported_once_and_forgotten_after_a_quiet_horizon() -> None:
    det = SlowSweepDetector()
    found = [det.on_dark_arp(T0 + i, MAC, IP4, bytes([10, 0, 0, i])) for i in range(40)]
    assert sum(f is not None for f in found) == 1
    later = T0 + 3 * det.config.horizon_s
    found = [det.on_dark_arp(later + i, MAC, IP4, bytes([10, 0, 1, i])) for i in range(40)]
    assert sum(f is not None for f in found) == 1


def test_memory_per_source_is_bounded_whatever_the_targets() -> None:
    det = SlowSweepDetector()
    for i in range(5000):
        det.on_dark_arp(T0 + i * 0.01, MAC, IP4, i.to_bytes(4, "big"))
    track = det.tables["arp_scan"].get(MAC)
    assert track is not None
    assert len(track.sample) <= 16
    assert sys.getsizeof(track.current) <= 100 and sys.getsizeof(track.previous) <= 100


def test_a_paced_arp_sweep_through_the_pipeline_but_not_a_host_resolving_its_peers() -> None:
    pipeline, sink = make_pipeline()
    # forty live devices announce themselves (gratuitous ARP); a controller keeps resolving
    # them all, one every 2 s, for 15 minutes: their addresses are held, never dark
    live = [f"198.18.10.{100 + i}" for i in range(40)]
    for i, ip in enumerate(live):
        pipeline.feed(T0, arp_request(f"02:00:00:00:01:{i:02x}", ip, ip))
    for i in range(450):
        pipeline.feed(T0 + 1 + 2 * i, arp_request(HOST_MAC, HOST_IP, live[i % 40]))
        pipeline.feed(T0 + 1 + 2 * i, arp_request(HOST_MAC, HOST_IP, GW_IP))
    assert sink.events == []
    # a sweep of addresses nobody holds, one request per 2 s
    start = T0 + 1000
    for i in range(20):
        pipeline.feed(start + 2 * i, arp_request(ATTACKER_MAC, ATTACKER_IP, f"198.18.10.{200 + i}"))
    assert sink.kinds() == [("arp_scan", 1)]
    event = sink.events[0]
    validate_from_pipeline("event", event)
    assert event["evidence"]["slow"] is True
    assert event["source"]["ip"] == ATTACKER_IP
    took = datetime.fromisoformat(event["detected_at"]) - datetime.fromisoformat(
        event["first_seen"]
    )
    assert took.total_seconds() <= 30


def test_a_syn_every_minute_through_the_pipeline() -> None:
    pipeline, sink = make_pipeline()
    for i in range(10):
        pipeline.feed(T0 + 60 * i, tcp(dport=2000 + i))
    assert sink.kinds() == [("syn_scan", 2)]
    assert sink.events[0]["evidence"]["slow"] is True


def test_raised_fast_thresholds_apply_to_slow_sweeps_too() -> None:
    from dataclasses import replace

    from sensor_agent.detectors.syn_scan import SynScanConfig

    pipeline, sink = make_pipeline(syn_scan=replace(SynScanConfig(), min_ports=50))
    for i in range(10):
        pipeline.feed(T0 + 60 * i, tcp(dport=2000 + i))
    assert sink.events == []


def test_a_fast_scan_is_reported_by_the_fast_detector_alone() -> None:
    # every detection an event: a slow report of the same scan would show as a second one
    from sensor_agent.incidents import IncidentConfig

    pipeline, sink = make_pipeline(incidents=IncidentConfig(update_interval_s=0))
    for i in range(8):
        pipeline.feed(T0 + 0.01 * i, tcp(dport=2000 + i))
    for i in range(20):
        pipeline.feed(T0 + 0.01 * i, arp_request(ATTACKER_MAC, ATTACKER_IP, f"198.18.10.{200 + i}"))
    assert {kind for kind, _ in sink.kinds()} == {"syn_scan", "arp_scan"}
    assert not any(event["evidence"].get("slow") for event in sink.events)
