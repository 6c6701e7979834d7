"""Outbox: order, durability across reopen, bound with counted drops, clear errors."""

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


def test_entries_come_back_in_order_and_leave_only_when_removed(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite")
    seqs = [outbox.append({"n": n}) for n in range(5)]
    assert seqs == sorted(seqs)
    assert outbox.pending == 5
    assert [e.payload["n"] for e in outbox.after(seqs[1], 2)] == [2, 3]
    outbox.remove(seqs[0])
    outbox.remove(seqs[0])  # removing twice (a duplicate PUBACK) is harmless
    outbox.remove(10_000)  # so is an unknown seq (a row dropped meanwhile)
    assert outbox.pending == 4
    assert seqs_and_values(outbox) == [1, 2, 3, 4]
    outbox.close()


def test_pending_entries_survive_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "dir" / "o.sqlite"  # the directory is created
    outbox = Outbox(path)
    seqs = [outbox.append({"n": n, "text": "café ☕"}) for n in range(3)]
    outbox.remove(seqs[0])
    outbox.close()
    reopened = Outbox(path)
    assert reopened.pending == 2
    assert reopened.last_seq == seqs[-1]
    entries = reopened.after(0, 10)
    assert [e.payload for e in entries] == [
        {"n": 1, "text": "café ☕"},
        {"n": 2, "text": "café ☕"},
    ]
    reopened.close()


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
    outbox = Outbox(path)
    first = outbox.append({"n": 0})
    outbox.remove(first)
    outbox.close()
    outbox = Outbox(path)
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
                outbox.remove(entry.seq)
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
    db.execute("INSERT INTO outbox (payload) VALUES ('{broken')")
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
