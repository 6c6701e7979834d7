"""ARP and NDP cache exhaustion: one sender claiming many addresses (a LAN DoS).

Every ARP packet and Neighbour Discovery message makes its receivers cache "address X is at
MAC Y". A tool that claims hundreds of addresses fills those caches (a router's, a camera's
with room for 32 entries), evicting the real neighbours: traffic stops or goes to the
attacker. A host claims its own address or two (IPv4, its IPv6 link-local and global ones);
the culprit here is the sending MAC, with the claimed addresses as evidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..bounded import BoundedTable
from ..formats import addr_str
from . import Detection

LEVEL_EXHAUSTION = 2


@dataclass(frozen=True, slots=True)
class CacheExhaustionConfig:
    # 16 addresses within 60 s: a host has one IPv4 and a few IPv6 addresses; a router
    # doing proxy ARP for a whole subnet is no home setup. Tools claim hundreds per second.
    min_addresses: int = 16
    window_s: float = 60.0
    max_sources: int = 4096
    max_addresses: int = 1024


class _Source:
    __slots__ = ("addresses", "first", "last", "packets", "reported")

    def __init__(self, now: float) -> None:
        self.first = now
        self.last = now
        self.packets = 0
        self.reported = False
        self.addresses: dict[bytes, float] = {}


class CacheExhaustionDetector:
    kind = "cache_exhaustion"

    def __init__(self, config: CacheExhaustionConfig | None = None) -> None:
        self.config = config or CacheExhaustionConfig()
        # No memory of evicted senders: exhaustion is fast by definition.
        self.sources: BoundedTable[_Source] = BoundedTable(
            self.config.max_sources, self.config.window_s, remember=False
        )

    def on_claim(self, now: float, mac: bytes, ip: bytes) -> Detection | None:
        """A frame sent by ``mac`` announcing that ``ip`` (IPv4 or IPv6) is at some MAC."""
        cfg = self.config
        state = self.sources.current(mac, now, cfg.window_s, lambda: _Source(now))
        state.last = now
        state.packets += 1
        addresses = state.addresses
        is_new = ip not in addresses
        if is_new and len(addresses) >= cfg.max_addresses:
            is_new = False
        else:
            addresses[ip] = now
        if state.reported:
            return self._detection(mac, state) if is_new else None
        if len(addresses) < cfg.min_addresses:
            return None
        horizon = now - cfg.window_s
        for old in [a for a, seen in addresses.items() if seen < horizon]:
            del addresses[old]
        if len(addresses) < cfg.min_addresses:
            return None
        state.reported = True
        state.first = min(addresses.values())
        return self._detection(mac, state)

    def _detection(self, mac: bytes, state: _Source) -> Detection:
        def evidence() -> dict[str, Any]:
            duration = max(state.last - state.first, 0.0)
            return {
                "claimed": [addr_str(ip) for ip in list(state.addresses)[:64]],
                "target_count": len(state.addresses),
                "packets": state.packets,
                "window_s": round(duration, 3),
                "rate": round(state.packets / duration, 1) if duration > 0 else 0.0,
            }

        # the claimed addresses are not the culprit's: its own comes from the inventory
        return Detection(self.kind, LEVEL_EXHAUSTION, mac, None, state.first, state.last, evidence)

    def expire(self, now: float) -> None:
        self.sources.expire(now)
