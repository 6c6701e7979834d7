"""Level 3: application data to a decoy port, from frames and from the decoy listeners."""

from __future__ import annotations

from sensor_agent.detectors.session import SessionConfig, SessionDetector
from sensor_agent.formats import ip_bytes, mac_bytes
from tests.agent.craft import ATTACKER_IP, ATTACKER_MAC, T0, arp_request, make_pipeline, tcp
from tests.contract import validate_from_pipeline

MAC = mac_bytes(ATTACKER_MAC)
IP = ip_bytes(ATTACKER_IP)
SMB = b"\x00\x00\x00\x66\xfeSMB@\x00\x00\x00" + b"\x00" * 20


def test_sample_is_printable_and_bytes_add_up() -> None:
    det = SessionDetector(SessionConfig(sample_bytes=16))
    first = det.on_data(T0, MAC, IP, 445, nbytes=len(SMB), data=SMB)
    assert first.level == 3 and first.kind == "session"
    det.on_data(T0 + 1, MAC, IP, 445, nbytes=100, data=b"more")
    evidence = first.evidence()
    assert evidence["bytes"] == len(SMB) + 100
    assert evidence["packets"] == 2
    assert evidence["sample"] == "...f.SMB@......."
    assert len(evidence["sample"]) == 16


def test_data_segment_to_a_decoy_port_in_frames() -> None:
    pipeline, sink = make_pipeline()
    pipeline.feed(T0, tcp(dport=445, flags="PA", data=SMB))
    assert sink.kinds() == [("session", 3)]
    event = sink.events[0]
    assert event["evidence"]["bytes"] == len(SMB)
    assert event["evidence"]["port"] == 445
    assert event["evidence"]["sample"].startswith("...f.SMB@")
    validate_from_pipeline("event", event)


def test_data_to_a_port_that_is_not_a_decoy_is_not_a_session() -> None:
    pipeline, sink = make_pipeline()
    pipeline.feed(T0, tcp(dport=1883, flags="PA", data=b"mqtt"))
    pipeline.feed(T0, tcp(dport=445, flags="A"))  # no data
    assert sink.events == []


def test_live_decoy_ports_are_left_to_the_listener() -> None:
    pipeline, sink = make_pipeline()
    pipeline.set_live_decoys([445])
    pipeline.feed(T0, tcp(dport=445, flags="PA", data=SMB))
    assert sink.events == []
    pipeline.feed(T0, tcp(dport=139, flags="PA", data=SMB))  # its listener is not up
    assert sink.kinds() == [("session", 3)]


def test_decoy_observation_uses_the_mac_learned_from_arp() -> None:
    pipeline, sink = make_pipeline()
    pipeline.feed(T0, arp_request(ATTACKER_MAC, ATTACKER_IP, "198.18.10.1"))
    pipeline.observe_session(T0 + 1, ATTACKER_IP, 445, nbytes=5, data=b"hello")
    assert sink.kinds() == [("session", 3)]
    assert sink.events[0]["source"]["mac"] == ATTACKER_MAC
    assert sink.events[0]["evidence"]["sample"] == "hello"


def test_decoy_connection_without_data_is_handshake_evidence() -> None:
    pipeline, sink = make_pipeline()
    for i, port in enumerate((554, 445, 9100)):
        pipeline.observe_session(T0 + i, ATTACKER_IP, port, nbytes=0, mac=MAC)
    assert sink.kinds() == [("syn_scan", 2)]
    assert sink.events[0]["evidence"]["handshakes"] == 3


def test_decoy_peer_with_unknown_mac_is_counted_not_lost_silently() -> None:
    pipeline, sink = make_pipeline()
    pipeline.observe_session(T0, "198.18.10.99", 445, nbytes=3, data=b"abc")
    assert sink.events == []
    assert pipeline.counters()["unattributed_sessions"] == 1
