"""Verification of signed agent payloads (the team's signing spec, implemented here).

HACS installs this folder alone, so the integration cannot import the agent's package; the
contract tests sign with the agent's code and verify with this one to keep both in step.

Spec (``schema/common.schema.json``): a signed payload carries ``ts`` (unix time of signing)
and ``sig``, the hex HMAC-SHA256 of, in format 2, ``lan-guard/2`` LF agent id LF sub-topic LF
canonical JSON (the payload without ``sig``, sorted keys, no spaces, UTF-8). The sub-topic is
what follows ``<prefix>/<agent_id>/``, so a payload signed for another agent sharing the key,
or for another of its topics, fails; the prefix is not covered (a bridge may rewrite it).
Format 1, the canonical JSON alone, is accepted only when the owner enables legacy
signatures (agents before format 2).

Receivers refuse a bad signature, a missing one when a key is set and ``|now - ts|`` over
300 s. Live payloads with an id (command results) are also refused when the id was seen;
events are de-duplicated by their ``seq`` instead (``delivery.py``), because an event the
agent publishes again on request keeps its id. Retained payloads (info, state, hosts,
quarantine) may be legitimately old when HA subscribes, so for them the freshness rule
becomes "never older than the last one accepted on that topic", which still refuses a
replayed older state.
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
FORMAT = 2
_FORMAT_2_TAG = b"lan-guard/2\n"


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
    """The canonical JSON: the payload without ``sig``, sorted keys, compact, UTF-8."""
    return json.dumps(
        {key: value for key, value in payload.items() if key != "sig"},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    ).encode("utf-8")


def signature(
    payload: Mapping[str, Any], key: bytes, agent_id: str | None, topic: str | None
) -> str:
    """Hex HMAC-SHA256: format 2 for ``agent_id``'s ``topic``; format 1 when both are None."""
    if agent_id is None or topic is None:
        return hmac.new(key, canonical(payload), hashlib.sha256).hexdigest()
    signed = b"".join(
        (_FORMAT_2_TAG, agent_id.encode(), b"\n", topic.encode(), b"\n", canonical(payload))
    )
    return hmac.new(key, signed, hashlib.sha256).hexdigest()


def sign(
    payload: Mapping[str, Any],
    key: bytes,
    now: float,
    agent_id: str | None,
    topic: str | None,
) -> dict[str, Any]:
    """A signed copy of ``payload`` for ``agent_id``'s ``topic`` (commands to the agent);
    ``agent_id``/``topic`` None: format 1, for an agent that predates format 2."""
    signed = {key_: value for key_, value in payload.items() if key_ not in ("ts", "sig")}
    signed["ts"] = now
    signed["sig"] = signature(signed, key, agent_id, topic)
    return signed


class PayloadVerifier:
    """Signature, freshness and replay checks for the payloads of one agent."""

    def __init__(
        self,
        key: bytes,
        agent_id: str,
        *,
        accept_legacy: bool = False,
        max_skew_s: float = MAX_SKEW_S,
        max_ids: int = MAX_REMEMBERED_IDS,
    ) -> None:
        """Start with no id seen; ids are forgotten once older than the freshness window."""
        self._key = key
        self._agent_id = agent_id
        self._accept_legacy = accept_legacy
        self._max_skew_s = max_skew_s
        self._max_ids = max_ids
        self._seen: OrderedDict[str, float] = OrderedDict()
        # Anything signed at or before this mark is refused: it may be an evicted id.
        self._low_water = -math.inf
        self._retained_ts: dict[str, float] = {}
        self.agent_format = FORMAT
        """The format of the agent's last accepted payload: commands are signed in it."""

    @property
    def remembered_ids(self) -> int:
        """How many ids the replay guard holds (diagnostics)."""
        return len(self._seen)

    def sign_command(self, payload: Mapping[str, Any], now: float, topic: str) -> dict[str, Any]:
        """Sign a command the way this agent verifies (format 1 only for a legacy agent)."""
        if self.agent_format == 1:
            return sign(payload, self._key, now, None, None)
        return sign(payload, self._key, now, self._agent_id, topic)

    def verify_fresh(self, topic: str, payload: Mapping[str, Any], now: float) -> None:
        """Signature for ``topic`` and freshness, without the id guard (events)."""
        ts = self._check_signature(topic, payload)
        if abs(now - ts) > self._max_skew_s:
            when = f"{now - ts:.0f} s ago" if ts < now else f"{ts - now:.0f} s in the future"
            raise SignatureError(
                BadPayload.STALE, f"signed {when} (limit {self._max_skew_s:g} s either way)"
            )

    def verify_live(self, topic: str, payload: Mapping[str, Any], now: float) -> None:
        """Full check of a live payload that carries an ``id`` (command results)."""
        self.verify_fresh(topic, payload, now)
        ts = float(payload["ts"])
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
        ts = self._check_signature(topic, payload)
        if ts < self._retained_ts.get(topic, -math.inf):
            raise SignatureError(BadPayload.REPLAYED, f"older than the last accepted {topic}")
        self._retained_ts[topic] = ts

    def _check_signature(self, topic: str, payload: Mapping[str, Any]) -> float:
        """Check ``sig`` for this agent's ``topic`` and return ``ts``."""
        sig = payload.get("sig")
        if sig is None:
            raise SignatureError(BadPayload.SIGNATURE_MISSING, "no signature but a key is set")
        ts = payload.get("ts")
        if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts):
            raise SignatureError(BadPayload.SIGNATURE_BAD, "signed payload without a valid 'ts'")
        if not isinstance(sig, str):
            raise SignatureError(BadPayload.SIGNATURE_BAD, "the signature is not a string")
        # The payload comes from ``intake.decode``, which refused any number JSON cannot
        # carry (NaN, infinities, beyond 2**53) before a signature is looked at.
        expected = signature(payload, self._key, self._agent_id, topic)
        if hmac.compare_digest(expected, sig):
            self.agent_format = FORMAT
            return float(ts)
        if hmac.compare_digest(signature(payload, self._key, None, None), sig):
            if not self._accept_legacy:
                raise SignatureError(
                    BadPayload.SIGNATURE_LEGACY,
                    "signed in format 1, which names neither the agent nor the topic"
                    " (enable legacy signatures for an agent older than 0.2)",
                )
            self.agent_format = 1
            return float(ts)
        raise SignatureError(
            BadPayload.SIGNATURE_BAD,
            f"signature does not match the shared key for agent {self._agent_id}, topic"
            f" {topic} (meant for another agent or topic, altered, or another key)",
        )

    def _forget_before(self, horizon: float) -> None:
        # Ids arrive roughly in ts order; forget from the old end while it is out of the window.
        while self._seen:
            oldest_id, oldest_ts = next(iter(self._seen.items()))
            if oldest_ts >= horizon:
                return
            del self._seen[oldest_id]
