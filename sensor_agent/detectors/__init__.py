"""Detectors: pure functions of (time, header fields) with bounded per-source state.

They never touch sockets or clocks: the pipeline hands them the frame's timestamp, so the
same code runs on a live interface, on a replayed capture and in unit tests. A detector
returns a :class:`Detection` when a source is above its threshold (again on every new piece
of evidence); deciding what becomes an event is the incident tracker's job. Their state per
source lives in :class:`~sensor_agent.bounded.BoundedTable`, which a spray of forged
addresses cannot flush.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

LEVEL_ARP_SCAN: Final = 1
LEVEL_SYN_SCAN: Final = 2
LEVEL_SESSION: Final = 3


@dataclass(slots=True)
class Detection:
    """One source found above a threshold. ``evidence`` is built only when an event is sent."""

    kind: str
    level: int
    mac: bytes
    ip: bytes | None
    first_seen: float
    last_seen: float
    evidence: Callable[[], dict[str, Any]]
    # Every source address the frames behind this detection carried (scans): when they are
    # not the sending MAC's own, the pipeline names the MAC's own and lists these as forged.
    source_ips: tuple[bytes, ...] = ()
