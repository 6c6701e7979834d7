"""Bytes -> the few header fields the detectors need (Ethernet, 802.1Q, ARP, IPv4, TCP, UDP).

Plain slicing and ``struct``, never scapy: this runs for every frame of a live LAN. Every
parser returns ``None`` for bytes it cannot make sense of (the caller counts a parse error);
none of them raises on arbitrary input. Addresses stay ``bytes`` (6 for MACs, 4 for IPv4).

Passive hostname sources (DHCP option 12, mDNS answers, NetBIOS name registrations) are
parsed here too; they only run on the few frames sent to their UDP ports.
"""

from __future__ import annotations

from struct import unpack_from
from typing import NamedTuple

ETH_IPV4 = b"\x08\x00"
ETH_ARP = b"\x08\x06"
ETH_VLAN = b"\x81\x00"
ETH_HEADER = 14
PROTO_TCP = 6
PROTO_UDP = 17

TCP_FIN = 0x01
TCP_SYN = 0x02
TCP_RST = 0x04
TCP_ACK = 0x10

ARP_REQUEST = 1
ARP_REPLY = 2

UDP_DHCP_PORTS = frozenset((67, 68))
UDP_MDNS = 5353
UDP_NBNS = 137
UDP_HOSTNAME_PORTS = frozenset((67, 68, UDP_MDNS, UDP_NBNS))


class Arp(NamedTuple):
    op: int
    sender_mac: bytes
    sender_ip: bytes
    target_mac: bytes
    target_ip: bytes


class Tcp(NamedTuple):
    src_ip: bytes
    dst_ip: bytes
    sport: int
    dport: int
    flags: int
    payload_offset: int  # into the (untagged) frame
    payload_len: int  # from the IP total length: what was sent, even beyond the snap length


class Udp(NamedTuple):
    src_ip: bytes
    dst_ip: bytes
    sport: int
    dport: int
    payload_offset: int
    payload_len: int


class Headers(NamedTuple):
    """Everything :func:`parse` found in one frame (``None`` where absent or malformed)."""

    dst: bytes
    src: bytes
    ethertype: bytes
    vlan: int | None
    arp: Arp | None
    tcp: Tcp | None
    udp: Udp | None


def untag(frame: bytes) -> bytes:
    """Drop one 802.1Q tag, if any, so the rest of the parsers see a plain Ethernet frame."""
    if frame[12:14] == ETH_VLAN:
        return frame[:12] + frame[16:]
    return frame


def parse_arp(frame: bytes) -> Arp | None:
    """ARP for IPv4 over Ethernet at offset 14, or ``None``."""
    if len(frame) < 42 or frame[14:20] != b"\x00\x01\x08\x00\x06\x04":
        return None
    return Arp(frame[21] | (frame[20] << 8), frame[22:28], frame[28:32], frame[32:38], frame[38:42])


def _ipv4(frame: bytes) -> tuple[int, int] | None:
    """(header length, total length) of a well-formed, unfragmented-or-first IPv4 header."""
    if len(frame) < 34:
        return None
    vihl = frame[14]
    ihl = (vihl & 0x0F) * 4
    total = (frame[16] << 8) | frame[17]
    if vihl >> 4 != 4 or ihl < 20 or total < ihl or len(frame) < ETH_HEADER + ihl:
        return None
    if (frame[20] & 0x1F) or frame[21]:  # a later fragment carries no L4 header
        return None
    return ihl, total


def parse_tcp(frame: bytes) -> Tcp | None:
    """TCP over IPv4 at offset 14, or ``None`` (not TCP, truncated or inconsistent)."""
    ip = _ipv4(frame)
    if ip is None or frame[23] != PROTO_TCP:
        return None
    ihl, total = ip
    off = ETH_HEADER + ihl
    if len(frame) < off + 20:
        return None
    sport, dport, doff_flags = unpack_from("!HH8xH", frame, off)
    doff = (doff_flags >> 12) * 4
    if doff < 20 or total < ihl + doff:
        return None
    return Tcp(
        frame[26:30],
        frame[30:34],
        sport,
        dport,
        doff_flags & 0xFF,
        off + doff,
        total - ihl - doff,
    )


