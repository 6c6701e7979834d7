"""The integration's view of an agent: events, incidents, hosts, and the hooks for verdicts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from .const import Kind, Label
from .payloads import parse_timestamp


class Verdict(StrEnum):
    """What a classifier thinks of an event."""

    NORMAL = "normal"
    ALARM = "alarm"
    UNSURE = "unsure"


@dataclass(slots=True)
class LanGuardEvent:
    """One accepted agent event, with what HA added to it (verdict, label)."""

    payload: dict[str, Any]
    received_at: datetime
    # The classifier's verdict, JSON-ready: {"verdict": Verdict, "probability": float, ...}.
    assessment: dict[str, Any] | None = None
    label: Label | None = None
    labelled_at: datetime | None = None

    @property
    def id(self) -> str:
        """The agent's event id (32 hex)."""
        return str(self.payload["id"])

    @property
    def incident_id(self) -> str:
        """The incident this event belongs to."""
        return str(self.payload["incident_id"])

    @property
    def kind(self) -> Kind:
        """What the agent saw."""
        return Kind(self.payload["kind"])

    @property
    def level(self) -> int:
        """Precursor level 0-3."""
        return int(self.payload["level"])

    @property
    def source(self) -> dict[str, Any]:
        """The culprit: mac, ip, vendor, hostname."""
        source: dict[str, Any] = self.payload["source"]
        return source

    @property
    def detected_at(self) -> datetime:
        """When the agent detected it (agent clock)."""
        return parse_timestamp(self.payload["detected_at"])

    @property
    def verdict(self) -> Verdict | None:
        """The classifier's verdict, if one ran."""
        return Verdict(self.assessment["verdict"]) if self.assessment else None

    @property
    def is_threat(self) -> bool:
        """False for information-only events (a host that left)."""
        # A string comparison: entities ask this of every stored event on each refresh.
        return bool(self.payload["kind"] != Kind.HOST_LEFT)

    def event_data(self) -> dict[str, Any]:
        """What automations see: event entity attributes and the ``lan_guard_event`` bus event."""
        assessment = self.assessment or {}
        return {
            "event_id": self.id,
            "incident_id": self.incident_id,
            "kind": self.kind.value,
            "level": self.level,
            "culprit": dict(self.source),
            "evidence": dict(self.payload["evidence"]),
            "first_seen": self.payload["first_seen"],
            "last_seen": self.payload["last_seen"],
            "detected_at": self.payload["detected_at"],
            "verdict": assessment.get("verdict"),
            "probability": assessment.get("probability"),
        }

    def as_record(self) -> dict[str, Any]:
        """JSON-ready form kept in storage (training data for the classifier)."""
        return {
            "event": self.payload,
            "received_at": self.received_at.isoformat(),
            "assessment": self.assessment,
            "label": self.label.value if self.label else None,
            "labelled_at": self.labelled_at.isoformat() if self.labelled_at else None,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> LanGuardEvent:
        """Inverse of ``as_record``."""
        labelled_at = record.get("labelled_at")
        label = record.get("label")
        return cls(
            payload=record["event"],
            received_at=datetime.fromisoformat(record["received_at"]),
            assessment=record.get("assessment"),
            label=Label(label) if label else None,
            labelled_at=datetime.fromisoformat(labelled_at) if labelled_at else None,
        )


@dataclass(slots=True)
class Incident:
    """One source's open episode, from its events and the agent's retained state."""

    incident_id: str
    level: int
    source: dict[str, Any]
    kinds: set[str] = field(default_factory=set)
    # Agent clock of the newest news about it, so an older state cannot close a newer event's.
    updated_at: datetime | None = None

    def summary(self) -> dict[str, Any]:
        """Short form for entity attributes."""
        return {
            "incident_id": self.incident_id,
            "level": self.level,
            "mac": self.source.get("mac"),
            "ip": self.source.get("ip"),
            "kinds": sorted(self.kinds),
        }


@dataclass(frozen=True, slots=True)
class IncidentView:
    """An incident as the owner is shown it (its notification, the last-culprit sensor)."""

    incident_id: str
    level: int  # the highest level reached
    kinds: tuple[str, ...]  # every kind seen, in the order first seen
    headline: LanGuardEvent  # the most telling event: the newest at the highest level
    events: int

    @classmethod
    def of(cls, events: Sequence[LanGuardEvent]) -> IncidentView | None:
        """From an incident's events, oldest first (None when none is a threat)."""
        threats = [event for event in events if event.is_threat]
        if not threats:
            return None
        level = max(event.level for event in threats)
        headline = [event for event in threats if event.level == level][-1]
        kinds = tuple(dict.fromkeys(event.kind.value for event in threats))
        return cls(headline.incident_id, level, kinds, headline, len(threats))


class EventClassifier(Protocol):
    """Gives each event a verdict before anyone sees it, and learns from labels."""

    def assess(self, event: LanGuardEvent) -> dict[str, Any]:
        """The verdict on a new event: ``{"verdict": "normal"|"alarm"|"unsure", ...}``."""

    async def async_learn(self, event: LanGuardEvent, label: Label) -> None:
        """Learn from the owner's label of ``event``."""
