"""ARP spoofing: an IP that a live host owns is suddenly claimed by another MAC.

The first MAC heard for an IP owns it; the binding moves to another MAC only after the owner
has been silent for ``hold_s`` (a device left and DHCP gave its address to another one).
Until then every claim by a different MAC is a detection of the frame's sender, so the real
owner, which keeps answering too, is never the one accused. The gateway's IP is what an
attacker in the middle claims, hence level 3 for it and 2 for any other address.

What a spray of forged claims cannot do: only a claim a host makes for itself (the frame's
source MAC is the ARP sender MAC) creates or refreshes a binding, so claims on behalf of other
MACs never write one; the gateway's binding (configured, or the first heard) is pinned and
never evicted; the other bindings live in a :class:`BoundedTable`, where one-frame claims only
push out each other, and a binding the caller's ``keep`` names (a host the inventory knows) is
never pushed out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..bounded import BoundedTable
from ..formats import ip_str, mac_str
from . import Detection

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
        keep: Callable[[bytes, bytes], bool] | None = None,
    ) -> None:
        """``keep(ip, mac)``: whether a binding must never be pushed out by newcomers."""
        self.config = config or ArpSpoofConfig()
        self.gateway_ip = gateway_ip
        keep_binding = None if keep is None else (lambda ip, b: keep(ip, b.mac))
        # A binding or a claim is made again by its next frame: no memory of evicted ones.
        self.bindings: BoundedTable[_Binding] = BoundedTable(
            self.config.max_bindings, float("inf"), keep=keep_binding, remember=False
        )
        self.claims: BoundedTable[_Claim] = BoundedTable(
            256, 2 * self.config.hold_s, remember=False
        )
        self._fixed: set[bytes] = set()  # configured: never rebound
        if gateway_ip is not None and gateway_mac is not None:
            self.bindings.pin(gateway_ip, _Binding(0.0, gateway_mac))
            self._fixed.add(gateway_ip)

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
        own = mac == sender_mac  # a host speaking for itself; else a claim on behalf of another
        bindings = self.bindings
        binding = bindings.get(sender_ip)
        if binding is None:
            if own:
                self._bind(sender_ip, _Binding(now, sender_mac))
            return None
        if binding.mac == sender_mac:
            if own:
                binding.last = now
                bindings.touch(sender_ip)
            return None
        if own and sender_ip not in self._fixed and now - binding.last > self.config.hold_s:
            bindings.discard(sender_ip)  # the owner left: a new owner, on probation again
            self._bind(sender_ip, _Binding(now, sender_mac))
            return None
        claims = self.claims
        claim = claims.get(mac)
        if claim is None or claim.ip != sender_ip:
            claim = _Claim(now, sender_ip, binding.mac, sender_mac)
            claims.put(mac, claim)
        else:
            claims.touch(mac)
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

    def _bind(self, ip: bytes, binding: _Binding) -> None:
        if ip == self.gateway_ip:  # what the agent protects as the gateway: never pushed out
            self.bindings.pin(ip, binding)
        else:
            self.bindings.put(ip, binding)

    def expire(self, now: float) -> None:
        self.claims.expire(now)
