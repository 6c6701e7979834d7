"""The site channel to the owner's provider, as pure decisions: no Home Assistant, no I/O.

The owner decides what their provider's operations center (PSOC) gets (``Consent``):

- ``may_see``: the integration publishes its consent, the evacuation state (who started it,
  why, the culprits' MAC and IP), the classifier's verdict on each event, the owner's labels
  and acknowledgements (``schema/site/``). Never the stored events, the model or its
  training data, nor anything about the owner's appliances.
- ``may_evacuate`` (needs ``may_see``): a signed ``start_evacuation`` request of an operator
  starts evacuation mode, ``stop_evacuation`` ends one the provider started. Without it, a
  request is refused, the PSOC is told so and the owner is asked instead.

``decide`` says what to do with one request (already verified: signature, freshness, id),
``answer`` what to tell the PSOC once it is done; the builders make the payloads the
integration signs and publishes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from ..const import CONF_PROVIDER_MAY_EVACUATE, CONF_PROVIDER_MAY_SEE
from ..evacuation.record import Reason, Record

SCHEMA_VERSION: Final = 1
MAX_CULPRITS: Final = 64  # site/evacuation's culprits (schema: maxItems)
MAX_TEXT: Final = 512  # site/evacuation's reason and a result's error (schema: maxLength)

NOT_ALLOWED: Final = "the owner has not allowed the provider to start evacuation mode"
NOT_THEIRS: Final = "evacuation mode was started at the site, not by the provider"
# What the PSOC reads (English, like every error of the contract); the owner reads the
# translated notification instead.
STARTERS: Final[Mapping[Reason, str]] = {
    Reason.PROVIDER: "provider",
    Reason.MANUAL: "owner",
    Reason.EVENT: "policy",
    Reason.VERDICT: "policy",
    Reason.LABEL: "policy",
}
_WHY: Final[Mapping[Reason, str]] = {
    Reason.MANUAL: "started by the owner",
    Reason.EVENT: "the owner's policy: an event at or above its level",
    Reason.VERDICT: "the owner's policy: the classifier's alarm verdict",
    Reason.LABEL: "the owner marked an event as an alarm",
}


@dataclass(frozen=True, slots=True)
class Consent:
    """What the owner allows their provider (both off by default)."""

    may_see: bool = False
    may_evacuate: bool = False

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Consent:
        """From the entry's options; evacuating needs seeing (the PSOC must see the result)."""
        may_see = bool(options.get(CONF_PROVIDER_MAY_SEE, False))
        return cls(may_see, may_see and bool(options.get(CONF_PROVIDER_MAY_EVACUATE, False)))


class Do(StrEnum):
    """What a request makes the integration do."""

    START = "start"
    STOP = "stop"
    NOTHING = "nothing"


class Tell(StrEnum):
    """What the owner is told (``common.provider_<tell>_title`` / ``_message``)."""

    STARTED = "started"
    STOPPED = "stopped"
    ASKED = "asked"  # the provider asks the owner to start evacuation mode
    ASKED_STOP = "asked_stop"  # the provider suggests the owner ends it
    FAILED = "failed"
    NOTHING = "nothing"


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with a request; ``outcome``/``error``: the answer when nothing is done."""

    do: Do
    tell: Tell
    outcome: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Evacuation:
    """The evacuation state as the PSOC sees it (``site/evacuation``)."""

    active: bool = False
    started_by: str | None = None
    reason: str | None = None
    culprits: tuple[tuple[str, str | None], ...] = ()


def decide(request: Mapping[str, Any], consent: Consent, evacuation: Evacuation) -> Decision:
    """What a verified request asks for, given the owner's consent and the evacuation now."""
    if request["action"] == "start_evacuation":
        if not consent.may_evacuate:
            return Decision(
                Do.NOTHING, Tell.ASKED, "refused", f"{NOT_ALLOWED}; the owner was asked"
            )
        return Decision(Do.START, Tell.STARTED)
    if not evacuation.active:
        # Nothing to end (it ended already, or never started): the PSOC's view is right.
        return Decision(Do.NOTHING, Tell.NOTHING, "stopped")
    if not consent.may_evacuate:
        return Decision(
            Do.NOTHING, Tell.ASKED_STOP, "refused", f"{NOT_ALLOWED}; the owner was asked"
        )
    if evacuation.started_by != "provider":
        # The owner (or their own policy) decided this one; the provider may only suggest.
        return Decision(
            Do.NOTHING, Tell.ASKED_STOP, "refused", f"{NOT_THEIRS}; the owner was asked"
        )
    return Decision(Do.STOP, Tell.STOPPED)


