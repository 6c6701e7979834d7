"""Detectors: pure functions of (time, header fields) with bounded per-source state.

They never touch sockets or clocks: the pipeline hands them the frame's timestamp, so the
same code runs on a live interface, on a replayed capture and in unit tests. A detector
returns a :class:`Detection` when a source is above its threshold (again on every new piece
of evidence); deciding what becomes an event is the incident tracker's job.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Generic, Protocol, TypeVar

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


class _Timed(Protocol):
    last: float


S = TypeVar("S", bound=_Timed)


class SourceTable(Generic[S]):
    """Per-source state with a cap and expiry, least recently updated first.

    Updating a source moves it to the end (``touch``), so both expiry and eviction only look
    at the front. An ``OrderedDict``, not a dict: taking from the front of a plain dict that
    keeps losing its first entries scans over the holes they leave (slow under a MAC spray).
    Evicting a source that has not expired yet is counted: a full table means someone is
    spraying source addresses, which the owner should know.
    """

    def __init__(self, max_sources: int, ttl_s: float) -> None:
        self.max_sources = max_sources
        self.ttl_s = ttl_s
        self.items: OrderedDict[bytes, S] = OrderedDict()
        self.evictions = 0

    def __len__(self) -> int:
        return len(self.items)

    def get(self, key: bytes) -> S | None:
        return self.items.get(key)

    def touch(self, key: bytes) -> None:
        self.items.move_to_end(key)

    def put(self, key: bytes, state: S) -> None:
        items = self.items
        items.pop(key, None)
        if len(items) >= self.max_sources:
            items.popitem(last=False)
            self.evictions += 1
        items[key] = state

    def current(self, key: bytes, now: float, window_s: float, new: Callable[[], S]) -> S:
        """The source's state as of ``now``: a ``new()`` one when it has none or its last
        update is more than ``window_s`` old (a fresh episode), else the existing one. Either
        way it becomes the most recently updated, with ``last = now``."""
        state = self.items.get(key)
        if state is None or now - state.last > window_s:
            state = new()
            self.put(key, state)
        else:
            self.items.move_to_end(key)
        state.last = now
        return state

    def expire(self, now: float) -> int:
        """Drop every source idle for longer than the TTL; returns how many."""
        items = self.items
        horizon = now - self.ttl_s
        dropped = 0
        while items:
            key = next(iter(items))
            if items[key].last >= horizon:
                break
            del items[key]
            dropped += 1
        return dropped
