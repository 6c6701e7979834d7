"""IPv6: neighbour and echo sweeps, scans of the node's IPv6 addresses, NDP spoofing, rogue RAs."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import TCP
from scapy.layers.inet6 import (
    ICMPv6EchoRequest,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6ND_RA,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptPrefixInfo,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
)
from scapy.layers.l2 import Ether

from sensor_agent.detectors.ipv6 import Ipv6Config
from sensor_agent.formats import addr_bytes, mac_bytes
from sensor_agent.incidents import IncidentConfig
from tests.agent.craft import ATTACKER_MAC, GW_MAC, HOST_MAC, NODE_MAC, T0, make_pipeline
from tests.contract import validate, validate_from_pipeline

PREFIX = "fd00:db8:10::"
NODE6 = PREFIX + "10"
GW_LL = "fe80::1"
HOST6 = PREFIX + "31"
ATTACKER_LL = "fe80::66"
ATTACKER6 = PREFIX + "66"


def ns(mac: str, src: str, target: str, hlim: int = 255) -> bytes:
    return bytes(
        Ether(src=mac, dst="33:33:ff:00:00:01")
        / IPv6(src=src, dst="ff02::1:ff00:1", hlim=hlim)
        / ICMPv6ND_NS(tgt=target)
        / ICMPv6NDOptSrcLLAddr(lladdr=mac)
    )


def na(mac: str, target: str, lladdr: str | None = None) -> bytes:
    return bytes(
        Ether(src=mac, dst="33:33:00:00:00:01")
        / IPv6(src=target if lladdr is None else ATTACKER_LL, dst="ff02::1", hlim=255)
        / ICMPv6ND_NA(tgt=target, R=0, S=0, O=1)
        / ICMPv6NDOptDstLLAddr(lladdr=lladdr or mac)
    )


def ra(mac: str, src: str, lifetime: int = 1800) -> bytes:
    return bytes(
        Ether(src=mac, dst="33:33:00:00:00:01")
        / IPv6(src=src, dst="ff02::1", hlim=255)
        / ICMPv6ND_RA(routerlifetime=lifetime)
        / ICMPv6NDOptSrcLLAddr(lladdr=mac)
        / ICMPv6NDOptPrefixInfo(prefix="fd00:bad::", prefixlen=64)
    )


def config() -> dict[str, object]:
    return {"node_ip6": (addr_bytes(NODE6),), "gateway_mac": mac_bytes(GW_MAC)}


def test_neighbour_solicitation_sweep_is_level_1() -> None:
    pipeline, sink = make_pipeline(**config())
    for i in range(12):
        pipeline.feed(T0 + i * 0.1, ns(ATTACKER_MAC, ATTACKER6, f"{PREFIX}{100 + i:x}"))
    assert sink.kinds() == [("ipv6_sweep", 1)]
    event = sink.events[0]
    validate_from_pipeline("event", event)
    assert event["source"]["mac"] == ATTACKER_MAC
    assert event["source"]["ipv6"][0] == ATTACKER6
    assert event["evidence"]["target_count"] == 10


def test_an_echo_to_all_nodes_is_a_sweep_at_once() -> None:
    pipeline, sink = make_pipeline(**config())
    pipeline.feed(
        T0,
        bytes(
            Ether(src=ATTACKER_MAC, dst="33:33:00:00:00:01")
            / IPv6(src=ATTACKER_LL, dst="ff02::1")
            / ICMPv6EchoRequest()
        ),
    )
    assert sink.kinds() == [("ipv6_sweep", 1)]
    assert sink.events[0]["evidence"]["multicast"] == 1
    assert sink.events[0]["evidence"]["targets"] == ["ff02::1"]


def test_hosts_resolving_their_router_and_duplicate_address_detection_raise_nothing() -> None:
    pipeline, sink = make_pipeline(**config())
    for i in range(30):
        pipeline.feed(T0 + i, ns(HOST_MAC, HOST6, GW_LL))
        pipeline.feed(T0 + i, ns(HOST_MAC, "::", f"{PREFIX}{200 + i:x}"))  # DAD: src ::
    pipeline.feed(T0 + 31, ra(GW_MAC, GW_LL))
    pipeline.finish()
    assert [e for e in sink.events if e["kind"] != "host_left"] == []
    hosts = sink.last("hosts")
    validate("hosts", hosts)
    by_mac = {h["mac"]: h for h in hosts["hosts"]}
    assert by_mac[HOST_MAC]["ipv6"] == [HOST6]
    assert by_mac[GW_MAC]["ipv6"] == [GW_LL]


def test_tcp_scan_of_the_node_over_ipv6_is_level_2_with_ipv6_identity() -> None:
    pipeline, sink = make_pipeline(**config())
    pipeline.feed(T0, ns(ATTACKER_MAC, ATTACKER6, NODE6))  # it resolves the node first
    for port in (22, 80, 443):
        pipeline.feed(
            T0 + 1,
            bytes(
                Ether(src=ATTACKER_MAC, dst=NODE_MAC)
                / IPv6(src=ATTACKER6, dst=NODE6)
                / TCP(sport=40000, dport=port, flags="S")
            ),
        )
    assert sink.kinds() == [("syn_scan", 2)]
    source = sink.events[0]["source"]
    validate_from_pipeline("event", sink.events[0])
    assert source["ipv6"] == [ATTACKER6] and source["ip"] is None


def test_ndp_spoof_of_the_router_is_level_3_and_of_a_host_level_2() -> None:
    pipeline, sink = make_pipeline(**config())
    pipeline.feed(T0, ra(GW_MAC, GW_LL))
    pipeline.feed(T0, na(HOST_MAC, HOST6))
    pipeline.feed(T0 + 1, na(ATTACKER_MAC, GW_LL, lladdr=ATTACKER_MAC))  # parasite6
    pipeline.feed(T0 + 1, na(ATTACKER_MAC, HOST6, lladdr=ATTACKER_MAC))
    assert sink.kinds() == [("ndp_spoof", 3)]  # then an update of the same kind, held back
    event = sink.events[0]
    validate_from_pipeline("event", event)
    assert event["source"]["mac"] == ATTACKER_MAC
    evidence = event["evidence"]
    assert (evidence["ip"], evidence["old_mac"], evidence["is_gateway"]) == (GW_LL, GW_MAC, True)
    pipeline2, sink2 = make_pipeline(**config())
    pipeline2.feed(T0, na(HOST_MAC, HOST6))
    pipeline2.feed(T0 + 1, na(ATTACKER_MAC, HOST6, lladdr=ATTACKER_MAC))
    assert sink2.kinds() == [("ndp_spoof", 2)]


def test_routed_or_forged_ndp_with_a_low_hop_limit_is_ignored() -> None:
    pipeline, sink = make_pipeline(**config())
    for i in range(20):
        pipeline.feed(T0, ns(ATTACKER_MAC, ATTACKER6, f"{PREFIX}{100 + i:x}", hlim=64))
    assert sink.events == []


def test_rogue_router_advertisement_is_level_3_but_not_the_router_or_a_border_router() -> None:
    pipeline, sink = make_pipeline(**config())
    pipeline.feed(T0, ra(GW_MAC, GW_LL))
    pipeline.feed(T0 + 1, ra("02:00:00:00:0b:0b", "fe80::b", lifetime=0))  # Thread border router
    assert sink.events == []
    pipeline.feed(T0 + 2, ra(ATTACKER_MAC, ATTACKER_LL))  # fake_router6
    assert sink.kinds() == [("rogue_ra", 3)]
    event = sink.events[0]
    validate_from_pipeline("event", event)
    assert event["source"]["ipv6"][0] == ATTACKER_LL
    assert event["evidence"]["old_mac"] == GW_MAC
    assert event["evidence"]["prefixes"] == ["fd00:bad::"]


def test_without_a_known_gateway_the_first_router_heard_is_the_router() -> None:
    pipeline, sink = make_pipeline(node_ip6=(addr_bytes(NODE6),))
    pipeline.feed(T0, ra(GW_MAC, GW_LL))
    pipeline.feed(T0 + 600, ra(GW_MAC, GW_LL))
    assert sink.events == []
    pipeline.feed(T0 + 601, ra(ATTACKER_MAC, ATTACKER_LL))
    assert sink.kinds() == [("rogue_ra", 3)]


def test_the_first_router_heard_is_kept_however_long_it_is_silent() -> None:
    pipeline, sink = make_pipeline(
        node_ip6=(addr_bytes(NODE6),), incidents=IncidentConfig(update_interval_s=0)
    )
    pipeline.feed(T0, ra(GW_MAC, GW_LL))
    day = 86_400.0  # the router says nothing for days (a lost advertisement or a few)
    for i in range(1, 4):
        pipeline.feed(T0 + i * day, ra(ATTACKER_MAC, ATTACKER_LL))
    pipeline.feed(T0 + 4 * day, na(ATTACKER_MAC, GW_LL, lladdr=ATTACKER_MAC))
    found = [e for e in sink.events if e["kind"] != "host_left"]  # (the quiet router left)
    # every advertisement reported, never taken for the router; its address still its own
    assert [(e["kind"], e["level"]) for e in found] == [("rogue_ra", 3)] * 3 + [("ndp_spoof", 3)]
    assert {e["source"]["mac"] for e in found} == {ATTACKER_MAC}


@given(st.binary(max_size=160), st.sampled_from([58, 6, 17, 0, 44]))
@settings(max_examples=300, deadline=None)
def test_hostile_ipv6_frames_never_stop_the_pipeline(tail: bytes, next_header: int) -> None:
    pipeline, _ = make_pipeline(**config())
    header = bytes(
        Ether(src=ATTACKER_MAC, dst=NODE_MAC) / IPv6(src=ATTACKER6, dst=NODE6, nh=next_header)
    )[:54]
    pipeline.feed(T0, header + tail)
    pipeline.feed(T0, (header + tail)[: 14 + len(tail) % 60])


def test_unicast_solicitations_of_known_neighbours_are_not_a_sweep() -> None:
    pipeline, sink = make_pipeline(**config())
    for i in range(20):  # the router confirms its neighbours one by one (unicast)
        frame = (
            Ether(src=GW_MAC, dst="02:00:00:00:00:99")
            / IPv6(src=GW_LL, dst=f"{PREFIX}{100 + i:x}", hlim=255)
            / ICMPv6ND_NS(tgt=f"{PREFIX}{100 + i:x}")
        )
        pipeline.feed(T0 + i * 0.1, bytes(frame))
    assert sink.events == []


def test_a_spray_of_ndp_claims_never_unbinds_the_router_nor_writes_hosts() -> None:
    pipeline, sink = make_pipeline(**config(), ipv6=Ipv6Config(max_bindings=16))
    pipeline.feed(T0, ra(GW_MAC, GW_LL))
    for i in range(200):  # parasite-style claims for made-up MACs, then for made-up owners
        mac = f"02:00:00:00:{i // 256:02x}:{i % 256:02x}"
        pipeline.feed(T0 + 1, na(mac, f"{PREFIX}{0x1000 + i:x}", lladdr=mac))
        pipeline.feed(T0 + 1, na(ATTACKER_MAC, f"{PREFIX}{0x2000 + i:x}", lladdr=HOST_MAC))
    assert pipeline.ndp_spoof.mac_of(addr_bytes(GW_LL)) == mac_bytes(GW_MAC)
    assert pipeline.hosts.mac_of(addr_bytes(f"{PREFIX}2000")) is None  # never learnt
    pipeline.feed(T0 + 2, na(ATTACKER_MAC, GW_LL, lladdr=ATTACKER_MAC))
    assert ("ndp_spoof", 3) in sink.kinds()
