"""The binding mechanism ARP and NDP spoofing share: what a spray or a quiet router cannot undo."""

from __future__ import annotations

from sensor_agent.detectors.bindings import MAX_PINNED, SpoofDetector
from sensor_agent.formats import addr_bytes, mac_bytes
from tests.agent.craft import ATTACKER_MAC, GW_MAC, HOST_MAC, T0

ROUTER, ATTACKER, HOST = mac_bytes(GW_MAC), mac_bytes(ATTACKER_MAC), mac_bytes(HOST_MAC)
ROUTER_LL = addr_bytes("fe80::1")


def spray(det: SpoofDetector, count: int, now: float) -> None:
    """``count`` made-up MACs, each claiming a made-up address for itself once."""
    for i in range(count):
        mac = bytes([2, 0, 0]) + i.to_bytes(3, "big")
        det.claim(now, mac, mac, addr_bytes(f"fd00::{i:x}"), router=ROUTER)


def test_the_routers_binding_is_pinned_outlives_a_spray_and_never_moves() -> None:
    det = SpoofDetector("ndp_spoof", hold_s=10, max_bindings=64)
    assert det.claim(T0, ROUTER, ROUTER, ROUTER_LL, router=ROUTER) is None
    spray(det, 10_000, T0 + 1)
    assert det.mac_of(ROUTER_LL) == ROUTER and det.bindings.evictions > 0
    # silent far beyond hold_s: its address is still the router's, a claim of it level 3
    found = det.claim(T0 + 10_000, ATTACKER, ATTACKER, ROUTER_LL, router=ROUTER)
    assert found is not None and found.mac == ATTACKER and found.level == 3
    assert found.evidence()["is_gateway"] is True
    assert det.claim(T0 + 10_001, ROUTER, ROUTER, ROUTER_LL, router=ROUTER) is None


def test_the_gateways_address_never_moves_and_every_claim_of_it_is_level_3() -> None:
    gateway = addr_bytes("192.0.2.1")
    det = SpoofDetector("arp_spoof", hold_s=10, max_bindings=64)
    assert det.claim(T0, ROUTER, ROUTER, gateway, gateway_address=True) is None
    for i in range(1, 4):  # the router silent a thousand times hold_s
        found = det.claim(T0 + i * 10_000, ATTACKER, ATTACKER, gateway, gateway_address=True)
        assert found is not None and (found.mac, found.level) == (ATTACKER, 3)
    assert det.mac_of(gateway) == ROUTER
    # an ordinary address does move once its owner has been silent for hold_s
    det.claim(T0, HOST, HOST, addr_bytes("192.0.2.31"))
    assert det.claim(T0 + 11, ATTACKER, ATTACKER, addr_bytes("192.0.2.31")) is None
    assert det.mac_of(addr_bytes("192.0.2.31")) == ATTACKER


def test_a_router_known_only_after_its_address_is_pinned_by_its_next_claim() -> None:
    det = SpoofDetector("ndp_spoof", hold_s=10, max_bindings=64)
    det.claim(T0, ROUTER, ROUTER, ROUTER_LL)  # before any advertisement named the router
    assert ROUTER_LL not in det.bindings.pinned
    det.claim(T0 + 1, ROUTER, ROUTER, ROUTER_LL, router=ROUTER)
    assert ROUTER_LL in det.bindings.pinned


def test_a_mac_taken_for_the_router_pins_a_bounded_number_of_addresses() -> None:
    det = SpoofDetector("ndp_spoof", hold_s=10, max_bindings=64)
    for i in range(100):
        det.claim(T0, ROUTER, ROUTER, addr_bytes(f"fd00::{i:x}"), router=ROUTER)
    assert len(det.bindings.pinned) == MAX_PINNED  # the rest as ordinary bindings
    assert len(det.bindings) == 64 + MAX_PINNED


def test_claims_for_another_mac_never_bind_and_a_known_hosts_binding_is_kept() -> None:
    host_ip = addr_bytes("fd00::31")
    det = SpoofDetector("ndp_spoof", hold_s=10, max_bindings=64, keep=lambda ip, m: m == HOST)
    assert det.claim(T0, ATTACKER, HOST, host_ip) is None  # "the host's address is at HOST"
    assert det.mac_of(host_ip) is None
    det.claim(T0 + 1, HOST, HOST, host_ip)  # the host, for itself: one claim, on probation
    spray(det, 1000, T0 + 2)
    assert det.mac_of(host_ip) == HOST  # promoted, not evicted: the inventory knows it
    found = det.claim(T0 + 3, ATTACKER, ATTACKER, host_ip)
    assert found is not None and found.level == 2
