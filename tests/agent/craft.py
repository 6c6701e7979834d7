"""Frames crafted with scapy for the agent's unit tests, and a pipeline with a recording sink.

Addresses are from the agent-core lab range 198.18.10.0/24; nothing here is ever sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from random import Random
from typing import Any

from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.dns import DNS, DNSRR
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.layers.netbios import NBNSHeader, NBNSRegistrationRequest
from scapy.packet import Raw

from sensor_agent.formats import ip_bytes, mac_bytes
from sensor_agent.pipeline import Pipeline, PipelineConfig

NODE_IP = "198.18.10.10"
NODE_MAC = "02:00:00:0a:00:0a"
GW_IP = "198.18.10.1"
GW_MAC = "02:00:00:0a:00:01"
ATTACKER_IP = "198.18.10.66"
ATTACKER_MAC = "00:1b:21:42:00:42"  # an Intel OUI: the vendor lookup has something to find
HOST_IP = "198.18.10.31"
HOST_MAC = "3c:22:fb:1f:00:1f"  # Apple
BROADCAST = "ff:ff:ff:ff:ff:ff"
T0 = 1_795_597_200.0


def arp_request(mac: str, ip: str, target: str, vlan: int | None = None) -> bytes:
    ether = Ether(src=mac, dst=BROADCAST)
    arp = ARP(op=1, hwsrc=mac, psrc=ip, pdst=target)
    return bytes(ether / Dot1Q(vlan=vlan) / arp if vlan is not None else ether / arp)


def arp_reply(mac: str, ip: str, to_mac: str = NODE_MAC, to_ip: str = NODE_IP) -> bytes:
    return bytes(
        Ether(src=mac, dst=to_mac) / ARP(op=2, hwsrc=mac, psrc=ip, hwdst=to_mac, pdst=to_ip)
    )


def tcp(
    mac: str = ATTACKER_MAC,
    ip: str = ATTACKER_IP,
    dport: int = 445,
    *,
    flags: str = "S",
    data: bytes = b"",
    dst_ip: str = NODE_IP,
    sport: int = 40000,
) -> bytes:
    frame = (
        Ether(src=mac, dst=NODE_MAC)
        / IP(src=ip, dst=dst_ip)
        / TCP(sport=sport, dport=dport, flags=flags)
    )
    return bytes(frame / Raw(data) if data else frame)


def dhcp_request(mac: str, hostname: str, requested: str) -> bytes:
    return bytes(
        Ether(src=mac, dst=BROADCAST)
        / IP(src="0.0.0.0", dst="255.255.255.255")
        / UDP(sport=68, dport=67)
        / BOOTP(chaddr=mac_bytes(mac))
        / DHCP(
            options=[
                ("message-type", "request"),
                ("requested_addr", requested),
                ("hostname", hostname.encode()),
                "end",
            ]
        )
    )


def mdns_answer(mac: str, ip: str, name: str) -> bytes:
    return bytes(
        Ether(src=mac, dst="01:00:5e:00:00:fb")
        / IP(src=ip, dst="224.0.0.251")
        / UDP(sport=5353, dport=5353)
        / DNS(qr=1, aa=1, an=DNSRR(rrname=f"{name}.local.", type="A", rdata=ip))
    )


def nbns_registration(mac: str, ip: str, name: str) -> bytes:
    return bytes(
        Ether(src=mac, dst=BROADCAST)
        / IP(src=ip, dst="198.18.10.255")
        / UDP(sport=137, dport=137)
        / NBNSHeader(OPCODE=5, NM_FLAGS=0x11, QDCOUNT=1, ARCOUNT=1)
        / NBNSRegistrationRequest(QUESTION_NAME=name, NB_ADDRESS=[ip])
    )


def udp_frame(mac: str, ip: str, dport: int, payload: bytes = b"x") -> bytes:
    return bytes(
        Ether(src=mac, dst=BROADCAST)
        / IP(src=ip, dst="198.18.10.255")
        / UDP(sport=40000, dport=dport)
        / Raw(payload)
    )


def forged_mac(rng: Random) -> bytes:
    """A random unicast, locally administered MAC (what a sprayer makes up)."""
    return bytes([0x02 | (rng.randrange(256) & 0xFC)]) + rng.randbytes(5)


def forged_ips(count: int, rng: Random) -> list[bytes]:
    """``count`` distinct random IPv4 addresses in 10.0.0.0/8 (outside the lab's range)."""
    return [bytes([10]) + n.to_bytes(3, "big") for n in rng.sample(range(1 << 24), count)]


def arp_claims(
    count: int,
    rng: Random,
    *,
    sender: str | None = ATTACKER_MAC,
    start: float = T0,
    rate: float = 4000.0,
) -> tuple[list[float], list[bytes]]:
    """``count`` forged ARP replies at ``rate`` per second, each claiming another random 10.x
    IP for a random MAC. ``sender``: the Ethernet source (the sprayer's own MAC); ``None`` forges
    that too (the same made-up MAC as the claim). A template with patched bytes: quick."""
    template = bytearray(arp_reply(ATTACKER_MAC, "10.0.0.1", BROADCAST, "10.0.0.2"))
    stamps, frames = [], []
    for i, ip in enumerate(forged_ips(count, rng)):
        claimed = forged_mac(rng)
        template[6:12] = claimed if sender is None else mac_bytes(sender)
        template[22:28] = claimed
        template[28:32] = ip
        stamps.append(start + i / rate)
        frames.append(bytes(template))
    return stamps, frames


def forged_syns(
    count: int,
    rng: Random,
    *,
    sender: str | None = None,
    start: float = T0,
    rate: float = 2100.0,
    dport: int = 80,
) -> tuple[list[float], list[bytes]]:
    """``count`` SYNs to the node from random 10.x sources at ``rate`` per second.
    ``sender``: one Ethernet source for all (``hping3 --rand-source``); ``None``: a random
    MAC per frame too."""
    template = bytearray(tcp(ATTACKER_MAC, "10.0.0.1", dport))
    stamps, frames = [], []
    for i, ip in enumerate(forged_ips(count, rng)):
        template[6:12] = forged_mac(rng) if sender is None else mac_bytes(sender)
        template[26:30] = ip  # (checksums are not checked by the agent)
        stamps.append(start + i / rate)
        frames.append(bytes(template))
    return stamps, frames


class RecordingSink:
    """A ``Sink`` that keeps everything it is given."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.payloads: list[tuple[str, dict[str, Any]]] = []
        self.closed = False

    def event(self, event: Mapping[str, Any]) -> None:
        self.events.append(dict(event))

    def retained(self, topic: str, payload: Mapping[str, Any]) -> None:
        self.payloads.append((topic, dict(payload)))

    def close(self) -> None:
        self.closed = True

    def kinds(self) -> list[tuple[str, int]]:
        return [(e["kind"], e["level"]) for e in self.events]

    def last(self, topic: str) -> dict[str, Any]:
        return [p for t, p in self.payloads if t == topic][-1]


def base_config(**changes: Any) -> PipelineConfig:
    config = PipelineConfig(
        agent_id="test-agent",
        node_ip=ip_bytes(NODE_IP),
        node_mac=mac_bytes(NODE_MAC),
        gateway_ip=ip_bytes(GW_IP),
    )
    return replace(config, **changes)


def make_pipeline(**changes: Any) -> tuple[Pipeline, RecordingSink]:
    sink = RecordingSink()
    return Pipeline(base_config(**changes), [sink]), sink