def answer(decision: Decision, active_after: bool) -> tuple[bool, str, str | None]:
    """``(ok, outcome, error)`` of ``site/request/result`` once the decision is carried out."""
    if decision.do is Do.START:
        if active_after:
            return True, "started", None
        return False, "failed", "evacuation mode did not start"
    if decision.do is Do.STOP:
        if not active_after:
            return True, "stopped", None
        return False, "failed", "evacuation mode did not end"
    outcome = decision.outcome or "failed"
    return outcome == "stopped", outcome, decision.error


def evacuation_of(record: Record, provider_reason: str | None) -> Evacuation:
    """The PSOC's view of an evacuation record; ``provider_reason``: the operator's words
    when the provider started it (kept by the caller; a restart forgets them)."""
    if not record.active:
        return Evacuation()
    reason = record.reason
    started_by = STARTERS.get(reason) if reason is not None else None
    if reason is Reason.PROVIDER:
        why: str | None = provider_reason or "requested by the provider"
    elif reason is not None and reason in _WHY:
        why = _WHY[reason]
        if record.event:
            why = f"{why} ({record.event.get('kind')}, level {record.event.get('level')})"
    else:
        why = None
    culprits = tuple((c.mac, c.ip) for c in record.culprits.values())[:MAX_CULPRITS]
    return Evacuation(True, started_by, why[:MAX_TEXT] if why else None, culprits)


# ----------------------------------------------------------------- payloads (unsigned)


def consent_payload(agent_id: str, consent: Consent, updated_at: str) -> dict[str, Any]:
    """``site/consent`` (retained)."""
    return {
        "schema": SCHEMA_VERSION,
        "agent_id": agent_id,
        "may_see": consent.may_see,
        "may_evacuate": consent.may_evacuate,
        "updated_at": updated_at,
    }


def evacuation_payload(agent_id: str, evacuation: Evacuation, updated_at: str) -> dict[str, Any]:
    """``site/evacuation`` (retained)."""
    return {
        "schema": SCHEMA_VERSION,
        "agent_id": agent_id,
        "active": evacuation.active,
        "started_by": evacuation.started_by,
        "reason": evacuation.reason,
        "culprits": [{"mac": mac, "ip": ip} for mac, ip in evacuation.culprits],
        "updated_at": updated_at,
    }


def verdict_payload(
    agent_id: str, payload_id: str, event_id: str, assessment: Mapping[str, Any]
) -> dict[str, Any] | None:
    """``site/verdict`` for an event's assessment (None when it has none the contract knows)."""
    verdict = assessment.get("verdict")
    if verdict not in ("normal", "unsure", "alarm"):
        return None
    probability = assessment.get("probability")
    if not _probability(probability):
        probability = None  # the contract's probability is 0..1 or null
    return {
        "schema": SCHEMA_VERSION,
        "id": payload_id,
        "agent_id": agent_id,
        "event_id": event_id,
        "verdict": verdict,
        "probability": probability,
        "decided_by": "model" if assessment.get("source") == "model" else "level_rule",
    }


def _probability(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1


def label_payload(
    agent_id: str, payload_id: str, event_id: str, label: str, labelled_at: str
) -> dict[str, Any]:
    """``site/label``: the owner's label on one event."""
    return {
        "schema": SCHEMA_VERSION,
        "id": payload_id,
        "agent_id": agent_id,
        "event_id": event_id,
        "label": label,
        "by": "owner",
        "labelled_at": labelled_at,
    }


def ack_payload(agent_id: str, payload_id: str, acknowledged_at: str) -> dict[str, Any]:
    """``site/ack``: the owner acknowledged the threat state."""
    return {
        "schema": SCHEMA_VERSION,
        "id": payload_id,
        "agent_id": agent_id,
        "acknowledged_at": acknowledged_at,
    }


def result_payload(
    agent_id: str, request_id: str, ok: bool, outcome: str, error: str | None
) -> dict[str, Any]:
    """``site/request/result``: the answer to the request ``request_id``."""
    return {
        "schema": SCHEMA_VERSION,
        "id": request_id,
        "agent_id": agent_id,
        "ok": ok,
        "outcome": outcome,
        "error": error[:MAX_TEXT] if error else None,
    }


def culprit_host(request: Mapping[str, Any]) -> tuple[str, str | None] | None:
    """The request's culprit as (MAC, IP), if it names one."""
    culprit = request.get("culprit")
    if not culprit:
        return None
    return str(culprit["mac"]), culprit.get("ip")
