"""IPv6 precursors: neighbour and echo sweeps, NDP spoofing, rogue router advertisements.

IPv6 has no ARP: hosts find each other with Neighbour Discovery (ICMPv6 solicitations and
advertisements to multicast groups) and learn their router from router advertisements,
all unauthenticated. So the IPv6 half of the LAN has the same precursors as the IPv4 half:

* ``ipv6_sweep`` (level 1, like ``arp_scan``): one source solicits or pings many addresses
  within a window, or pings a multicast group (every host answers one packet to ff02::1:
  the sweep of a whole /64 in one frame, as THC's alive6 and ``ping ff02::1`` do);
* ``ndp_spoof`` (like ``arp_spoof``): an address a live host owns is advertised by another
  MAC (THC's parasite6 answers every solicitation with its own MAC); level 3 for an address
  of the router, 2 otherwise;
* ``rogue_ra`` (level 3): a router advertisement offering a default route from a MAC that is
  not the LAN's router (THC's fake_router6): every IPv6 host then sends its traffic there.
  Advertisements with a router lifetime of 0 (Thread border routers, which only announce
  routes to their mesh) are not an offer of a default route and never count.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..bounded import BoundedTable
from ..formats import addr_str, mac_str
from . import LEVEL_ARP_SCAN, Detection

LEVEL_SPOOF = 2
LEVEL_SPOOF_ROUTER = 3
LEVEL_ROGUE_RA = 3


@dataclass(frozen=True, slots=True)
class Ipv6Config:
    # Sweeps: the same reasoning as the ARP-scan defaults (a host resolves its router and a
    # few peers; sweeps solicit dozens of addresses in seconds).
    min_targets: int = 10
    window_s: float = 10.0
    max_sources: int = 4096
    max_targets: int = 1024
    # Spoofing: as arp_spoof.hold_s (a device silent 5 minutes may have gone).
    hold_s: float = 300.0
    max_bindings: int = 4096
    # The LAN's router is re-learned only after 30 minutes without its advertisements
    # (routers advertise at least every 10 minutes: three missed).
    router_hold_s: float = 1800.0


class _Sweep:
    __slots__ = ("first", "ip", "last", "multicast", "packets", "reported", "targets")

    def __init__(self, now: float, ip: bytes) -> None:
        self.first = now
        self.last = now
        self.ip = ip
        self.packets = 0
        self.multicast = 0
        self.reported = False
        self.targets: dict[bytes, float] = {}


class _Binding:
    __slots__ = ("first", "last", "mac")

    def __init__(self, now: float, mac: bytes) -> None:
        self.first = now
        self.last = now
        self.mac = mac


class Ipv6SweepDetector:
    kind = "ipv6_sweep"

    def __init__(self, config: Ipv6Config | None = None) -> None:
        self.config = config or Ipv6Config()
        self.sources: BoundedTable[_Sweep] = BoundedTable(
            self.config.max_sources, self.config.window_s
        )

    def on_target(
        self, now: float, mac: bytes, ip: bytes, target: bytes, multicast: bool = False
    ) -> Detection | None:
        """A solicitation of, or echo request to, ``target`` (``multicast``: a group)."""
        cfg = self.config
        state = self.sources.current(mac, now, cfg.window_s, lambda: _Sweep(now, ip))
        state.last = now
        state.packets += 1
        state.ip = ip
        targets = state.targets
        is_new = target not in targets
        if is_new and len(targets) >= cfg.max_targets:
            is_new = False
        else:
            targets[target] = now
        if multicast:
            state.multicast += 1
        if state.reported:
            return self._detection(mac, state) if is_new else None
        if not multicast:
            horizon = now - cfg.window_s
            for old in [t for t, seen in targets.items() if seen < horizon]:
                del targets[old]
            if len(targets) < cfg.min_targets:
                return None
        state.reported = True
        state.first = min(targets.values())
        return self._detection(mac, state)

    def _detection(self, mac: bytes, state: _Sweep) -> Detection:
        def evidence() -> dict[str, Any]:
            duration = max(state.last - state.first, 0.0)
            return {
                "targets": [addr_str(ip) for ip in list(state.targets)[:64]],
                "target_count": len(state.targets),
                "packets": state.packets,
                "multicast": state.multicast,
                "window_s": round(duration, 3),
                "rate": round(state.packets / duration, 1) if duration > 0 else 0.0,
            }

        return Detection(
            self.kind, LEVEL_ARP_SCAN, mac, state.ip, state.first, state.last, evidence
        )

    def expire(self, now: float) -> None:
        self.sources.expire(now)


class NdpSpoofDetector:
    """IPv6 address -> MAC as Neighbour Discovery announces it; claims by another MAC.

    The first MAC heard for an address owns it; it moves only after the owner was silent for
    ``hold_s``. Addresses of the router (its advertisements' source, and what it claims) are
    the ones a machine in the middle takes over: level 3.
    """

    kind = "ndp_spoof"

    def __init__(self, config: Ipv6Config | None = None) -> None:
        self.config = config or Ipv6Config()
        self.bindings: BoundedTable[_Binding] = BoundedTable(
            self.config.max_bindings, float("inf"), remember=False
        )
        self.claims: BoundedTable[_Claim] = BoundedTable(
            256, 2 * self.config.hold_s, remember=False
        )

    def on_claim(
        self,
        now: float,
        mac: bytes,
        claimed_mac: bytes,
        ip: bytes,
        router_mac: bytes | None,
    ) -> Detection | None:
        """A frame from ``mac`` saying ``ip`` is at ``claimed_mac`` (``router_mac``: the LAN's
        router's, when known: its addresses are never taken over, however quiet it is)."""
        binding = self.bindings.get(ip)
        if binding is None:
            self.bindings.put(ip, _Binding(now, claimed_mac))
            return None
        if binding.mac == claimed_mac:
            binding.last = now
            self.bindings.touch(ip)
            return None
        is_router = router_mac is not None and binding.mac == router_mac
        if not is_router and now - binding.last > self.config.hold_s:
            self.bindings.put(ip, _Binding(now, claimed_mac))
            return None
        claim = self.claims.get(mac)
        if claim is None or claim.ip != ip:
            claim = _Claim(now, ip, binding.mac, claimed_mac)
            self.claims.put(mac, claim)
        else:
            self.claims.touch(mac)
        claim.last = now
        claim.packets += 1

        def evidence() -> dict[str, Any]:
            return {
                "ip": addr_str(claim.ip),
                "old_mac": mac_str(claim.old_mac),
                "new_mac": mac_str(claim.new_mac),
                "is_gateway": is_router,
                "packets": claim.packets,
            }

        level = LEVEL_SPOOF_ROUTER if is_router else LEVEL_SPOOF
        # the claimed address is the victim's, not the culprit's (as for arp_spoof)
        return Detection(self.kind, level, mac, None, claim.first, claim.last, evidence)

    def mac_of(self, ip: bytes) -> bytes | None:
        binding = self.bindings.get(ip)
        return None if binding is None else binding.mac

    def expire(self, now: float) -> None:
        self.claims.expire(now)


class _Claim:
    __slots__ = ("first", "ip", "last", "new_mac", "old_mac", "packets")

    def __init__(self, now: float, ip: bytes, old_mac: bytes, new_mac: bytes) -> None:
        self.first = now
        self.last = now
        self.ip = ip
        self.old_mac = old_mac
        self.new_mac = new_mac
        self.packets = 0


class _Advert:
    __slots__ = ("first", "ip", "last", "lifetime", "packets", "prefixes")

    def __init__(self, now: float, ip: bytes) -> None:
        self.first = now
        self.last = now
        self.ip = ip
        self.lifetime = 0
        self.packets = 0
        self.prefixes: tuple[bytes, ...] = ()


class RogueRaDetector:
    """Router advertisements offering a default route from anything but the LAN's router."""

    kind = "rogue_ra"

    def __init__(self, config: Ipv6Config | None = None) -> None:
        self.config = config or Ipv6Config()
        self.router: _Binding | None = None  # the first router heard, when none is configured
        self.adverts: BoundedTable[_Advert] = BoundedTable(
            256, self.config.router_hold_s, remember=False
        )

    def router_mac(self, gateway_mac: bytes | None) -> bytes | None:
        """The LAN's router: the IPv4 gateway's MAC when known, else the first one heard."""
        if gateway_mac is not None:
            return gateway_mac
        return self.router.mac if self.router is not None else None

    def on_advert(
        self,
        now: float,
        mac: bytes,
        ip: bytes,
        lifetime: int,
        *,
        prefixes: tuple[bytes, ...],
        gateway_mac: bytes | None,
    ) -> Detection | None:
        """A router advertisement from ``mac`` (source address ``ip``)."""
        if lifetime == 0:
            return None
        router = self.router
        if gateway_mac is None:
            if router is None or (
                router.mac != mac and now - router.last > self.config.router_hold_s
            ):
                self.router = router = _Binding(now, mac)
            expected = router.mac
        else:
            expected = gateway_mac
        if mac == expected:
            if router is not None and router.mac == mac:
                router.last = now
            return None
        advert = self.adverts.current(mac, now, self.config.router_hold_s, lambda: _Advert(now, ip))
        advert.last = now
        advert.ip = ip
        advert.packets += 1
        advert.lifetime = lifetime
        advert.prefixes = prefixes

        def evidence() -> dict[str, Any]:
            return {
                "ip": addr_str(advert.ip),
                "old_mac": mac_str(expected),
                "new_mac": mac_str(mac),
                "is_gateway": True,
                "router_lifetime": advert.lifetime,
                "prefixes": [addr_str(p) for p in advert.prefixes],
                "packets": advert.packets,
            }

        return Detection(self.kind, LEVEL_ROGUE_RA, mac, ip, advert.first, advert.last, evidence)

    def expire(self, now: float) -> None:
        self.adverts.expire(now)
