"""Outbox (the event store): order, seq and epoch, durability across reopen, kept events and
replay, bounds with counted drops, clear errors."""

from __future__ import annotations

import logging
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from sensor_agent.outbox import Outbox, OutboxError


def seqs_and_values(outbox: Outbox) -> list[int]:
    return [entry.payload["n"] for entry in outbox.after(0, 1_000_000)]


def test_entries_come_back_in_order_with_seq_and_epoch_until_acknowledged(
    tmp_path: Path,
) -> None:
    outbox = Outbox(tmp_path / "o.sqlite")
    seqs = [outbox.append({"n": n}) for n in range(5)]
    assert seqs == [1, 2, 3, 4, 5]
    assert outbox.pending == 5
    assert [e.payload for e in outbox.after(seqs[1], 2)] == [
        {"n": 2, "seq": 3, "epoch": outbox.epoch},
        {"n": 3, "seq": 4, "epoch": outbox.epoch},
    ]
    outbox.acknowledge(seqs[0])
    outbox.acknowledge(seqs[0])  # twice (a duplicate PUBACK) is harmless
    outbox.acknowledge(10_000)  # so is an unknown seq (a row dropped meanwhile)
    assert (outbox.pending, outbox.kept) == (4, 1)
    assert seqs_and_values(outbox) == [1, 2, 3, 4]
    assert outbox.delivery() == {"epoch": outbox.epoch, "last_seq": 5, "oldest_seq": 1}
    assert len(outbox.epoch) == 32 and int(outbox.epoch, 16) >= 0
    outbox.close()


def test_pending_entries_survive_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "dir" / "o.sqlite"  # the directory is created
    outbox = Outbox(path)
    epoch = outbox.epoch
    seqs = [outbox.append({"n": n, "text": "café ☕"}) for n in range(3)]
    outbox.acknowledge(seqs[0])
    outbox.close()
    reopened = Outbox(path)
    assert (reopened.pending, reopened.kept) == (2, 1)
    assert reopened.last_seq == seqs[-1]
    assert reopened.epoch == epoch  # the same store, the same epoch
    entries = reopened.after(0, 10)
    assert [e.payload for e in entries] == [
        {"n": 1, "text": "café ☕", "seq": 2, "epoch": epoch},
        {"n": 2, "text": "café ☕", "seq": 3, "epoch": epoch},
    ]
    reopened.close()
    path.unlink()
    fresh = Outbox(path)  # a new store: seq starts again at 1, under a new epoch
    assert (fresh.epoch != epoch, fresh.last_seq, fresh.append({"n": 0})) == (True, 0, 1)
    fresh.close()


def test_pending_entries_survive_a_killed_process(tmp_path: Path) -> None:
    """A process that dies without closing (SIGKILL-like exit) keeps what it committed."""
    path = tmp_path / "o.sqlite"
    script = (
        "import os, sys\n"
        "from sensor_agent.outbox import Outbox\n"
        "o = Outbox(sys.argv[1])\n"
        "for n in range(50): o.append({'n': n})\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", script, str(path)], check=True, timeout=60)
    outbox = Outbox(path)
    assert seqs_and_values(outbox) == list(range(50))
    outbox.close()


def test_seq_numbers_are_never_reused(tmp_path: Path) -> None:
    """The sender remembers the last seq it sent; a reused number would be skipped."""
    path = tmp_path / "o.sqlite"
    outbox = Outbox(path, keep_rows=0)
    first = outbox.append({"n": 0})
    outbox.acknowledge(first)
    assert (outbox.pending, outbox.kept) == (0, 0)  # nothing kept
    assert outbox.delivery()["oldest_seq"] == first + 1  # and none to replay
    outbox.close()
    outbox = Outbox(path)
    assert outbox.last_seq == first  # even with every row gone
    assert outbox.append({"n": 1}) > first
    outbox.close()


def test_full_outbox_drops_the_oldest_counts_and_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outbox = Outbox(tmp_path / "o.sqlite", max_rows=3)
    with caplog.at_level(logging.WARNING, logger="sensor_agent.outbox"):
        for n in range(7):
            outbox.append({"n": n})
    assert outbox.pending == 3
    assert outbox.dropped == 4
    assert seqs_and_values(outbox) == [4, 5, 6]
    assert "is full (3 rows): dropped 1 oldest event(s), 1 dropped in total" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="sensor_agent.outbox"):
        outbox.close()  # the drops since the last (rate-limited) line are logged too
    assert "3 more event(s) dropped, 4 in total" in caplog.text