def parse_udp(frame: bytes) -> Udp | None:
    """UDP over IPv4 at offset 14, or ``None``."""
    ip = _ipv4(frame)
    if ip is None or frame[23] != PROTO_UDP:
        return None
    ihl, total = ip
    off = ETH_HEADER + ihl
    if len(frame) < off + 8:
        return None
    sport, dport, length = unpack_from("!HHH", frame, off)
    if length < 8 or total < ihl + 8:
        return None
    return Udp(frame[26:30], frame[30:34], sport, dport, off + 8, min(length, total - ihl) - 8)


def parse(frame: bytes) -> Headers | None:
    """All the fields above for one frame; ``None`` when not even Ethernet (shorter than 14)."""
    if len(frame) < ETH_HEADER:
        return None
    vlan = None
    if frame[12:14] == ETH_VLAN:
        if len(frame) < 18:
            return None
        vlan = ((frame[14] << 8) | frame[15]) & 0x0FFF
        frame = untag(frame)
    ethertype = frame[12:14]
    arp = parse_arp(frame) if ethertype == ETH_ARP else None
    tcp = parse_tcp(frame) if ethertype == ETH_IPV4 else None
    udp = parse_udp(frame) if ethertype == ETH_IPV4 and tcp is None else None
    return Headers(frame[0:6], frame[6:12], ethertype, vlan, arp, tcp, udp)


# --- passive hostnames ---------------------------------------------------------------------


class Dhcp(NamedTuple):
    op: int  # 1 request (client), 2 reply (server)
    message_type: int | None  # option 53
    client_mac: bytes  # chaddr
    client_ip: bytes  # ciaddr
    your_ip: bytes  # yiaddr (server replies)
    requested_ip: bytes | None  # option 50
    hostname: str | None  # option 12


_DHCP_COOKIE = b"\x63\x82\x53\x63"


def clean_name(raw: bytes) -> str | None:
    """A hostname as sent on the wire -> printable text (at most 63 chars), or ``None``."""
    text = raw.split(b"\x00", 1)[0].decode("utf-8", "replace").strip()
    text = "".join(ch for ch in text if ch.isprintable())[:63]
    return text or None


def parse_dhcp(payload: bytes) -> Dhcp | None:
    """A BOOTP/DHCP message (UDP payload), or ``None``. Truncated options are kept up to the cut."""
    if len(payload) < 240 or payload[236:240] != _DHCP_COOKIE or payload[1] != 1:
        return None
    message_type = None
    requested = None
    hostname = None
    i = 240
    end = len(payload)
    while i < end:
        code = payload[i]
        if code == 255:
            break
        if code == 0:
            i += 1
            continue
        if i + 1 >= end:
            break
        size = payload[i + 1]
        value = payload[i + 2 : i + 2 + size]
        i += 2 + size
        if len(value) < size:
            break
        if code == 53 and size == 1:
            message_type = value[0]
        elif code == 50 and size == 4:
            requested = value
        elif code == 12:
            hostname = clean_name(value)
    return Dhcp(
        payload[0],
        message_type,
        payload[28:34],
        payload[12:16],
        payload[16:20],
        requested,
        hostname,
    )


def _dns_name(msg: bytes, pos: int) -> tuple[str, int] | None:
    """Decode a (possibly compressed) DNS name at ``pos``: (name, position after it)."""
    labels: list[str] = []
    after = -1
    for _ in range(64):  # bounds pointer loops
        if pos >= len(msg):
            return None
        size = msg[pos]
        if size == 0:
            return ".".join(labels), (pos + 1 if after < 0 else after)
        if size & 0xC0 == 0xC0:
            if pos + 1 >= len(msg):
                return None
            if after < 0:
                after = pos + 2
            pos = ((size & 0x3F) << 8) | msg[pos + 1]
            continue
        if size & 0xC0 or pos + 1 + size > len(msg):
            return None
        labels.append(msg[pos + 1 : pos + 1 + size].decode("utf-8", "replace"))
        pos += 1 + size
    return None


