"""Level 1: one source asks ARP for many distinct addresses within a short window.

Defaults (see :class:`ArpScanConfig`) are set so that a sweep of a /24 by any tool is
reported, including Home Assistant's own nmap tracker (``nmap -sn -PR`` every 120 s) and
NetAlertX's ``arp-scan``: those ARE level-1 scans, and the classifier on the HA side learns
they are normal. An ordinary host asks for its gateway and a handful of peers per minute.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..bounded import BoundedTable
from ..formats import ip_str
from . import LEVEL_ARP_SCAN, Detection

NO_IP = b"\x00\x00\x00\x00"


@dataclass(frozen=True, slots=True)
class ArpScanConfig:
    # 10 distinct addresses: a normal host resolves its gateway plus a few peers; malware and
    # discovery tools resolve a whole subnet (254 for a /24), far above this.
    min_targets: int = 10
    # 10 s: nmap, arp-scan and ransomware sweep a /24 in 1-5 s; a host's normal ARP for 10
    # different peers within 10 s is rare.
    window_s: float = 10.0
    # 4096 sources: far more than a home LAN has; spraying random MACs evicts (counted).
    max_sources: int = 4096
    # 1024 distinct targets per source (a /22); the evidence shows a sample of 64.
    max_targets: int = 1024


class _Source:
    __slots__ = ("first", "ip", "last", "packets", "reported", "targets")

    def __init__(self, now: float, ip: bytes) -> None:
        self.first = now
        self.last = now
        self.ip = ip
        self.packets = 0
        self.reported = False
        self.targets: dict[bytes, float] = {}


class ArpScanDetector:
    kind = "arp_scan"

    def __init__(self, config: ArpScanConfig | None = None) -> None:
        self.config = config or ArpScanConfig()
        self.sources: BoundedTable[_Source] = BoundedTable(
            self.config.max_sources, self.config.window_s
        )

    def on_request(
        self, now: float, mac: bytes, sender_ip: bytes, target_ip: bytes
    ) -> Detection | None:
        """An ARP request from ``mac`` asking who has ``target_ip``."""
        if target_ip in (sender_ip, NO_IP):  # gratuitous ARP announces itself
            return None
        cfg = self.config
        state = self.sources.current(mac, now, cfg.window_s, lambda: _Source(now, sender_ip))
        state.last = now
        state.packets += 1
        if sender_ip != NO_IP:
            state.ip = sender_ip
        targets = state.targets
        is_new = target_ip not in targets
        if is_new and len(targets) >= cfg.max_targets:
            is_new = False  # capped: count the packet, keep the sample
        else:
            targets[target_ip] = now
        if state.reported:
            return self._detection(mac, state) if is_new else None
        if len(targets) < cfg.min_targets:
            return None
        horizon = now - cfg.window_s  # sliding window: forget targets asked too long ago
        for ip in [ip for ip, seen in targets.items() if seen < horizon]:
            del targets[ip]
        if len(targets) < cfg.min_targets:
            return None
        state.reported = True
        state.first = min(targets.values())
        return self._detection(mac, state)

    def _detection(self, mac: bytes, state: _Source) -> Detection:
        def evidence() -> dict[str, Any]:
            sample = list(state.targets)[:64]
            duration = max(state.last - state.first, 0.0)
            return {
                "targets": [ip_str(ip) for ip in sample],
                "target_count": len(state.targets),
                "packets": state.packets,
                "window_s": round(duration, 3),
                "rate": round(state.packets / duration, 1) if duration > 0 else 0.0,
            }

        ip = state.ip if state.ip != NO_IP else None
        return Detection(self.kind, LEVEL_ARP_SCAN, mac, ip, state.first, state.last, evidence)

    def expire(self, now: float) -> None:
        self.sources.expire(now)
