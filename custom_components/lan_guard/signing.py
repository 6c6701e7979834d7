"""Verification of signed agent payloads (the team's signing spec, implemented here).

HACS installs this folder alone, so the integration cannot import the agent's package; the
contract tests sign with the agent's code and verify with this one to keep both in step.

Spec: a signed payload carries ``ts`` (unix time of signing) and ``sig``, the hex
HMAC-SHA256 of the payload without ``sig`` as JSON with sorted keys, no spaces, UTF-8.
Receivers refuse a bad signature, a missing one when a key is set, ``|now - ts|`` over
300 s, and an ``id`` already seen. Retained payloads (info, state, hosts, quarantine) may be
legitimately old when HA subscribes, so for them the freshness rule becomes "never older
than the last one accepted on that topic", which still refuses a replayed older state.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from .const import BadPayload

MAX_SKEW_S = 300.0
MAX_REMEMBERED_IDS = 10_000


class SignatureError(Exception):
    """A payload failed verification; ``reason`` says which rule it broke."""

    def __init__(self, reason: BadPayload, message: str) -> None:
        """Keep the machine-readable reason next to the readable message."""
        super().__init__(message)
        self.reason = reason


def signing_key(secret: str) -> bytes:
    """The HMAC key for the shared secret the owner typed (UTF-8, as the agent does)."""
    return secret.encode("utf-8")


def canonical(payload: Mapping[str, Any]) -> bytes:
    """What is signed: the payload without ``sig``, sorted keys, compact JSON, UTF-8."""
    return json.dumps(
        {key: value for key, value in payload.items() if key != "sig"},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    ).encode("utf-8")


def signature(payload: Mapping[str, Any], key: bytes) -> str:
    """Hex HMAC-SHA256 of the canonical form."""
    return hmac.new(key, canonical(payload), hashlib.sha256).hexdigest()


def sign(payload: Mapping[str, Any], key: bytes, now: float) -> dict[str, Any]:
    """A signed copy of ``payload`` (used for commands sent to the agent)."""
    signed = {key_: value for key_, value in payload.items() if key_ not in ("ts", "sig")}
    signed["ts"] = now
    signed["sig"] = signature(signed, key)
    return signed


def _check_signature(payload: Mapping[str, Any], key: bytes) -> float:
    """Check ``sig`` against the canonical form and return ``ts``."""
    sig = payload.get("sig")
    if sig is None:
        raise SignatureError(BadPayload.SIGNATURE_MISSING, "no signature but a key is set")
    ts = payload.get("ts")
    if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts):
        raise SignatureError(BadPayload.SIGNATURE_BAD, "signed payload without a valid 'ts'")
    if not isinstance(sig, str) or not hmac.compare_digest(signature(payload, key), sig):
        raise SignatureError(BadPayload.SIGNATURE_BAD, "signature does not match the shared key")
    return float(ts)


class PayloadVerifier:
    """Signature, freshness and replay checks for one agent's payloads."""

    def __init__(
        self,
        key: bytes,
        max_skew_s: float = MAX_SKEW_S,
        max_ids: int = MAX_REMEMBERED_IDS,
    ) -> None:
        """Start with no id seen; ids are forgotten once older than the freshness window."""
        self._key = key
        self._max_skew_s = max_skew_s
        self._max_ids = max_ids
        self._seen: OrderedDict[str, float] = OrderedDict()
        # Anything signed at or before this mark is refused: it may be an evicted id.
        self._low_water = -math.inf
        self._retained_ts: dict[str, float] = {}

    @property
    def remembered_ids(self) -> int:
        """How many ids the replay guard holds (diagnostics)."""
        return len(self._seen)

    def verify_live(self, payload: Mapping[str, Any], now: float) -> None:
        """Full check of a live payload that carries an ``id`` (events, command results)."""
        ts = _check_signature(payload, self._key)
        if abs(now - ts) > self._max_skew_s:
            when = f"{now - ts:.0f} s ago" if ts < now else f"{ts - now:.0f} s in the future"
            raise SignatureError(
                BadPayload.STALE, f"signed {when} (limit {self._max_skew_s:g} s either way)"
            )
        payload_id = str(payload.get("id", ""))
        self._forget_before(now - self._max_skew_s)
        if payload_id in self._seen:
            raise SignatureError(BadPayload.REPLAYED, f"id {payload_id} was already accepted")
        if ts <= self._low_water:
            raise SignatureError(BadPayload.REPLAYED, "older than the replay guard remembers")
        if len(self._seen) >= self._max_ids:
            _, evicted_ts = self._seen.popitem(last=False)
            self._low_water = max(self._low_water, evicted_ts)
        self._seen[payload_id] = ts

    def verify_retained(self, topic: str, payload: Mapping[str, Any]) -> None:
        """Check a retained payload: valid signature, not older than the last accepted one."""
        ts = _check_signature(payload, self._key)
        if ts < self._retained_ts.get(topic, -math.inf):
            raise SignatureError(BadPayload.REPLAYED, f"older than the last accepted {topic}")
        self._retained_ts[topic] = ts

    def _forget_before(self, horizon: float) -> None:
        # Ids arrive roughly in ts order; forget from the old end while it is out of the window.
        while self._seen:
            oldest_id, oldest_ts = next(iter(self._seen.items()))
            if oldest_ts >= horizon:
                return
            del self._seen[oldest_id]
