"""Level 3: a TCP session with the node carrying application data to a decoy port.

Only a deep penetration test, announced in advance, does this legitimately. Seen two ways:
in captured frames (a data segment to a decoy port) and by the live decoy listeners (the
peer connected and sent bytes). Every observation is a detection; the incident tracker
rate-limits what is published.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..bounded import BoundedTable
from ..formats import printable
from . import LEVEL_SESSION, Detection


@dataclass(frozen=True, slots=True)
class SessionConfig:
    # 64 bytes of sample: enough to recognise SMB (``.SMB``), HTTP or RTSP request lines.
    sample_bytes: int = 64
    # State is kept for 10 minutes per source so the byte count covers the whole session.
    window_s: float = 600.0
    # 4096 sources, as the other detectors: far more than a home LAN has (evictions counted).
    max_sources: int = 4096


class _Source:
    __slots__ = ("bytes", "first", "ip", "last", "packets", "port", "ports", "sample")

    def __init__(self, now: float, ip: bytes) -> None:
        self.first = now
        self.last = now
        self.ip = ip
        self.bytes = 0
        self.packets = 0
        self.port = 0
        self.ports: set[int] = set()
        self.sample = b""


class SessionDetector:
    kind = "session"

    def __init__(self, config: SessionConfig | None = None) -> None:
        self.config = config or SessionConfig()
        self.sources: BoundedTable[_Source] = BoundedTable(
            self.config.max_sources, self.config.window_s
        )

    def on_data(
        self, now: float, mac: bytes, ip: bytes, port: int, *, nbytes: int, data: bytes
    ) -> Detection:
        """``nbytes`` of application data (``data``: what was captured of it) sent to ``port``."""
        state = self.sources.current(mac, now, self.config.window_s, lambda: _Source(now, ip))
        state.last = now
        state.ip = ip
        state.bytes += nbytes
        state.packets += 1
        state.port = port
        if len(state.ports) < 256:
            state.ports.add(port)
        limit = self.config.sample_bytes
        if len(state.sample) < limit:
            state.sample += data[: limit - len(state.sample)]

        def evidence() -> dict[str, Any]:
            return {
                "port": state.port,
                "ports": sorted(state.ports),
                "bytes": state.bytes,
                "packets": state.packets,
                "sample": printable(state.sample, limit),
            }

        return Detection(self.kind, LEVEL_SESSION, mac, ip, state.first, state.last, evidence)

    def expire(self, now: float) -> None:
        self.sources.expire(now)
