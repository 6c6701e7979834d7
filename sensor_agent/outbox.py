"""Durable, bounded outbox of events waiting for the broker's acknowledgement (SQLite, WAL).

An event is appended before any attempt to publish it and removed only once the broker has
acknowledged it (QoS 1 PUBACK), so neither a broker outage nor an agent restart loses it.
Rows keep their order (``seq`` only grows, AUTOINCREMENT never reuses a number). When the
outbox holds ``max_rows``, appending drops the oldest rows; every drop is counted
(``dropped``, reported as ``outbox_dropped`` in the state payload) and logged.

WAL with ``synchronous=NORMAL``: a commit survives a crash of the agent; a power cut can
lose the last few commits. The database is opened in exclusive locking mode so that a second
agent using the same file is refused instead of sending the same events twice.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_LOGGER = logging.getLogger(__name__)

# 100,000 events (tens of MB at most): days of a busy LAN's events while the broker is
# away. The one default: config.py and MqttSettings use it too.
DEFAULT_MAX_ROWS = 100_000
_DROP_LOG_INTERVAL_S = 10.0


class OutboxError(OSError):
    """The outbox file cannot be used (corrupt, locked by another process, unwritable)."""


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One pending event: its position in the outbox and its payload (unsigned)."""

    seq: int
    payload: dict[str, Any]


class Outbox:
    """A FIFO of JSON payloads in a SQLite file; safe to use from several threads."""

    def __init__(
        self, path: str | Path, max_rows: int = DEFAULT_MAX_ROWS, lock_timeout_s: float = 1.0
    ) -> None:
        if max_rows < 1:
            raise ValueError(f"outbox max_rows must be at least 1, not {max_rows}")
        self.path = Path(path)
        self.max_rows = max_rows
        self.dropped = 0
        """Rows dropped because the outbox was full (since this object was opened)."""
        self._lock = threading.Lock()
        self._last_drop_log = -_DROP_LOG_INTERVAL_S
        self._unlogged_drops = 0
        self._db = self._open(lock_timeout_s)
        self._pending = self._query_one("SELECT COUNT(*) FROM outbox")
        self._last_seq = self._query_one("SELECT COALESCE(MAX(seq), 0) FROM outbox")

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
        except sqlite3.Error as err:
            if db is not None:
                db.close()
            raise OutboxError(self._explain(err)) from err
        return db

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
    def last_seq(self) -> int:
        """The seq of the newest row appended (0 when the outbox was always empty)."""
        return self._last_seq

    def append(self, payload: Mapping[str, Any]) -> int:
        """Store ``payload`` durably (dropping the oldest rows when full); return its seq."""
        text = json.dumps(payload, ensure_ascii=False, allow_nan=False)
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                excess = self._pending + 1 - self.max_rows
                if excess > 0:
                    self._db.execute(
                        "DELETE FROM outbox WHERE seq IN"
                        " (SELECT seq FROM outbox ORDER BY seq LIMIT ?)",
                        (excess,),
                    )
                cursor = self._db.execute("INSERT INTO outbox (payload) VALUES (?)", (text,))
                self._db.execute("COMMIT")
            except sqlite3.Error as err:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise OutboxError(self._explain(err)) from err
            if excess > 0:
                self._pending -= excess
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
                    "SELECT seq, payload FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?",
                    (seq, limit),
                ).fetchall()
            except sqlite3.Error as err:
                raise OutboxError(self._explain(err)) from err
        entries = []
        for row_seq, text in rows:
            try:
                entries.append(OutboxEntry(row_seq, json.loads(text)))
            except ValueError:
                _LOGGER.error("outbox %s: row %d is not JSON; dropping it", self.path, row_seq)
                self.remove(row_seq)
                with self._lock:
                    self._count_drops(1)
        return entries

    def remove(self, seq: int) -> None:
        """Forget an acknowledged entry (no error if it was already dropped)."""
        with self._lock:
            try:
                removed = self._db.execute("DELETE FROM outbox WHERE seq = ?", (seq,)).rowcount
            except sqlite3.Error as err:
                raise OutboxError(self._explain(err)) from err
            self._pending -= removed

    def close(self) -> None:
        """Close the database (pending rows stay for the next start)."""
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

    def _count_drops(self, count: int) -> None:
        """Count dropped rows and log them, at most one line per interval (caller holds lock)."""
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
