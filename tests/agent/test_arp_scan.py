"""Level 1: ARP scans, on crafted frames with an injected clock."""

from __future__ import annotations

from sensor_agent.detectors.arp_scan import ArpScanConfig, ArpScanDetector
from sensor_agent.formats import ip_bytes, mac_bytes
from tests.agent.craft import (
    ATTACKER_IP,
    ATTACKER_MAC,
    GW_IP,
    GW_MAC,
    T0,
    arp_request,
    make_pipeline,
)
from tests.contract import validate_from_pipeline

MAC = mac_bytes(ATTACKER_MAC)
IP = ip_bytes(ATTACKER_IP)


def target(i: int) -> bytes:
    return ip_bytes(f"198.18.10.{i}")


def test_threshold_distinct_targets_within_the_window() -> None:
    det = ArpScanDetector(ArpScanConfig(min_targets=5, window_s=10))
    results = [det.on_request(T0 + i * 0.1, MAC, IP, target(i)) for i in range(1, 6)]
    assert results[:4] == [None] * 4
    found = results[4]
    assert found is not None
    assert (found.kind, found.level, found.mac, found.ip) == ("arp_scan", 1, MAC, IP)
    evidence = found.evidence()
    assert evidence["target_count"] == 5
    assert evidence["targets"][0] == "198.18.10.1"


def test_repeats_of_one_address_are_not_a_scan() -> None:
    det = ArpScanDetector(ArpScanConfig(min_targets=3))
    assert all(det.on_request(T0 + i, MAC, IP, target(1)) is None for i in range(50))


def test_gratuitous_arp_and_probes_are_ignored() -> None:
    det = ArpScanDetector(ArpScanConfig(min_targets=2))
    assert det.on_request(T0, MAC, IP, IP) is None
    assert det.on_request(T0, MAC, IP, b"\x00\x00\x00\x00") is None
    assert len(det.sources) == 0


def test_slow_requests_outside_the_window_do_not_add_up() -> None:
    det = ArpScanDetector(ArpScanConfig(min_targets=3, window_s=10))
    # one new address every 6 s: never 3 within 10 s
    assert all(det.on_request(T0 + i * 6, MAC, IP, target(i)) is None for i in range(1, 20))


def test_sliding_window_forgets_old_targets() -> None:
    det = ArpScanDetector(ArpScanConfig(min_targets=3, window_s=10))
    assert det.on_request(T0, MAC, IP, target(1)) is None
    assert det.on_request(T0 + 8, MAC, IP, target(2)) is None
    # 12 s after the first: only 2 within the window
    assert det.on_request(T0 + 12, MAC, IP, target(3)) is None
    assert det.on_request(T0 + 13, MAC, IP, target(4)) is not None


def test_after_detection_each_new_target_is_evidence() -> None:
    det = ArpScanDetector(ArpScanConfig(min_targets=2))
    det.on_request(T0, MAC, IP, target(1))
    assert det.on_request(T0 + 0.1, MAC, IP, target(2)) is not None
    assert det.on_request(T0 + 0.2, MAC, IP, target(2)) is None  # nothing new
    update = det.on_request(T0 + 0.3, MAC, IP, target(3))
    assert update is not None and update.evidence()["target_count"] == 3


def test_cap_on_sources_evicts_oldest_and_counts_it() -> None:
    det = ArpScanDetector(ArpScanConfig(min_targets=5, max_sources=3))
    for i in range(5):
        det.on_request(T0 + i, bytes([2, 0, 0, 0, 0, i]), IP, target(1))
    assert len(det.sources) == 3
    assert det.sources.evictions == 2
    assert bytes([2, 0, 0, 0, 0, 0]) not in det.sources


def test_expiry_drops_idle_sources() -> None:
    det = ArpScanDetector(ArpScanConfig(window_s=10))
    det.on_request(T0, MAC, IP, target(1))
    det.on_request(T0 + 8, bytes(6), IP, target(1))
    det.expire(T0 + 15)
    assert list(det.sources) == [bytes(6)]
    det.expire(T0 + 30)
    assert len(det.sources) == 0


def test_targets_per_source_are_capped() -> None:
    det = ArpScanDetector(ArpScanConfig(min_targets=2, max_targets=10))
    for i in range(1, 200):
        det.on_request(T0 + i * 0.001, MAC, IP, target(i % 250))
    state = det.sources.get(MAC)
    assert state is not None and len(state.targets) == 10


def test_home_assistant_nmap_tracker_sweep_is_reported_as_level_1() -> None:
    """HA's nmap tracker (nmap -sn -PR every 120 s) sweeps the /24: that is a level-1 scan.
    Two sweeps 120 s apart are one incident (the HA side learns it is normal)."""
    pipeline, sink = make_pipeline()
    ha_mac, ha_ip = "dc:a6:32:14:00:14", "198.18.10.20"
    for sweep in range(2):
        start = T0 + sweep * 120
        for i in range(1, 255):
            pipeline.feed(start + i * 0.01, arp_request(ha_mac, ha_ip, f"198.18.10.{i}"))
    pipeline.finish(T0 + 250)
    assert sink.events, "the sweep must be reported"
    assert {e["kind"] for e in sink.events} == {"arp_scan"}
    assert {e["level"] for e in sink.events} == {1}
    assert len({e["incident_id"] for e in sink.events}) == 1
    assert sink.events[0]["source"]["vendor"] == "Raspberry Pi Trading Ltd"
    assert max(e["evidence"]["target_count"] for e in sink.events) == 253
    for event in sink.events:
        validate_from_pipeline("event", event)


def test_router_resolving_its_hosts_is_not_a_scan() -> None:
    pipeline, sink = make_pipeline()
    for minute in range(10):
        for i in range(20, 26):  # six hosts, every minute
            pipeline.feed(T0 + minute * 60 + i, arp_request(GW_MAC, GW_IP, f"198.18.10.{i}"))
    pipeline.finish()
    assert sink.events == []


def test_vlan_tagged_arp_is_seen() -> None:
    pipeline, sink = make_pipeline()
    for i in range(1, 30):
        pipeline.feed(
            T0 + i * 0.01, arp_request(ATTACKER_MAC, ATTACKER_IP, f"198.18.10.{i}", vlan=7)
        )
    assert sink.kinds() == [("arp_scan", 1)]
