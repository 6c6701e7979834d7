"""The integration's signature checks match the team's signing spec and the agent's code:
format 2 binds the agent and the topic; format 1 only when legacy signatures are enabled."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from custom_components.lan_guard.const import BadPayload
from custom_components.lan_guard.signing import (
    PayloadVerifier,
    SignatureError,
    canonical,
    sign,
    signature,
    signing_key,
)
from sensor_agent import signing as agent_signing

from .conftest import AGENT, EXAMPLE_KEY, EXAMPLES, make_event

KEY = signing_key(EXAMPLE_KEY)
NOW = 1_800_000_000.0


def agent_sign(payload: dict[str, Any], now: float = NOW, topic: str = "event") -> dict[str, Any]:
    return agent_signing.sign(payload, KEY, now, agent_id=AGENT, topic=topic)


def ha_sign(payload: dict[str, Any], now: float = NOW, topic: str = "event") -> dict[str, Any]:
    return sign(payload, KEY, now, AGENT, topic)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


def reason_of(verifier_call: Any) -> BadPayload:
    with pytest.raises(SignatureError) as err:
        verifier_call()
    return err.value.reason


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(st.text(max_size=10), json_values, max_size=6),
    st.text(min_size=1),
    st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True),
    st.sampled_from(["event", "state", "info", "hosts", "quarantine", "command/result"]),
)
def test_same_canonical_form_and_signature_as_the_agent(
    payload: dict[str, Any], key: str, agent_id: str, topic: str
) -> None:
    assert canonical(payload) == agent_signing.canonical(payload)
    raw_key = signing_key(key)
    assert signature(payload, raw_key, agent_id, topic) == agent_signing.signature(
        payload, raw_key, agent_id, topic
    )
    assert signature(payload, raw_key, None, None) == agent_signing.legacy_signature(
        payload, raw_key
    )


def test_the_contracts_signed_example_verifies() -> None:
    payload = json.loads((EXAMPLES / "event.syn_scan.signed.json").read_text(encoding="utf-8"))
    PayloadVerifier(KEY, AGENT).verify_fresh("event", payload, now=payload["ts"])


def test_a_payload_signed_by_the_agent_survives_the_wire() -> None:
    over_the_wire = json.loads(json.dumps(agent_sign(make_event())))
    PayloadVerifier(KEY, AGENT).verify_fresh("event", over_the_wire, now=NOW + 1)


def test_what_the_integration_signs_the_agent_accepts() -> None:
    verifier = PayloadVerifier(KEY, AGENT)
    command = {"id": "c1", "action": "release", "mac": "b8:27:eb:4c:21:9a"}
    signed = verifier.sign_command(command, NOW, "command")
    agent_signing.Verifier(KEY, agent_id=AGENT, topic="command").verify(signed, now=NOW)
    with pytest.raises(agent_signing.SignatureError, match="bad signature"):  # another agent
        agent_signing.Verifier(KEY, agent_id="pi-garage", topic="command").verify(signed, NOW)


def test_a_payload_signed_for_another_agent_or_topic_is_refused() -> None:
    """Agents may share the key: what one signed must not pass as another's."""
    verifier = PayloadVerifier(KEY, AGENT)
    event = make_event()
    other_agent = agent_signing.sign(event, KEY, NOW, agent_id="pi-garage", topic="event")
    assert reason_of(lambda: verifier.verify_fresh("event", other_agent, NOW)) is (
        BadPayload.SIGNATURE_BAD
    )
    with pytest.raises(SignatureError, match="for agent pi-livingroom, topic event"):
        verifier.verify_fresh("event", other_agent, NOW)
    as_state = agent_sign(event, topic="state")
    assert reason_of(lambda: verifier.verify_fresh("event", as_state, NOW)) is (
        BadPayload.SIGNATURE_BAD
    )


