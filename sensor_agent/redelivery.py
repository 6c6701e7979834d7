"""Replay requests: a receiver that missed events asks for those after the last seq it has.

QoS 1 only reaches the broker: a subscriber that was away while the broker took an event
(a broker restart, Home Assistant reconnecting with a clean session, an HA restart) never
gets it. The agent keeps acknowledged events (``sensor_agent.outbox``), and a signed
``replay`` command asks it to publish again those after ``after_seq`` (up to ``through_seq``
when the receiver has what follows), in order, signed afresh (so they pass the receiver's
freshness check). Events already gone from the store are reported as a gap with its range,
never passed over in silence.

Bounded, because anyone who may publish commands can ask: at most ``batch`` events per
command (the receiver asks again for the rest), and a token bucket of ``burst`` requests
refilled at ``rate_per_s``; a request beyond it is refused with the time to wait.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from .outbox import ReplayBatch

# 1,000 events (about 1 MB on the wire): a second or two of publishing, so one request never
# holds up new events for long; the receiver asks again for the rest.
DEFAULT_BATCH = 1000
# Bursts of 5 requests, then one a second: a receiver catching up on 10,000 missed events is
# done in seconds; a flood of requests costs at most 1,000 re-published events a second.
DEFAULT_BURST = 5
DEFAULT_RATE_PER_S = 1.0


class RedeliveryRefused(Exception):
    """The request is refused now (rate limit); the message says why and for how long."""


class EventStore(Protocol):
    """What replays need of the store (``sensor_agent.outbox.Outbox``)."""

    def replay(self, after_seq: int, limit: int, through_seq: int | None = None) -> ReplayBatch: ...


@dataclass
class Redelivery:
    """``redelivery(after_seq, through_seq) -> the command result's "replay" object``;
    thread-safe."""

    store: EventStore
    batch: int = DEFAULT_BATCH
    burst: int = DEFAULT_BURST
    rate_per_s: float = DEFAULT_RATE_PER_S
    clock: Callable[[], float] = time.monotonic
    _tokens: float = field(init=False)
    _refilled_at: float = field(init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.batch < 1 or self.burst < 1 or self.rate_per_s <= 0:
            raise ValueError("batch and burst must be at least 1, rate_per_s above 0")
        self._tokens = float(self.burst)
        self._refilled_at = self.clock()

    def __call__(self, after_seq: int, through_seq: int | None = None) -> dict[str, Any]:
        self._take_token()
        done = self.store.replay(after_seq, self.batch, through_seq)
        return {
            "epoch": done.epoch,
            "after_seq": done.after_seq,
            "count": done.count,
            "first_seq": done.first_seq,
            "through_seq": done.through_seq,
            "last_seq": done.last_seq,
            "gap": (
                None if done.gap is None else {"first_seq": done.gap[0], "last_seq": done.gap[1]}
            ),
        }

    def _take_token(self) -> None:
        with self._lock:
            now = self.clock()
            elapsed = max(now - self._refilled_at, 0.0)
            self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate_per_s)
            self._refilled_at = now
            if self._tokens < 1.0:
                wait = (1.0 - self._tokens) / self.rate_per_s
                raise RedeliveryRefused(f"too many replay requests; ask again in {wait:.1f} s")
            self._tokens -= 1.0
