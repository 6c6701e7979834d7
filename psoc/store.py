"""Every read and write of the PSOC's database, for the workers, the console and the CLI.

Writes from the workers are idempotent, so several workers (and a message delivered twice
after a worker died before acknowledging it) never store an event twice: events are
inserted with ``ON CONFLICT DO NOTHING`` on (site, event id), and only the rows actually
inserted count towards their incident (kinds as a bit mask merged with ``|``, levels with
the larger one, counts added, all in one upsert, so concurrent workers cannot lose an
update). Retained facts (state, info, consent, evacuation, ...) are newer-wins on their own
timestamp, so an old copy delivered late never overwrites a newer one. Rows are touched in
sorted key order, so two workers never deadlock on PostgreSQL.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Engine,
    Text,
    and_,
    bindparam,
    case,
    cast,
    column,
    delete,
    distinct,
    func,
    insert,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from psoc.db.models import Action, Agent, Counter, Event, Host, Incident, Notification, Site, User
from psoc.ingest import decode as d
from psoc.ingest import gaps
from sensor_agent import contract

# An incident's kinds as one bit each, in the agent's order: its kinds list only ever grows
# at the end (a new version adds kinds), so a stored mask keeps its meaning. 18 kinds today,
# room for 31 in the column (a signed 32-bit integer).
KIND_BITS = {kind: 1 << bit for bit, kind in enumerate(contract.KINDS)}
_LOGGER = logging.getLogger(__name__)

OPEN_STATUSES = ("open", "acknowledged")
ROLES = ("viewer", "responder", "admin", "customer")


def kinds_of(mask: int) -> list[str]:
    """The kind names in a bit mask, in the order of escalation."""
    return [kind for kind, bit in KIND_BITS.items() if mask & bit]


@dataclass
class IngestResult:
    """What one batch changed: for logs, tests and the benchmark."""

    events_new: int = 0
    events_duplicate: int = 0
    incidents: set[tuple[str, str]] = field(default_factory=set)
    rejected: Tally[tuple[str, str]] = field(default_factory=Tally)


@dataclass(frozen=True)
class Numbered:
    """An event's number and the event store (``epoch``) that gave it."""

    seq: int
    epoch: str | None


def _of_the_agents_store() -> Any:
    """Events numbered by the agent's current event store: of its epoch, or (agents that
    name none) stored since its numbers last started again."""
    return or_(
        and_(Agent.epoch.is_not(None), Event.epoch == Agent.epoch),
        and_(Agent.epoch.is_(None), Event.stored_at >= Agent.seq_epoch_at),
    )


@dataclass(frozen=True)
class ReplayRequest:
    """Events of an agent to ask for again: after ``after_seq`` (up to ``through_seq``)."""

    site_id: str
    agent_id: str
    after_seq: int
    command_id: str
    through_seq: int | None = None


FEED_CHANNEL = "lan_guard_feed"
GAPS_LOCK = 0x4C47_5053  # PostgreSQL advisory lock key: one sequence check at a time


