"""IPv6 precursors: neighbour and echo sweeps, NDP spoofing, rogue router advertisements.

IPv6 has no ARP: hosts find each other with Neighbour Discovery (ICMPv6 solicitations and
advertisements to multicast groups) and learn their router from router advertisements,
all unauthenticated. So the IPv6 half of the LAN has the same precursors as the IPv4 half:

* ``ipv6_sweep`` (level 1, like ``arp_scan``): one source solicits or pings many addresses
  within a window, or pings a multicast group (every host answers one packet to ff02::1:
  the sweep of a whole /64 in one frame, as THC's alive6 and ``ping ff02::1`` do);
* ``ndp_spoof`` (``arp_spoof``'s mechanism, :mod:`.bindings`): an address a live host owns
  is advertised by another MAC (THC's parasite6 answers every solicitation with its own
  MAC); level 3 for an address of the router, 2 otherwise;
* ``rogue_ra`` (level 3): a router advertisement offering a default route from a MAC that is
  not the LAN's router (THC's fake_router6): every IPv6 host then sends its traffic there.
  Advertisements with a router lifetime of 0 (Thread border routers, which only announce
  routes to their mesh) are not an offer of a default route and never count.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..bounded import BoundedTable
from ..formats import addr_str, mac_str
from . import LEVEL_ARP_SCAN, Detection
from .bindings import Binding, SpoofDetector

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
    # A rogue advertiser quiet for 30 minutes starts a new episode (routers advertise at
    # least every 10 minutes: three missed). The LAN's router itself is never re-learned.
    advert_window_s: float = 1800.0


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


class NdpSpoofDetector(SpoofDetector):
    """IPv6 address -> MAC as Neighbour Discovery announces it; claims by another MAC.

    The mechanism ARP spoofing uses (:mod:`.bindings`). The protected addresses are the
    router's (its advertisements' source, and what it claims for itself): pinned, and never
    taken over by another MAC, however quiet the router is: level 3.
    """

    def __init__(
        self,
        config: Ipv6Config | None = None,
        keep: Callable[[bytes, bytes], bool] | None = None,
    ) -> None:
        """``keep(ip, mac)``: whether a binding must never be pushed out by newcomers."""
        self.config = config or Ipv6Config()
        super().__init__("ndp_spoof", self.config.hold_s, self.config.max_bindings, keep)

    def on_claim(
        self,
        now: float,
        mac: bytes,
        claimed_mac: bytes,
        ip: bytes,
        router_mac: bytes | None,
    ) -> Detection | None:
        """A frame from ``mac`` saying ``ip`` is at ``claimed_mac`` (``router_mac``: the LAN's
        router's, when known)."""
        return self.claim(now, mac, claimed_mac, ip, router=router_mac)


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
        # The first router heard, when the IPv4 gateway's MAC is not known: kept for good, as
        # the gateway's ARP binding (a quiet router is not replaced by the next advertiser).
        self.router: Binding | None = None
        self.adverts: BoundedTable[_Advert] = BoundedTable(
            256, self.config.advert_window_s, remember=False
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
            if router is None:
                self.router = router = Binding(now, mac)
            expected = router.mac
        else:
            expected = gateway_mac
        if mac == expected:
            if router is not None and router.mac == mac:
                router.last = now
            return None
        advert = self.adverts.current(
            mac, now, self.config.advert_window_s, lambda: _Advert(now, ip)
        )
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
