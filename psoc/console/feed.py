"""The live feed: new events and audit rows, read from the database, pushed over SSE.

The database is the one truth (any number of workers write it), so the console tails two
tables by their integer keys. On PostgreSQL keys are handed out before commit, so a smaller
key can become visible after a larger one: ``Tail`` remembers skipped keys ("holes") for a
while and asks for them again, so a late commit is still shown; a hole that never fills (a
rolled-back insert, a duplicate) is forgotten after ``hold_s``.

The hub reads when there is something to read: on PostgreSQL the workers' transactions
announce themselves at commit (``Store.changes``), so an idle console costs nothing and a
busy one reads at most ``interval_s`` apart, whatever the commit rate (SQLite: it polls every
``interval_s``). Under load, an incident takes events many times a second; ``Pushes`` sends
a new incident, or one whose level rose, at once, and the others' new counts at most once
per ``every_s``: what a person can read, at a fraction of the reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from starlette.concurrency import run_in_threadpool

from psoc.console.auth import Principal
from psoc.store import Store, kinds_of

_LOGGER = logging.getLogger(__name__)


SAMPLE = 100


class Tail:
    """Which keys of a table to read next (pure; see the module doc)."""

    def __init__(self, after: int, hold_s: float = 5.0, max_holes: int = 10_000) -> None:
        self.after = after
        self.hold_s = hold_s
        self.max_holes = max_holes
        self.holes: dict[int, float] = {}  # key -> when first missed

    def seen(self, keys: Iterable[int], now: float) -> None:
        for key in sorted(keys):
            self.holes.pop(key, None)
            if key > self.after:
                for missing in range(self.after + 1, min(key, self.after + 1 + self.max_holes)):
                    self.holes.setdefault(missing, now)
                self.after = key
        for key, since in list(self.holes.items()):
            if now - since > self.hold_s:
                del self.holes[key]
        while len(self.holes) > self.max_holes:
            self.holes.pop(min(self.holes))


IncidentKey = tuple[str, str]  # (site id, incident id)
_News = tuple[
    list[Any],  # new audit rows
    list[dict[str, Any]],  # incidents to send
    dict[int, dict[str, Any]],  # details of the sampled events
    dict["asyncio.Queue[dict[str, Any]]", list[int]],  # each browser's sample
    dict["asyncio.Queue[dict[str, Any]]", int],  # how many each browser may see
]


class Pushes:
    """Which touched incidents to send now (pure; see the module doc)."""

    def __init__(self, every_s: float = 1.0, max_keys: int = 50_000) -> None:
        self.every_s = every_s
        self.max_keys = max_keys
        self.sent: dict[IncidentKey, tuple[float, int]] = {}  # key -> (when, level), oldest first
        self.waiting: set[IncidentKey] = set()  # touched since sent, not yet due

    def due(self, touched: Mapping[IncidentKey, int], now: float) -> set[IncidentKey]:
        """``touched``: incidents with new events and their highest new level. Returns the
        keys to send now (and counts them as sent)."""
        out = set()
        for key, level in touched.items():
            last = self.sent.get(key)
            if last is None or level > last[1]:  # new, or its level rose: at once
                out.add(key)
            else:
                self.waiting.add(key)
        out |= {key for key in self.waiting if now - self.sent[key][0] >= self.every_s}
        for key in out:
            self.waiting.discard(key)
            level = max(touched.get(key, 0), self.sent.pop(key, (0.0, 0))[1])
            self.sent[key] = (now, level)  # (re-)inserted last: the dict stays oldest first
        while len(self.sent) > self.max_keys:  # forget the longest quiet; never one waiting
            oldest = next(iter(self.sent))
            del self.sent[oldest]
            if oldest in self.waiting:
                self.waiting.discard(oldest)
                out.add(oldest)
        return out


def incident_summary(row: dict[str, Any]) -> dict[str, Any]:
    """What the queue shows of an incident (strings stay strings: the page sets textContent)."""
    return {
        "id": row["id"],
        "site_id": row["site_id"],
        "agent_id": row["agent_id"],
        "level": row["level"],
        "status": row["status"],
        "kinds": kinds_of(row["kinds"]),
        "events": row["events"],
        "mac": row["mac"],
        "ip": row["ip"],
        "vendor": row["vendor"],
        "hostname": row["hostname"],
        "received_at": row["received_at"],
        "updated_at": row["updated_at"],
        "verdict": row["verdict"],
        "probability": row["probability"],
        "isolation": row["isolation"],
        "assignee": row["assignee"],
    }


class Hub:
    """Reads the store when it changed and fans the news out to each browser's queue."""

    def __init__(
        self, store: Store, interval_s: float = 0.1, clock: Callable[[], float] | None = None
    ) -> None:
        self.store = store
        self.interval_s = interval_s
        self._clock = clock or time.time
        self._subscribers: dict[asyncio.Queue[dict[str, Any]], Principal] = {}
        self._task: asyncio.Task[None] | None = None
        self._events: Tail | None = None
        self._actions: Tail | None = None
        self._pushes = Pushes()
        self._changes = store.changes()

    async def start(self) -> None:
        events, actions = await run_in_threadpool(self.store.last_ids)
        self._events, self._actions = Tail(events), Tail(actions)
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._changes.close()

    def subscribe(self, user: Principal) -> asyncio.Queue[dict[str, Any]]:
        q: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=256)
        self._subscribers[q] = user
        return q

    def unsubscribe(self, q: asyncio.Queue[dict[str, Any]]) -> None:
        self._subscribers.pop(q, None)

    async def _run(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await self._tick()
            except Exception:  # the feed must outlive a database hiccup
                _LOGGER.exception("live feed poll failed")
            await asyncio.sleep(max(0.0, started + self.interval_s - time.monotonic()))
            # a commit announced meanwhile returns at once; a quiet second reads anyway,
            # for what was announced while the connection was down
            await run_in_threadpool(self._changes.wait, 1.0)

    async def _tick(self) -> None:
        news = await run_in_threadpool(self._read, dict(self._subscribers))
        if news is None:
            return
        actions, incidents, details, samples, totals = news
        for q, user in list(self._subscribers.items()):
            message = {
                "events": [details[key] for key in samples.get(q, []) if key in details],
                "events_total": totals.get(q, 0),
                "incidents": [i for i in incidents if user.may_see(i["site_id"])],
                "actions": [
                    _action(a)
                    for a in actions
                    if user.operator or (a["site_id"] and user.may_see(a["site_id"]))
                ],
            }
            if not (message["events"] or message["incidents"] or message["actions"]):
                continue
            try:
                q.put_nowait(message)
            except asyncio.QueueFull:  # a stalled browser: drop it, EventSource reconnects
                self.unsubscribe(q)

    def _read(self, subscribers: dict[asyncio.Queue[dict[str, Any]], Principal]) -> _News | None:
        """Everything a tick reads, on one connection (in a worker thread)."""
        assert self._events is not None and self._actions is not None
        with self.store.reading() as conn:
            events = self.store.tail(
                "events", self._events.after, list(self._events.holes), conn=conn
            )
            rows = self.store.tail(
                "actions", self._actions.after, list(self._actions.holes), 1000, conn=conn
            )
            now = self._clock()
            self._events.seen((e.id for e in events), now)
            self._actions.seen((a.id for a in rows), now)
            touched: dict[IncidentKey, int] = {}
            for e in events:
                key = (e.site_id, e.incident_id)
                touched[key] = max(touched.get(key, 0), e.level)
            due = self._pushes.due(touched, now)  # also when nobody listens: no burst at login
            if not subscribers or (not events and not rows and not due):
                return None
            actions = [a._mapping for a in rows]
            incidents = [incident_summary(r) for r in self.store.incidents_by_key(due, conn=conn)]
            by_pk = {a["incident"] for a in actions if a["incident"]}
            by_pk -= {i["id"] for i in incidents}
            incidents += [incident_summary(r) for r in self.store.incidents_by_pk(by_pk, conn=conn)]
            # a person reads a few lines a second: at most SAMPLE events per update and
            # user, spread evenly over what arrived, and how many there were
            samples: dict[asyncio.Queue[dict[str, Any]], list[int]] = {}
            totals: dict[asyncio.Queue[dict[str, Any]], int] = {}
            for q, user in subscribers.items():
                visible = [e.id for e in events if user.may_see(e.site_id)]
                totals[q] = len(visible)
                samples[q] = visible[:: len(visible) // SAMPLE + 1]
            wanted = {key for ids in samples.values() for key in ids}
            details = {e["id"]: _event(e) for e in self.store.events_by_id(wanted, conn=conn)}
        return actions, incidents, details, samples, totals


def _event(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: row[k]
        for k in (
            "id",
            "site_id",
            "event_id",
            "agent_id",
            "incident",
            "kind",
            "level",
            "mac",
            "ip",
            "detected_at",
            "stored_at",
        )
    }


def _action(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: row[k]
        for k in ("id", "at", "actor", "action", "site_id", "incident", "detail", "result")
    }
