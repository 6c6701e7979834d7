"""Per-agent event sequence bookkeeping (pure: numbers in, numbers out).

An agent numbers its events (``seq``, 1, 2, ...). The PSOC keeps ``done``: every seq up to it
is stored or counted lost. When stored seqs run ahead of ``done`` with a hole, or the agent's
``state`` says it has more (``last_seq``), the hole is asked for again with a ``replay``
command (``after_seq``, and ``through_seq`` when events beyond the hole are stored) after a
grace period (events still in flight arrive by themselves); seqs older than
what the agent still keeps (``oldest_seq``) can never come back and are counted lost.
Agents without seq are de-duplicated by event id alone and never asked.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

GRACE_S = 3.0  # how long a hole may wait for in-flight events before it is asked for
RETRY_S = 30.0  # at most one replay request per agent in this time


@dataclass(frozen=True)
class Advance:
    done: int
    lost: int  # seqs given up on: older than the agent's oldest kept event
    lost_range: tuple[int, int] | None


def advance(done: int, stored: Iterable[int], oldest_seq: int | None) -> Advance:
    """Move ``done`` over the stored seqs (ascending, all > ``done``) and the lost ones."""
    lost = 0
    lost_range = None
    if oldest_seq is not None and oldest_seq > done + 1:
        lost = oldest_seq - 1 - done
        lost_range = (done + 1, oldest_seq - 1)
        done = oldest_seq - 1
    for seq in stored:
        if seq <= done:
            continue
        if seq != done + 1:
            break
        done = seq
    return Advance(done, lost, lost_range)


def hole_end(done: int, stored: Iterable[int]) -> int | None:
    """The last seq of the hole after ``done``: one before the next stored seq (ascending
    ``stored``), so a replay fetches only what is missing; None when nothing beyond is stored
    (ask up to the agent's newest)."""
    following = next((seq for seq in stored if seq > done + 1), None)
    return None if following is None else following - 1


def behind(done: int, last_seq: int | None, highest_stored: int | None) -> bool:
    """Is something after ``done`` known to exist and not stored?"""
    known = max(last_seq or 0, highest_stored or 0)
    return known > done


def should_ask(now: float, gap_since: float | None, replay_at: float | None) -> bool:
    """Ask the agent again? Only once a hole outlived the grace time, and not too often."""
    if gap_since is None or now - gap_since < GRACE_S:
        return False
    return replay_at is None or now - replay_at >= RETRY_S
