"""HMAC-SHA256 signing of MQTT payloads and a bounded replay guard (pure: no I/O, no clock).

A signed payload carries ``ts`` (unix time of signing) and ``sig``, the hex HMAC-SHA256 of
what the format signs:

- format 2 (the one this agent writes): ``lan-guard/2`` LF agent id LF sub-topic LF
  canonical JSON, where the sub-topic is what follows ``<prefix>/<agent_id>/`` (``event``,
  ``state``, ``command``, ``command/result``, ...). A payload signed for one agent or topic
  therefore fails on any other: a command for agent A is refused by agent B although both
  share the key. The topic prefix is not covered, so a bridge may rewrite it
  (``sites/<site>/lan_guard/...``).
- format 1 (agents and integrations before format 2): the canonical JSON alone. Verified
  only where a receiver is told to accept it (``accept_legacy``).

The canonical JSON is the payload without ``sig``, with sorted keys, no spaces and UTF-8
(``ensure_ascii=False``); ``ts`` is included. Receivers refuse a bad signature, a missing
one, a ``ts`` more than ``max_skew_s`` away from their clock, and an ``id`` they have already
accepted (``ReplayGuard``). The Home Assistant integration checks the same rules with its
own code (tested against this one); keep both in step with ``schema/common.schema.json``.
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
FORMAT = 2
"""The signature format this module writes."""
_FORMAT_2_TAG = b"lan-guard/2\n"


class SignatureError(ValueError):
    """A payload failed verification; the message says why (for logs and command results)."""


def canonical(payload: Mapping[str, Any]) -> bytes:
    """The canonical JSON: ``payload`` without ``sig``, sorted keys, compact, UTF-8."""
    unsigned = {key: value for key, value in payload.items() if key != "sig"}
    return json.dumps(
        unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def message(payload: Mapping[str, Any], agent_id: str, topic: str) -> bytes:
    """What format 2 signs: the tag, the agent id and sub-topic (one line each), the JSON."""
    return _framed(canonical(payload), agent_id, topic)


def _framed(body: bytes, agent_id: str, topic: str) -> bytes:
    for name, value in (("agent_id", agent_id), ("topic", topic)):
        if not value or "\n" in value:
            raise ValueError(f"{name} {value!r} cannot be signed (empty or multi-line)")
    return b"".join((_FORMAT_2_TAG, agent_id.encode(), b"\n", topic.encode(), b"\n", body))


def signature(payload: Mapping[str, Any], key: bytes, agent_id: str, topic: str) -> str:
    """Hex HMAC-SHA256 of ``payload`` meant for ``<prefix>/<agent_id>/<topic>`` (format 2)."""
    return hmac.new(key, message(payload, agent_id, topic), hashlib.sha256).hexdigest()


def legacy_signature(payload: Mapping[str, Any], key: bytes) -> str:
    """Hex HMAC-SHA256 of the canonical JSON alone (format 1: binds no agent nor topic)."""
    return hmac.new(key, canonical(payload), hashlib.sha256).hexdigest()


def sign(
    payload: Mapping[str, Any], key: bytes, now: float, *, agent_id: str, topic: str
) -> dict[str, Any]:
    """A copy of ``payload`` with ``ts`` set to ``now`` and a fresh format 2 ``sig``."""
    signed = {k: v for k, v in payload.items() if k not in ("ts", "sig")}
    signed["ts"] = now
    signed["sig"] = signature(signed, key, agent_id, topic)
    return signed


def verify(
    payload: Mapping[str, Any],
    key: bytes,
    now: float,
    *,
    agent_id: str,
    topic: str,
    max_skew_s: float = MAX_SKEW_S,
    accept_legacy: bool = False,
) -> int:
    """Raise ``SignatureError`` unless ``payload`` is signed with ``key`` for ``agent_id`` and
    ``topic`` and fresh at ``now``; return the format it was signed in (2, or 1 when
    ``accept_legacy``). Replays within the freshness window are the ``ReplayGuard``'s job."""
    sig = payload.get("sig")
    if sig is None:
        raise SignatureError("missing signature (a shared key is configured)")
    if not isinstance(sig, str):
        raise SignatureError("signature is not a string")
    ts = payload.get("ts")
    if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts):
        raise SignatureError("missing or invalid 'ts'")
    try:
        # one canonical JSON for both formats (at a PSOC's thousands of payloads a second,
        # a second one cost more than the HMACs), the format 1 HMAC only on a mismatch
        body = canonical(payload)
        expected = hmac.new(key, _framed(body, agent_id, topic), hashlib.sha256).hexdigest()
    except (TypeError, ValueError) as err:  # not JSON-serialisable: cannot have been signed
        raise SignatureError(f"payload cannot be canonicalised: {err}") from err
    if hmac.compare_digest(expected, sig):
        found = FORMAT
    elif hmac.compare_digest(hmac.new(key, body, hashlib.sha256).hexdigest(), sig):
        if not accept_legacy:
            raise SignatureError(
                "signed in format 1, which names neither the agent nor the topic"
                " (accepted only where legacy signatures are enabled)"
            )
        found = 1
    else:
        raise SignatureError(
            f"bad signature: not signed with this key for agent {agent_id!r}, topic {topic!r}"
            " (meant for another agent or topic, altered, or a wrong key)"
        )
    if abs(now - ts) > max_skew_s:
        raise SignatureError(f"stale timestamp: {now - ts:+.0f} s from now (limit {max_skew_s:g})")
    return found


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
    """``verify`` plus a ``ReplayGuard``: the full receiver check for payloads with an ``id``
    arriving on one topic of one agent (an agent's ``command`` topic, say)."""

    def __init__(
        self,
        key: bytes,
        *,
        agent_id: str,
        topic: str,
        max_skew_s: float = MAX_SKEW_S,
        max_ids: int = 100_000,
        accept_legacy: bool = False,
    ) -> None:
        self._key = key
        self.agent_id = agent_id
        self.topic = topic
        self._max_skew_s = max_skew_s
        self._accept_legacy = accept_legacy
        self.guard = ReplayGuard(window_s=max_skew_s, max_ids=max_ids)

    def verify(self, payload: Mapping[str, Any], now: float) -> int:
        """Raise ``SignatureError`` for a bad, missing, stale, misdirected or replayed
        signature; return the signature's format."""
        found = verify(
            payload,
            self._key,
            now,
            agent_id=self.agent_id,
            topic=self.topic,
            max_skew_s=self._max_skew_s,
            accept_legacy=self._accept_legacy,
        )
        payload_id = payload.get("id")
        if not isinstance(payload_id, str) or not payload_id:
            raise SignatureError("missing 'id'")
        self.guard.check(payload_id, float(payload["ts"]), now)
        return found
