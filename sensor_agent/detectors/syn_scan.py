"""Level 2: SYNs from one source to several ports of the monitoring node.

The node offers no service anybody needs, so any source that knocks on several of its ports
is probing. A connect scan (full handshake, then nothing) is still a scan: its SYNs count
the same, and completed handshakes are added to the evidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import LEVEL_SYN_SCAN, Detection, SourceTable


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
    __slots__ = ("first", "handshakes", "ip", "ips", "last", "ports", "reported", "syns")

    def __init__(self, now: float, ip: bytes) -> None:
        self.first = now
        self.last = now
        self.ip = ip
        # every source address its frames carried (a few): decoys (nmap -D) are named as
        # such by the pipeline, which knows the MAC's own address
        self.ips: tuple[bytes, ...] = (ip,)
        self.syns = 0
        self.reported = False
        self.ports: dict[int, float] = {}
        self.handshakes: set[int] = set()


class SynScanDetector:
    kind = "syn_scan"

    def __init__(self, config: SynScanConfig | None = None) -> None:
        self.config = config or SynScanConfig()
        self.sources: SourceTable[_Source] = SourceTable(
            self.config.max_sources, self.config.window_s
        )

    def on_syn(self, now: float, mac: bytes, ip: bytes, port: int) -> Detection | None:
        """A SYN (without ACK) from ``mac``/``ip`` to ``port`` of the node."""
        state = self._state(now, mac, ip)
        state.syns += 1
        return self._add_port(now, mac, state, port)

    def on_handshake(self, now: float, mac: bytes, ip: bytes, port: int) -> Detection | None:
        """A completed handshake on ``port`` (a decoy accepted it, or the final ACK was seen)."""
        state = self._state(now, mac, ip)
        new_handshake = port not in state.handshakes
        state.handshakes.add(port)
        detection = self._add_port(now, mac, state, port)
        if detection is None and new_handshake and state.reported:
            return self._detection(mac, state)
        return detection

    def _state(self, now: float, mac: bytes, ip: bytes) -> _Source:
        state = self.sources.current(mac, now, self.config.window_s, lambda: _Source(now, ip))
        state.ip = ip
        if ip not in state.ips and len(state.ips) < 16:
            state.ips += (ip,)
        return state

    def _add_port(self, now: float, mac: bytes, state: _Source, port: int) -> Detection | None:
        cfg = self.config
        ports = state.ports
        is_new = port not in ports
        if is_new and len(ports) >= cfg.max_ports:
            return None
        ports[port] = now
        if state.reported:
            return self._detection(mac, state) if is_new else None
        if len(ports) < cfg.min_ports:
            return None
        horizon = now - cfg.window_s
        for old in [p for p, seen in ports.items() if seen < horizon]:
            del ports[old]
        if len(ports) < cfg.min_ports:
            return None
        state.reported = True
        state.first = min(ports.values())
        return self._detection(mac, state)

    def _detection(self, mac: bytes, state: _Source) -> Detection:
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
            self.kind, LEVEL_SYN_SCAN, mac, state.ip, state.first, state.last, evidence, state.ips
        )

    def expire(self, now: float) -> None:
        self.sources.expire(now)
