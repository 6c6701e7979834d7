"""The evacuation record: what is isolated and why, as stored (HA storage) between steps.

Pure data (no Home Assistant): the state machine reads and returns records; the runner
writes them to storage before it acts (write-ahead).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

# States that mean "not on": nothing to turn off, nothing to turn back on.
OFF_STATES = frozenset({"off", "unavailable", "unknown"})
# Quarantine refusals that the next event of the same culprit would meet again.
FINAL_REASONS = frozenset({"no_backend", "no_enforcer", "no_mapped_entity", "entity_missing"})


class Phase(StrEnum):
    """Where an evacuation stands."""

    IDLE = "idle"
    ACTIVE = "active"
    CULPRIT_LEFT = "culprit_left"  # every culprit left; waiting for the owner to confirm


class Reason(StrEnum):
    """Why evacuation started or ended (``common.evac_reason_<reason>``)."""

    EVENT = "event"
    VERDICT = "verdict"
    LABEL = "label"
    MANUAL = "manual"
    CULPRIT_LEFT = "culprit_left"
    OWNER = "owner"
    FALSE_ALARM = "false_alarm"
    REMOVED = "removed"  # the agent's entry was deleted or disabled
    PROVIDER = "provider"  # the owner's provider asked, with the owner's consent


_REASONS = frozenset(reason.value for reason in Reason)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a backend did: ``reason`` names why not (``common.quarantine_<reason>``)."""

    ok: bool
    reason: str | None = None
    detail: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (storage, entity attributes)."""
        return {"ok": self.ok, "reason": self.reason, "detail": self.detail}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Outcome:
        """Inverse of ``as_dict``."""
        return cls(bool(data["ok"]), data.get("reason"), data.get("detail"))

    @property
    def final(self) -> bool:
        """A refusal that retrying cannot change (protected host, nothing to use)."""
        reason = self.reason or ""
        return not self.ok and (reason.startswith("protected_") or reason in FINAL_REASONS)


@dataclass(frozen=True, slots=True)
class Host:
    """A host as the agent reports it."""

    mac: str
    ip: str | None = None
    vendor: str | None = None
    hostname: str | None = None

    @classmethod
    def from_source(cls, source: Mapping[str, Any]) -> Host:
        """From an event's ``source`` or a hosts inventory entry."""
        return cls(source["mac"], source.get("ip"), source.get("vendor"), source.get("hostname"))


@dataclass(frozen=True, slots=True)
class Culprit:
    """A host quarantined (or refused) during an evacuation."""

    mac: str
    ip: str | None
    vendor: str | None = None
    hostname: str | None = None
    since: str | None = None  # the event's first_seen (agent clock), to judge "left"
    quarantine: Outcome | None = None  # the last outcome
    in_force: bool = False
    left: bool = False
    # A quarantine that timed out (or whose publish failed) may be in force all the same.
    unsure: bool = False
    # The backend that was asked to quarantine it, so it is released by the same one even
    # if the options change in between.
    backend: str | None = None

    @classmethod
    def of(cls, host: Host, since: str | None) -> Culprit:
        """A new culprit."""
        return cls(host.mac, host.ip, host.vendor, host.hostname, since)

    @property
    def host(self) -> Host:
        """Its address and names."""
        return Host(self.mac, self.ip, self.vendor, self.hostname)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (storage, attributes)."""
        return {
            "mac": self.mac,
            "ip": self.ip,
            "vendor": self.vendor,
            "hostname": self.hostname,
            "since": self.since,
            "quarantine": self.quarantine.as_dict() if self.quarantine else None,
            "in_force": self.in_force,
            "left": self.left,
            "unsure": self.unsure,
            "backend": self.backend,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Culprit:
        """Inverse of ``as_dict`` (records of earlier versions lack ``unsure``/``backend``)."""
        quarantine = data.get("quarantine")
        return cls(
            mac=data["mac"],
            ip=data.get("ip"),
            vendor=data.get("vendor"),
            hostname=data.get("hostname"),
            since=data.get("since"),
            quarantine=Outcome.from_dict(quarantine) if quarantine else None,
            in_force=bool(data.get("in_force", False)),
            left=bool(data.get("left", False)),
            unsure=bool(data.get("unsure", False)),
            backend=data.get("backend"),
        )


@dataclass(frozen=True, slots=True)
class Snapshot:
    """An appliance's state as it was before evacuation touched it."""

    state: str
    attributes: Mapping[str, Any] = field(default_factory=dict)

    @property
    def on(self) -> bool:
        """Something to switch off, and later back on."""
        return self.state not in OFF_STATES


@dataclass(frozen=True, slots=True)
class Record:
    """The persisted record of the current evacuation (``phase`` idle: none)."""

    phase: Phase = Phase.IDLE
    reason: Reason | None = None
    started_at: str | None = None
    event: Mapping[str, Any] | None = None  # kind and level of the event that started it
    culprits: Mapping[str, Culprit] = field(default_factory=dict)
    appliances: Mapping[str, Snapshot] = field(default_factory=dict)
    hold: bool = False  # the owner said "keep isolated": no automatic restore

    @property
    def active(self) -> bool:
        """Evacuation mode is on (including "culprit left, waiting for the owner")."""
        return self.phase is not Phase.IDLE

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form kept in storage."""
        return {
            "phase": self.phase.value,
            "reason": self.reason.value if self.reason else None,
            "started_at": self.started_at,
            "event": dict(self.event) if self.event is not None else None,
            "culprits": [culprit.as_dict() for culprit in self.culprits.values()],
            "appliances": {
                entity_id: {"state": snap.state, "attributes": dict(snap.attributes)}
                for entity_id, snap in self.appliances.items()
            },
            "hold": self.hold,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Record:
        """Inverse of ``as_dict``."""
        culprits = [Culprit.from_dict(item) for item in data.get("culprits", [])]
        reason = data.get("reason")
        return cls(
            phase=Phase(data["phase"]),
            # Records written before the entry could outlive a reload said "unload".
            reason=Reason(reason) if reason in _REASONS else None,
            started_at=data.get("started_at"),
            event=data.get("event"),
            culprits={culprit.mac: culprit for culprit in culprits},
            appliances={
                entity_id: Snapshot(snap["state"], dict(snap.get("attributes", {})))
                for entity_id, snap in dict(data.get("appliances", {})).items()
            },
            hold=bool(data.get("hold", False)),
        )