def test_format_1_is_accepted_only_with_legacy_signatures_and_then_commands_follow_it() -> None:
    old = sign(make_event(), KEY, NOW, None, None)
    strict = PayloadVerifier(KEY, AGENT)
    assert reason_of(lambda: strict.verify_fresh("event", old, NOW)) is (
        BadPayload.SIGNATURE_LEGACY
    )
    legacy = PayloadVerifier(KEY, AGENT, accept_legacy=True)
    legacy.verify_fresh("event", old, NOW)
    assert legacy.agent_format == 1
    command = legacy.sign_command({"id": "c1", "action": "release"}, NOW, "command")
    assert command["sig"] == signature(command, KEY, None, None)  # what an old agent checks
    legacy.verify_fresh("event", ha_sign(make_event()), NOW)  # the agent was upgraded
    assert legacy.agent_format == 2


def test_refusals_name_the_rule() -> None:
    verifier = PayloadVerifier(KEY, AGENT)
    result = {"id": "c1", "ok": True, "error": None}
    signed = ha_sign(result, topic="command/result")

    def check(payload: dict[str, Any], now: float = NOW) -> BadPayload:
        return reason_of(lambda: verifier.verify_live("command/result", payload, now))

    assert check(result) is BadPayload.SIGNATURE_MISSING
    assert check({**signed, "ok": False}) is BadPayload.SIGNATURE_BAD
    assert check(sign(result, signing_key("another key"), NOW, AGENT, "command/result")) is (
        BadPayload.SIGNATURE_BAD
    )
    assert check({k: v for k, v in signed.items() if k != "ts"}) is BadPayload.SIGNATURE_BAD
    assert check({**signed, "ts": True}) is BadPayload.SIGNATURE_BAD
    assert check({**signed, "sig": 7}) is BadPayload.SIGNATURE_BAD
    assert check(signed, NOW + 301) is BadPayload.STALE
    assert check(signed, NOW - 301) is BadPayload.STALE
    verifier.verify_live("command/result", signed, NOW + 300)
    assert check(signed, NOW + 300) is BadPayload.REPLAYED


def test_events_are_checked_for_freshness_but_left_to_their_seq_for_duplicates() -> None:
    """An event the agent publishes again on request keeps its id (signed afresh)."""
    verifier = PayloadVerifier(KEY, AGENT)
    event = make_event()
    verifier.verify_fresh("event", agent_sign(event), NOW)
    verifier.verify_fresh("event", agent_sign(event, NOW + 60), NOW + 60)
    assert reason_of(lambda: verifier.verify_fresh("event", agent_sign(event), NOW + 301)) is (
        BadPayload.STALE
    )


def test_ids_are_forgotten_after_the_window_and_memory_stays_bounded() -> None:
    verifier = PayloadVerifier(KEY, AGENT, max_ids=3)

    def result(at: float) -> dict[str, Any]:
        return ha_sign({"id": uuid.uuid4().hex, "ok": True, "error": None}, at, "command/result")

    for second in range(3):
        verifier.verify_live("command/result", result(NOW + second), NOW + second)
    assert verifier.remembered_ids == 3
    # A fourth evicts the oldest; anything signed at or before it is then refused.
    verifier.verify_live("command/result", result(NOW + 3), NOW + 3)
    assert verifier.remembered_ids == 3
    late = result(NOW)
    assert reason_of(lambda: verifier.verify_live("command/result", late, NOW + 4)) is (
        BadPayload.REPLAYED
    )
    # Out of the freshness window, ids are forgotten.
    verifier.verify_live("command/result", result(NOW + 1000), NOW + 1000)
    assert verifier.remembered_ids == 1


def test_retained_payloads_may_be_old_but_never_older_than_the_last() -> None:
    verifier = PayloadVerifier(KEY, AGENT)
    state = json.loads((EXAMPLES / "state.json").read_text(encoding="utf-8"))
    first = ha_sign(state, NOW - 86_400, "state")  # a day old: fine for a retained message
    verifier.verify_retained("state", first)
    newer = ha_sign(state, NOW, "state")
    verifier.verify_retained("state", newer)
    assert reason_of(lambda: verifier.verify_retained("state", first)) is BadPayload.REPLAYED
    as_hosts = ha_sign(state, NOW - 86_400, "hosts")
    verifier.verify_retained("hosts", as_hosts)  # each topic has its own mark
    assert reason_of(lambda: verifier.verify_retained("hosts", first)) is (
        BadPayload.SIGNATURE_BAD  # signed for the state topic
    )
    assert reason_of(lambda: verifier.verify_retained("state", state)) is (
        BadPayload.SIGNATURE_MISSING
    )
