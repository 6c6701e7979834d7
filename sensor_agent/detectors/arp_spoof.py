"""ARP spoofing: an IP that a live host owns is suddenly claimed by another MAC.

The bindings, their protection against sprays and the claims are the mechanism ARP shares
with Neighbour Discovery (:mod:`.bindings`). Here: the gateway's IP is the protected address
(level 3); its binding, configured or the first claim the gateway's IP made for itself, is
pinned and never moves: a claim by another MAC is a level 3 spoof every time, however long
the gateway has been silent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import Detection
from .bindings import SpoofDetector

NO_IP = b"\x00\x00\x00\x00"


@dataclass(frozen=True, slots=True)
class ArpSpoofConfig:
    # 300 s: a device that has said nothing for 5 minutes may have left and its DHCP lease
    # gone to another device; a spoofer races a live owner that answers within seconds.
    # Never for the gateway's address: its binding does not move.
    hold_s: float = 300.0
    max_bindings: int = 4096


class ArpSpoofDetector(SpoofDetector):
    def __init__(
        self,
        config: ArpSpoofConfig | None = None,
        gateway_ip: bytes | None = None,
        gateway_mac: bytes | None = None,
        keep: Callable[[bytes, bytes], bool] | None = None,
    ) -> None:
        """``keep(ip, mac)``: whether a binding must never be pushed out by newcomers."""
        self.config = config or ArpSpoofConfig()
        super().__init__("arp_spoof", self.config.hold_s, self.config.max_bindings, keep)
        self.gateway_ip = gateway_ip
        if gateway_ip is not None and gateway_mac is not None:
            self.fix(gateway_ip, gateway_mac)

    def on_arp(
        self, now: float, mac: bytes, sender_mac: bytes, sender_ip: bytes
    ) -> Detection | None:
        """Any ARP packet from Ethernet source ``mac`` saying ``sender_ip`` is at ``sender_mac``."""
        if sender_ip == NO_IP:  # an address probe claims nothing
            return None
        return self.claim(
            now, mac, sender_mac, sender_ip, gateway_address=sender_ip == self.gateway_ip
        )
