"""What reaches the owner: which events become questions, and which notifications make a sound.

Pure decisions with the state they need (no Home Assistant): the classifier asks through
:class:`QuestionPolicy`, the notification code pushes through :class:`PushPolicy` and, when the
owner wants one, :class:`DailyDigest`; ``benchmarks/classifier_eval.py`` runs the very same
classes to count questions and pushes per home-day.

Questions (active learning). An owner answers a few questions a day at most, so the model asks
about the events whose answer teaches it most: those it is least sure of (uncertainty
sampling). An event judged normal but with a probability in ``[ask_from, alarm_from)`` (the
alarms are notified with the buttons anyway) is asked about while today's budget lasts
(``per_day``, default 3), once per source and shape within ``repeat_after_s``; a question
nobody answers expires quietly after ``ttl_s``.

Pushes (one notification per incident, updated in place). An incident pushes once, when it is
first judged alarm or asked about; once more each time it escalates to a level above the
highest it pushed at while judged alarm; every other event of a pushed incident updates the
notification silently (same tag, no sound); an incident never judged alarm nor asked about
stays in the log (and in the optional daily digest).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, NamedTuple

DEFAULT_QUESTIONS_PER_DAY: Final = 3
# Chosen with the alarm cut-off on the development homes of benchmarks/classifier_eval.py
# (``--tune``): the question band is [0.1, 0.2).
DEFAULT_ASK_FROM: Final = 0.1
QUESTION_TTL_S: Final = 86400.0  # a day: then the question expires quietly
REPEAT_AFTER_S: Final = 7 * 86400.0  # the same source and shape is asked about once a week
_MAX_ASKED: Final = 1024
_MAX_OPEN: Final = 256
_MAX_INCIDENTS: Final = 1024

PushAction = Literal["push", "update", "none"]
PushReason = Literal["alarm", "question", "escalation", "update", "quiet"]


@dataclass
class QuestionPolicy:
    """Uncertainty sampling within a daily budget (see the module docstring)."""

    per_day: int = DEFAULT_QUESTIONS_PER_DAY
    ask_from: float = DEFAULT_ASK_FROM
    ttl_s: float = QUESTION_TTL_S
    repeat_after_s: float = REPEAT_AFTER_S
    day: int = -1  # the owner's local day (ordinal) the count is for
    asked_today: int = 0
    # (source, shape) -> when it was last asked about; open question event id -> asked at
    asked: OrderedDict[str, float] = field(default_factory=OrderedDict)
    open: OrderedDict[str, float] = field(default_factory=OrderedDict)

    def consider(
        self,
        event_id: str,
        key: str,
        *,
        probability: float,
        alarm_from: float,
        when: float,
        day: int,
    ) -> bool:
        """Whether to ask the owner about an event the model judged ``probability`` (below
        ``alarm_from``) at ``when`` (unix seconds) on local ``day``; remembers a question."""
        if day != self.day:
            self.day, self.asked_today = day, 0
        if not self.ask_from <= probability < alarm_from or self.asked_today >= self.per_day:
            return False
        last = self.asked.get(key)
        if last is not None and when - last < self.repeat_after_s:
            return False
        self.asked_today += 1
        self.asked[key] = when
        self.asked.move_to_end(key)
        self.open[event_id] = when
        for table, limit in ((self.asked, _MAX_ASKED), (self.open, _MAX_OPEN)):
            while len(table) > limit:
                table.popitem(last=False)
        return True

    def answered(self, event_id: str) -> None:
        """The owner answered the question about ``event_id`` (or any label came for it)."""
        self.open.pop(event_id, None)

    def expire(self, now: float) -> list[str]:
        """Questions unanswered for ``ttl_s``: forgotten, their event ids returned (the
        notification code withdraws them quietly)."""
        gone = [event_id for event_id, asked in self.open.items() if now - asked >= self.ttl_s]
        for event_id in gone:
            del self.open[event_id]
        return gone

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe state."""
        return {
            "per_day": self.per_day,
            "ask_from": self.ask_from,
            "day": self.day,
            "asked_today": self.asked_today,
            "asked": dict(self.asked),
            "open": dict(self.open),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], **settings: Any) -> QuestionPolicy:
        """Restore the state; ``settings`` (per_day, ask_from, ...) win over stored ones, so an
        option changed by the owner applies at once. Raises KeyError/TypeError/ValueError."""
        policy = cls(**settings)
        policy.day, policy.asked_today = int(data["day"]), int(data["asked_today"])
        policy.asked = OrderedDict((str(k), float(v)) for k, v in data["asked"].items())
        policy.open = OrderedDict((str(k), float(v)) for k, v in data["open"].items())
        return policy


