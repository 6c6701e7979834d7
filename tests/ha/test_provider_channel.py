"""The site channel's decisions, pure: consent, requests, answers, the PSOC's view of an
evacuation, and every payload the integration publishes checked against ``schema/site/``."""

from __future__ import annotations

from typing import Any

import pytest

from custom_components.lan_guard.const import CONF_PROVIDER_MAY_EVACUATE, CONF_PROVIDER_MAY_SEE
from custom_components.lan_guard.evacuation.record import Culprit, Phase, Reason, Record
from custom_components.lan_guard.provider import channel
from custom_components.lan_guard.provider.channel import (
    Consent,
    Decision,
    Do,
    Evacuation,
    Tell,
    answer,
    decide,
    evacuation_of,
)
from tests.contract import site_errors

AGENT = "pi-livingroom"
EVENT_ID = "1b5f7c2a3d4e5f6071829304a5b6c7d8"
SIGNED = {"ts": 1795640420.5, "sig": "0" * 64}  # the schemas want them; the link adds them
BOTH = Consent(may_see=True, may_evacuate=True)
SEE = Consent(may_see=True)
PROVIDERS = Evacuation(True, "provider", "scan", (("b8:27:eb:4c:21:9a", "192.168.1.23"),))


def request(action: str = "start_evacuation") -> dict[str, Any]:
    return {"action": action, "culprit": {"mac": "b8:27:eb:4c:21:9a", "ip": None}}


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, Consent(False, False)),
        ({CONF_PROVIDER_MAY_SEE: True}, Consent(True, False)),
        ({CONF_PROVIDER_MAY_SEE: True, CONF_PROVIDER_MAY_EVACUATE: True}, Consent(True, True)),
        # evacuating without seeing cannot be stored through the form; read as neither
        ({CONF_PROVIDER_MAY_EVACUATE: True}, Consent(False, False)),
    ],
)
def test_consent_from_the_options(options: dict[str, Any], expected: Consent) -> None:
    assert Consent.from_options(options) == expected


@pytest.mark.parametrize(
    ("action", "consent", "now", "expected"),
    [
        ("start_evacuation", BOTH, Evacuation(), Decision(Do.START, Tell.STARTED)),
        ("start_evacuation", BOTH, PROVIDERS, Decision(Do.START, Tell.STARTED)),  # one more host
        (
            "start_evacuation",
            SEE,
            Evacuation(),
            Decision(
                Do.NOTHING, Tell.ASKED, "refused", f"{channel.NOT_ALLOWED}; the owner was asked"
            ),
        ),
        ("stop_evacuation", BOTH, PROVIDERS, Decision(Do.STOP, Tell.STOPPED)),
        ("stop_evacuation", SEE, Evacuation(), Decision(Do.NOTHING, Tell.NOTHING, "stopped")),
        (
            "stop_evacuation",
            SEE,
            PROVIDERS,
            Decision(
                Do.NOTHING,
                Tell.ASKED_STOP,
                "refused",
                f"{channel.NOT_ALLOWED}; the owner was asked",
            ),
        ),
        (
            "stop_evacuation",
            BOTH,
            Evacuation(True, "owner"),
            Decision(
                Do.NOTHING, Tell.ASKED_STOP, "refused", f"{channel.NOT_THEIRS}; the owner was asked"
            ),
        ),
        (
            "stop_evacuation",
            BOTH,
            Evacuation(True, "policy"),
            Decision(
                Do.NOTHING, Tell.ASKED_STOP, "refused", f"{channel.NOT_THEIRS}; the owner was asked"
            ),
        ),
    ],
)
def test_what_a_request_does(
    action: str, consent: Consent, now: Evacuation, expected: Decision
) -> None:
    assert decide(request(action), consent, now) == expected


@pytest.mark.parametrize(
    ("decision", "active_after", "expected"),
    [
        (Decision(Do.START, Tell.STARTED), True, (True, "started", None)),
        (
            Decision(Do.START, Tell.STARTED),
            False,
            (False, "failed", "evacuation mode did not start"),
        ),
        (Decision(Do.STOP, Tell.STOPPED), False, (True, "stopped", None)),
        (Decision(Do.STOP, Tell.STOPPED), True, (False, "failed", "evacuation mode did not end")),
        (Decision(Do.NOTHING, Tell.NOTHING, "stopped"), False, (True, "stopped", None)),
        (Decision(Do.NOTHING, Tell.ASKED, "refused", "no"), False, (False, "refused", "no")),
    ],
)
def test_the_answer_once_done(
    decision: Decision, active_after: bool, expected: tuple[bool, str, str | None]
) -> None:
    assert answer(decision, active_after) == expected


