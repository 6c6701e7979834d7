"""ARP/NDP cache exhaustion: one sender claiming many addresses."""

from __future__ import annotations

from sensor_agent.detectors.cache_exhaustion import CacheExhaustionDetector
from sensor_agent.formats import mac_bytes
from tests.agent.craft import ATTACKER_MAC, GW_IP, HOST_IP, HOST_MAC, T0, arp_request, make_pipeline
from tests.contract import validate_from_pipeline


def test_claims_of_many_addresses_within_the_window() -> None:
    det = CacheExhaustionDetector()
    mac = mac_bytes(ATTACKER_MAC)
    found = [det.on_claim(T0 + i * 0.01, mac, bytes([10, 0, 0, i])) for i in range(20)]
    assert next(i for i, f in enumerate(found) if f is not None) == 15
    slow = CacheExhaustionDetector()
    assert all(slow.on_claim(T0 + i * 61, mac, bytes([10, 0, 0, i])) is None for i in range(20))


def test_arp_claims_through_the_pipeline_but_not_a_host_repeating_its_own() -> None:
    pipeline, sink = make_pipeline()
    for i in range(50):
        pipeline.feed(T0 + i, arp_request(HOST_MAC, HOST_IP, GW_IP))
    assert sink.events == []
    for i in range(20):  # "198.18.10.(100+i) is at <attacker>": caches fill up
        ip = f"198.18.10.{100 + i}"
        pipeline.feed(T0 + 60 + i * 0.01, arp_request(ATTACKER_MAC, ip, ip))
    assert ("cache_exhaustion", 2) in sink.kinds()
    event = next(e for e in sink.events if e["kind"] == "cache_exhaustion")
    validate_from_pipeline("event", event)
    assert event["source"]["mac"] == ATTACKER_MAC
    assert len(event["evidence"]["claimed"]) == 16
