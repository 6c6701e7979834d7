"""The PSOC's tables (SQLAlchemy 2 declarative; the schema itself lives in the migrations).

Times are unix seconds (UTC) as floats: the same on SQLite and PostgreSQL, cheap to compare,
and the console renders them. Keys that come from the network (site ids, agent ids, event
and incident ids) are always qualified by the site they came from, so one site can neither
overwrite nor hide another site's rows.

Indexes follow the console's queries (see ``psoc.store``): the incident queue (open,
by level then age), a site's incidents, an incident's events and audit trail, the live feed's
tail (the events' integer key), and retention (``events.stored_at``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# BIGINT on PostgreSQL, INTEGER (the rowid alias, so it autoincrements) on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Site(Base):
    """A customer's home or office, bridged to the PSOC under ``sites/<site_id>/``."""

    __tablename__ = "sites"

    site_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    # The site's signing key (agents' mqtt.shared_key, the integration's key): HMAC needs
    # the secret itself, so it is stored; the database is as sensitive as the broker's files.
    key: Mapped[str] = mapped_column(String(128))
    mqtt_user: Mapped[str] = mapped_column(String(80), unique=True)
    created_at: Mapped[float] = mapped_column(Float)
    bridge_online: Mapped[bool | None] = mapped_column(Boolean, default=None)
    bridge_at: Mapped[float | None] = mapped_column(Float, default=None)
    # What the customer allows, and their evacuation state, as their Home Assistant says.
    may_see: Mapped[bool | None] = mapped_column(Boolean, default=None)
    may_evacuate: Mapped[bool | None] = mapped_column(Boolean, default=None)
    consent_ts: Mapped[float | None] = mapped_column(Float, default=None)
    evacuation: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    evacuation_ts: Mapped[float | None] = mapped_column(Float, default=None)


class Agent(Base):
    """One sensor agent at a site, with its retained payloads and sequence bookkeeping."""

    __tablename__ = "agents"

    site_id: Mapped[str] = mapped_column(
        ForeignKey("sites.site_id", ondelete="CASCADE"), primary_key=True
    )
    agent_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str | None] = mapped_column(String(16), default=None)
    status_at: Mapped[float | None] = mapped_column(Float, default=None)
    last_seen_at: Mapped[float | None] = mapped_column(Float, default=None)
    info: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    info_ts: Mapped[float | None] = mapped_column(Float, default=None)
    state: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    state_ts: Mapped[float | None] = mapped_column(Float, default=None)
    quarantine: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    quarantine_ts: Mapped[float | None] = mapped_column(Float, default=None)
    hosts_ts: Mapped[float | None] = mapped_column(Float, default=None)
    level: Mapped[int] = mapped_column(Integer, default=0)
    # Event sequence (when the agent sends one): every seq <= seq_done is stored or counted
    # lost; last_seq/oldest_seq are what the agent's state says it has. ``epoch`` names the
    # agent's event store: a new one numbers its events from 1 again.
    epoch: Mapped[str | None] = mapped_column(String(32), default=None)
    last_seq: Mapped[int | None] = mapped_column(BigInteger, default=None)
    oldest_seq: Mapped[int | None] = mapped_column(BigInteger, default=None)
    seq_done: Mapped[int] = mapped_column(BigInteger, default=0)
    seq_epoch_at: Mapped[float] = mapped_column(Float, default=0.0)
    gap_since: Mapped[float | None] = mapped_column(Float, default=None)
    replay_at: Mapped[float | None] = mapped_column(Float, default=None)
    replays: Mapped[int] = mapped_column(Integer, default=0)
    events_lost: Mapped[int] = mapped_column(BigInteger, default=0)


class Host(Base):
    """A device an agent has seen on the site's LAN (its retained ``hosts`` inventory)."""

    __tablename__ = "hosts"

    site_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    agent_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    mac: Mapped[str] = mapped_column(String(17), primary_key=True)
    ip: Mapped[str | None] = mapped_column(String(15), default=None)
    vendor: Mapped[str | None] = mapped_column(String(255), default=None)
    hostname: Mapped[str | None] = mapped_column(String(255), default=None)
    first_seen: Mapped[str | None] = mapped_column(String(40), default=None)
    last_seen: Mapped[str | None] = mapped_column(String(40), default=None)
    present: Mapped[bool] = mapped_column(Boolean, default=True)


