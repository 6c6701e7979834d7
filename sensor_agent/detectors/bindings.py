"""Address -> MAC bindings as claims announce them: the mechanism of ARP and NDP spoofing.

ARP (IPv4) and Neighbour Discovery (IPv6) carry the same unauthenticated claim, "address X
is at MAC Y". The first MAC heard claiming an address for itself owns it; ownership of an ordinary
address moves to another MAC only after the owner has been silent for ``hold_s`` (a device
left and its address went to another one). Until then every claim by another MAC is a
detection of the frame's sender, so the real owner, which keeps answering too, is never the
one accused. The addresses of the LAN's gateway (router) are what an attacker in the middle
claims, hence level 3 for them and 2 for any other address.

The gateway's bindings never move by themselves, however long the router is quiet: an
attacker who waits until the router has said nothing for a while (it only speaks when asked)
would otherwise be adopted as the gateway, and from then on the real router would be the
one reported, and the attacker protected from quarantine as the gateway. A router that
really was replaced is reported as a spoof, every time, until the owner says so (the
configured ``gateway_mac``, or a restart of the agent, which learns the gateway again).

What a spray of forged claims cannot do:

* only a claim a host makes for itself (the frame's source MAC is the claimed MAC) creates,
  refreshes or moves a binding, so claims on behalf of other MACs never write one;
* the gateway's bindings are pinned (never evicted); neither the gateway's addresses nor
  those of the router's MAC ever move to another MAC, however quiet it is; a configured
  binding never moves either;
* the other bindings live in a :class:`BoundedTable`, where one-frame claims only push out
  each other, and a binding the caller's ``keep`` names (a host the inventory knows) is
  never pushed out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from ..bounded import BoundedTable
from ..formats import addr_str, mac_str
from . import Detection

LEVEL_SPOOF: Final = 2
LEVEL_SPOOF_GATEWAY: Final = 3
# Pinned bindings are the gateway's addresses: its IPv4 one, a link-local and a global IPv6
# address or two. The cap bounds what a MAC taken for the router (the first advertisement
# heard) could pin by claiming addresses for itself; beyond it, its bindings are ordinary.
MAX_PINNED: Final = 16


class Binding:
    __slots__ = ("first", "last", "mac")

    def __init__(self, now: float, mac: bytes) -> None:
        self.first = now
        self.last = now
        self.mac = mac


class Claim:
    """Claims of one address by one sender against its owner (the evidence of a spoof)."""

    __slots__ = ("first", "ip", "last", "new_mac", "old_mac", "packets")

    def __init__(self, now: float, ip: bytes, old_mac: bytes, new_mac: bytes) -> None:
        self.first = now
        self.last = now
        self.ip = ip
        self.old_mac = old_mac
        self.new_mac = new_mac
        self.packets = 0


class SpoofDetector:
    """Bindings and the spoofing claims against them; ``kind`` names the detections."""

    def __init__(
        self,
        kind: str,
        hold_s: float,
        max_bindings: int,
        keep: Callable[[bytes, bytes], bool] | None = None,
    ) -> None:
        """``keep(ip, mac)``: whether a binding must never be pushed out by newcomers."""
        self.kind = kind
        self.hold_s = hold_s
        keep_binding = None if keep is None else (lambda ip, b: keep(ip, b.mac))
        # A binding or a claim is made again by its next frame: no memory of evicted ones.
        self.bindings: BoundedTable[Binding] = BoundedTable(
            max_bindings, float("inf"), keep=keep_binding, remember=False
        )
        self.claims: BoundedTable[Claim] = BoundedTable(256, 2 * hold_s, remember=False)
        self._fixed: set[bytes] = set()  # configured: never moves

    def mac_of(self, ip: bytes) -> bytes | None:
        """The MAC ``ip`` is bound to, if any (a lookup: no expiry is touched)."""
        binding = self.bindings.get(ip)
        return None if binding is None else binding.mac

    def fix(self, ip: bytes, mac: bytes) -> None:
        """Bind ``ip`` to ``mac`` for good (configuration)."""
        self.bindings.pin(ip, Binding(0.0, mac))
        self._fixed.add(ip)

    def claim(
        self,
        now: float,
        mac: bytes,
        claimed_mac: bytes,
        ip: bytes,
        *,
        gateway_address: bool = False,
        router: bytes | None = None,
    ) -> Detection | None:
        """A frame from ``mac`` saying ``ip`` is at ``claimed_mac``: a detection of ``mac``
        when ``ip`` belongs to another MAC. ``gateway_address``: ``ip`` is the gateway's (its
        binding is pinned); ``router``: the LAN router's MAC, when known (its bindings are
        pinned and never move)."""
        own = mac == claimed_mac  # a host speaking for itself; else a claim for another
        protect = gateway_address or (router is not None and claimed_mac == router)
        bindings = self.bindings
        binding = bindings.get(ip)
        if binding is None:
            if own:
                self._bind(ip, Binding(now, claimed_mac), protect)
            return None
        if binding.mac == claimed_mac:
            if own:
                binding.last = now
                if protect and ip not in bindings.pinned:
                    self._bind(ip, binding, protect)  # the router, learned after its address
                else:
                    bindings.touch(ip)
            return None
        routers = router is not None and binding.mac == router
        held = gateway_address or routers or ip in self._fixed  # the gateway's: never moves
        if own and not held and now - binding.last > self.hold_s:
            bindings.discard(ip)  # the owner left: a new owner, on probation again
            self._bind(ip, Binding(now, claimed_mac), protect)
            return None
        claims = self.claims
        claim = claims.get(mac)
        if claim is None or claim.ip != ip:
            claim = Claim(now, ip, binding.mac, claimed_mac)
            claims.put(mac, claim)
        else:
            claims.touch(mac)
        claim.last = now
        claim.packets += 1
        is_gateway = gateway_address or routers

        def evidence() -> dict[str, Any]:
            return {
                "ip": addr_str(claim.ip),
                "old_mac": mac_str(claim.old_mac),
                "new_mac": mac_str(claim.new_mac),
                "is_gateway": is_gateway,
                "packets": claim.packets,
            }

        level = LEVEL_SPOOF_GATEWAY if is_gateway else LEVEL_SPOOF
        # The claimed address is evidence, not the culprit's (naming the gateway's address as
        # the culprit's would quarantine the gateway): its own comes from the hosts inventory.
        return Detection(self.kind, level, mac, None, claim.first, claim.last, evidence)

    def _bind(self, ip: bytes, binding: Binding, protect: bool) -> None:
        if protect and len(self.bindings.pinned) < MAX_PINNED:
            self.bindings.pin(ip, binding)  # what the agent protects: never pushed out
        else:
            self.bindings.put(ip, binding)

    def expire(self, now: float) -> None:
        self.claims.expire(now)