def parse_mdns(payload: bytes) -> list[tuple[str, bytes]]:
    """(host name without ``.local``, IPv4) for every A record of an mDNS response."""
    if len(payload) < 12 or not payload[2] & 0x80:  # responses only
        return []
    questions, answers, authority, additional = unpack_from("!HHHH", payload, 4)
    pos = 12
    found: list[tuple[str, bytes]] = []
    for _ in range(min(questions, 32)):
        name = _dns_name(payload, pos)
        if name is None:
            return found
        pos = name[1] + 4
    for _ in range(min(answers + authority + additional, 64)):
        name = _dns_name(payload, pos)
        if name is None or name[1] + 10 > len(payload):
            return found
        pos = name[1]
        rtype, rclass, _ttl, rdlength = unpack_from("!HHIH", payload, pos)
        pos += 10
        rdata = payload[pos : pos + rdlength]
        pos += rdlength
        if rtype == 1 and rclass & 0x7FFF == 1 and len(rdata) == 4:
            host = name[0].removesuffix(".")
            if host.lower().endswith(".local"):
                host = host[: -len(".local")]
            cleaned = clean_name(host.encode("utf-8"))
            if cleaned:
                found.append((cleaned, rdata))
    return found


_NBNS_SELF_OPCODES = frozenset((5, 8, 9, 15))  # registration, refresh (8, 9), multi-homed reg.


def parse_nbns(payload: bytes) -> str | None:
    """The NetBIOS name a host registers for itself (name service on UDP 137), or ``None``."""
    if len(payload) < 12 + 34 or payload[2] & 0x80:  # requests only: the sender's own name
        return None
    if (payload[2] >> 3) & 0x0F not in _NBNS_SELF_OPCODES or payload[12] != 0x20:
        return None
    encoded = payload[13:45]
    if any(not 0x41 <= c <= 0x50 for c in encoded):
        return None
    raw = bytes(((encoded[i] - 0x41) << 4) | (encoded[i + 1] - 0x41) for i in range(0, 32, 2))
    if raw[15] not in (0x00, 0x20):  # workstation / server names, not group or service names
        return None
    return clean_name(raw[:15])


class DhcpServerReply(NamedTuple):
    message_type: int | None  # 2 offer, 5 ack, 6 nak
    client_mac: bytes
    your_ip: bytes
    server_id: bytes | None  # option 54
    routers: tuple[bytes, ...]  # option 3 (at most 4)
    dns: tuple[bytes, ...]  # option 6 (at most 4)


def _addresses(value: bytes) -> tuple[bytes, ...]:
    return tuple(value[i : i + 4] for i in range(0, min(len(value), 16) - 3, 4))


def parse_dhcp_server(payload: bytes) -> DhcpServerReply | None:
    """A DHCP server's reply (BOOTREPLY): what it offers as router and DNS, or ``None``."""
    if len(payload) < 240 or payload[236:240] != _DHCP_COOKIE or payload[0] != 2:
        return None
    message_type = None
    server_id = None
    routers: tuple[bytes, ...] = ()
    dns: tuple[bytes, ...] = ()
    i, end = 240, len(payload)
    for _ in range(256):  # bounded: at most one pass over 256 options
        if i >= end or payload[i] == 255:
            break
        code = payload[i]
        if code == 0:
            i += 1
            continue
        if i + 1 >= end:
            break
        size = payload[i + 1]
        value = payload[i + 2 : i + 2 + size]
        i += 2 + size
        if len(value) < size:
            break
        if code == 53 and size == 1:
            message_type = value[0]
        elif code == 54 and size == 4:
            server_id = value
        elif code == 3:
            routers = _addresses(value)
        elif code == 6:
            dns = _addresses(value)
    return DhcpServerReply(message_type, payload[28:34], payload[16:20], server_id, routers, dns)
