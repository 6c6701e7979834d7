"""Generated captures: the demo scenario and the benchmark captures (files only, nothing is sent).

Frames are crafted with scapy (fine here: this is not the hot path), then written with a
small pcap writer. The large benchmark captures craft a few templates once and patch bytes
(addresses, ports) to produce hundreds of thousands of frames quickly. Only documentation
addresses are used: 192.0.2.0/24 (the demo LAN) and 198.18.0.0/15 (benchmarks).
"""

from __future__ import annotations

import random
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.dns import DNS, DNSRR
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.layers.netbios import NBNSHeader, NBNSRegistrationRequest
from scapy.packet import Packet, Raw

from .formats import ip_bytes, mac_bytes

BROADCAST = "ff:ff:ff:ff:ff:ff"
DEMO_START = 1795597200.0  # 2026-11-25 09:00:00 UTC


def write_pcap(
    path: Path, records: Iterable[tuple[float, bytes]], nanoseconds: bool = False
) -> int:
    """Write classic pcap (little-endian, Ethernet); returns the number of records."""
    magic = 0xA1B23C4D if nanoseconds else 0xA1B2C3D4
    scale = 1_000_000_000 if nanoseconds else 1_000_000
    count = 0
    pack = struct.Struct("<IIII").pack
    with path.open("wb") as out:
        out.write(struct.pack("<IHHiIII", magic, 2, 4, 0, 0, 65535, 1))
        for ts, frame in records:
            sec = int(ts)
            frac = round((ts - sec) * scale)
            if frac >= scale:
                sec, frac = sec + 1, frac - scale
            out.write(pack(sec, frac, len(frame), len(frame)))
            out.write(frame)
            count += 1
    return count


# --- the demo LAN ------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoHost:
    name: str
    mac: str
    ip: str
    role: str


ROUTER = DemoHost("fritz-box", "3c:a6:2f:01:00:01", "192.0.2.1", "router (gateway)")
NODE = DemoHost("lan-guard-node", "b8:27:eb:0a:00:0a", "192.0.2.10", "monitoring node (the agent)")
HOME_ASSISTANT = DemoHost("homeassistant", "dc:a6:32:14:00:14", "192.0.2.20", "Home Assistant")
PHONE = DemoHost("Annas-iPhone", "3c:22:fb:1f:00:1f", "192.0.2.31", "phone")
TV = DemoHost("Living-Room-TV", "8c:79:f5:20:00:20", "192.0.2.32", "smart TV")
PRINTER = DemoHost("officejet", "3c:d9:2b:21:00:21", "192.0.2.33", "printer")
CULPRIT = DemoHost("DESKTOP-K3V9Q2", "00:1b:21:42:00:42", "192.0.2.66", "infected laptop")
DEMO_HOSTS = (ROUTER, NODE, HOME_ASSISTANT, PHONE, TV, PRINTER, CULPRIT)
BENIGN = (ROUTER, HOME_ASSISTANT, PHONE, TV, PRINTER)

# What the ransomware studied probes first, then a few more ports.
RANSOMWARE_PORTS = (554, 445, 9100, 80, 515, 139)
EXTRA_PORTS = (21, 22, 23, 25, 53, 110, 135, 143, 443, 993, 1433, 3306, 3389, 5900, 8080)
DECOY_PORTS = frozenset(RANSOMWARE_PORTS)
SMB2_NEGOTIATE = (
    b"\x00\x00\x00\x66"  # NetBIOS session message, 102 bytes
    + b"\xfeSMB@\x00\x00\x00\x00\x00\x00\x00\x00\x00\x1f\x00"
    + b"\x00" * 48
    + b"$\x00\x03\x00\x01\x00\x00\x00\x7f\x00\x00\x00"
    + b"LANGUARD-DEMO-CLIENT"[:16]
    + b"\x00" * 8
    + b"\x02\x02\x10\x02\x00\x03"
)


