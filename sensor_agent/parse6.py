"""Bytes -> the few IPv6 fields the detectors need: the IPv6 half of :mod:`.parse`.

Same rules as there: slicing and ``struct``, ``None`` for bytes that make no sense, never an
exception on arbitrary input. Addresses stay 16-byte ``bytes``. Extension headers are walked
(at most 8, the first fragment only) so a probe cannot hide its TCP header behind one.
Neighbour Discovery messages keep only what identifies who claims which address and who
announces itself as a router.
"""

from __future__ import annotations

from struct import unpack_from
from typing import NamedTuple

from .parse import PROTO_TCP, PROTO_UDP, Tcp, Udp

ETH_IPV6 = b"\x86\xdd"
PROTO_ICMP6 = 58
UNSPECIFIED = b"\x00" * 16
_IP6_HEADER = 40
_BASE = 14 + _IP6_HEADER  # first byte after the fixed header (untagged frame)
_EXTENSIONS = frozenset((0, 43, 60))  # hop-by-hop, routing, destination options
_FRAGMENT = 44
_AH = 51
_MAX_EXTENSIONS = 8

ICMP6_ECHO_REQUEST = 128
ICMP6_ROUTER_SOLICIT = 133
ICMP6_ROUTER_ADVERT = 134
ICMP6_NEIGHBOR_SOLICIT = 135
ICMP6_NEIGHBOR_ADVERT = 136
NA_OVERRIDE = 0x20
_MAX_OPTIONS = 16
_MAX_PREFIXES = 4


class Ip6(NamedTuple):
    src: bytes
    dst: bytes
    hop_limit: int
    next_header: int  # the upper-layer protocol after any extension headers
    offset: int  # of the upper-layer header, into the (untagged) frame
    length: int  # of the upper-layer data, from the payload length field


class Icmp6(NamedTuple):
    type: int
    code: int
    target: bytes | None  # neighbour solicitation/advertisement target
    lladdr: bytes | None  # source (NS, RS, RA) or target (NA) link-layer address option
    flags: int  # NA: router/solicited/override; RA: managed/other
    router_lifetime: int  # RA only (0: "not a default router")
    prefixes: tuple[bytes, ...]  # RA prefix information (the 16-byte prefixes, at most 4)


def is_multicast(ip: bytes) -> bool:
    return ip[:1] == b"\xff"


def is_link_local(ip: bytes) -> bool:
    return ip[:2] == b"\xfe\x80"


def parse_ipv6(frame: bytes) -> Ip6 | None:
    """The IPv6 header of an untagged frame and where its upper layer starts, or ``None``."""
    if len(frame) < _BASE or frame[14] >> 4 != 6:
        return None
    payload_len = (frame[18] << 8) | frame[19]
    end = _BASE + payload_len
    next_header = frame[20]
    off = _BASE
    for _ in range(_MAX_EXTENSIONS):
        if next_header in _EXTENSIONS or next_header == _AH:
            if len(frame) < off + 2:
                return None
            size = (frame[off + 1] + 2) * 4 if next_header == _AH else (frame[off + 1] + 1) * 8
        elif next_header == _FRAGMENT:
            if len(frame) < off + 8:
                return None
            if ((frame[off + 2] << 8) | frame[off + 3]) & 0xFFF8:  # a later fragment
                return None
            size = 8
        else:
            break
        next_header = frame[off]
        off += size
    else:
        return None
    if off > end:
        return None
    return Ip6(frame[22:38], frame[38:54], frame[21], next_header, off, end - off)


def parse_tcp6(frame: bytes, ip: Ip6) -> Tcp | None:
    """TCP over IPv6 (addresses of 16 bytes), or ``None``."""
    off = ip.offset
    if ip.next_header != PROTO_TCP or len(frame) < off + 20:
        return None
    sport, dport, doff_flags = unpack_from("!HH8xH", frame, off)
    doff = (doff_flags >> 12) * 4
    if doff < 20 or ip.length < doff:
        return None
    return Tcp(ip.src, ip.dst, sport, dport, doff_flags & 0xFF, off + doff, ip.length - doff)


def parse_udp6(frame: bytes, ip: Ip6) -> Udp | None:
    """UDP over IPv6, or ``None``."""
    off = ip.offset
    if ip.next_header != PROTO_UDP or len(frame) < off + 8 or ip.length < 8:
        return None
    sport, dport, length = unpack_from("!HHH", frame, off)
    if length and length < 8:
        return None
    size = min(length, ip.length) if length else ip.length  # 0: a jumbogram's length
    return Udp(ip.src, ip.dst, sport, dport, off + 8, size - 8)


def parse_icmp6(frame: bytes, ip: Ip6) -> Icmp6 | None:
    """ICMPv6 with the Neighbour Discovery fields above, or ``None``."""
    off = ip.offset
    if ip.next_header != PROTO_ICMP6 or len(frame) < off + 4:
        return None
    kind, code = frame[off], frame[off + 1]
    target = None
    flags = 0
    lifetime = 0
    if kind in (ICMP6_NEIGHBOR_SOLICIT, ICMP6_NEIGHBOR_ADVERT):
        if len(frame) < off + 24:
            return None
        flags = frame[off + 4]
        target = frame[off + 8 : off + 24]
        options = off + 24
    elif kind == ICMP6_ROUTER_ADVERT:
        if len(frame) < off + 16:
            return None
        flags = frame[off + 5]
        lifetime = (frame[off + 6] << 8) | frame[off + 7]
        options = off + 16
    elif kind == ICMP6_ROUTER_SOLICIT:
        options = off + 8
    else:
        return Icmp6(kind, code, None, None, 0, 0, ())
    lladdr = None
    prefixes: list[bytes] = []
    end = min(len(frame), off + ip.length)
    for _ in range(_MAX_OPTIONS):
        if options + 2 > end:
            break
        option, size = frame[options], frame[options + 1] * 8
        if size == 0 or options + size > end:  # a zero length would loop forever: stop
            break
        if option in (1, 2) and size >= 8:
            lladdr = frame[options + 2 : options + 8]
        elif option == 3 and size == 32 and len(prefixes) < _MAX_PREFIXES:
            prefixes.append(frame[options + 16 : options + 32])
        options += size
    return Icmp6(kind, code, target, lladdr, flags, lifetime, tuple(prefixes))