class Incident(Base):
    """One culprit's episode at a site (the agent's ``incident_id``), and the SOC's handling."""

    __tablename__ = "incidents"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    site_id: Mapped[str] = mapped_column(String(64))
    incident_id: Mapped[str] = mapped_column(String(32))
    agent_id: Mapped[str] = mapped_column(String(64))
    mac: Mapped[str] = mapped_column(String(17))
    ip: Mapped[str | None] = mapped_column(String(15), default=None)
    vendor: Mapped[str | None] = mapped_column(String(255), default=None)
    hostname: Mapped[str | None] = mapped_column(String(255), default=None)
    level: Mapped[int] = mapped_column(Integer, default=0)
    kinds: Mapped[int] = mapped_column(Integer, default=0)  # bit mask, see psoc.store
    events: Mapped[int] = mapped_column(Integer, default=0)
    first_seen_at: Mapped[float] = mapped_column(Float)  # the culprit's first frame (agent)
    detected_at: Mapped[float] = mapped_column(Float)  # the agent's first event
    received_at: Mapped[float] = mapped_column(Float)  # stored at the PSOC
    last_seen_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16), default="open")  # open/acknowledged/closed
    assignee: Mapped[str | None] = mapped_column(String(80), default=None)
    verdict: Mapped[str | None] = mapped_column(String(16), default=None)
    probability: Mapped[float | None] = mapped_column(Float, default=None)
    operator_label: Mapped[str | None] = mapped_column(String(16), default=None)
    customer_label: Mapped[str | None] = mapped_column(String(16), default=None)
    customer_acked_at: Mapped[float | None] = mapped_column(Float, default=None)
    customer_notified_at: Mapped[float | None] = mapped_column(Float, default=None)
    responded_at: Mapped[float | None] = mapped_column(Float, default=None)
    isolation: Mapped[str | None] = mapped_column(String(24), default=None)
    restored_at: Mapped[float | None] = mapped_column(Float, default=None)
    closed_at: Mapped[float | None] = mapped_column(Float, default=None)

    __table_args__ = (
        UniqueConstraint("site_id", "incident_id", name="uq_incidents_site_incident"),
        Index("ix_incidents_queue", "status", "level", "received_at"),
        Index("ix_incidents_site", "site_id", "status"),
        Index("ix_incidents_culprit", "site_id", "mac"),
    )


class Event(Base):
    """One graded event as the agent published it (de-duplicated by site and event id)."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    site_id: Mapped[str] = mapped_column(String(64))
    event_id: Mapped[str] = mapped_column(String(32))
    agent_id: Mapped[str] = mapped_column(String(64))
    incident_id: Mapped[str] = mapped_column(String(32))
    seq: Mapped[int | None] = mapped_column(BigInteger, default=None)
    epoch: Mapped[str | None] = mapped_column(String(32), default=None)  # of ``seq``
    kind: Mapped[str] = mapped_column(String(16))
    level: Mapped[int] = mapped_column(Integer)
    mac: Mapped[str] = mapped_column(String(17))
    ip: Mapped[str | None] = mapped_column(String(15), default=None)
    vendor: Mapped[str | None] = mapped_column(String(255), default=None)
    hostname: Mapped[str | None] = mapped_column(String(255), default=None)
    first_seen_at: Mapped[float] = mapped_column(Float)
    last_seen_at: Mapped[float] = mapped_column(Float)
    detected_at: Mapped[float] = mapped_column(Float)
    stored_at: Mapped[float] = mapped_column(Float)
    signed: Mapped[bool] = mapped_column(Boolean, default=False)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON)
    verdict: Mapped[str | None] = mapped_column(String(16), default=None)
    probability: Mapped[float | None] = mapped_column(Float, default=None)
    customer_label: Mapped[str | None] = mapped_column(String(16), default=None)
    operator_label: Mapped[str | None] = mapped_column(String(16), default=None)

    __table_args__ = (
        UniqueConstraint("site_id", "event_id", name="uq_events_site_event"),
        Index("ix_events_incident", "site_id", "incident_id", "detected_at"),
        Index("ix_events_seq", "site_id", "agent_id", "seq"),
        Index("ix_events_stored", "stored_at"),
    )


class User(Base):
    """A console account: operators (viewer, responder, admin) or one site's customer."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    site_id: Mapped[str | None] = mapped_column(
        ForeignKey("sites.site_id", ondelete="CASCADE"), default=None
    )
    created_at: Mapped[float] = mapped_column(Float)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)


class Action(Base):
    """The audit log: who did what, when, to which site or incident, and with what result."""

    __tablename__ = "actions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[float] = mapped_column(Float)
    actor: Mapped[str] = mapped_column(String(80))  # a user name, "site:<id>" or "system"
    action: Mapped[str] = mapped_column(String(40))
    site_id: Mapped[str | None] = mapped_column(String(64), default=None)
    incident: Mapped[int | None] = mapped_column(BigInteger, default=None)
    detail: Mapped[str] = mapped_column(Text, default="")
    result: Mapped[str] = mapped_column(String(40), default="ok")
    request_id: Mapped[str | None] = mapped_column(String(64), default=None)
    result_at: Mapped[float | None] = mapped_column(Float, default=None)

    __table_args__ = (
        Index("ix_actions_incident", "incident", "at"),
        Index("ix_actions_at", "at"),
        Index("ix_actions_request", "request_id"),
    )


class Notification(Base):
    """A customer notification the SOC made (or was told of): who, when, how, what."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    site_id: Mapped[str] = mapped_column(String(64))
    incident: Mapped[int | None] = mapped_column(BigInteger, default=None)
    at: Mapped[float] = mapped_column(Float)
    by: Mapped[str] = mapped_column(String(80))
    channel: Mapped[str] = mapped_column(String(40))
    note: Mapped[str] = mapped_column(Text, default="")

    __table_args__ = (Index("ix_notifications_site", "site_id", "at"),)


class Counter(Base):
    """Counted words for what was refused or lost (per site and reason): never silent."""

    __tablename__ = "counters"

    site_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)