def _dhcp_request(host: DemoHost) -> Packet:
    return (
        Ether(src=host.mac, dst=BROADCAST)
        / IP(src="0.0.0.0", dst="255.255.255.255")
        / UDP(sport=68, dport=67)
        / BOOTP(chaddr=mac_bytes(host.mac), xid=random.getrandbits(32))
        / DHCP(
            options=[
                ("message-type", "request"),
                ("requested_addr", host.ip),
                ("hostname", host.name.encode()),
                "end",
            ]
        )
    )


def _dhcp_ack(host: DemoHost) -> Packet:
    return (
        Ether(src=ROUTER.mac, dst=BROADCAST)
        / IP(src=ROUTER.ip, dst="255.255.255.255")
        / UDP(sport=67, dport=68)
        / BOOTP(op=2, yiaddr=host.ip, chaddr=mac_bytes(host.mac))
        / DHCP(options=[("message-type", "ack"), ("server_id", ROUTER.ip), "end"])
    )


def _mdns_announce(host: DemoHost) -> Packet:
    return (
        Ether(src=host.mac, dst="01:00:5e:00:00:fb")
        / IP(src=host.ip, dst="224.0.0.251", ttl=255)
        / UDP(sport=5353, dport=5353)
        / DNS(qr=1, aa=1, an=DNSRR(rrname=f"{host.name}.local.", type="A", rdata=host.ip))
    )


def _ssdp_notify(host: DemoHost) -> Packet:
    body = (
        "NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nNT: upnp:rootdevice\r\n"
        f"NTS: ssdp:alive\r\nLOCATION: http://{host.ip}:8060/\r\n\r\n"
    )
    return (
        Ether(src=host.mac, dst="01:00:5e:7f:ff:fa")
        / IP(src=host.ip, dst="239.255.255.250")
        / UDP(sport=1900, dport=1900)
        / Raw(body.encode())
    )


def _nbns_register(host: DemoHost) -> Packet:
    return (
        Ether(src=host.mac, dst=BROADCAST)
        / IP(src=host.ip, dst="192.0.2.255")
        / UDP(sport=137, dport=137)
        / NBNSHeader(OPCODE=5, NM_FLAGS=0x11, QDCOUNT=1, ARCOUNT=1)
        / NBNSRegistrationRequest(QUESTION_NAME=host.name[:15], NB_ADDRESS=[host.ip])
    )


def _arp_request(asker: DemoHost, target_ip: str) -> Packet:
    return Ether(src=asker.mac, dst=BROADCAST) / ARP(
        op=1, hwsrc=asker.mac, psrc=asker.ip, pdst=target_ip
    )


def _arp_reply(owner: DemoHost, to: DemoHost) -> Packet:
    return Ether(src=owner.mac, dst=to.mac) / ARP(
        op=2, hwsrc=owner.mac, psrc=owner.ip, hwdst=to.mac, pdst=to.ip
    )


def _tcp(  # noqa: PLR0917 - reads like the packet it builds
    src: DemoHost, dst: DemoHost, sport: int, dport: int, flags: str, data: bytes = b""
) -> Packet:
    dst_mac = dst.mac
    frame = (
        Ether(src=src.mac, dst=dst_mac)
        / IP(src=src.ip, dst=dst.ip)
        / TCP(sport=sport, dport=dport, flags=flags, seq=1000, ack=1 if "A" in flags else 0)
    )
    return frame / Raw(data) if data else frame


def _internet(host: DemoHost, outbound: bool, size: int) -> Packet:
    """Ordinary traffic between a host and the internet, through the router."""
    remote = "198.51.100.80"
    if outbound:
        ip = IP(src=host.ip, dst=remote) / TCP(sport=50000, dport=443, flags="PA")
        return Ether(src=host.mac, dst=ROUTER.mac) / ip / Raw(b"\x17\x03\x03" + b"x" * size)
    ip = IP(src=remote, dst=host.ip) / TCP(sport=443, dport=50000, flags="PA")
    return Ether(src=ROUTER.mac, dst=host.mac) / ip / Raw(b"\x17\x03\x03" + b"y" * size)


