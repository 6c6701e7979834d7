"""ARP spoofing: a known IP, above all the gateway's, claimed by another MAC."""

from __future__ import annotations

from sensor_agent.detectors.arp_spoof import ArpSpoofConfig, ArpSpoofDetector
from sensor_agent.formats import ip_bytes, mac_bytes
from tests.agent.craft import (
    ATTACKER_MAC,
    GW_IP,
    GW_MAC,
    HOST_IP,
    HOST_MAC,
    T0,
    arp_reply,
    make_pipeline,
)
from tests.contract import validate_from_pipeline

GW = ip_bytes(GW_IP)


def test_gateway_spoof_is_level_3_and_accuses_the_spoofer() -> None:
    pipeline, sink = make_pipeline()
    pipeline.feed(T0, arp_reply(GW_MAC, GW_IP))
    for i in range(5):  # arpspoof-style: the attacker and the real gateway both keep answering
        pipeline.feed(T0 + 2 * i + 1, arp_reply(ATTACKER_MAC, GW_IP))
        pipeline.feed(T0 + 2 * i + 2, arp_reply(GW_MAC, GW_IP))
    pipeline.finish()
    assert {e["source"]["mac"] for e in sink.events} == {ATTACKER_MAC}
    first = sink.events[0]
    assert (first["kind"], first["level"]) == ("arp_spoof", 3)
    assert first["evidence"]["is_gateway"] is True
    assert first["evidence"]["old_mac"] == GW_MAC
    assert first["evidence"]["new_mac"] == ATTACKER_MAC
    assert first["evidence"]["ip"] == GW_IP
    validate_from_pipeline("event", first)


def test_other_host_spoof_is_level_2() -> None:
    pipeline, sink = make_pipeline()
    pipeline.feed(T0, arp_reply(HOST_MAC, HOST_IP))
    pipeline.feed(T0 + 5, arp_reply(ATTACKER_MAC, HOST_IP))
    assert sink.kinds() == [("arp_spoof", 2)]


def test_address_reused_after_its_owner_went_silent_is_not_spoofing() -> None:
    det = ArpSpoofDetector(ArpSpoofConfig(hold_s=300))
    host = ip_bytes(HOST_IP)
    assert det.on_arp(T0, mac_bytes(HOST_MAC), mac_bytes(HOST_MAC), host) is None
    new = mac_bytes("02:00:00:00:00:99")
    assert det.on_arp(T0 + 301, new, new, host) is None  # DHCP gave it to another device
    assert det.bindings.get(host) is not None
    binding = det.bindings.get(host)
    assert binding is not None and binding.mac == new


def test_pinned_gateway_mac_is_never_rebound() -> None:
    det = ArpSpoofDetector(ArpSpoofConfig(hold_s=10), gateway_ip=GW, gateway_mac=mac_bytes(GW_MAC))
    attacker = mac_bytes(ATTACKER_MAC)
    found = det.on_arp(T0 + 10_000, attacker, attacker, GW)
    assert found is not None and found.level == 3


def test_probe_from_zero_address_claims_nothing() -> None:
    det = ArpSpoofDetector()
    mac = mac_bytes(HOST_MAC)
    assert det.on_arp(T0, mac, mac, b"\x00\x00\x00\x00") is None
    assert len(det.bindings) == 0
