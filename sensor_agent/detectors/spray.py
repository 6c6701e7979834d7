"""Sprays: one sender using many addresses within a short window, most of them not its own.

One detector, two kinds:

* ``arp_spray``: one Ethernet source makes many distinct ARP claims (sender IP and MAC pairs).
  A host claims its own address (a few, with aliases or a VRRP failover); thousands of
  claims a second fill the agent's tables with forged bindings, to blind the spoofing
  detector or to hide the spoof that follows.
* ``source_spray``: one Ethernet source sends frames to the node from many source IPs
  (``hping3 --rand-source``): forged sources that hide a scan among them or fill per-IP state.

The culprit is the frame's source MAC: the sprayer's own unless it forges that too, and then
each forged MAC sends a frame or two, which the bounded tables absorb
(:mod:`sensor_agent.bounded`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from ..bounded import BoundedTable
from ..formats import ip_str
from . import Detection

LEVEL_SPRAY: Final = 2


@dataclass(frozen=True, slots=True)
class SprayConfig:
    # 64 distinct addresses from one sender within 10 s: a host uses one address (a few with
    # aliases, a VRRP failover, a DHCP renewal); the sprays that flush a table send thousands
    # a second.
    min_addresses: int = 64
    window_s: float = 10.0
    # 4096 senders, as the other detectors (evictions counted).
    max_sources: int = 4096
    # 1024 distinct addresses kept per sender; the evidence shows a sample of 64.
    max_addresses: int = 1024


class _Source:
    __slots__ = ("addresses", "first", "forged", "last", "packets", "reported")

    def __init__(self, now: float) -> None:
        self.first = now
        self.last = now
        self.packets = 0
        self.forged = 0
        self.reported = False
        self.addresses: dict[bytes, float] = {}  # address -> last seen; an IP is its first 4


class SprayDetector:
    def __init__(self, kind: str, config: SprayConfig | None = None) -> None:
        self.kind = kind
        self.config = config or SprayConfig()
        # No memory of evicted senders: a spray is fast by definition.
        self.sources: BoundedTable[_Source] = BoundedTable(
            self.config.max_sources, self.config.window_s, remember=False
        )

    def on_address(
        self, now: float, mac: bytes, address: bytes, *, forged: bool = False
    ) -> Detection | None:
        """``mac`` used ``address`` (an IPv4, or an ARP claim: IPv4 + MAC); ``forged``: the
        frame spoke for another MAC."""
        cfg = self.config
        state = self.sources.current(mac, now, cfg.window_s, lambda: _Source(now))
        state.last = now
        state.packets += 1
        addresses = state.addresses
        is_new = address not in addresses
        if is_new and len(addresses) >= cfg.max_addresses:
            return None  # capped: counted as a packet only
        addresses[address] = now
        if forged and is_new:
            state.forged += 1
        if state.reported:
            return self._detection(mac, state) if is_new else None
        if len(addresses) < cfg.min_addresses:
            return None
        horizon = now - cfg.window_s  # sliding window: forget addresses used too long ago
        for old in [a for a, seen in addresses.items() if seen < horizon]:
            del addresses[old]
        if len(addresses) < cfg.min_addresses:
            return None
        state.reported = True
        state.first = min(addresses.values())
        return self._detection(mac, state)

    def _detection(self, mac: bytes, state: _Source) -> Detection:
        def evidence() -> dict[str, Any]:
            sample = list(dict.fromkeys(a[:4] for a in state.addresses))[:64]
            duration = max(state.last - state.first, 0.0)
            return {
                "addresses": [ip_str(ip) for ip in sample],
                "address_count": len(state.addresses),
                "forged": state.forged,
                "packets": state.packets,
                "window_s": round(duration, 3),
                "rate": round(state.packets / duration, 1) if duration > 0 else 0.0,
            }

        # The sender's own IP is not among the sprayed ones: it comes from the hosts inventory.
        return Detection(self.kind, LEVEL_SPRAY, mac, None, state.first, state.last, evidence)

    def expire(self, now: float) -> None:
        self.sources.expire(now)