def demo_frames(seed: int = 7) -> list[tuple[float, bytes]]:
    """The demo capture: benign home traffic, and a ransomware-like sequence from CULPRIT.

    t+0 s..: DHCP with host names, mDNS, SSDP, NetBIOS, the router's ARP, ordinary traffic;
    t+60 s: ARP scan of the /24 (level 1); t+70 s: SYN scan of the node (level 2);
    t+80 s: an SMB session with data on 445 (level 3); then the laptop falls silent, and
    benign traffic goes on until it is declared gone (host_left, after 300 s).
    """
    rng = random.Random(seed)
    random.seed(seed)
    t0 = DEMO_START
    out: list[tuple[float, Packet]] = []

    def at(offset: float, pkt: Packet) -> None:
        out.append((t0 + offset, pkt))

    end = 480.0
    for i, host in enumerate((PHONE, TV, CULPRIT, PRINTER, HOME_ASSISTANT)):
        at(2.0 + i, _dhcp_request(host))
        at(2.05 + i, _dhcp_ack(host))
    at(8.0, _nbns_register(CULPRIT))
    t = 0.0
    while t < end:  # periodic background chatter
        for host in (PRINTER, PHONE):
            if host is not PHONE or t < 400:
                at(t + 0.3, _mdns_announce(host))
        at(t + 0.5, _ssdp_notify(TV))
        for host in (PHONE, TV, PRINTER, HOME_ASSISTANT):
            at(t + 1.0 + rng.random(), _arp_request(ROUTER, host.ip))
            at(t + 1.9 + rng.random() * 0.01, _arp_reply(host, ROUTER))
        at(t + 2.5, _arp_request(HOME_ASSISTANT, ROUTER.ip))
        at(t + 2.51, _arp_reply(ROUTER, HOME_ASSISTANT))
        if t < 90:
            at(t + 3.0, _arp_request(CULPRIT, ROUTER.ip))
            at(t + 3.01, _arp_reply(ROUTER, CULPRIT))
        t += 20.0
    t = 0.0
    while t < end:  # a phone and the TV streaming, HA polling the printer
        at(t, _internet(PHONE, True, rng.randrange(40, 400)))
        at(t + 0.01, _internet(PHONE, False, rng.randrange(200, 1200)))
        at(t + 0.2, _internet(TV, False, 1200))
        if t < 85:
            at(t + 0.3, _internet(CULPRIT, True, rng.randrange(40, 400)))
        t += 0.5
    for second in range(0, int(end), 30):
        at(second + 4.0, _tcp(HOME_ASSISTANT, PRINTER, 40000 + second, 631, "S"))
        at(second + 4.001, _tcp(PRINTER, HOME_ASSISTANT, 631, 40000 + second, "SA"))

    # level 1: ARP scan of the whole /24, ~100 requests per second
    for i in range(1, 255):
        at(60.0 + i * 0.01, _arp_request(CULPRIT, f"192.0.2.{i}"))
    # level 2: SYN scan of the node; decoys answer SYN-ACK (the scanner resets), others RST
    for i, port in enumerate(RANSOMWARE_PORTS + EXTRA_PORTS):
        when = 70.0 + i * 0.02
        at(when, _tcp(CULPRIT, NODE, 51000 + i, port, "S"))
        if port in DECOY_PORTS:
            at(when + 0.001, _tcp(NODE, CULPRIT, port, 51000 + i, "SA"))
            at(when + 0.002, _tcp(CULPRIT, NODE, 51000 + i, port, "R"))
        else:
            at(when + 0.001, _tcp(NODE, CULPRIT, port, 51000 + i, "RA"))
    # level 3: an SMB session on 445 with data
    at(80.0, _tcp(CULPRIT, NODE, 52000, 445, "S"))
    at(80.001, _tcp(NODE, CULPRIT, 445, 52000, "SA"))
    at(80.002, _tcp(CULPRIT, NODE, 52000, 445, "A"))
    at(80.003, _tcp(CULPRIT, NODE, 52000, 445, "PA", SMB2_NEGOTIATE))
    at(80.004, _tcp(NODE, CULPRIT, 445, 52000, "A"))
    at(80.5, _tcp(NODE, CULPRIT, 445, 52000, "FA"))
    at(80.501, _tcp(CULPRIT, NODE, 52000, 445, "FA"))
    out.sort(key=lambda item: item[0])
    return [(ts, bytes(pkt)) for ts, pkt in out]


