"""The agent's event store: a durable, bounded outbox that also keeps recent events for replay.

An event is appended (SQLite, WAL) before any attempt to publish it. Its row number is its
``seq``: 1, 2, 3, ... in the order the agent created its events, never reused (AUTOINCREMENT
remembers the highest number even when every row is gone), so it survives agent restarts. The
store has an ``epoch``, a random id made when the file is created: a new file (deleted, moved
aside, a new machine) starts again at seq 1 under a new epoch, which receivers can tell apart
from a replay of the old one.

A row is *pending* until the broker acknowledges it (QoS 1 PUBACK), then *kept* so that a
receiver that missed it (a subscriber that was away while the broker took it) can ask for it
again (:meth:`replay`, which makes rows pending again). Bounds:

- pending rows: ``max_rows``; appending beyond drops the oldest rows, every dropped pending
  row is counted (``dropped``, reported as ``outbox_dropped`` in the state payload) and logged;
- kept rows: the newest ``keep_rows``, none older than ``keep_s`` seconds.

Rows only ever leave from the old end (a kept row is never pruned above a pending one), so the
store always holds one run of seqs, ``oldest_seq`` .. ``last_seq``, and anything older is gone.

Durability: commits use WAL with ``synchronous=NORMAL`` (cheap: a crash of the agent loses
nothing committed, a power cut may lose the last commits). A row must not be published before
it is on disk, or a power cut could hand its seq to a different event later: :meth:`sync`
(called by the publisher before it publishes new rows) makes every commit so far durable with
one fsync (a burst shares it). Reserving seqs in durable blocks would save that fsync, but
after a power cut the reserved numbers never used could not be told from events lost on the
way: receivers would report events as lost that never existed. The database is opened in
exclusive locking mode, so a second agent using the same file is refused instead of sending
the same events twice.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_LOGGER = logging.getLogger(__name__)

# 100,000 events (tens of MB at most): days of a busy LAN's events while the broker is
# away. The one default: config.py and MqttSettings use it too.
DEFAULT_MAX_ROWS = 100_000
# Kept for replay after the broker took them: 10,000 events (a few MB) and at most a week, so
# a Home Assistant that was down over a long weekend still gets every event it missed.
DEFAULT_KEEP_ROWS = 10_000
DEFAULT_KEEP_S = 7 * 86_400.0
_DROP_LOG_INTERVAL_S = 10.0
_NO_END = 2**63 - 1  # above any seq
_AGE_PRUNE_INTERVAL_S = 60.0


class OutboxError(OSError):
    """The outbox file cannot be used (corrupt, locked by another process, unwritable)."""


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One pending event: its seq and the payload to publish (``seq`` and ``epoch`` set)."""

    seq: int
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ReplayBatch:
    """What :meth:`Outbox.replay` made pending again, and what it could not (a gap)."""

    epoch: str
    after_seq: int
    count: int
    first_seq: int | None  # the first seq re-queued (None: nothing)
    through_seq: int | None  # the last seq re-queued
    last_seq: int  # the newest seq the store has given out
    gap: tuple[int, int] | None  # seqs after ``after_seq`` that are gone (first, last)


