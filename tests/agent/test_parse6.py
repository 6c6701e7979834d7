"""IPv6 parsing: extension headers walked, later fragments and nonsense refused, never raises."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet import TCP, UDP
from scapy.layers.inet6 import (
    ICMPv6ND_RA,
    ICMPv6NDOptPrefixInfo,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
)
from scapy.layers.l2 import Ether

from sensor_agent.formats import addr_bytes
from sensor_agent.parse6 import parse_icmp6, parse_ipv6, parse_tcp6, parse_udp6

SRC, DST = "fd00::66", "fd00::10"


def frame(*layers: object) -> bytes:
    packet = Ether(src="02:00:00:00:00:66", dst="02:00:00:00:00:10") / IPv6(src=SRC, dst=DST)
    for layer in layers:
        packet = packet / layer  # type: ignore[operator]
    return bytes(packet)


def test_tcp_behind_extension_headers_is_found() -> None:
    data = frame(IPv6ExtHdrHopByHop(), IPv6ExtHdrDestOpt(), TCP(sport=1, dport=445, flags="F"))
    ip = parse_ipv6(data)
    assert ip is not None and ip.next_header == 6
    tcp = parse_tcp6(data, ip)
    assert tcp is not None
    assert (tcp.src_ip, tcp.dport, tcp.flags) == (addr_bytes(SRC), 445, 0x01)
    assert parse_udp6(data, ip) is None


def test_first_fragment_is_parsed_later_ones_are_not() -> None:
    first = frame(IPv6ExtHdrFragment(offset=0, m=1, nh=17), UDP(sport=1, dport=3610))
    ip = parse_ipv6(first)
    assert ip is not None and parse_udp6(first, ip) is not None
    assert parse_ipv6(frame(IPv6ExtHdrFragment(offset=10, nh=17), UDP())) is None


def test_router_advertisement_fields() -> None:
    data = frame(
        ICMPv6ND_RA(routerlifetime=1800),
        ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:00:01"),
        ICMPv6NDOptPrefixInfo(prefix="fd00:1::", prefixlen=64),
    )
    ip = parse_ipv6(data)
    assert ip is not None
    icmp = parse_icmp6(data, ip)
    assert icmp is not None
    assert (icmp.type, icmp.router_lifetime) == (134, 1800)
    assert icmp.lladdr == bytes.fromhex("020000000001")
    assert icmp.prefixes == (addr_bytes("fd00:1::"),)


def test_a_zero_length_option_stops_the_walk() -> None:
    data = bytearray(frame(ICMPv6ND_RA(), ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:00:01")))
    data[54 + 16 + 1] = 0  # the option's length: 0 would never advance
    ip = parse_ipv6(bytes(data))
    assert ip is not None
    icmp = parse_icmp6(bytes(data), ip)
    assert icmp is not None and icmp.lladdr is None


@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise(tail: bytes) -> None:
    for start in (b"", bytes(12) + b"\x86\xdd\x60", frame()[:54]):
        data = start + tail
        ip = parse_ipv6(data)
        if ip is not None:
            parse_tcp6(data, ip)
            parse_udp6(data, ip)
            parse_icmp6(data, ip)