class Changes:
    """Waits for the workers' commits that the live feed shows (PostgreSQL LISTEN).

    One connection of its own, outside the pool, listens on ``FEED_CHANNEL``; ``wait``
    returns at the first notification (one that came while nobody waited is kept by the
    connection and returns at once) or after ``timeout``. Without PostgreSQL, or while its
    connection is down (it is opened again at the next wait), ``wait`` returns at once and
    the feed falls back to polling.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._conn: Any = None

    @property
    def pushed(self) -> bool:
        """True where commits are announced (PostgreSQL), so waiting is worth it."""
        return self._engine.dialect.name == "postgresql"

    def wait(self, timeout: float) -> None:
        if not self.pushed:
            return
        try:
            if self._conn is None:
                self._conn = self._listen()
            for _ in self._conn.notifies(timeout=timeout, stop_after=1):
                break
            for _ in self._conn.notifies(timeout=0):  # the rest of a burst: one tick for all
                pass
        except self._engine.dialect.loaded_dbapi.Error:
            # the feed must outlive a database restart: it polls until this is back
            _LOGGER.warning("live feed: no notifications from the database, polling")
            self.close()

    def _listen(self) -> Any:
        args, kwargs = self._engine.dialect.create_connect_args(self._engine.url)
        conn = self._engine.dialect.loaded_dbapi.connect(*args, **kwargs)
        conn.autocommit = True
        conn.execute(f"LISTEN {FEED_CHANNEL}")
        return conn

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None


class Store:
    """The database behind one engine (SQLite or PostgreSQL); see the module doc."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._dialect = engine.dialect.name
        self._statements: dict[tuple[str, tuple[str, ...]], Any] = {}

    # -- dialect helpers -----------------------------------------------------------------

    def _insert(self, table: Any) -> Any:
        if self._dialect == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    def _bulk(
        self,
        conn: Connection,
        table: Any,
        rows: list[dict[str, Any]],
        key: tuple[str, ...],
        finish: Callable[[Any], Any],
    ) -> Any:
        """An INSERT of many rows (``finish`` adds its ON CONFLICT clause), executed.
        PostgreSQL gets the rows as one JSON parameter expanded by ``json_to_recordset`` in
        key order (no deadlocks between workers): a VALUES list of thousands of bound
        parameters costs the driver more than the database takes to insert them. SQLite gets
        an executemany. Compiled once per table and kept: SQLAlchemy cannot cache these
        statements (PostgreSQL's INSERT ... ON CONFLICT has no cache key) and compiling
        them took milliseconds a batch."""
        names = tuple(rows[0])
        statement = self._statements.get((table.name, names))
        if self._dialect != "postgresql":
            if statement is None:
                statement = self._statements[(table.name, names)] = finish(sqlite.insert(table))
            return conn.execute(statement, rows)
        if statement is None:
            source = (
                func.json_to_recordset(cast(bindparam("rows", type_=Text), postgresql.JSON))
                .table_valued(*(column(name, table.c[name].type) for name in names))
                .render_derived(with_types=True)
            )
            query = select(*(source.c[n] for n in names)).order_by(*(source.c[k] for k in key))
            compiled = finish(postgresql.insert(table).from_select(names, query)).compile(
                dialect=self.engine.dialect
            )
            statement = self._statements[(table.name, names)] = (str(compiled), compiled.params)
        sql, constants = statement
        return conn.exec_driver_sql(sql, {**constants, "rows": orjson.dumps(rows).decode()})

    def _greatest(self, a: Any, b: Any) -> Any:
        return func.greatest(a, b) if self._dialect == "postgresql" else func.max(a, b)

    def _least(self, a: Any, b: Any) -> Any:
        return func.least(a, b) if self._dialect == "postgresql" else func.min(a, b)

    def _changed(self, conn: Connection) -> None:
        """Tell the live feed (``Changes``) that this transaction adds something it shows:
        PostgreSQL delivers the notification at commit, once per transaction, and never for
        one rolled back. SQLite has no such thing; its console polls."""
        if self._dialect == "postgresql":
            conn.execute(select(func.pg_notify(FEED_CHANNEL, "")))

    def changes(self) -> Changes:
        """A way to wait until something the live feed shows was committed (see ``Changes``)."""
        return Changes(self.engine)

    # -- sites and users ---------------------------------------------------------------

    def add_site(
        self, site_id: str, name: str, mqtt_user: str, now: float, key: str | None = None
    ) -> Site:
        """A new site with a fresh signing key (or ``key``); refuses an existing id."""
        site = Site(
            site_id=site_id,
            name=name,
            key=key or secrets.token_urlsafe(32),
            mqtt_user=mqtt_user,
            created_at=now,
        )
        with self.engine.begin() as conn:
            if conn.execute(select(Site.site_id).where(Site.site_id == site_id)).first():
                raise ValueError(f"site {site_id!r} exists already")
            conn.execute(
                insert(Site).values(
                    site_id=site.site_id,
                    name=name,
                    key=site.key,
                    mqtt_user=mqtt_user,
                    created_at=now,
                )
            )
        return site

    def sites(self) -> list[Site]:
        with self.engine.connect() as conn:
            return [
                Site(**row._mapping)
                for row in conn.execute(select(Site.__table__).order_by(Site.site_id))
            ]

    def site_keys(self) -> dict[str, bytes]:
        """Every site's signing key, for the workers' signature checks."""
        with self.engine.connect() as conn:
            return {
                row.site_id: row.key.encode()
                for row in conn.execute(select(Site.site_id, Site.key))
            }

    def add_user(
        self, username: str, password_hash: str, role: str, now: float, site_id: str | None = None
    ) -> None:
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        if (role == "customer") != (site_id is not None):
            raise ValueError("a customer account needs exactly one site; operators have none")
        with self.engine.begin() as conn:
            conn.execute(
                insert(User).values(
                    username=username,
                    password_hash=password_hash,
                    role=role,
                    site_id=site_id,
                    created_at=now,
                    disabled=False,
                )
            )

    def user(
        self, *, username: str | None = None, user_id: int | None = None
    ) -> dict[str, Any] | None:
        query = select(User.__table__)
        query = (
            query.where(User.username == username)
            if username is not None
            else query.where(User.id == user_id)
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return dict(row._mapping) if row else None

    def set_password_hash(self, user_id: int, password_hash: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(User).where(User.id == user_id).values(password_hash=password_hash))

    # -- ingest ------------------------------------------------------------------------

    def ingest(self, records: Sequence[d.Decoded], now: float) -> IngestResult:
        """Store one batch of decoded messages in one transaction (see the module doc).

        A handful of statements whatever the batch's size: the events (returning which were
        new), one upsert for every agent heard from, the states (one read, one update), the
        incidents (the rows workers contend for most: late, so that their locks are held
        briefly before the commit), then the rarer facts one by one."""
        result = IngestResult()
        events: list[d.EventIn] = []
        states: dict[tuple[str, str], d.RetainedIn] = {}
        facts: list[d.Decoded] = []
        for record in records:
            if isinstance(record, d.EventIn):
                events.append(record)
            elif isinstance(record, d.RetainedIn) and record.sub == "state":
                # newer wins: of a batch's states for one agent only the newest can apply
                key = (record.site_id, record.agent_id)
                if key not in states or states[key].at < record.at:
                    states[key] = record
            else:
                facts.append(record)
        heard: dict[tuple[str, str], Numbered | None] = {
            (r.site_id, r.agent_id): None for r in records if not isinstance(r, d.BridgeIn)
        }
        with self.engine.begin() as conn:
            fresh = self._insert_events(conn, events, now, result)
            for event in fresh:  # only events actually inserted move the agent's last_seq
                if event.seq is not None:
                    key = (event.site_id, event.agent_id)
                    if (known := heard[key]) is None or event.seq > known.seq:
                        heard[key] = Numbered(event.seq, event.epoch)
            self._upsert_agents(conn, heard, now)
            self._states(conn, sorted(states.values(), key=lambda r: (r.site_id, r.agent_id)), now)
            per_incident: dict[tuple[str, str], list[d.EventIn]] = {}
            for event in fresh:
                per_incident.setdefault((event.site_id, event.incident_id), []).append(event)
            if per_incident:
                self._upsert_incidents(conn, per_incident, now)
                result.incidents.update(per_incident)
            for record in facts:  # after the incidents: a verdict may be for this batch's event
                # a fact that cannot apply is refused before it writes anything
                refused = self._ingest_fact(conn, record, now)
                if refused:
                    result.rejected[(record.site_id, refused)] += 1
            if fresh or facts or states:
                self._changed(conn)
        return result

    def count(self, tallies: Tally[tuple[str, str]]) -> None:
        """Add refusals and losses to the per-site counters (a counted word for each)."""
        if not tallies:
            return
        table = Counter.__table__
        with self.engine.begin() as conn:
            for (site_id, name), n in sorted(tallies.items()):
                stmt = self._insert(table).values(site_id=site_id, name=name, value=n)
                conn.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["site_id", "name"],
                        set_={"value": table.c.value + stmt.excluded.value},
                    )
                )

    def counters(self, site_id: str | None = None) -> dict[tuple[str, str], int]:
        query = select(Counter.site_id, Counter.name, Counter.value)
        if site_id is not None:
            query = query.where(Counter.site_id == site_id)
        with self.engine.connect() as conn:
            return {(r.site_id, r.name): r.value for r in conn.execute(query)}

    def _insert_events(
        self, conn: Connection, events: list[d.EventIn], now: float, result: IngestResult
    ) -> list[d.EventIn]:
        """Insert the events (one statement); returns those that were new, in key order."""
        if not events:
            return []
        unique: dict[tuple[str, str], d.EventIn] = {}
        for event in events:
            unique.setdefault((event.site_id, event.event_id), event)
        rows = [
            {
                "site_id": e.site_id,
                "event_id": e.event_id,
                "agent_id": e.agent_id,
                "incident_id": e.incident_id,
                "seq": e.seq,
                "epoch": e.epoch,
                "kind": e.kind,
                "level": e.level,
                "mac": e.source.mac,
                "ip": e.source.ip,
                "vendor": e.source.vendor,
                "hostname": e.source.hostname,
                "first_seen_at": e.first_seen_at,
                "last_seen_at": e.last_seen_at,
                "detected_at": e.detected_at,
                "stored_at": now,
                "signed": e.signed,
                "evidence": e.evidence,
            }
            for _, e in sorted(unique.items())
        ]
        table = Event.__table__
        found = self._bulk(
            conn,
            table,
            rows,
            ("site_id", "event_id"),
            lambda insert: insert.on_conflict_do_nothing(
                index_elements=["site_id", "event_id"]
            ).returning(table.c.site_id, table.c.event_id),
        )
        inserted = {(row.site_id, row.event_id) for row in found}
        result.events_new += len(inserted)
        result.events_duplicate += len(events) - len(inserted)
        return [unique[key] for key in sorted(inserted)]

    def _upsert_incidents(
        self, conn: Connection, groups: dict[tuple[str, str], list[d.EventIn]], now: float
    ) -> None:
        rows = []
        for (site_id, incident_id), group in sorted(groups.items()):
            latest = max(group, key=lambda e: e.detected_at)
            mask = 0
            for event in group:
                mask |= KIND_BITS[event.kind]
            rows.append(
                {
                    "site_id": site_id,
                    "incident_id": incident_id,
                    "agent_id": latest.agent_id,
                    "mac": latest.source.mac,
                    "ip": latest.source.ip,
                    "vendor": latest.source.vendor,
                    "hostname": latest.source.hostname,
                    "level": max(e.level for e in group),
                    "kinds": mask,
                    "events": len(group),
                    "first_seen_at": min(e.first_seen_at for e in group),
                    "detected_at": min(e.detected_at for e in group),
                    "received_at": now,
                    "last_seen_at": max(e.last_seen_at for e in group),
                    "updated_at": now,
                    "status": "open",
                }
            )
        incidents = Incident.__table__

        def upsert(stmt: Any) -> Any:
            x = stmt.excluded
            return stmt.on_conflict_do_update(
                index_elements=["site_id", "incident_id"],
                set_={
                    "level": self._greatest(incidents.c.level, x.level),
                    "kinds": incidents.c.kinds.op("|")(x.kinds),
                    "events": incidents.c.events + x.events,
                    "ip": func.coalesce(x.ip, incidents.c.ip),
                    "vendor": func.coalesce(x.vendor, incidents.c.vendor),
                    "hostname": func.coalesce(x.hostname, incidents.c.hostname),
                    "first_seen_at": self._least(incidents.c.first_seen_at, x.first_seen_at),
                    "detected_at": self._least(incidents.c.detected_at, x.detected_at),
                    "last_seen_at": self._greatest(incidents.c.last_seen_at, x.last_seen_at),
                    "updated_at": x.updated_at,
                    # new activity after an operator closed it: open again
                    "status": case(
                        (incidents.c.status == "closed", "open"), else_=incidents.c.status
                    ),
                    "closed_at": case(
                        (incidents.c.status == "closed", None), else_=incidents.c.closed_at
                    ),
                },
            )

        self._bulk(conn, incidents, rows, ("site_id", "incident_id"), upsert)

    def _upsert_agents(
        self, conn: Connection, agents: dict[tuple[str, str], Numbered | None], now: float
    ) -> None:
        """Make sure the agents exist (a first event may come before any retained payload),
        mark them seen, and move ``last_seq`` to the highest seq stored of the agent's event
        store (the first epoch heard is taken; a new one comes with the agent's ``state``)."""
        if not agents:
            return
        table = Agent.__table__
        rows = [
            {
                "site_id": site_id,
                "agent_id": agent_id,
                "last_seen_at": now,
                "last_seq": None if numbered is None else numbered.seq,
                "epoch": None if numbered is None else numbered.epoch,
                "level": 0,
                "seq_done": 0,
                "seq_epoch_at": 0.0,
                "replays": 0,
                "events_lost": 0,
            }
            for (site_id, agent_id), numbered in sorted(agents.items())
        ]

        def upsert(stmt: Any) -> Any:
            x = stmt.excluded
            return stmt.on_conflict_do_update(
                index_elements=["site_id", "agent_id"],
                set_={
                    "last_seen_at": self._greatest(
                        func.coalesce(table.c.last_seen_at, 0), x.last_seen_at
                    ),
                    "last_seq": case(
                        (x.last_seq.is_(None), table.c.last_seq),
                        # numbers of another store say nothing about this one's
                        (
                            and_(
                                table.c.epoch.is_not(None),
                                x.epoch.is_not(None),
                                table.c.epoch != x.epoch,
                            ),
                            table.c.last_seq,
                        ),
                        else_=self._greatest(func.coalesce(table.c.last_seq, 0), x.last_seq),
                    ),
                    "epoch": func.coalesce(table.c.epoch, x.epoch),
                },
            )

        self._bulk(conn, table, rows, ("site_id", "agent_id"), upsert)

    def _newer(
        self,
        conn: Connection,
        site_id: str,
        agent_id: str,
        column: Any,
        *,
        at: float,
        values: dict[str, Any],
    ) -> bool:
        """Set ``values`` on the agent if ``at`` is newer than ``column``; True if it was."""
        done = conn.execute(
            update(Agent)
            .where(Agent.site_id == site_id, Agent.agent_id == agent_id)
            .where(or_(column.is_(None), column < at))
            .values(values)
        )
        return bool(done.rowcount)

    def _ingest_fact(self, conn: Connection, record: d.Decoded, now: float) -> str | None:
        """One retained fact or site-channel message (low volume, one statement or a few);
        returns why it was refused, if it was."""
        if isinstance(record, d.BridgeIn):
            conn.execute(
                update(Site)
                .where(Site.site_id == record.site_id)
                .values(bridge_online=record.online, bridge_at=now)
            )
            return None
        if isinstance(record, d.EventIn):
            return None
        site_id, agent_id = record.site_id, record.agent_id  # the agent exists: see ingest
        if isinstance(record, d.StatusIn):
            self._newer(
                conn,
                site_id,
                agent_id,
                Agent.status_at,
                at=now,
                values={"status": "online" if record.online else "offline", "status_at": now},
            )
        elif isinstance(record, d.RetainedIn):
            self._retained(conn, record, now)
        elif isinstance(record, d.HostsIn):
            self._hosts(conn, record)
        elif isinstance(record, d.CommandResultIn):
            self._log(
                conn,
                now,
                f"agent:{agent_id}",
                "command_result",
                site_id=site_id,
                detail=f"{record.action or 'command'} {record.command_id}: {record.error or 'ok'}",
                result="ok" if record.ok else "refused",
                request_id=record.command_id,
            )
        elif isinstance(record, d.ConsentIn):
            conn.execute(
                update(Site)
                .where(Site.site_id == site_id)
                .where(or_(Site.consent_ts.is_(None), Site.consent_ts < record.at))
                .values(
                    may_see=record.may_see, may_evacuate=record.may_evacuate, consent_ts=record.at
                )
            )
        elif isinstance(record, d.EvacuationIn):
            self._evacuation(conn, record, now)
        elif isinstance(record, d.VerdictIn):
            return self._verdict(conn, record, now)
        elif isinstance(record, d.LabelIn):
            return self._label_from_site(conn, record, now)
        elif isinstance(record, d.AckIn):
            conn.execute(
                update(Incident)
                .where(Incident.site_id == site_id, Incident.agent_id == agent_id)
                .where(Incident.status.in_(OPEN_STATUSES), Incident.customer_acked_at.is_(None))
                .values(customer_acked_at=record.at, updated_at=now)
            )
            self._log(
                conn,
                now,
                f"site:{site_id}",
                "customer_acknowledged",
                site_id=site_id,
                detail=f"the customer acknowledged agent {agent_id}'s threat state",
            )
        elif isinstance(record, d.RequestResultIn):
            return self._request_result(conn, record, now)
        return None

    def _retained(self, conn: Connection, record: d.RetainedIn, now: float) -> None:
        """``info`` or ``quarantine`` (states go through ``_states``)."""
        column = Agent.info_ts if record.sub == "info" else Agent.quarantine_ts
        self._newer(
            conn,
            record.site_id,
            record.agent_id,
            column,
            at=record.at,
            values={record.sub: record.payload, column.key: record.at},
        )

    def _states(self, conn: Connection, states: list[d.RetainedIn], now: float) -> None:
        """The agents' states, newer wins: one read and one update for them all. A state of
        a new event store (another epoch), or whose ``last_seq`` is below what is already
        stored (the store was wiped), numbers its events from the start again: rare, handled
        one by one, and said in the audit log."""
        if not states:
            return
        current = {
            (r.site_id, r.agent_id): r
            for r in conn.execute(
                select(
                    Agent.site_id, Agent.agent_id, Agent.state_ts, Agent.seq_done, Agent.epoch
                ).where(
                    tuple_(Agent.site_id, Agent.agent_id).in_(
                        [(r.site_id, r.agent_id) for r in states]
                    )
                )
            )
        }
        rows = []
        for record in states:
            row = current[(record.site_id, record.agent_id)]
            if row.state_ts is not None and row.state_ts >= record.at:
                continue  # an old copy delivered late
            if record.last_seq is not None:
                new_store = record.epoch is not None and row.epoch not in (None, record.epoch)
                if new_store or record.last_seq < row.seq_done:
                    self._restarted(conn, record, row, new_store, now)
                    continue
            rows.append(
                {
                    "k_site": record.site_id,
                    "k_agent": record.agent_id,
                    "k_at": record.at,
                    "state": record.payload,
                    "state_ts": record.at,
                    "level": record.level or 0,
                    "oldest": record.oldest_seq,
                    "last": record.last_seq,
                    # the first epoch heard is taken with the numbers it gave
                    "epoch": None if record.last_seq is None else record.epoch,
                }
            )
        if rows:
            conn.execute(self._state_update(), rows)

    def _state_update(self) -> Any:
        """The bulk state update (executemany); the condition on ``state_ts`` keeps newer-wins
        exact even against another worker's update since the read."""
        statement = self._statements.get(("agents", ("state",)))
        if statement is None:
            last = bindparam("last", type_=BigInteger)
            oldest = bindparam("oldest", type_=BigInteger)
            statement = (
                update(Agent)
                .where(
                    Agent.site_id == bindparam("k_site"),
                    Agent.agent_id == bindparam("k_agent"),
                    or_(Agent.state_ts.is_(None), Agent.state_ts < bindparam("k_at")),
                )
                .values(
                    state=bindparam("state"),
                    state_ts=bindparam("state_ts"),
                    level=bindparam("level"),
                    oldest_seq=func.coalesce(oldest, Agent.oldest_seq),
                    last_seq=case(
                        (last.is_(None), Agent.last_seq),
                        else_=self._greatest(func.coalesce(Agent.last_seq, 0), last),
                    ),
                    epoch=func.coalesce(Agent.epoch, bindparam("epoch", type_=Text)),
                )
            )
            self._statements[("agents", ("state",))] = statement
        return statement

    def _restarted(
        self, conn: Connection, record: d.RetainedIn, agent: Any, new_store: bool, now: float
    ) -> None:
        """A newer state from a replaced or wiped event store (its numbers start again):
        follow it, without a false gap, and say so. Its events already stored count (same
        epoch)."""
        site_id, agent_id = record.site_id, record.agent_id
        done = conn.execute(
            update(Agent)
            .where(Agent.site_id == site_id, Agent.agent_id == agent_id)
            .where(or_(Agent.state_ts.is_(None), Agent.state_ts < record.at))
            .values(
                state=record.payload,
                state_ts=record.at,
                level=record.level or 0,
                oldest_seq=func.coalesce(record.oldest_seq, Agent.oldest_seq),
                seq_done=0,
                last_seq=record.last_seq,
                epoch=record.epoch,
                seq_epoch_at=now,
                gap_since=None,
                replay_at=None,
            )
        )
        if not done.rowcount:
            return  # another worker stored a newer state since the read
        why = (
            f"a new event store {record.epoch} after {agent.epoch}"
            if new_store
            else f"last_seq {record.last_seq} < {agent.seq_done} already stored"
        )
        self._log(
            conn,
            now,
            "system",
            "sequence_reset",
            site_id=site_id,
            detail=f"agent {agent_id} numbers its events from the start again ({why})",
        )

    def _hosts(self, conn: Connection, record: d.HostsIn) -> None:
        site_id, agent_id = record.site_id, record.agent_id
        if not self._newer(
            conn, site_id, agent_id, Agent.hosts_ts, at=record.at, values={"hosts_ts": record.at}
        ):
            return
        table = Host.__table__
        for row in sorted(record.hosts, key=lambda r: r.host.mac):
            values = {
                "ip": row.host.ip,
                "vendor": row.host.vendor,
                "hostname": row.host.hostname,
                "first_seen": row.first_seen,
                "last_seen": row.last_seen,
                "present": row.present,
            }
            stmt = self._insert(table).values(
                site_id=site_id, agent_id=agent_id, mac=row.host.mac, **values
            )
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["site_id", "agent_id", "mac"], set_=values
                )
            )

    def _evacuation(self, conn: Connection, record: d.EvacuationIn, now: float) -> None:
        site_id = record.site_id
        done = conn.execute(
            update(Site)
            .where(Site.site_id == site_id)
            .where(or_(Site.evacuation_ts.is_(None), Site.evacuation_ts < record.at))
            .values(evacuation=record.payload, evacuation_ts=record.at)
        )
        if not done.rowcount:
            return
        macs = [mac for mac, _ in record.culprits]
        open_here = and_(Incident.site_id == site_id, Incident.status.in_(OPEN_STATUSES))
        if record.active:
            if macs:
                conn.execute(
                    update(Incident)
                    .where(open_here, Incident.mac.in_(macs))
                    .values(isolation="active", updated_at=now)
                )
            what = f"evacuation started by {record.started_by or 'the site'}"
        else:
            conn.execute(
                update(Incident)
                .where(Incident.site_id == site_id, Incident.isolation == "active")
                .values(isolation="restored", restored_at=now, updated_at=now)
            )
            what = "evacuation ended, service restored"
        detail = f"{what}: {record.reason}" if record.reason else what
        self._log(
            conn,
            now,
            f"site:{site_id}",
            "site_evacuation",
            site_id=site_id,
            detail=detail,
            result="active" if record.active else "stopped",
        )

    def _event_incident(
        self, conn: Connection, site_id: str, event_id: str
    ) -> tuple[str, int] | None:
        row = conn.execute(
            select(Event.incident_id, Incident.id)
            .join(
                Incident,
                and_(Incident.site_id == Event.site_id, Incident.incident_id == Event.incident_id),
            )
            .where(Event.site_id == site_id, Event.event_id == event_id)
        ).first()
        return (row[0], row[1]) if row else None

    def _verdict(self, conn: Connection, record: d.VerdictIn, now: float) -> str | None:
        done = conn.execute(
            update(Event)
            .where(Event.site_id == record.site_id, Event.event_id == record.event_id)
            .values(verdict=record.verdict, probability=record.probability)
        )
        if not done.rowcount:  # an event this PSOC does not have (yet): counted, not kept
            return "unknown_event"
        found = self._event_incident(conn, record.site_id, record.event_id)
        if found:
            # the incident shows the verdict on its most severe event (a later host_left
            # "normal" must not hide the alarm on the session before it)
            conn.execute(
                update(Incident)
                .where(Incident.id == found[1])
                .where(
                    Incident.level
                    <= select(Event.level)
                    .where(Event.site_id == record.site_id, Event.event_id == record.event_id)
                    .scalar_subquery()
                )
                .values(verdict=record.verdict, probability=record.probability, updated_at=now)
            )
        return None

    def _label_from_site(self, conn: Connection, record: d.LabelIn, now: float) -> str | None:
        if record.by != "owner":  # the site echoing our own label back: nothing new
            return None
        done = conn.execute(
            update(Event)
            .where(Event.site_id == record.site_id, Event.event_id == record.event_id)
            .values(customer_label=record.label)
        )
        if not done.rowcount:
            return "unknown_event"
        found = self._event_incident(conn, record.site_id, record.event_id)
        incident = found[1] if found else None
        if incident is not None:
            conn.execute(
                update(Incident)
                .where(Incident.id == incident)
                .values(customer_label=record.label, updated_at=now)
            )
        self._log(
            conn,
            now,
            f"site:{record.site_id}",
            "customer_label",
            site_id=record.site_id,
            incident=incident,
            detail=f"the customer labelled event {record.event_id} {record.label}",
        )
        return None

    _ISOLATION = {
        "started": "active",
        "stopped": "restored",
        "refused": "refused",
        "asked_owner": "asked",
        "failed": "failed",
    }

    def _request_result(
        self, conn: Connection, record: d.RequestResultIn, now: float
    ) -> str | None:
        sent = conn.execute(
            select(Action.id, Action.incident)
            .where(Action.request_id == record.request_id, Action.site_id == record.site_id)
            .where(Action.action.in_(("request_isolation", "request_restore")))
        ).first()
        if sent is None:  # not ours, or not this site's
            return "unknown_request"
        conn.execute(
            update(Action).where(Action.id == sent.id).values(result=record.outcome, result_at=now)
        )
        if sent.incident is not None:
            values: dict[str, Any] = {
                "isolation": self._ISOLATION[record.outcome],
                "updated_at": now,
            }
            if record.outcome == "stopped":
                values["restored_at"] = now
            conn.execute(update(Incident).where(Incident.id == sent.incident).values(values))
        self._log(
            conn,
            now,
            f"site:{record.site_id}",
            "request_result",
            site_id=record.site_id,
            incident=sent.incident,
            detail=record.error or record.outcome,
            result=record.outcome,
            request_id=record.request_id,
        )
        return None

    # -- sequence gaps -------------------------------------------------------------------

    def check_gaps(
        self, now: float, limit: int = 100
    ) -> tuple[list[ReplayRequest], Tally[tuple[str, str]]]:
        """Advance each agent's ``seq_done``; count what is gone; claim replays to ask for.

        One worker at a time checks (a PostgreSQL advisory lock; the others skip their turn),
        and it leaves the agents whose rows a worker is writing to the next check: it takes
        the rest in key order, as the workers do, and never waits for a row, so neither can
        deadlock the other. A replay is claimed with a conditional update, so even two
        checks at once send it only once.
        """
        requests: list[ReplayRequest] = []
        lost: Tally[tuple[str, str]] = Tally()
        with self.engine.begin() as conn:
            if (
                self._dialect == "postgresql"
                and not conn.execute(select(func.pg_try_advisory_xact_lock(GAPS_LOCK))).scalar()
            ):
                return requests, lost  # another worker is checking right now
            behind = and_(Agent.last_seq.is_not(None), Agent.last_seq > Agent.seq_done)

            def free() -> Any:  # the agents behind whose rows nobody else holds, locked
                return (
                    select(Agent.site_id, Agent.agent_id)
                    .where(behind)
                    .order_by(Agent.site_id, Agent.agent_id)
                    .with_for_update(skip_locked=True)
                    .subquery()
                )

            # Fast path, one statement for every agent: all seqs up to last_seq are stored.
            kept = (
                select(func.count(distinct(Event.seq)))
                .where(Event.site_id == Agent.site_id, Event.agent_id == Agent.agent_id)
                .where(Event.seq > Agent.seq_done, Event.seq <= Agent.last_seq)
                .where(_of_the_agents_store())
                .scalar_subquery()
            )
            mine = free()
            conn.execute(
                update(Agent)
                .where(Agent.site_id == mine.c.site_id, Agent.agent_id == mine.c.agent_id)
                .where(or_(Agent.oldest_seq.is_(None), Agent.oldest_seq <= Agent.seq_done + 1))
                .where(kept == Agent.last_seq - Agent.seq_done)
                .values(seq_done=Agent.last_seq, gap_since=None)
            )
            # The rest have a hole, or events still on their way. Note when each was first
            # seen behind (one statement), and look closer, one by one, only at those behind
            # for longer than the grace time: events in flight arrive by themselves.
            mine = free()
            conn.execute(
                update(Agent)
                .where(Agent.site_id == mine.c.site_id, Agent.agent_id == mine.c.agent_id)
                .where(behind, Agent.gap_since.is_(None))
                .values(gap_since=now)
            )
            agents = conn.execute(
                select(
                    Agent.site_id,
                    Agent.agent_id,
                    Agent.seq_done,
                    Agent.last_seq,
                    Agent.oldest_seq,
                    Agent.epoch,
                    Agent.seq_epoch_at,
                    Agent.gap_since,
                    Agent.replay_at,
                )
                .where(behind, Agent.gap_since <= now - gaps.GRACE_S)
                .order_by(Agent.site_id, Agent.agent_id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            ).all()
            for a in agents:
                stored = (
                    conn.execute(
                        select(Event.seq)
                        .where(Event.site_id == a.site_id, Event.agent_id == a.agent_id)
                        .where(
                            Event.seq > a.seq_done,
                            Event.epoch == a.epoch
                            if a.epoch is not None
                            else Event.stored_at >= a.seq_epoch_at,
                        )
                        .order_by(Event.seq)
                        .limit(10_000)
                    )
                    .scalars()
                    .all()
                )
                numbers = [s for s in stored if s is not None]
                step = gaps.advance(a.seq_done, numbers, a.oldest_seq)
                still = gaps.behind(step.done, a.last_seq, stored[-1] if stored else None)
                values: dict[str, Any] = {"seq_done": step.done}
                if step.lost:
                    values["events_lost"] = Agent.events_lost + step.lost
                    lost[(a.site_id, "events_lost")] += step.lost
                if not still:
                    values["gap_since"] = None
                moved = conn.execute(
                    update(Agent)
                    .where(
                        Agent.site_id == a.site_id,
                        Agent.agent_id == a.agent_id,
                        Agent.seq_done == a.seq_done,
                    )
                    .values(values)
                ).rowcount
                if not moved:
                    continue  # another worker got there first
                if step.lost_range:
                    first, last = step.lost_range
                    self._log(
                        conn,
                        now,
                        "system",
                        "events_lost",
                        site_id=a.site_id,
                        detail=f"agent {a.agent_id}: events {first}..{last} are no longer "
                        "kept by the agent and were never received",
                    )
                if still and gaps.should_ask(now, a.gap_since, a.replay_at):
                    claimed = conn.execute(
                        update(Agent)
                        .where(Agent.site_id == a.site_id, Agent.agent_id == a.agent_id)
                        .where(or_(Agent.replay_at.is_(None), Agent.replay_at == a.replay_at))
                        .values(replay_at=now, replays=Agent.replays + 1)
                    ).rowcount
                    if claimed:
                        command_id = secrets.token_hex(16)
                        through = gaps.hole_end(step.done, numbers)
                        requests.append(
                            ReplayRequest(a.site_id, a.agent_id, step.done, command_id, through)
                        )
                        upto = "" if through is None else f" through {through}"
                        self._log(
                            conn,
                            now,
                            "system",
                            "replay_requested",
                            site_id=a.site_id,
                            detail=f"agent {a.agent_id}: events after {step.done}{upto} (it has"
                            f" up to {a.last_seq})",
                            result="sent",
                            request_id=command_id,
                        )
        return requests, lost

    # -- audit log -----------------------------------------------------------------------

    def _log(
        self,
        conn: Connection,
        now: float,
        actor: str,
        action: str,
        *,
        site_id: str | None = None,
        incident: int | None = None,
        detail: str = "",
        result: str = "ok",
        request_id: str | None = None,
    ) -> int:
        done = conn.execute(
            insert(Action).values(
                at=now,
                actor=actor,
                action=action,
                site_id=site_id,
                incident=incident,
                detail=detail[:2000],
                result=result,
                request_id=request_id,
            )
        )
        self._changed(conn)
        pk = done.inserted_primary_key
        return int(pk[0]) if pk else 0

    def log(self, actor: str, action: str, now: float, **fields: Any) -> int:
        """Append to the audit log (console logins, refusals, ...)."""
        with self.engine.begin() as conn:
            return self._log(conn, now, actor, action, **fields)

    # -- operator actions ----------------------------------------------------------------

    def incident_row(self, pk: int) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(Incident.__table__).where(Incident.id == pk)).first()
        return dict(row._mapping) if row else None

    def act(
        self, pk: int, actor: str, action: str, now: float, *, detail: str = "", **values: Any
    ) -> None:
        """Change an incident as an operator did, and audit it in the same transaction."""
        with self.engine.begin() as conn:
            row = conn.execute(
                select(Incident.site_id, Incident.responded_at).where(Incident.id == pk)
            ).first()
            if row is None:
                raise KeyError(pk)
            changes = {**values, "updated_at": now}
            if row.responded_at is None and action in _RESPONSES:
                changes["responded_at"] = now
            conn.execute(update(Incident).where(Incident.id == pk).values(changes))
            self._log(conn, now, actor, action, site_id=row.site_id, incident=pk, detail=detail)

    def label(self, pk: int, event_id: str, label: str, actor: str, now: float) -> None:
        """The operator's judgement of one event of the incident (sent to the site too)."""
        with self.engine.begin() as conn:
            row = conn.execute(
                select(Incident.site_id, Incident.incident_id).where(Incident.id == pk)
            ).one()
            done = conn.execute(
                update(Event)
                .where(
                    Event.site_id == row.site_id,
                    Event.event_id == event_id,
                    Event.incident_id == row.incident_id,
                )
                .values(operator_label=label)
            )
            if not done.rowcount:
                raise KeyError(event_id)
            conn.execute(
                update(Incident)
                .where(Incident.id == pk)
                .values(operator_label=label, updated_at=now)
            )
            self._log(
                conn,
                now,
                actor,
                "label",
                site_id=row.site_id,
                incident=pk,
                detail=f"event {event_id}: {label}",
                result="sent",
            )

    def request(
        self, pk: int, action: str, actor: str, now: float, *, request_id: str, detail: str
    ) -> None:
        """An isolation (or restore) request on its way to the site's Home Assistant."""
        with self.engine.begin() as conn:
            row = conn.execute(
                select(Incident.site_id, Incident.responded_at).where(Incident.id == pk)
            ).one()
            values: dict[str, Any] = {
                "updated_at": now,
                "isolation": "requested" if action == "request_isolation" else "restore_requested",
            }
            if row.responded_at is None:
                values["responded_at"] = now
            conn.execute(update(Incident).where(Incident.id == pk).values(values))
            self._log(
                conn,
                now,
                actor,
                action,
                site_id=row.site_id,
                incident=pk,
                detail=detail,
                result="sent",
                request_id=request_id,
            )

    def notified(self, pk: int, actor: str, channel: str, note: str, now: float) -> None:
        """The customer was told (phone, e-mail, ...): a notification row and an audit row."""
        with self.engine.begin() as conn:
            row = conn.execute(
                select(Incident.site_id, Incident.responded_at).where(Incident.id == pk)
            ).one()
            conn.execute(
                insert(Notification).values(
                    site_id=row.site_id,
                    incident=pk,
                    at=now,
                    by=actor,
                    channel=channel,
                    note=note[:2000],
                )
            )
            conn.execute(
                update(Incident)
                .where(Incident.id == pk)
                .values(customer_notified_at=now, updated_at=now)
            )
            self._log(
                conn,
                now,
                actor,
                "customer_notified",
                site_id=row.site_id,
                incident=pk,
                detail=f"{channel}: {note}"[:2000],
            )

    # -- console queries -------------------------------------------------------------------

    def sites_overview(self, site_id: str | None = None) -> list[dict[str, Any]]:
        """Sites list: bridge, agents online, last seen, open incidents, highest level."""
        with self.engine.connect() as conn:
            sites = select(Site.__table__).order_by(Site.site_id)
            if site_id is not None:
                sites = sites.where(Site.site_id == site_id)
            # a site is last seen when one of its agents was: the workers write agents
            # only, so that sites are no rows for them to contend for
            agents = {
                r.site_id: (r.total, r.online or 0, r.seen)
                for r in conn.execute(
                    select(
                        Agent.site_id,
                        func.count().label("total"),
                        func.sum(case((Agent.status == "online", 1), else_=0)).label("online"),
                        func.max(Agent.last_seen_at).label("seen"),
                    ).group_by(Agent.site_id)
                )
            }
            open_ = {
                r.site_id: (r.n, r.level)
                for r in conn.execute(
                    select(
                        Incident.site_id,
                        func.count().label("n"),
                        func.max(Incident.level).label("level"),
                    )
                    .where(Incident.status.in_(OPEN_STATUSES))
                    .group_by(Incident.site_id)
                )
            }
            out = []
            for row in conn.execute(sites):
                site = dict(row._mapping)
                site.pop("key")
                site["agents"], site["agents_online"], site["last_seen_at"] = agents.get(
                    row.site_id, (0, 0, None)
                )
                site["open_incidents"], site["level"] = open_.get(row.site_id, (0, 0))
                out.append(site)
            return out

    def agents(self, site_id: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(Agent.__table__).where(Agent.site_id == site_id).order_by(Agent.agent_id)
            )
            return [dict(r._mapping) for r in rows]

    def queue(
        self, site_id: str | None = None, include_closed: bool = False, limit: int = 200
    ) -> list[dict[str, Any]]:
        """The incident queue: open ones by level (highest first), then age (oldest first)."""
        query = select(Incident.__table__)
        if not include_closed:
            query = query.where(Incident.status.in_(OPEN_STATUSES))
        if site_id is not None:
            query = query.where(Incident.site_id == site_id)
        query = query.order_by(Incident.level.desc(), Incident.received_at.asc()).limit(limit)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def incidents_by_pk(
        self, pks: Iterable[int], conn: Connection | None = None
    ) -> list[dict[str, Any]]:
        keys = sorted(set(pks))
        if not keys:
            return []
        with self._reading(conn) as reader:
            return [
                dict(r._mapping)
                for r in reader.execute(select(Incident.__table__).where(Incident.id.in_(keys)))
            ]

    def incident_events(self, pk: int, limit: int = 500) -> list[dict[str, Any]]:
        """The incident's timeline (L1 -> L2 -> L3 ...), oldest first."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(Incident.site_id, Incident.incident_id).where(Incident.id == pk)
            ).first()
            if row is None:
                return []
            query = (
                select(Event.__table__)
                .where(Event.site_id == row.site_id, Event.incident_id == row.incident_id)
                .order_by(Event.detected_at, Event.id)
                .limit(limit)
            )
            return [dict(r._mapping) for r in conn.execute(query)]

    def audit(
        self, *, incident: int | None = None, site_id: str | None = None, limit: int = 200
    ) -> list[dict[str, Any]]:
        query = select(Action.__table__)
        if incident is not None:
            query = query.where(Action.incident == incident).order_by(Action.at, Action.id)
        else:
            if site_id is not None:
                query = query.where(Action.site_id == site_id)
            query = query.order_by(Action.id.desc())
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query.limit(limit))]

    def tail(
        self,
        table: str,
        after: int,
        holes: Sequence[int],
        limit: int = 5000,
        conn: Connection | None = None,
    ) -> list[Any]:
        """Keys above ``after`` or in ``holes``: for ``events`` only (id, site_id,
        incident_id, level) rows, cheap at thousands a second; ``actions`` whole (they are
        few)."""
        model: Any = Event if table == "events" else Action
        cond = model.id > after
        if holes:
            cond = or_(cond, model.id.in_(list(holes)))
        if model is Event:
            query = select(Event.id, Event.site_id, Event.incident_id, Event.level)
        else:
            query = select(Action.__table__)
        with self._reading(conn) as reader:
            return list(reader.execute(query.where(cond).order_by(model.id).limit(limit)))

    def events_by_id(
        self, ids: Iterable[int], conn: Connection | None = None
    ) -> list[dict[str, Any]]:
        """What the live feed shows of a few events, with their incident's key."""
        keys = sorted(set(ids))
        if not keys:
            return []
        cols = [
            Event.id,
            Event.site_id,
            Event.event_id,
            Event.agent_id,
            Event.kind,
            Event.level,
            Event.mac,
            Event.ip,
            Event.detected_at,
            Event.stored_at,
        ]
        query = (
            select(*cols, Incident.id.label("incident"))
            .join(
                Incident,
                and_(Incident.site_id == Event.site_id, Incident.incident_id == Event.incident_id),
            )
            .where(Event.id.in_(keys))
            .order_by(Event.id)
        )
        with self._reading(conn) as reader:
            return [dict(r._mapping) for r in reader.execute(query)]

    def incidents_by_key(
        self, keys: Iterable[tuple[str, str]], conn: Connection | None = None
    ) -> list[dict[str, Any]]:
        """Incidents by (site id, incident id)."""
        wanted = sorted(set(keys))
        if not wanted:
            return []
        query = select(Incident.__table__).where(
            tuple_(Incident.site_id, Incident.incident_id).in_(wanted)
        )
        with self._reading(conn) as reader:
            return [dict(r._mapping) for r in reader.execute(query)]

    def reading(self) -> contextlib.AbstractContextManager[Connection]:
        """One connection for several reads (the live feed's tick): one checkout, one end."""
        return self.engine.connect()

    @contextlib.contextmanager
    def _reading(self, conn: Connection | None) -> Iterator[Connection]:
        if conn is not None:
            yield conn
            return
        with self.engine.connect() as own:
            yield own

    def last_ids(self) -> tuple[int, int]:
        with self.engine.connect() as conn:
            events = conn.execute(select(func.max(Event.id))).scalar() or 0
            actions = conn.execute(select(func.max(Action.id))).scalar() or 0
        return int(events), int(actions)

    def figures(self, site_id: str | None = None) -> dict[str | None, dict[str, Any]]:
        """SOC figures per site and overall (key None): medians and counts of time to
        detect (culprit's first frame -> at the PSOC), first response (-> an operator's first
        action) and restore (-> the site's service restored or the incident closed)."""
        query = select(
            Incident.site_id,
            Incident.first_seen_at,
            Incident.received_at,
            Incident.responded_at,
            Incident.restored_at,
            Incident.closed_at,
        )
        if site_id is not None:
            query = query.where(Incident.site_id == site_id)
        samples: dict[str | None, dict[str, list[float]]] = {}
        with self.engine.connect() as conn:
            for r in conn.execute(query.where(Incident.level > 0).limit(100_000)):
                restored = r.restored_at or r.closed_at
                for key in (r.site_id, None):
                    bucket = samples.setdefault(
                        key, {"detect": [], "respond": [], "restore": [], "n": []}
                    )
                    bucket["n"].append(1.0)
                    bucket["detect"].append(max(0.0, r.received_at - r.first_seen_at))
                    if r.responded_at is not None:
                        bucket["respond"].append(max(0.0, r.responded_at - r.received_at))
                    if restored is not None:
                        bucket["restore"].append(max(0.0, restored - r.received_at))
        return {
            key: {
                "incidents": len(b["n"]),
                **{name: _median(b[name]) for name in ("detect", "respond", "restore")},
                **{f"{name}_n": len(b[name]) for name in ("detect", "respond", "restore")},
            }
            for key, b in samples.items()
        }

    # -- retention ---------------------------------------------------------------------

    def prune(self, now: float, events_days: float, incidents_days: float) -> tuple[int, int]:
        """Delete events stored more than ``events_days`` ago and closed incidents older than
        ``incidents_days`` (the audit log is kept: it is the record of what was done)."""
        with self.engine.begin() as conn:
            events = conn.execute(
                delete(Event).where(Event.stored_at < now - events_days * 86_400)
            ).rowcount
            incidents = conn.execute(
                delete(Incident).where(
                    Incident.status == "closed", Incident.updated_at < now - incidents_days * 86_400
                )
            ).rowcount
        return int(events or 0), int(incidents or 0)


_RESPONSES = frozenset({"acknowledge", "assign", "close", "label", "request_isolation"})


def _median(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
