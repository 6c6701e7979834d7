"""Flood (a LAN DoS): frames per second from one source, or from everybody, above a threshold.

The pipeline counts frames per source in one-second buckets (one dict update per frame,
the only per-frame work besides the ethertype dispatch) and calls this detector the moment a
count reaches a threshold, then once more when the second is over with the final counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..bounded import BoundedTable
from . import Detection

LEVEL_FLOOD = 2


@dataclass(frozen=True, slots=True)
class FloodConfig:
    # 1000 frames/s from one host: a monitoring node sees broadcasts and its own traffic, a
    # few frames/s per host; even a video stream mirrored to it stays below. hping3 --flood
    # sends tens of thousands per second.
    source_fps: int = 1000
    # 5000 frames/s in total: a busy home LAN's broadcast/multicast stays far below.
    total_fps: int = 5000
    # A flood state is forgotten after 30 s without a flooding second.
    quiet_s: float = 30.0
    # 4096 sources, as the other detectors: far more than a home LAN has (evictions counted).
    max_sources: int = 4096


class _Source:
    __slots__ = ("first", "last", "packets", "peak", "scope", "seconds")

    def __init__(self, now: float, scope: str) -> None:
        self.first = now
        self.last = now
        self.scope = scope
        self.packets = 0
        self.peak = 0.0
        self.seconds = 0


class FloodDetector:
    kind = "flood"

    def __init__(self, config: FloodConfig | None = None) -> None:
        self.config = config or FloodConfig()
        self.sources: BoundedTable[_Source] = BoundedTable(
            self.config.max_sources, self.config.quiet_s, remember=False
        )
        self._this_second: dict[bytes, str] = {}  # sources flagged in the current bucket

    def over(
        self, now: float, mac: bytes, count: int, second_start: float, scope: str
    ) -> Detection:
        """``mac`` (scope ``source``) or the whole LAN led by ``mac`` (``total``) just reached
        ``count`` frames in the bucket that started at ``second_start``."""
        state = self.sources.current(mac, now, math.inf, lambda: _Source(now, scope))
        state.last = now
        if scope == "source":
            state.scope = scope
        self._this_second.setdefault(mac, scope)
        rate = count / max(now - second_start, 0.001)
        state.peak = max(state.peak, min(rate, float(count) * 1000))
        return self._detection(mac, state, count)

    def second_done(self, counts: dict[bytes, int], total: int) -> list[Detection]:
        """Final counts of the bucket just closed: one update per source flagged in it."""
        found = []
        for mac, scope in self._this_second.items():
            state = self.sources.get(mac)
            if state is None:
                continue
            count = total if scope == "total" else counts.get(mac, 0)
            state.packets += count
            state.seconds += 1
            state.peak = max(state.peak, float(count))
            found.append(self._detection(mac, state, count))
        self._this_second = {}
        return found

    def _detection(self, mac: bytes, state: _Source, count: int) -> Detection:
        def evidence() -> dict[str, Any]:
            return {
                "scope": state.scope,
                "packets": max(state.packets, count),
                "rate": round(state.peak, 1),
                "window_s": float(max(state.seconds, 1)),
            }

        return Detection(self.kind, LEVEL_FLOOD, mac, None, state.first, state.last, evidence)

    def expire(self, now: float) -> None:
        self.sources.expire(now)
