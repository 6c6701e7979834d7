"""Level 2: SYNs to several ports of the monitoring node (connect scans too)."""

from __future__ import annotations

from sensor_agent.detectors.syn_scan import SynScanConfig, SynScanDetector
from sensor_agent.formats import ip_bytes, mac_bytes
from tests.agent.craft import (
    ATTACKER_IP,
    ATTACKER_MAC,
    HOST_IP,
    HOST_MAC,
    T0,
    make_pipeline,
    tcp,
)
from tests.contract import validate_from_pipeline

MAC = mac_bytes(ATTACKER_MAC)
IP = ip_bytes(ATTACKER_IP)
RANSOMWARE_PORTS = (554, 445, 9100, 80, 515, 139)


def test_threshold_of_distinct_ports() -> None:
    det = SynScanDetector(SynScanConfig(min_ports=3))
    assert det.on_syn(T0, MAC, IP, 554) is None
    assert det.on_syn(T0 + 0.1, MAC, IP, 554) is None  # a retry is not a new port
    assert det.on_syn(T0 + 0.2, MAC, IP, 445) is None
    found = det.on_syn(T0 + 0.3, MAC, IP, 9100)
    assert found is not None
    assert (found.kind, found.level) == ("syn_scan", 2)
    assert found.evidence()["ports"] == [445, 554, 9100]
    assert found.evidence()["packets"] == 4


def test_ports_spread_beyond_the_window_are_not_a_scan() -> None:
    det = SynScanDetector(SynScanConfig(min_ports=3, window_s=60))
    assert all(det.on_syn(T0 + i * 61, MAC, IP, 1000 + i) is None for i in range(10))


def test_ransomware_probe_through_the_pipeline() -> None:
    pipeline, sink = make_pipeline()
    for i, port in enumerate(RANSOMWARE_PORTS):
        pipeline.feed(T0 + i * 0.05, tcp(dport=port, flags="S"))
    pipeline.finish()
    assert sink.kinds()[0] == ("syn_scan", 2)
    event = sink.events[-1]
    assert event["source"]["mac"] == ATTACKER_MAC
    assert event["source"]["ip"] == ATTACKER_IP
    assert event["evidence"]["ports"] == sorted(RANSOMWARE_PORTS)
    validate_from_pipeline("event", event)


def test_connect_scan_without_data_is_level_2_with_handshakes() -> None:
    pipeline, sink = make_pipeline()
    t = T0
    for port in RANSOMWARE_PORTS:
        pipeline.feed(t, tcp(dport=port, flags="S", sport=50000 + port))
        pipeline.feed(t + 0.001, tcp(dport=port, flags="A", sport=50000 + port))  # handshake
        pipeline.feed(t + 0.002, tcp(dport=port, flags="RA", sport=50000 + port))
        t += 0.1
    pipeline.finish()
    assert {(e["kind"], e["level"]) for e in sink.events} == {("syn_scan", 2)}
    assert sink.events[-1]["evidence"]["handshakes"] == len(RANSOMWARE_PORTS)


def test_syn_to_another_host_or_syn_ack_from_anyone_is_not_counted() -> None:
    pipeline, sink = make_pipeline()
    for port in range(1, 50):
        pipeline.feed(T0 + port * 0.01, tcp(dport=port, flags="S", dst_ip="198.18.10.77"))
        pipeline.feed(T0 + port * 0.01, tcp(HOST_MAC, HOST_IP, dport=port, flags="SA"))
    pipeline.finish()
    assert sink.events == []


def test_one_client_to_one_port_is_not_a_scan() -> None:
    pipeline, sink = make_pipeline()
    for i in range(100):
        pipeline.feed(T0 + i, tcp(HOST_MAC, HOST_IP, dport=8123, flags="S", sport=40000 + i))
    pipeline.finish()
    assert sink.events == []


def test_cap_and_expiry() -> None:
    det = SynScanDetector(SynScanConfig(max_sources=2, window_s=60))
    for i in range(4):
        det.on_syn(T0 + i, bytes([2, 0, 0, 0, 0, i]), IP, 80)
    assert len(det.sources) == 2 and det.sources.evictions == 2
    det.expire(T0 + 1000)
    assert len(det.sources) == 0


def test_decoy_sources_of_a_syn_scan_are_named_as_forged() -> None:
    from tests.agent.craft import GW_IP, arp_request

    pipeline, sink = make_pipeline()
    pipeline.feed(0.0, arp_request(ATTACKER_MAC, ATTACKER_IP, GW_IP))  # its own address, heard
    decoys = ("198.18.10.201", "198.18.10.202")
    for port in RANSOMWARE_PORTS:
        for ip in (*decoys, ATTACKER_IP):  # nmap -sS -D: the decoys' SYNs, then its own
            pipeline.feed(1.0, tcp(ip=ip, dport=port))
    event = sink.events[0]
    validate_from_pipeline("event", event)
    assert event["source"]["ip"] == ATTACKER_IP
    assert sorted(event["evidence"]["forged_ips"]) == sorted(decoys)


def test_ports_add_up_per_ip_when_the_mac_changes() -> None:
    det = SynScanDetector(SynScanConfig(min_ports=3))
    found = [det.on_syn(T0 + i, bytes([2, 0, 0, 0, 0, i]), IP, 1000 + i) for i in range(4)]
    assert found[:2] == [None, None]
    detection = found[2]
    assert detection is not None and detection.ip == IP
    assert detection.mac == bytes([2, 0, 0, 0, 0, 0])  # the first MAC: one incident
    update = found[3]
    assert update is not None and update.evidence()["target_count"] == 4


def test_a_mac_using_forged_source_ips_is_reported_without_an_ip_of_its_own() -> None:
    det = SynScanDetector(SynScanConfig(min_ports=3))
    found = [det.on_syn(T0 + i, MAC, bytes([10, 0, 0, i]), 1000 + i) for i in range(3)]
    detection = found[2]
    assert detection is not None and detection.mac == MAC
    assert detection.ip is None  # the inventory's IP for the MAC, not a forged one
