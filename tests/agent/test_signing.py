"""Signing: canonical form, format 2 (bound to agent and topic), format 1 only when asked,
HMAC round trip, tampering, freshness, replay guard."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensor_agent import signing
from sensor_agent.signing import (
    MAX_SKEW_S,
    ReplayGuard,
    SignatureError,
    Verifier,
    canonical,
    legacy_signature,
    message,
    signature,
)

KEY = b"a-shared-key-of-some-length"
NOW = 1_800_000_000.0
AGENT, TOPIC = "pi-livingroom", "event"


def sign(data: dict[str, Any], key: bytes, now: float) -> dict[str, Any]:
    return signing.sign(data, key, now, agent_id=AGENT, topic=TOPIC)


def verify(data: dict[str, Any], key: bytes, now: float, **options: Any) -> int:
    return signing.verify(data, key, now, agent_id=AGENT, topic=TOPIC, **options)


def payload(**extra: Any) -> dict[str, Any]:
    return {"id": "0123456789abcdef0123456789abcdef", "kind": "arp_scan", "level": 1, **extra}


def test_canonical_form_is_sorted_compact_utf8_without_sig() -> None:
    data = {"b": 1, "a": "héllo", "sig": "ignored", "n": [1, {"z": 0, "y": None}]}
    assert canonical(data) == '{"a":"héllo","b":1,"n":[1,{"y":null,"z":0}]}'.encode()


def test_signature_matches_an_independent_hmac_of_the_documented_format_2() -> None:
    signed = sign(payload(), KEY, NOW)
    body = {k: v for k, v in signed.items() if k != "sig"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    signed_bytes = f"lan-guard/2\n{AGENT}\n{TOPIC}\n{text}".encode()
    assert signed["sig"] == hmac.new(KEY, signed_bytes, hashlib.sha256).hexdigest()
    assert message(signed, AGENT, TOPIC) == signed_bytes
    assert signed["ts"] == NOW


@pytest.mark.parametrize(
    ("agent_id", "topic"),
    [("pi-garage", TOPIC), (AGENT, "state"), (AGENT, "command"), (AGENT, "command/result")],
)
def test_a_payload_signed_for_one_agent_or_topic_fails_on_any_other(
    agent_id: str, topic: str
) -> None:
    signed = sign(payload(), KEY, NOW)
    with pytest.raises(SignatureError, match=f"bad signature: not signed .* {agent_id!r}"):
        signing.verify(signed, KEY, NOW, agent_id=agent_id, topic=topic)


def test_the_topic_prefix_is_not_covered_so_a_bridge_may_rewrite_it() -> None:
    """What is signed names the agent and sub-topic only: ``lan_guard/pi/event`` and
    ``sites/42/lan_guard/pi/event`` carry the same signed bytes."""
    assert b"lan_guard" not in message(payload(), AGENT, TOPIC)


@pytest.mark.parametrize(("agent_id", "topic"), [("", TOPIC), (AGENT, ""), ("a\nb", TOPIC)])
def test_an_empty_or_multi_line_agent_or_topic_cannot_be_signed(agent_id: str, topic: str) -> None:
    with pytest.raises(ValueError, match="cannot be signed"):
        signing.sign(payload(), KEY, NOW, agent_id=agent_id, topic=topic)


def test_format_1_is_refused_unless_legacy_signatures_are_accepted() -> None:
    old = {**payload(), "ts": NOW}
    old["sig"] = legacy_signature(old, KEY)
    with pytest.raises(SignatureError, match="format 1, which names neither"):
        verify(old, KEY, NOW)
    assert verify(old, KEY, NOW, accept_legacy=True) == 1
    assert verify(sign(payload(), KEY, NOW), KEY, NOW, accept_legacy=True) == 2
    with pytest.raises(SignatureError, match="bad signature"):  # the legacy form, wrong key
        verify({**old, "sig": legacy_signature(old, b"other")}, KEY, NOW, accept_legacy=True)


def test_round_trip_through_json_verifies() -> None:
    wire = json.dumps(sign(payload(name="café ☕"), KEY, NOW))
    verify(json.loads(wire), KEY, NOW + 1)


def test_sign_replaces_an_old_ts_and_sig_and_leaves_the_input_alone() -> None:
    original = payload(ts=1.0, sig="0" * 64)
    signed = sign(original, KEY, NOW)
    assert signed["ts"] == NOW
    assert original["ts"] == 1.0
    verify(signed, KEY, NOW)


@pytest.mark.parametrize(
    "change",
    [
        lambda p: p.update(level=3),
        lambda p: p.update(extra="x"),
        lambda p: p.update(ts=p["ts"] + 1),
        lambda p: p.pop("kind"),
        lambda p: p.update(sig=p["sig"][:-1] + ("0" if p["sig"][-1] != "0" else "1")),
    ],
    ids=["value", "added-key", "ts", "removed-key", "sig"],
)
def test_tampering_is_detected(change: Any) -> None:
    signed = sign(payload(), KEY, NOW)
    change(signed)
    with pytest.raises(SignatureError, match="bad signature"):
        verify(signed, KEY, NOW)


def test_wrong_key_is_refused() -> None:
    with pytest.raises(SignatureError, match="bad signature"):
        verify(sign(payload(), b"another-key-entirely", NOW), KEY, NOW)


def test_missing_signature_is_refused() -> None:
    with pytest.raises(SignatureError, match="missing signature"):
        verify(payload(ts=NOW), KEY, NOW)


@pytest.mark.parametrize("ts", [None, "1800000000", True, float("nan")])
def test_missing_or_invalid_ts_is_refused(ts: Any) -> None:
    unsigned = payload() if ts is None else payload(ts=ts)
    unsigned["sig"] = "0" * 64
    with pytest.raises(SignatureError, match="'ts'"):
        verify(unsigned, KEY, NOW)


def test_non_string_sig_is_refused() -> None:
    with pytest.raises(SignatureError, match="not a string"):
        verify(payload(ts=NOW, sig=123), KEY, NOW)


@pytest.mark.parametrize("skew", [MAX_SKEW_S + 1, -(MAX_SKEW_S + 1)])
def test_stale_or_future_timestamp_is_refused(skew: float) -> None:
    signed = sign(payload(), KEY, NOW)
    with pytest.raises(SignatureError, match="stale timestamp"):
        verify(signed, KEY, NOW + skew)


@pytest.mark.parametrize("skew", [MAX_SKEW_S, -MAX_SKEW_S, 0.0])
def test_timestamp_at_the_limit_is_accepted(skew: float) -> None:
    verify(sign(payload(), KEY, NOW), KEY, NOW + skew)


def test_verifier_refuses_a_replay_and_accepts_new_ids() -> None:
    verifier = Verifier(KEY, agent_id=AGENT, topic=TOPIC)
    first = sign(payload(), KEY, NOW)
    verifier.verify(first, NOW)
    with pytest.raises(SignatureError, match="replayed id"):
        verifier.verify(first, NOW + 10)
    verifier.verify(sign(payload(id="another"), KEY, NOW), NOW + 10)


def test_verifier_refuses_a_payload_without_id() -> None:
    unsigned = payload()
    del unsigned["id"]
    with pytest.raises(SignatureError, match="missing 'id'"):
        Verifier(KEY, agent_id=AGENT, topic=TOPIC).verify(sign(unsigned, KEY, NOW), NOW)


def test_replay_guard_forgets_ids_older_than_the_window() -> None:
    guard = ReplayGuard(window_s=300)
    guard.check("a", NOW, NOW)
    assert len(guard) == 1
    guard.check("b", NOW + 301, NOW + 301)
    assert len(guard) == 1  # "a" expired: the freshness check refuses it anyway


def test_replay_guard_memory_is_capped_and_eviction_never_admits_a_replay() -> None:
    guard = ReplayGuard(window_s=300, max_ids=3)
    for i in range(5):
        guard.check(f"id{i}", NOW + i, NOW + i)
    assert len(guard) == 3
    # id0 and id1 were evicted, but their replays are still refused by the low-water mark.
    for evicted in ("id0", "id1"):
        with pytest.raises(SignatureError, match="replay guard is full"):
            guard.check(evicted, NOW + int(evicted[-1]), NOW + 5)
    with pytest.raises(SignatureError, match="replayed"):
        guard.check("id4", NOW + 4, NOW + 5)
    guard.check("id5", NOW + 5, NOW + 5)  # newer payloads still pass


def test_replay_guard_rejects_zero_capacity() -> None:
    with pytest.raises(ValueError, match="max_ids"):
        ReplayGuard(max_ids=0)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@settings(deadline=None)  # CPU-bound and tiny: a loaded CI machine must not make it flaky
@given(st.dictionaries(st.text(), json_values, max_size=8), st.binary(min_size=1, max_size=64))
def test_any_json_payload_round_trips_through_the_wire(data: dict[str, Any], key: bytes) -> None:
    signed = sign(data, key, NOW)
    verify(json.loads(json.dumps(signed, ensure_ascii=False)), key, NOW)
    assert signed["sig"] == signature(signed, key, AGENT, TOPIC)
