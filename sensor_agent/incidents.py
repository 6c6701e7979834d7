"""Detections -> incidents -> events (``schema/event.schema.json``, unsigned).

One incident per source MAC groups everything that source did in one episode. An event is
sent when the source first crosses a level, and again at once when it escalates (a kind it
had not shown, or a higher level). Further evidence of the same kind is rate-limited: the
latest is held and sent when the interval has passed, so the final figures of a scan are
not lost. An incident closes after a quiet period.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .contract import SCHEMA_VERSION
from .detectors import Detection
from .formats import iso_utc

Identify = Callable[[bytes, bytes | None], dict[str, Any]]
"""(mac, ip or None) -> the ``source`` object of an event: mac, ip, vendor, hostname."""


def new_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class IncidentConfig:
    # 60 s between updates of one incident: a long scan produces one event per minute.
    update_interval_s: float = 60.0
    # 300 s quiet closes an incident; HA's nmap tracker sweeping every 120 s thus stays one
    # long-lived incident instead of a new one per sweep.
    close_after_s: float = 300.0
    # 1024 open incidents: beyond that the quietest is closed early (counted as eviction).
    max_open: int = 1024
    # Closed incidents remembered per MAC (for the ``host_left`` event of a culprit).
    remember_closed: int = 1024


class Incident:
    __slots__ = (
        "events",
        "first_seen",
        "incident_id",
        "ip",
        "kinds",
        "last_emit",
        "last_seen",
        "level",
        "mac",
        "pending",
    )

    def __init__(self, incident_id: str, det: Detection) -> None:
        self.incident_id = incident_id
        self.mac = det.mac
        self.ip = det.ip
        self.level = det.level
        self.kinds: dict[str, int] = {}  # kind -> highest level seen
        self.first_seen = det.first_seen
        self.last_seen = det.last_seen
        self.events = 0
        self.last_emit = 0.0
        self.pending: dict[str, Detection] = {}


class IncidentTracker:
    def __init__(
        self,
        agent_id: str,
        identify: Identify,
        config: IncidentConfig | None = None,
        id_factory: Callable[[], str] = new_id,
    ) -> None:
        self.agent_id = agent_id
        self.identify = identify
        self.config = config or IncidentConfig()
        self.new_id = id_factory
        self.open: dict[bytes, Incident] = {}
        self.closed: dict[bytes, str] = {}  # mac -> id of its last closed incident
        self.evictions = 0

    def on_detection(self, det: Detection, now: float) -> dict[str, Any] | None:
        """The event to send for ``det`` now, or ``None`` (held back by the rate limit)."""
        incident = self.open.get(det.mac)
        if incident is None:
            if len(self.open) >= self.config.max_open:
                quietest = min(self.open.values(), key=lambda i: i.last_seen)
                self._close(quietest)
                self.evictions += 1
            incident = Incident(self.new_id(), det)
            self.open[det.mac] = incident
        incident.last_seen = max(incident.last_seen, det.last_seen)
        incident.first_seen = min(incident.first_seen, det.first_seen)
        if det.ip is not None:
            incident.ip = det.ip
        known_level = incident.kinds.get(det.kind)
        if known_level is None or det.level > known_level:
            incident.kinds[det.kind] = det.level
            incident.level = max(incident.level, det.level)
            incident.pending.pop(det.kind, None)
            return self._emit(incident, det, now)
        if now - incident.last_emit >= self.config.update_interval_s:
            incident.pending.pop(det.kind, None)
            return self._emit(incident, det, now)
        incident.pending[det.kind] = det
        return None

    def tick(self, now: float) -> list[dict[str, Any]]:
        """Held-back updates that are due, and closing of quiet incidents."""
        events: list[dict[str, Any]] = []
        cfg = self.config
        for incident in list(self.open.values()):
            closing = now - incident.last_seen >= cfg.close_after_s
            if incident.pending and (closing or now - incident.last_emit >= cfg.update_interval_s):
                pending = list(incident.pending.values())
                incident.pending.clear()
                events.extend(self._emit(incident, det, now) for det in pending)
            if closing:
                self._close(incident)
        return events

    def flush(self, now: float) -> list[dict[str, Any]]:
        """Every held-back update, now (end of a replay)."""
        events: list[dict[str, Any]] = []
        for incident in self.open.values():
            pending = list(incident.pending.values())
            incident.pending.clear()
            events.extend(self._emit(incident, det, now) for det in pending)
        return events

    def __contains__(self, mac: object) -> bool:
        """Whether ``mac`` is, or recently was, the source of an incident (a culprit)."""
        return mac in self.open or mac in self.closed

    def incident_of(self, mac: bytes) -> str | None:
        """Id of the open, or else the last closed, incident of ``mac``."""
        incident = self.open.get(mac)
        return incident.incident_id if incident is not None else self.closed.get(mac)

    def level(self) -> int:
        return max((i.level for i in self.open.values()), default=0)

    def state_items(self) -> list[dict[str, Any]]:
        return [
            {
                "incident_id": i.incident_id,
                "source": self.identify(i.mac, i.ip),
                "level": i.level,
                "kinds": list(i.kinds),
                "first_seen": iso_utc(i.first_seen),
                "last_seen": iso_utc(i.last_seen),
                "events": max(i.events, 1),
            }
            for i in self.open.values()
        ]

    def host_left_event(
        self, mac: bytes, ip: bytes | None, now: float, silent_s: float
    ) -> dict[str, Any] | None:
        """A ``host_left`` event (level 0) for a culprit, or ``None`` if ``mac`` never was one."""
        incident_id = self.incident_of(mac)
        if incident_id is None:
            return None
        return self._event(
            incident_id,
            kind="host_left",
            level=0,
            source=self.identify(mac, ip),
            first_seen=now - silent_s,
            last_seen=now - silent_s,
            now=now,
            evidence={"silent_s": round(silent_s, 1)},
        )

    def _emit(self, incident: Incident, det: Detection, now: float) -> dict[str, Any]:
        incident.events += 1
        incident.last_emit = now
        return self._event(
            incident.incident_id,
            kind=det.kind,
            level=det.level,
            source=self.identify(det.mac, det.ip),
            first_seen=det.first_seen,
            last_seen=det.last_seen,
            now=now,
            evidence=det.evidence(),
        )

    def _event(
        self,
        incident_id: str,
        *,
        kind: str,
        level: int,
        source: dict[str, Any],
        first_seen: float,
        last_seen: float,
        now: float,
        evidence: dict[str, Any],
    ) -> dict[str, Any]:
        return {
            "schema": SCHEMA_VERSION,
            "id": self.new_id(),
            "incident_id": incident_id,
            "agent_id": self.agent_id,
            "kind": kind,
            "level": level,
            "source": source,
            "first_seen": iso_utc(first_seen),
            "last_seen": iso_utc(last_seen),
            "detected_at": iso_utc(now),
            "evidence": evidence,
        }

    def _close(self, incident: Incident) -> None:
        del self.open[incident.mac]
        closed = self.closed
        closed.pop(incident.mac, None)
        if len(closed) >= self.config.remember_closed:
            del closed[next(iter(closed))]
        closed[incident.mac] = incident.incident_id
