"""HMAC-SHA256 signing of MQTT payloads and a bounded replay guard (pure: no I/O, no clock).

The canonical form is the payload without ``sig``, as JSON with sorted keys, no spaces and
UTF-8 (``ensure_ascii=False``). A signed payload carries ``ts`` (unix time of signing) and
``sig`` (hex HMAC-SHA256 of the canonical form, ``ts`` included). Receivers refuse a bad
signature, a missing one, a ``ts`` more than ``max_skew_s`` away from their clock, and an
``id`` they have already accepted (``ReplayGuard``). The Home Assistant integration checks
the same rules with its own code; keep both in step with ``schema/common.schema.json``.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import json
import math
from collections.abc import Mapping
from typing import Any

MAX_SKEW_S = 300.0
"""Largest accepted distance between a payload's ``ts`` and the receiver's clock."""


class SignatureError(ValueError):
    """A payload failed verification; the message says why (for logs and command results)."""


def canonical(payload: Mapping[str, Any]) -> bytes:
    """The bytes that are signed: ``payload`` without ``sig``, sorted keys, compact, UTF-8."""
    unsigned = {key: value for key, value in payload.items() if key != "sig"}
    return json.dumps(
        unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def signature(payload: Mapping[str, Any], key: bytes) -> str:
    """Hex HMAC-SHA256 of the canonical form of ``payload``."""
    return hmac.new(key, canonical(payload), hashlib.sha256).hexdigest()


def sign(payload: Mapping[str, Any], key: bytes, now: float) -> dict[str, Any]:
    """A copy of ``payload`` with ``ts`` set to ``now`` and a fresh ``sig``."""
    signed = {k: v for k, v in payload.items() if k not in ("ts", "sig")}
    signed["ts"] = now
    signed["sig"] = signature(signed, key)
    return signed


def verify(
    payload: Mapping[str, Any], key: bytes, now: float, max_skew_s: float = MAX_SKEW_S
) -> None:
    """Raise ``SignatureError`` unless ``payload`` is signed with ``key`` and fresh at ``now``.

    Replays within the freshness window are the ``ReplayGuard``'s job.
    """
    sig = payload.get("sig")
    if sig is None:
        raise SignatureError("missing signature (a shared key is configured)")
    if not isinstance(sig, str):
        raise SignatureError("signature is not a string")
    ts = payload.get("ts")
    if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts):
        raise SignatureError("missing or invalid 'ts'")
    try:
        expected = signature(payload, key)
    except (TypeError, ValueError) as err:  # not JSON-serialisable: cannot have been signed
        raise SignatureError(f"payload cannot be canonicalised: {err}") from err
    if not hmac.compare_digest(expected, sig):
        raise SignatureError("bad signature")
    if abs(now - ts) > max_skew_s:
        raise SignatureError(f"stale timestamp: {now - ts:+.0f} s from now (limit {max_skew_s:g})")


class ReplayGuard:
    """Remembers accepted ids for the freshness window, in bounded memory.

    An id is forgotten once its ``ts`` is older than the window (the freshness check refuses
    such payloads anyway). When more than ``max_ids`` are remembered, the oldest is evicted
    and a low-water mark rises to its ``ts``: anything not newer than the mark is refused, so
    eviction can never let a replay through (it can only refuse an old, unseen payload).
    """

    def __init__(self, window_s: float = MAX_SKEW_S, max_ids: int = 100_000) -> None:
        if max_ids < 1:
            raise ValueError("max_ids must be at least 1")
        self.window_s = window_s
        self.max_ids = max_ids
        self._seen: set[str] = set()
        self._by_age: list[tuple[float, str]] = []  # heap of (ts, id)
        self._low_water = -math.inf

    def __len__(self) -> int:
        return len(self._seen)

    def check(self, payload_id: str, ts: float, now: float) -> None:
        """Accept and remember ``payload_id`` or raise ``SignatureError`` for a replay."""
        self._expire(now)
        if payload_id in self._seen:
            raise SignatureError(f"replayed id {payload_id!r}")
        if ts <= self._low_water:
            raise SignatureError("too old to be checked for replay (replay guard is full)")
        if len(self._seen) >= self.max_ids:
            evicted_ts, evicted_id = heapq.heappop(self._by_age)
            self._seen.discard(evicted_id)
            self._low_water = max(self._low_water, evicted_ts)
        self._seen.add(payload_id)
        heapq.heappush(self._by_age, (ts, payload_id))

    def _expire(self, now: float) -> None:
        horizon = now - self.window_s
        while self._by_age and self._by_age[0][0] < horizon:
            _, old_id = heapq.heappop(self._by_age)
            self._seen.discard(old_id)


class Verifier:
    """``verify`` plus a ``ReplayGuard``: the full receiver check for payloads with an ``id``."""

    def __init__(self, key: bytes, max_skew_s: float = MAX_SKEW_S, max_ids: int = 100_000) -> None:
        self._key = key
        self._max_skew_s = max_skew_s
        self.guard = ReplayGuard(window_s=max_skew_s, max_ids=max_ids)

    def verify(self, payload: Mapping[str, Any], now: float) -> None:
        """Raise ``SignatureError`` for a bad, missing, stale or replayed signature."""
        verify(payload, self._key, now, self._max_skew_s)
        payload_id = payload.get("id")
        if not isinstance(payload_id, str) or not payload_id:
            raise SignatureError("missing 'id'")
        self.guard.check(payload_id, float(payload["ts"]), now)
