"""The integration's signature checks match the team's signing spec and the agent's code."""

from __future__ import annotations

import json
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

from .conftest import EXAMPLE_KEY, EXAMPLES, make_event

KEY = signing_key(EXAMPLE_KEY)
NOW = 1_800_000_000.0

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
@given(st.dictionaries(st.text(max_size=10), json_values, max_size=6), st.text(min_size=1))
def test_same_canonical_form_and_signature_as_the_agent(payload: dict[str, Any], key: str) -> None:
    assert canonical(payload) == agent_signing.canonical(payload)
    raw_key = signing_key(key)
    assert signature(payload, raw_key) == agent_signing.signature(payload, raw_key)


def test_the_contracts_signed_example_verifies() -> None:
    payload = json.loads((EXAMPLES / "event.syn_scan.signed.json").read_text(encoding="utf-8"))
    PayloadVerifier(KEY).verify_live(payload, now=payload["ts"])


def test_a_payload_signed_by_the_agent_survives_the_wire() -> None:
    signed = agent_signing.sign(make_event(), KEY, NOW)
    over_the_wire = json.loads(json.dumps(signed))
    PayloadVerifier(KEY).verify_live(over_the_wire, now=NOW + 1)


def test_what_the_integration_signs_the_agent_accepts() -> None:
    command = sign({"id": "c1", "action": "release", "mac": "b8:27:eb:4c:21:9a"}, KEY, NOW)
    agent_signing.Verifier(KEY).verify(command, now=NOW)


def test_refusals_name_the_rule() -> None:
    verifier = PayloadVerifier(KEY)
    event = make_event()
    signed = sign(event, KEY, NOW)
    assert reason_of(lambda: verifier.verify_live(event, NOW)) is BadPayload.SIGNATURE_MISSING
    tampered = {**signed, "level": 3}
    assert reason_of(lambda: verifier.verify_live(tampered, NOW)) is BadPayload.SIGNATURE_BAD
    other_key = sign(event, signing_key("another key"), NOW)
    assert reason_of(lambda: verifier.verify_live(other_key, NOW)) is BadPayload.SIGNATURE_BAD
    no_ts = {k: v for k, v in signed.items() if k != "ts"}
    assert reason_of(lambda: verifier.verify_live(no_ts, NOW)) is BadPayload.SIGNATURE_BAD
    bool_ts = {**signed, "ts": True}
    assert reason_of(lambda: verifier.verify_live(bool_ts, NOW)) is BadPayload.SIGNATURE_BAD
    assert reason_of(lambda: verifier.verify_live(signed, NOW + 301)) is BadPayload.STALE
    assert reason_of(lambda: verifier.verify_live(signed, NOW - 301)) is BadPayload.STALE
    verifier.verify_live(signed, NOW + 300)
    assert reason_of(lambda: verifier.verify_live(signed, NOW + 300)) is BadPayload.REPLAYED


def test_ids_are_forgotten_after_the_window_and_memory_stays_bounded() -> None:
    verifier = PayloadVerifier(KEY, max_ids=3)
    for second in range(3):
        verifier.verify_live(sign(make_event(), KEY, NOW + second), NOW + second)
    assert verifier.remembered_ids == 3
    # A fourth evicts the oldest; anything signed at or before it is then refused.
    verifier.verify_live(sign(make_event(), KEY, NOW + 3), NOW + 3)
    assert verifier.remembered_ids == 3
    late = sign(make_event(), KEY, NOW)
    assert reason_of(lambda: verifier.verify_live(late, NOW + 4)) is BadPayload.REPLAYED
    # Out of the freshness window, ids are forgotten.
    verifier.verify_live(sign(make_event(), KEY, NOW + 1000), NOW + 1000)
    assert verifier.remembered_ids == 1


def test_retained_payloads_may_be_old_but_never_older_than_the_last() -> None:
    verifier = PayloadVerifier(KEY)
    state = json.loads((EXAMPLES / "state.json").read_text(encoding="utf-8"))
    first = sign(state, KEY, NOW - 86_400)  # a day old: fine for a retained message
    verifier.verify_retained("state", first)
    newer = sign(state, KEY, NOW)
    verifier.verify_retained("state", newer)
    assert reason_of(lambda: verifier.verify_retained("state", first)) is BadPayload.REPLAYED
    verifier.verify_retained("hosts", first)  # each topic has its own mark
    assert reason_of(lambda: verifier.verify_retained("state", state)) is (
        BadPayload.SIGNATURE_MISSING
    )