# --- benchmark captures --------------------------------------------------------------------

_BENCH_NODE = "198.18.0.10"
_BENCH_NODE_MAC = "02:00:5e:00:00:0a"
_BENCH_ROUTER = "198.18.0.1"
_BENCH_ROUTER_MAC = "02:00:5e:00:00:01"


def bench_node() -> tuple[str, str]:
    """(IP, MAC) of the monitoring node in the benchmark captures."""
    return _BENCH_NODE, _BENCH_NODE_MAC


def _bench_host(i: int) -> tuple[str, str]:
    return f"198.18.{1 + i // 250}.{1 + i % 250}", f"02:00:5e:01:{i >> 8:02x}:{i & 0xFF:02x}"


def mixed_frames(
    count: int = 200_000, hosts: int = 60, seed: int = 1
) -> Iterable[tuple[float, bytes]]:
    """A large mix like a mirror port of a busy home LAN, with a few attacks in it.

    Benign: TCP/UDP unicast through the router, IPv6, multicast (mDNS, SSDP), DHCP, ARP,
    some VLAN-tagged frames, ICMP. Attacks: ARP scans, SYN scans and sessions to the node, at
    a few points. About 2,000 frames per second of capture time.
    """
    rng = random.Random(seed)
    router = DemoHost("router", _BENCH_ROUTER_MAC, _BENCH_ROUTER, "router")
    node = DemoHost("node", _BENCH_NODE_MAC, _BENCH_NODE, "node")
    members = []
    for i in range(hosts):
        ip, mac = _bench_host(i)
        members.append(DemoHost(f"host{i}", mac, ip, "host"))
    templates: list[bytes] = []
    weights: list[int] = []

    def add(pkt: Packet, weight: int) -> None:
        templates.append(bytes(pkt))
        weights.append(weight)

    for host in members:
        add(_internet(host, True, rng.randrange(40, 600)), 30)
        add(_internet(host, False, rng.randrange(400, 1400)), 40)
        add(
            Ether(src=host.mac, dst=router.mac)
            / IP(src=host.ip, dst=router.ip)
            / UDP(sport=40000, dport=53)
            / Raw(b"\x12\x34\x01\x00" + b"\x00" * 20),
            6,
        )
        add(
            Ether(src=host.mac, dst="33:33:00:00:00:fb")
            / IPv6(src="fe80::1", dst="ff02::fb")
            / UDP(sport=5353, dport=5353)
            / Raw(b"\x00" * 40),
            5,
        )
        add(_mdns_announce(host), 2)
        add(_ssdp_notify(host), 2)
        add(_arp_request(router, host.ip), 2)
        add(_arp_reply(host, router), 2)
        add(
            Ether(src=host.mac, dst=router.mac)
            / Dot1Q(vlan=10)
            / IP(src=host.ip, dst="198.51.100.9")
            / ICMP(),
            1,
        )
        add(_dhcp_request(host), 1)
        add(_tcp(host, node, 40000, 1883, "PA", b"\x30\x10mqtt-ish"), 1)  # benign data, no decoy
    picks = rng.choices(range(len(templates)), weights=weights, k=count)
    attackers = [
        DemoHost(f"bad{i}", f"02:00:5e:09:00:{i:02x}", f"198.18.9.{i + 1}", "x") for i in range(4)
    ]
    attack_at = {count * (k + 1) // 5: attackers[k] for k in range(4)}
    ts = DEMO_START
    step = 1 / 2000
    for i, pick in enumerate(picks):
        ts += step
        yield ts, templates[pick]
        bad = attack_at.get(i)
        if bad is not None:
            for j in range(1, 255):
                ts += step
                yield ts, bytes(_arp_request(bad, f"198.18.1.{j}"))
            for port in RANSOMWARE_PORTS + EXTRA_PORTS:
                ts += step
                yield ts, bytes(_tcp(bad, node, 50000, port, "S"))
            ts += step
            yield ts, bytes(_tcp(bad, node, 50001, 445, "PA", SMB2_NEGOTIATE))


def many_sources_frames(sources: int = 100_000, seed: int = 2) -> Iterable[tuple[float, bytes]]:
    """One frame from each of ``sources`` distinct MACs (ARP requests, SYNs to the node,
    UDP broadcasts in turn): the worst case for per-source state. 4,000 frames/s."""
    rng = random.Random(seed)
    node = DemoHost("node", _BENCH_NODE_MAC, _BENCH_NODE, "node")
    arp = bytearray(
        bytes(_arp_request(DemoHost("x", "02:00:00:00:00:00", "198.18.5.5", "x"), "198.18.0.1"))
    )
    syn = bytearray(
        bytes(_tcp(DemoHost("x", "02:00:00:00:00:00", "198.18.5.5", "x"), node, 40000, 445, "S"))
    )
    udp = bytearray(
        bytes(
            Ether(src="02:00:00:00:00:00", dst=BROADCAST)
            / IP(src="198.18.5.5", dst="198.18.255.255")
            / UDP(sport=9999, dport=9999)
            / Raw(b"hello")
        )
    )
    ts = DEMO_START
    for i in range(sources):
        mac = b"\x02" + (0x10000000 + i).to_bytes(5, "big")
        ip = bytes((198, 18 + (i >> 16) % 2, (i >> 8) & 0xFF, i & 0xFF))  # within 198.18.0.0/15
        kind = i % 3
        frame = (arp, syn, udp)[kind]
        frame[6:12] = mac
        if kind == 0:
            frame[22:28] = mac
            frame[28:32] = ip
            frame[38:42] = bytes((198, 18, 0, rng.randrange(1, 255)))
        else:
            frame[26:30] = ip  # (IP checksums are not checked by the agent)
        ts += 1 / 4000
        yield ts, bytes(frame)


def scan_frames(
    events: int = 4000, sources: int = 40, fps: float = 1000.0
) -> Iterable[tuple[float, bytes]]:
    """SYN scans of the benchmark node by ``sources`` hosts taking turns, one new port per
    frame, ``fps`` frames per second of capture: with ``incidents.update_interval_s = 0``
    (every detection is an event) the agent reports exactly ``events`` syn_scan events,
    one per port from each source's third on. A steady, countable stream of events for the
    delivery tests and benchmark (replayed at its pace with ``replay --speed``)."""
    if sources < 1 or events < sources:
        raise ValueError("need at least one source and one event per source")
    node = DemoHost("node", _BENCH_NODE_MAC, _BENCH_NODE, "node")
    template = bytearray(
        bytes(_tcp(DemoHost("x", "02:00:00:00:00:00", "198.18.5.5", "x"), node, 40000, 1, "S"))
    )
    # Each source's first two ports are below the scan threshold: two more frames than events.
    ports = [2 + events // sources + (1 if i < events % sources else 0) for i in range(sources)]
    ts = DEMO_START
    for port in range(1, max(ports) + 1):
        for i in range(sources):
            if port > ports[i]:
                continue
            ip, mac = _bench_host(i)
            frame = template
            frame[6:12] = mac_bytes(mac)
            frame[26:30] = ip_bytes(ip)
            frame[36:38] = port.to_bytes(2, "big")  # (checksums are not checked by the agent)
            ts += 1 / fps
            yield ts, bytes(frame)


def demo_hosts_by_mac() -> dict[bytes, DemoHost]:
    return {mac_bytes(h.mac): h for h in DEMO_HOSTS}


def demo_node() -> tuple[bytes, bytes, bytes]:
    """(node IP, node MAC, gateway IP) of the demo LAN, as bytes."""
    return ip_bytes(NODE.ip), mac_bytes(NODE.mac), ip_bytes(ROUTER.ip)
