"""ARP spoofing: an IP that a live host owns is suddenly claimed by another MAC.

The first MAC heard for an IP owns it; the binding moves to another MAC only after the owner
has been silent for ``hold_s`` (a device left and DHCP gave its address to another one).
Until then every claim by a different MAC is a detection of that MAC, so the real owner,
which keeps answering too, is never the one accused. The gateway's IP is what an attacker in
the middle claims, hence level 3 for it and 2 for any other address.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..formats import ip_str, mac_str
from . import Detection, SourceTable

LEVEL_SPOOF = 2
LEVEL_SPOOF_GATEWAY = 3
NO_IP = b"\x00\x00\x00\x00"


@dataclass(frozen=True, slots=True)
class ArpSpoofConfig:
    # 300 s: a device that has said nothing for 5 minutes may have left and its DHCP lease
    # gone to another device; a spoofer races a live owner that answers within seconds.
    hold_s: float = 300.0
    max_bindings: int = 4096


class _Binding:
    __slots__ = ("first", "last", "mac")

    def __init__(self, now: float, mac: bytes) -> None:
        self.first = now
        self.last = now
        self.mac = mac


class _Claim:
    __slots__ = ("first", "ip", "last", "old_mac", "packets", "sender_mac")

    def __init__(self, now: float, ip: bytes, old_mac: bytes, sender_mac: bytes) -> None:
        self.first = now
        self.last = now
        self.ip = ip
        self.old_mac = old_mac
        self.sender_mac = sender_mac
        self.packets = 0


class ArpSpoofDetector:
    kind = "arp_spoof"

    def __init__(
        self,
        config: ArpSpoofConfig | None = None,
        gateway_ip: bytes | None = None,
        gateway_mac: bytes | None = None,
    ) -> None:
        self.config = config or ArpSpoofConfig()
        self.gateway_ip = gateway_ip
        self.bindings: SourceTable[_Binding] = SourceTable(self.config.max_bindings, float("inf"))
        self.claims: SourceTable[_Claim] = SourceTable(256, 2 * self.config.hold_s)
        self._pinned: set[bytes] = set()
        if gateway_ip is not None and gateway_mac is not None:
            self.bindings.put(gateway_ip, _Binding(0.0, gateway_mac))
            self._pinned.add(gateway_ip)

    def mac_of(self, ip: bytes) -> bytes | None:
        """The MAC ``ip`` is bound to, if any (a lookup: no expiry is touched)."""
        binding = self.bindings.get(ip)
        return None if binding is None else binding.mac

    def on_arp(
        self, now: float, mac: bytes, sender_mac: bytes, sender_ip: bytes
    ) -> Detection | None:
        """Any ARP packet from Ethernet source ``mac`` saying ``sender_ip`` is at ``sender_mac``."""
        if sender_ip == NO_IP:  # an address probe claims nothing
            return None
        binding = self.bindings.get(sender_ip)
        if binding is None:
            self.bindings.put(sender_ip, _Binding(now, sender_mac))
            return None
        if binding.mac == sender_mac:
            binding.last = now
            return None
        if sender_ip not in self._pinned and now - binding.last > self.config.hold_s:
            self.bindings.put(sender_ip, _Binding(now, sender_mac))  # the owner left: rebind
            return None
        claim = self.claims.get(mac)
        if claim is None or claim.ip != sender_ip:
            claim = _Claim(now, sender_ip, binding.mac, sender_mac)
            self.claims.put(mac, claim)
        else:
            self.claims.touch(mac)
        claim.last = now
        claim.packets += 1
        is_gateway = sender_ip == self.gateway_ip

        def evidence() -> dict[str, Any]:
            return {
                "ip": ip_str(claim.ip),
                "old_mac": mac_str(claim.old_mac),
                "new_mac": mac_str(claim.sender_mac),
                "is_gateway": is_gateway,
                "packets": claim.packets,
            }

        level = LEVEL_SPOOF_GATEWAY if is_gateway else LEVEL_SPOOF
        # The claimed IP is evidence, not the culprit's address (naming the gateway's IP as
        # the culprit would quarantine the gateway): its own comes from the hosts inventory.
        return Detection(self.kind, level, mac, None, claim.first, claim.last, evidence)

    def expire(self, now: float) -> None:
        self.claims.expire(now)