class Push(NamedTuple):
    """What the notification code does with one event of an incident."""

    action: PushAction  # push: notify with sound; update: replace silently; none: log only
    reason: PushReason
    incident_id: str
    level: int  # the incident level it is about


@dataclass
class _Incident:
    pushed_level: int = 0  # the highest level it pushed at (0: never pushed)
    last: float = 0.0


class PushPolicy:
    """One push per incident, one more per escalated level, silent updates in between."""

    def __init__(self, max_incidents: int = _MAX_INCIDENTS) -> None:
        self.max_incidents = max_incidents
        self._incidents: OrderedDict[str, _Incident] = OrderedDict()

    def decide(self, incident_id: str, verdict: str, level: int, when: float) -> Push:
        """The decision for an event of ``incident_id`` judged ``verdict`` at ``level``."""
        incident = self._incidents.get(incident_id)
        if incident is None:
            incident = self._incidents[incident_id] = _Incident()
            while len(self._incidents) > self.max_incidents:
                self._incidents.popitem(last=False)
        self._incidents.move_to_end(incident_id)
        incident.last = when
        flagged = verdict in ("alarm", "unsure")
        if not incident.pushed_level:
            if not flagged:
                return Push("none", "quiet", incident_id, level)
            incident.pushed_level = max(level, 1)
            reason: PushReason = "alarm" if verdict == "alarm" else "question"
            return Push("push", reason, incident_id, level)
        if verdict == "alarm" and level > incident.pushed_level:
            incident.pushed_level = level
            return Push("push", "escalation", incident_id, level)
        return Push("update", "update", incident_id, level)

    def withdraw(self, incident_id: str) -> None:
        """The incident's notification is gone (a question expired): it pushes afresh when it
        is next judged alarm or asked about."""
        if (incident := self._incidents.get(incident_id)) is not None:
            incident.pushed_level = 0

    def pushed(self, incident_id: str) -> bool:
        """Whether the incident has pushed (its notification exists)."""
        incident = self._incidents.get(incident_id)
        return incident is not None and incident.pushed_level > 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe state."""
        return {
            "incidents": {
                incident_id: [incident.pushed_level, incident.last]
                for incident_id, incident in self._incidents.items()
            }
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PushPolicy:
        """Restore the state (raises KeyError/TypeError/ValueError on a malformed one)."""
        policy = cls()
        for incident_id, (level, last) in data["incidents"].items():
            policy._incidents[str(incident_id)] = _Incident(int(level), float(last))
        while len(policy._incidents) > policy.max_incidents:
            policy._incidents.popitem(last=False)
        return policy


def describe_push(texts: Mapping[str, str], push: Push, kind: str) -> str:
    """The first line of a notification for a push decision, from the translations' ``common``
    texts (``push_<reason>`` with ``{kind}`` and ``{level}``), e.g. "Escalated to level 3"."""
    return texts[f"push_{push.reason}"].format(kind=kind, level=push.level)


@dataclass
class DailyDigest:
    """An optional daily summary of what was judged normal (at most one notification a day,
    after ``hour`` local time, only when there was something)."""

    enabled: bool = False
    hour: int = 20
    day: int = -1  # the local day being counted
    counts: dict[str, int] = field(default_factory=dict)  # kind -> normal events today
    sources: set[str] = field(default_factory=set)
    sent_day: int = -1

    def add(self, kind: str, mac: str, day: int) -> None:
        """Count a normal event of ``kind`` from ``mac`` on local ``day``."""
        if not self.enabled:
            return
        if day != self.day:
            self.day, self.counts, self.sources = day, {}, set()
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if len(self.sources) < 4096:
            self.sources.add(mac)

    def due(self, day: int, hour: int) -> dict[str, Any] | None:
        """Today's summary, once, from ``hour`` on (local): events by kind, sources."""
        if not self.enabled or day != self.day or hour < self.hour or self.sent_day == day:
            return None
        if not self.counts:
            return None
        self.sent_day = day
        return {"events": dict(sorted(self.counts.items())), "sources": len(self.sources)}
