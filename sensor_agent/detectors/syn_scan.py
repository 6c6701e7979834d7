"""Level 2: SYNs from one source to several ports of the monitoring node.

The node offers no service anybody needs, so any source that knocks on several of its ports
is probing. A connect scan (full handshake, then nothing) is still a scan: its SYNs count
the same, and completed handshakes are added to the evidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..bounded import BoundedTable
from . import LEVEL_SYN_SCAN, Detection


@dataclass(frozen=True, slots=True)
class SynScanConfig:
    # 3 distinct ports: the ransomware studied probes 6 (554, 445, 9100, 80, 515, 139) and
    # nmap 1000; a client that mistyped an address or retries one port stays below.
    min_ports: int = 3
    # 60 s: slow scanners pace their probes; nothing legitimate hits 3 ports of the node.
    window_s: float = 60.0
    max_sources: int = 4096
    # 1024 distinct ports per source kept (nmap's default list is 1000); evidence shows 256.
    max_ports: int = 1024


class _Source:
    __slots__ = ("first", "handshakes", "ip", "ips", "last", "mac", "ports", "reported", "syns")

    def __init__(self, now: float, mac: bytes, ip: bytes) -> None:
        self.first = now
        self.last = now
        self.mac = mac
        # The source IP while it stays the same; ``None`` once the MAC used several (forged
        # sources): the culprit's IP then comes from the hosts inventory.
        self.ip: bytes | None = ip
        # Every source address its frames carried (a few): decoys (nmap -D) are named as such
        # by the pipeline, which knows the MAC's own address.
        self.ips: tuple[bytes, ...] = (ip,)
        self.syns = 0
        self.reported = False
        self.ports: dict[int, float] = {}
        self.handshakes: set[int] = set()


class SynScanDetector:
    r"""Ports are added up per sending MAC and, separately, per source IP: a scanner that
    forges its source IPs (``hping3 --rand-source``) is found by its MAC, one that changes
    its MAC between probes by its IP. Both tables are :class:`BoundedTable`\ s, so a spray
    of forged sources between the probes of a slow scan does not push the scan out."""

    kind = "syn_scan"

    def __init__(self, config: SynScanConfig | None = None) -> None:
        self.config = config or SynScanConfig()
        cfg = self.config
        self.sources: BoundedTable[_Source] = BoundedTable(cfg.max_sources, cfg.window_s)
        self.by_ip: BoundedTable[_Source] = BoundedTable(cfg.max_sources, cfg.window_s)

    def on_syn(self, now: float, mac: bytes, ip: bytes, port: int) -> Detection | None:
        """A SYN (without ACK) from ``mac``/``ip`` to ``port`` of the node."""
        by_mac, by_ip = self._states(now, mac, ip)
        by_mac.syns += 1
        by_ip.syns += 1
        return self._either(now, by_mac, by_ip, port)

    def on_handshake(self, now: float, mac: bytes, ip: bytes, port: int) -> Detection | None:
        """A completed handshake on ``port`` (a decoy accepted it, or the final ACK was seen)."""
        by_mac, by_ip = self._states(now, mac, ip)
        new_handshake = port not in by_mac.handshakes
        by_mac.handshakes.add(port)
        by_ip.handshakes.add(port)
        detection = self._either(now, by_mac, by_ip, port)
        if detection is None and new_handshake and by_mac.reported:
            return self._detection(by_mac)
        return detection

    def _states(self, now: float, mac: bytes, ip: bytes) -> tuple[_Source, _Source]:
        window = self.config.window_s
        by_mac = self.sources.current(mac, now, window, lambda: _Source(now, mac, ip))
        by_mac.last = now
        if by_mac.ip != ip:
            by_mac.ip = None
            if ip not in by_mac.ips and len(by_mac.ips) < 16:
                by_mac.ips += (ip,)
        by_ip = self.by_ip.current(ip, now, window, lambda: _Source(now, mac, ip))
        by_ip.last = now
        return by_mac, by_ip

    def _either(self, now: float, by_mac: _Source, by_ip: _Source, port: int) -> Detection | None:
        """The MAC's detection; the IP's only while its MACs differ (a MAC-changing scanner,
        reported as the first MAC it used, so that its probes make one incident)."""
        found = self._add_port(now, by_mac, port)
        found_ip = self._add_port(now, by_ip, port)
        if found is not None or by_mac.reported:
            return found
        return found_ip

    def _add_port(self, now: float, state: _Source, port: int) -> Detection | None:
        cfg = self.config
        ports = state.ports
        is_new = port not in ports
        if is_new and len(ports) >= cfg.max_ports:
            return None
        ports[port] = now
        if state.reported:
            return self._detection(state) if is_new else None
        if len(ports) < cfg.min_ports:
            return None
        horizon = now - cfg.window_s
        for old in [p for p, seen in ports.items() if seen < horizon]:
            del ports[old]
        if len(ports) < cfg.min_ports:
            return None
        state.reported = True
        state.first = min(ports.values())
        return self._detection(state)

    def _detection(self, state: _Source) -> Detection:
        def evidence() -> dict[str, Any]:
            duration = max(state.last - state.first, 0.0)
            return {
                "ports": sorted(state.ports)[:256],
                "target_count": len(state.ports),
                "packets": state.syns,
                "handshakes": len(state.handshakes),
                "window_s": round(duration, 3),
                "rate": round(state.syns / duration, 1) if duration > 0 else 0.0,
            }

        return Detection(
            self.kind,
            LEVEL_SYN_SCAN,
            state.mac,
            state.ip,
            state.first,
            state.last,
            evidence,
            state.ips,
        )

    def expire(self, now: float) -> None:
        self.sources.expire(now)
        self.by_ip.expire(now)