def test_the_psocs_view_of_an_evacuation() -> None:
    culprit = Culprit("b8:27:eb:4c:21:9a", "192.168.1.23")
    event = {"kind": "syn_scan", "level": 3}
    active = Record(Phase.ACTIVE, Reason.PROVIDER, "t", None, {culprit.mac: culprit})
    assert evacuation_of(Record(), "why") == Evacuation()
    assert evacuation_of(active, "ransomware <b>") == Evacuation(
        True, "provider", "ransomware <b>", ((culprit.mac, culprit.ip),)
    )
    assert evacuation_of(active, None).reason == "requested by the provider"  # after a restart
    by_policy = evacuation_of(Record(Phase.ACTIVE, Reason.EVENT, "t", event), None)
    assert (by_policy.started_by, by_policy.reason) == (
        "policy",
        "the owner's policy: an event at or above its level (syn_scan, level 3)",
    )
    by_hand = evacuation_of(Record(Phase.CULPRIT_LEFT, Reason.MANUAL, "t"), None)
    assert (by_hand.active, by_hand.started_by, by_hand.reason) == (
        True,
        "owner",
        "started by the owner",
    )
    unknown = evacuation_of(Record(Phase.ACTIVE, None, "t"), None)
    assert (unknown.started_by, unknown.reason) == (None, None)
    many = {f"b8:27:eb:00:00:{n:02x}": Culprit(f"b8:27:eb:00:00:{n:02x}", None) for n in range(70)}
    assert (
        len(evacuation_of(Record(Phase.ACTIVE, Reason.LABEL, "t", culprits=many), None).culprits)
        == 64
    )
    assert len(evacuation_of(active, "x" * 600).reason or "") == 512


@pytest.mark.parametrize(
    ("assessment", "verdict", "probability", "decided_by"),
    [
        ({"verdict": "alarm", "probability": 0.97, "source": "model"}, "alarm", 0.97, "model"),
        ({"verdict": "unsure", "probability": 0.5, "source": "prior"}, "unsure", 0.5, "level_rule"),
        ({"verdict": "normal", "probability": 1.5, "source": "model"}, "normal", None, "model"),
        ({"verdict": "normal", "probability": True}, "normal", None, "level_rule"),
    ],
)
def test_verdicts(
    assessment: dict[str, Any], verdict: str, probability: float | None, decided_by: str
) -> None:
    payload = channel.verdict_payload(AGENT, "v1", EVENT_ID, assessment)
    assert payload is not None
    assert (payload["verdict"], payload["probability"], payload["decided_by"]) == (
        verdict,
        probability,
        decided_by,
    )
    assert site_errors("verdict", {**payload, **SIGNED}) == []
    assert channel.verdict_payload(AGENT, "v1", EVENT_ID, {"verdict": "maybe"}) is None


def test_every_published_payload_follows_the_contract() -> None:
    at = "2026-11-25T21:00:00.000Z"
    culprits = (("b8:27:eb:4c:21:9a", "192.168.1.23"), ("b8:27:eb:4c:21:9b", None))
    payloads = {
        "consent": channel.consent_payload(AGENT, BOTH, at),
        "evacuation": channel.evacuation_payload(
            AGENT, Evacuation(True, "owner", "r", culprits), at
        ),
        "label": channel.label_payload(AGENT, "l1", EVENT_ID, "alarm", at),
        "ack": channel.ack_payload(AGENT, "a1", at),
        "request_result": channel.result_payload(AGENT, "r1", False, "refused", "x" * 600),
    }
    for name, payload in payloads.items():
        assert site_errors(name, {**payload, **SIGNED}) == [], name
    assert (
        site_errors("evacuation", {**channel.evacuation_payload(AGENT, Evacuation(), at), **SIGNED})
        == []
    )
    assert channel.result_payload(AGENT, "r1", True, "started", None)["error"] is None
    assert channel.culprit_host({"culprit": None}) is None
    assert channel.culprit_host(request()) == ("b8:27:eb:4c:21:9a", None)