class Outbox:
    """The event store (see the module doc); safe to use from several threads."""

    def __init__(
        self,
        path: str | Path,
        max_rows: int = DEFAULT_MAX_ROWS,
        lock_timeout_s: float = 1.0,
        *,
        keep_rows: int = DEFAULT_KEEP_ROWS,
        keep_s: float = DEFAULT_KEEP_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_rows < 1:
            raise ValueError(f"outbox max_rows must be at least 1, not {max_rows}")
        if keep_rows < 0 or keep_s < 0:
            raise ValueError("outbox keep_rows and keep_s must not be negative")
        self.path = Path(path)
        self.max_rows = max_rows
        self.keep_rows = keep_rows
        self.keep_s = keep_s
        self._clock = clock
        self.dropped = 0
        """Pending rows dropped because the outbox was full (since this object was opened)."""
        self._lock = threading.Lock()
        self._last_drop_log = -_DROP_LOG_INTERVAL_S
        self._unlogged_drops = 0
        self._next_age_prune = 0.0
        self._db = self._open(lock_timeout_s)
        self.epoch = self._epoch()
        """Random id of this store: a new store starts again at seq 1 under a new epoch."""
        self._pending = self._query_one("SELECT COUNT(*) FROM outbox WHERE acked = 0")
        self._kept = self._query_one("SELECT COUNT(*) FROM outbox WHERE acked = 1")
        self._last_seq = self._query_one(
            "SELECT COALESCE(MAX(seq), 0) FROM sqlite_sequence WHERE name = 'outbox'"
        )
        self._synced_seq = 0  # even an earlier run's rows: that run may have crashed unsynced

    def _open(self, lock_timeout_s: float) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise OutboxError(f"outbox {self.path}: cannot create its directory: {err}") from err
        db: sqlite3.Connection | None = None
        try:
            db = sqlite3.connect(
                self.path, timeout=lock_timeout_s, check_same_thread=False, isolation_level=None
            )
            db.execute("PRAGMA locking_mode=EXCLUSIVE")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            check = db.execute("PRAGMA quick_check").fetchone()
            if check is None or check[0] != "ok":
                raise sqlite3.DatabaseError(f"integrity check failed: {check}")
            db.execute(
                "CREATE TABLE IF NOT EXISTS outbox"
                " (seq INTEGER PRIMARY KEY AUTOINCREMENT, payload TEXT NOT NULL)"
            )
            # Stores of agents before replay had only pending rows: add what replay needs.
            columns = {row[1] for row in db.execute("PRAGMA table_info(outbox)")}
            if "acked" not in columns:
                db.execute("ALTER TABLE outbox ADD COLUMN acked INTEGER NOT NULL DEFAULT 0")
            if "stored_at" not in columns:
                db.execute("ALTER TABLE outbox ADD COLUMN stored_at REAL NOT NULL DEFAULT 0")
            db.execute("CREATE INDEX IF NOT EXISTS pending ON outbox (seq) WHERE acked = 0")
            db.execute(
                "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
            )
        except sqlite3.Error as err:
            if db is not None:
                db.close()
            raise OutboxError(self._explain(err)) from err
        return db

    def _epoch(self) -> str:
        with self._lock:
            try:
                self._db.execute(
                    "INSERT OR IGNORE INTO meta (key, value) VALUES ('epoch', ?)",
                    (uuid.uuid4().hex,),
                )
                row = self._db.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()
            except sqlite3.Error as err:
                raise OutboxError(self._explain(err)) from err
        return str(row[0])

    def _explain(self, err: sqlite3.Error) -> str:
        text = str(err)
        if "locked" in text or "busy" in text:
            return (
                f"outbox {self.path} is locked by another process"
                " (is another agent running with the same outbox path?)"
            )
        if isinstance(err, sqlite3.DatabaseError) and not isinstance(err, sqlite3.OperationalError):
            return (
                f"outbox {self.path} is not a usable SQLite database ({text});"
                " move it aside and the agent starts a new, empty outbox"
            )
        return f"outbox {self.path}: {text}"

    def _query_one(self, sql: str) -> int:
        with self._lock:
            try:
                row = self._db.execute(sql).fetchone()
            except sqlite3.Error as err:
                raise OutboxError(self._explain(err)) from err
        return int(row[0])

    @property
    def pending(self) -> int:
        """Rows waiting for an acknowledgement."""
        return self._pending

    @property
    def kept(self) -> int:
        """Acknowledged rows kept for replay."""
        return self._kept

    @property
    def last_seq(self) -> int:
        """The seq of the newest event ever appended (0 when there never was one)."""
        return self._last_seq

    @property
    def oldest_seq(self) -> int:
        """The oldest seq still stored (pending or kept); ``last_seq + 1`` when none is."""
        with self._lock:
            try:
                row = self._db.execute("SELECT MIN(seq) FROM outbox").fetchone()
            except sqlite3.Error as err:
                raise OutboxError(self._explain(err)) from err
            return self._last_seq + 1 if row[0] is None else int(row[0])

    def delivery(self) -> dict[str, Any]:
        """``epoch``, ``last_seq`` and ``oldest_seq``: what the state payload tells receivers."""
        oldest = self.oldest_seq
        return {"epoch": self.epoch, "last_seq": self._last_seq, "oldest_seq": oldest}

    def append(self, payload: Mapping[str, Any]) -> int:
        """Store ``payload`` durably (dropping the oldest rows when full); return its seq."""
        text = json.dumps(payload, ensure_ascii=False, allow_nan=False)
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                excess = self._pending + 1 - self.max_rows
                dropped_kept = 0
                if excess > 0:
                    # Up to the excess-th oldest pending row, kept rows below it included:
                    # the store stays one run of seqs.
                    (limit,) = self._db.execute(
                        "SELECT seq FROM outbox WHERE acked = 0 ORDER BY seq LIMIT 1 OFFSET ?",
                        (excess - 1,),
                    ).fetchone()
                    removed = self._db.execute("DELETE FROM outbox WHERE seq <= ?", (limit,))
                    dropped_kept = removed.rowcount - excess
                cursor = self._db.execute(
                    "INSERT INTO outbox (payload, stored_at) VALUES (?, ?)", (text, self._clock())
                )
                self._db.execute("COMMIT")
            except sqlite3.Error as err:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise OutboxError(self._explain(err)) from err
            if excess > 0:
                self._pending -= excess
                self._kept -= dropped_kept
                self._count_drops(excess)
            self._pending += 1
            seq = cursor.lastrowid
            assert seq is not None
            self._last_seq = seq
        return seq

    def after(self, seq: int, limit: int) -> list[OutboxEntry]:
        """Up to ``limit`` pending entries with a seq above ``seq``, oldest first."""
        with self._lock:
            try:
                rows = self._db.execute(
                    "SELECT seq, payload FROM outbox WHERE acked = 0 AND seq > ?"
                    " ORDER BY seq LIMIT ?",
                    (seq, limit),
                ).fetchall()
            except sqlite3.Error as err:
                raise OutboxError(self._explain(err)) from err
        entries = []
        for row_seq, text in rows:
            try:
                stored = json.loads(text)
            except ValueError:
                _LOGGER.error("outbox %s: row %d is not JSON; dropping it", self.path, row_seq)
                self._forget(row_seq)
                continue
            entries.append(OutboxEntry(row_seq, {**stored, "seq": row_seq, "epoch": self.epoch}))
        return entries

    def acknowledge(self, seq: int) -> None:
        """The broker took ``seq``: keep it for replay (no error if it is gone meanwhile)."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                acked = self._db.execute(
                    "UPDATE outbox SET acked = 1 WHERE seq = ? AND acked = 0", (seq,)
                ).rowcount
                self._pending -= acked
                self._kept += acked
                self._prune()
                self._db.execute("COMMIT")
            except sqlite3.Error as err:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise OutboxError(self._explain(err)) from err

    def replay(self, after_seq: int, limit: int, through_seq: int | None = None) -> ReplayBatch:
        """Make up to ``limit`` stored events after ``after_seq`` (up to ``through_seq``)
        pending again (the publisher sends them again, in order); say which seqs after
        ``after_seq`` are gone."""
        top = _NO_END if through_seq is None else through_seq
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                seqs = [
                    int(row[0])
                    for row in self._db.execute(
                        "SELECT seq FROM outbox WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
                        (after_seq, top, limit),
                    )
                ]
                if seqs:
                    requeued = self._db.execute(
                        "UPDATE outbox SET acked = 0 WHERE seq BETWEEN ? AND ? AND acked = 1",
                        (seqs[0], seqs[-1]),
                    ).rowcount
                    self._pending += requeued
                    self._kept -= requeued
                self._db.execute("COMMIT")
            except sqlite3.Error as err:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise OutboxError(self._explain(err)) from err
            last = self._last_seq
        first = seqs[0] if seqs else None
        gone_until = (first - 1) if first is not None else min(last, top)
        return ReplayBatch(
            epoch=self.epoch,
            after_seq=after_seq,
            count=len(seqs),
            first_seq=first,
            through_seq=seqs[-1] if seqs else None,
            last_seq=last,
            gap=(after_seq + 1, gone_until) if gone_until > after_seq else None,
        )

    def sync(self) -> None:
        """Make every commit so far durable (one fsync of the WAL); a no-op when nothing new
        was appended since the last call."""
        with self._lock:
            if self._synced_seq >= self._last_seq:
                return
            last = self._last_seq
            try:
                # In WAL mode a FULL commit syncs the log, and with it every earlier commit.
                self._db.execute("PRAGMA synchronous=FULL")
                try:
                    self._db.execute(
                        "INSERT OR REPLACE INTO meta (key, value) VALUES ('synced_seq', ?)",
                        (str(last),),
                    )
                finally:
                    self._db.execute("PRAGMA synchronous=NORMAL")
            except sqlite3.Error as err:
                raise OutboxError(self._explain(err)) from err
            self._synced_seq = last

    @property
    def synced_seq(self) -> int:
        """Every seq up to this one is on disk (see :meth:`sync`)."""
        return self._synced_seq

    def close(self) -> None:
        """Close the database (pending and kept rows stay for the next start)."""
        with self._lock:
            if self._unlogged_drops:
                _LOGGER.warning(
                    "outbox %s: %d more event(s) dropped, %d in total",
                    self.path,
                    self._unlogged_drops,
                    self.dropped,
                )
                self._unlogged_drops = 0
            self._db.close()

    def _forget(self, seq: int) -> None:
        """Drop one unreadable pending row (counted as dropped)."""
        with self._lock:
            try:
                removed = self._db.execute(
                    "DELETE FROM outbox WHERE seq = ? AND acked = 0", (seq,)
                ).rowcount
            except sqlite3.Error as err:
                raise OutboxError(self._explain(err)) from err
            self._pending -= removed
            self._count_drops(removed)

    def _prune(self) -> None:
        """Forget kept rows beyond the count and age bounds, from the old end only (caller
        holds the lock, inside a transaction)."""
        db = self._db
        # Never above a pending row: the store must stay one run of seqs.
        (floor,) = db.execute("SELECT MIN(seq) FROM outbox WHERE acked = 0").fetchone()
        floor = self._last_seq + 1 if floor is None else int(floor)
        limit: int | None = None
        excess = self._kept - self.keep_rows
        if excess > 0:
            row = db.execute(
                "SELECT seq FROM outbox WHERE seq < ? ORDER BY seq LIMIT 1 OFFSET ?",
                (floor, excess - 1),
            ).fetchone()
            limit = None if row is None else int(row[0])
        now = self._clock()
        if now >= self._next_age_prune:
            self._next_age_prune = now + _AGE_PRUNE_INTERVAL_S
            (aged,) = db.execute(
                "SELECT MAX(seq) FROM outbox WHERE seq < ? AND stored_at < ?",
                (floor, now - self.keep_s),
            ).fetchone()
            if aged is not None:
                limit = max(limit or 0, int(aged))
        if limit is not None:
            self._kept -= db.execute("DELETE FROM outbox WHERE seq <= ?", (limit,)).rowcount

    def _count_drops(self, count: int) -> None:
        """Count dropped rows and log them, at most one line per interval (caller holds lock)."""
        if count <= 0:
            return
        self.dropped += count
        self._unlogged_drops += count
        now = time.monotonic()
        if now - self._last_drop_log >= _DROP_LOG_INTERVAL_S:
            _LOGGER.warning(
                "outbox %s is full (%d rows): dropped %d oldest event(s), %d dropped in total",
                self.path,
                self.max_rows,
                self._unlogged_drops,
                self.dropped,
            )
            self._last_drop_log = now
            self._unlogged_drops = 0
