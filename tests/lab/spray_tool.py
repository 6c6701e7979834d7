"""A paced sender of forged frames for the lab, run inside a lab namespace (no dependencies).

    python spray_tool.py arp-claims IFACE COUNT RATE            forged ARP claims (own Ether src)
    python spray_tool.py claim IFACE IP COUNT INTERVAL          "IP is at my MAC": a host's own
                                                                address, or arpspoof's lie
    python spray_tool.py syn-spray IFACE DST_IP DST_MAC PORT COUNT RATE OWN_EVERY
                                    SYNs from random source IPs, every OWN_EVERY-th from this
                                    host's MAC and the others from random MACs too

Bounded by construction: a fixed COUNT of frames at RATE per second (or one per INTERVAL).
ARP goes to the broadcast address of the lab's switch; SYNs go to a lab host's MAC and IP.
Every forged address lies in 198.18.0.0/15 outside the lab's own /24 (the benchmark range,
which nothing routes), and the receiving node blackholes that range, so no reply leaves it.
"""

from __future__ import annotations

import fcntl
import ipaddress
import random
import socket
import struct
import sys
import time
from collections.abc import Iterator
from pathlib import Path

BROADCAST = b"\xff" * 6
FORGED = ipaddress.ip_network("198.18.0.0/15")


def own_mac(iface: str) -> bytes:
    return bytes.fromhex(
        Path(f"/sys/class/net/{iface}/address").read_text().strip().replace(":", "")
    )


def forged_sources(count: int, lab: ipaddress.IPv4Network, rng: random.Random) -> Iterator[bytes]:
    """``count`` distinct addresses of 198.18.0.0/15 outside ``lab``."""
    first = int(FORGED.network_address)
    seen: set[int] = set()
    while len(seen) < count:
        n = first + rng.randrange(FORGED.num_addresses)
        if n not in seen and ipaddress.IPv4Address(n) not in lab:
            seen.add(n)
            yield n.to_bytes(4, "big")


def forged_mac(rng: random.Random) -> bytes:
    """A random unicast, locally administered MAC."""
    return bytes([0x02 | (rng.randrange(256) & 0xFC)]) + rng.randbytes(5)


def arp(src: bytes, sender_mac: bytes, sender_ip: bytes, dst: bytes = BROADCAST) -> bytes:
    return (
        dst
        + src
        + b"\x08\x06"
        + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 2)  # a reply
        + sender_mac
        + sender_ip
        + dst
        + sender_ip
    )


def checksum(data: bytes) -> int:
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def syn(src_mac: bytes, dst_mac: bytes, src_ip: bytes, dst_ip: bytes, port: int) -> bytes:
    tcp = struct.pack("!HHIIBBHHH", 40000, port, 1, 0, 5 << 4, 0x02, 1024, 0, 0)
    pseudo = src_ip + dst_ip + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0, 64, 6, 0, src_ip, dst_ip)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return dst_mac + src_mac + b"\x08\x00" + ip + tcp


def send_paced(iface: str, frames: Iterator[bytes], rate: float) -> int:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    sock.bind((iface, 0))
    start = time.monotonic()
    sent = 0
    for sent, frame in enumerate(frames, 1):
        sock.send(frame)
        ahead = sent / rate - (time.monotonic() - start)
        if ahead > 0.005:
            time.sleep(ahead)
    sock.close()
    return sent


def lab_of(iface: str) -> ipaddress.IPv4Network:
    """The /24 of the interface's own address (the lab's subnet)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("256s", iface.encode()[:15])
        ip = socket.inet_ntoa(fcntl.ioctl(s.fileno(), 0x8915, request)[20:24])
    return ipaddress.ip_network(f"{ip}/24", strict=False)


def main(argv: list[str]) -> int:
    command, iface = argv[0], argv[1]
    mac = own_mac(iface)
    rng = random.Random(66)
    if command == "arp-claims":
        count, rate = int(argv[2]), float(argv[3])
        claims = (arp(mac, forged_mac(rng), ip) for ip in forged_sources(count, lab_of(iface), rng))
        sent = send_paced(iface, claims, rate)
    elif command == "claim":
        ip = socket.inet_aton(argv[2])
        count, interval = int(argv[3]), float(argv[4])
        sent = send_paced(iface, (arp(mac, mac, ip) for _ in range(count)), 1 / interval)
    elif command == "syn-spray":
        dst_ip, dst_mac = socket.inet_aton(argv[2]), bytes.fromhex(argv[3].replace(":", ""))
        port, count, rate, own_every = int(argv[4]), int(argv[5]), float(argv[6]), int(argv[7])
        syns = (
            syn(mac if i % own_every == 0 else forged_mac(rng), dst_mac, ip, dst_ip, port)
            for i, ip in enumerate(forged_sources(count, lab_of(iface), rng))
        )
        sent = send_paced(iface, syns, rate)
    else:
        print(f"unknown command {command}", file=sys.stderr)
        return 2
    print(f"sent {sent}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