def test_a_smaller_bound_on_reopen_drops_the_excess_on_the_next_append(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    outbox = Outbox(path)
    for n in range(10):
        outbox.append({"n": n})
    outbox.close()
    outbox = Outbox(path, max_rows=4)
    outbox.append({"n": 10})
    assert seqs_and_values(outbox) == [7, 8, 9, 10]
    assert outbox.dropped == 7
    outbox.close()


def test_concurrent_appends_and_removes_lose_nothing(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite")
    removed: list[int] = []

    def producer(base: int) -> None:
        for n in range(200):
            outbox.append({"n": base + n})

    def consumer() -> None:
        deadline = time.monotonic() + 30
        while len(removed) < 300 and time.monotonic() < deadline:
            room = min(10, 300 - len(removed))
            for entry in outbox.after(removed[-1] if removed else 0, room):
                outbox.acknowledge(entry.seq)
                removed.append(entry.seq)

    threads = [threading.Thread(target=producer, args=(b,)) for b in (0, 1000, 2000)]
    threads.append(threading.Thread(target=consumer))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert outbox.pending == 600 - 300
    assert len(set(removed)) == 300
    assert outbox.pending == len(outbox.after(0, 10_000))
    outbox.close()


def test_a_second_agent_on_the_same_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    first = Outbox(path)
    first.append({"n": 1})
    with pytest.raises(OutboxError, match="locked by another process"):
        Outbox(path, lock_timeout_s=0.2)
    first.close()
    Outbox(path).close()  # free again once the first one closed


def test_a_file_that_is_not_sqlite_gives_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    path.write_bytes(b"this is not a database\n" * 200)
    with pytest.raises(OutboxError, match=r"not a usable SQLite database.*move it aside"):
        Outbox(path)
    assert path.read_bytes().startswith(b"this is not")  # left alone for inspection


def test_a_damaged_database_gives_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    outbox = Outbox(path)
    for n in range(200):
        outbox.append({"n": n, "pad": "x" * 200})
    outbox.close()
    data = bytearray(path.read_bytes())
    data[4096 : 4096 * 3] = b"\xa5" * (4096 * 2)  # smash pages behind the header
    path.write_bytes(bytes(data))
    with pytest.raises(OutboxError, match="not a usable SQLite database"):
        Outbox(path)


def test_a_row_that_is_not_json_is_dropped_counted_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "o.sqlite"
    outbox = Outbox(path)
    outbox.append({"n": 0})
    outbox.close()
    db = sqlite3.connect(path)
    db.execute("INSERT INTO outbox (payload) VALUES ('{broken')")  # pending, unreadable
    db.commit()
    db.close()
    outbox = Outbox(path)
    outbox.append({"n": 2})
    with caplog.at_level(logging.ERROR, logger="sensor_agent.outbox"):
        assert seqs_and_values(outbox) == [0, 2]
    assert "is not JSON; dropping it" in caplog.text
    assert outbox.dropped == 1
    assert outbox.pending == 2
    outbox.close()


def test_an_uncreatable_directory_gives_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutboxError, match="cannot create its directory"):
        Outbox(blocker / "sub" / "o.sqlite")


def test_a_payload_that_is_not_json_is_refused_and_nothing_is_stored(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite")
    with pytest.raises(TypeError):
        outbox.append({"n": object()})
    with pytest.raises(ValueError, match="not JSON compliant"):
        outbox.append({"n": float("nan")})
    assert outbox.pending == 0
    outbox.close()


def test_max_rows_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Outbox(tmp_path / "o.sqlite", max_rows=0)


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def fill(outbox: Outbox, count: int, acknowledge: bool = True) -> list[int]:
    seqs = [outbox.append({"n": n}) for n in range(count)]
    if acknowledge:
        for seq in seqs:
            outbox.acknowledge(seq)
    return seqs


def test_acknowledged_events_are_kept_up_to_the_count_bound(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite", keep_rows=3)
    fill(outbox, 5)
    assert (outbox.pending, outbox.kept, outbox.dropped) == (0, 3, 0)
    assert outbox.delivery()["oldest_seq"] == 3
    outbox.close()


def test_acknowledged_events_are_kept_up_to_the_age_bound(tmp_path: Path) -> None:
    clock = Clock()
    outbox = Outbox(tmp_path / "o.sqlite", keep_s=3600, clock=clock)
    fill(outbox, 3)
    clock.now += 1800
    fill(outbox, 2)
    clock.now += 1801  # the first three are over an hour old now
    fill(outbox, 1)
    assert outbox.delivery()["oldest_seq"] == 4
    assert outbox.kept == 3
    outbox.close()


def test_kept_events_are_never_pruned_above_a_pending_one(tmp_path: Path) -> None:
    """The store stays one run of seqs: a receiver can trust oldest_seq."""
    outbox = Outbox(tmp_path / "o.sqlite", keep_rows=1)
    seqs = fill(outbox, 4, acknowledge=False)
    for seq in seqs[1:]:  # the first stays pending (its PUBACK is late)
        outbox.acknowledge(seq)
    assert outbox.delivery()["oldest_seq"] == 1
    assert outbox.kept == 3
    outbox.acknowledge(seqs[0])  # now the old end can go
    assert (outbox.delivery()["oldest_seq"], outbox.kept) == (4, 1)
    outbox.close()


def test_replay_makes_kept_events_pending_again_in_order_and_bounded(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite")
    fill(outbox, 6)
    batch = outbox.replay(2, limit=3)
    assert (batch.count, batch.first_seq, batch.through_seq, batch.last_seq) == (3, 3, 5, 6)
    assert (batch.gap, batch.epoch, batch.after_seq) == (None, outbox.epoch, 2)
    assert [e.seq for e in outbox.after(0, 10)] == [3, 4, 5]
    assert (outbox.pending, outbox.kept) == (3, 3)
    again = outbox.replay(2, limit=10)  # pending rows are not duplicated
    assert (again.count, again.through_seq, outbox.pending) == (4, 6, 4)
    nothing = outbox.replay(6, limit=10)
    assert (nothing.count, nothing.first_seq, nothing.gap) == (0, None, None)
    outbox.close()


def test_replay_reports_the_events_that_are_gone_as_a_gap(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite", keep_rows=2)
    fill(outbox, 6)
    batch = outbox.replay(1, limit=10)
    assert (batch.count, batch.first_seq, batch.gap) == (2, 5, (2, 4))
    fresh = Outbox(tmp_path / "new.sqlite", keep_rows=0)
    fill(fresh, 3)
    gone = fresh.replay(0, limit=10)  # nothing kept at all
    assert (gone.count, gone.gap, gone.last_seq) == (0, (1, 3), 3)
    outbox.close()
    fresh.close()


def test_a_full_outbox_drops_kept_rows_below_the_dropped_ones_but_counts_pending_only(
    tmp_path: Path,
) -> None:
    outbox = Outbox(tmp_path / "o.sqlite", max_rows=2)
    for _ in range(3):  # kept, one at a time
        fill(outbox, 1)
    fill(outbox, 3, acknowledge=False)  # seqs 4..6: one too many pending
    assert outbox.dropped == 1
    assert (outbox.pending, outbox.kept) == (2, 0)
    assert outbox.delivery()["oldest_seq"] == 5
    outbox.close()


def test_a_store_of_an_agent_before_replay_is_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, payload TEXT NOT NULL)")
    db.executemany("INSERT INTO outbox (payload) VALUES (?)", [('{"n": 0}',), ('{"n": 1}',)])
    db.commit()
    db.close()
    outbox = Outbox(path)
    assert (outbox.pending, outbox.last_seq) == (2, 2)
    assert seqs_and_values(outbox) == [0, 1]
    assert outbox.append({"n": 2}) == 3
    outbox.close()


def test_sync_covers_every_append_and_is_free_when_nothing_is_new(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite")
    assert outbox.synced_seq == 0
    fill(outbox, 3, acknowledge=False)
    outbox.sync()
    assert outbox.synced_seq == 3
    outbox.sync()  # nothing new: no write
    outbox.append({"n": 3})
    assert outbox.synced_seq == 3
    outbox.sync()
    assert outbox.synced_seq == 4
    outbox.close()
    reopened = Outbox(tmp_path / "o.sqlite")
    assert reopened.synced_seq == 0  # a crashed earlier run may not have synced: sync again
    reopened.close()


def test_negative_bounds_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        Outbox(tmp_path / "o.sqlite", keep_rows=-1)
