"""ARP spoofing: a known IP, above all the gateway's, claimed by another MAC."""

from __future__ import annotations

from sensor_agent.detectors.arp_spoof import ArpSpoofConfig, ArpSpoofDetector
from sensor_agent.formats import ip_bytes, mac_bytes
from sensor_agent.incidents import IncidentConfig
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


def test_the_gateway_learnt_at_first_sight_never_moves_however_long_it_is_silent() -> None:
    # every detection an event: each claim of the gateway's address is seen on its own
    pipeline, sink = make_pipeline(incidents=IncidentConfig(update_interval_s=0))
    pipeline.feed(T0, arp_reply(GW_MAC, GW_IP))  # the gateway's first claim: learnt
    quiet = 10 * ArpSpoofConfig().hold_s  # far beyond what frees an ordinary host's address
    for i in range(1, 4):
        pipeline.feed(T0 + i * quiet, arp_reply(ATTACKER_MAC, GW_IP))
    spoofs = [e for e in sink.events if e["kind"] != "host_left"]  # (the quiet router left)
    assert [(e["kind"], e["level"]) for e in spoofs] == [("arp_spoof", 3)] * 3  # every time
    assert {e["source"]["mac"] for e in spoofs} == {ATTACKER_MAC}
    assert {e["evidence"]["old_mac"] for e in spoofs} == {GW_MAC}
    assert pipeline.gateway_mac() == mac_bytes(GW_MAC)  # still what the enforcer protects
    pipeline.feed(T0 + 4 * quiet, arp_reply(GW_MAC, GW_IP))  # the router speaks again
    assert [e for e in sink.events if e["kind"] != "host_left"] == spoofs  # never accused


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


def test_claims_on_behalf_of_another_mac_never_bind_and_accuse_their_sender() -> None:
    det = ArpSpoofDetector(gateway_ip=GW)
    attacker, forged = mac_bytes(ATTACKER_MAC), mac_bytes("02:00:00:00:00:99")
    host = ip_bytes(HOST_IP)
    assert det.on_arp(T0, attacker, forged, host) is None  # "the host's IP is at 02:..:99"
    assert det.mac_of(host) is None
    owner = mac_bytes(HOST_MAC)
    assert det.on_arp(T0 + 1, owner, owner, host) is None  # the owner, for itself
    found = det.on_arp(T0 + 2, attacker, forged, host)
    assert found is not None and found.mac == attacker and found.level == 2
    assert det.on_arp(T0 + 3, attacker, owner, host) is None  # true, but binds nothing new
    assert det.mac_of(host) == owner


def test_the_gateways_first_binding_is_never_pushed_out() -> None:
    det = ArpSpoofDetector(ArpSpoofConfig(max_bindings=64), gateway_ip=GW)
    gateway = mac_bytes(GW_MAC)
    assert det.on_arp(T0, gateway, gateway, GW) is None
    for i in range(10_000):  # each from a made-up MAC claiming its own made-up address
        mac = bytes([2, 0, 0]) + i.to_bytes(3, "big")
        det.on_arp(T0 + 1 + i * 0.0001, mac, mac, bytes([10]) + i.to_bytes(3, "big"))
    assert det.mac_of(GW) == gateway
    attacker = mac_bytes(ATTACKER_MAC)
    found = det.on_arp(T0 + 5, attacker, attacker, GW)
    assert found is not None and found.level == 3 and found.mac == attacker
    assert det.on_arp(T0 + 6, gateway, gateway, GW) is None  # the router is no spoofer


def test_a_binding_claimed_again_is_established_and_outlives_newcomers() -> None:
    det = ArpSpoofDetector(ArpSpoofConfig(max_bindings=64))
    owner, host = mac_bytes(HOST_MAC), ip_bytes(HOST_IP)
    det.on_arp(T0, owner, owner, host)
    det.on_arp(T0 + 60, owner, owner, host)
    assert det.bindings.is_established(host)
    for i in range(1000):
        mac = bytes([2, 0, 0]) + i.to_bytes(3, "big")
        det.on_arp(T0 + 61, mac, mac, bytes([10]) + i.to_bytes(3, "big"))
    assert det.mac_of(host) == owner and det.bindings.evictions > 0
