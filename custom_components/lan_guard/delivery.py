"""End-to-end delivery of one agent's events: what was processed, what is missing, what is lost.

QoS 1 only reaches the broker. A subscriber that was away while the broker took an event
(the broker restarted, HA's MQTT client reconnected with a clean session, HA restarted)
never gets it from the broker. The agent numbers its events (``seq`` 1, 2, 3, ... under the
``epoch`` of its event store), keeps them for a while after the broker took them, and tells
in its retained ``state`` the newest seq it created and the oldest it still keeps. This
tracker follows those numbers for one agent and decides:

- whether an event is new, a duplicate (a QoS 1 redelivery, a re-published event, a replay
  by someone on the broker), or from an earlier store of the agent;
- when to ask the agent (``replay`` command, after ``done``, up to the first seq it has
  beyond) for what is missing: ``SETTLE_S`` seconds after every (re)subscription unless
  events have been arriving in order since (by then the retained state and the first live
  events show where HA stands), and whenever a seq is known to exist (a later event, the
  state, a replay answer) but delivery has made no progress towards it for ``SETTLE_S``
  seconds; one request at a time, the next one once its events have arrived or it timed out;
- which seqs are lost for good (gone from the agent's store before HA got them): they are
  reported (``take_gaps``), counted, and skipped; never passed over in silence.

It is pure (no Home Assistant, no I/O, no clock): the coordinator feeds it what arrives with
the time, sends the requests and tells the owner about gaps; its state is stored with the
event history. Bounded: at most ``MAX_RANGES`` runs of processed seqs above ``done``.

The first contact with an agent (a new entry) starts at the agent's newest seq: events from
before the entry existed are not fetched. Seqs at or below that start that still arrive are
processed once (de-duplicated by event id in the history), never asked for.
"""

from __future__ import annotations

import bisect
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

MAX_RANGES = 1000
_NO_END = 2**63  # above any seq
MAX_RETIRED_EPOCHS = 8
MAX_GAPS_KEPT = 20
# A seq known to exist is asked for once it is missing this long: MQTT keeps order per topic
# only, and an agent flushing its outbox after an outage announces seqs before it sends them.
SETTLE_S = 1.0
# No answer to a replay request within this: ask again (the agent may have been away).
RESULT_TIMEOUT_S = 10.0
# After an answer: the time its events may take to arrive before the rest is asked for.
BATCH_TIMEOUT_S = 10.0
# The agent refused (too many requests): wait before asking again.
REFUSED_RETRY_S = 2.0


class Verdict(StrEnum):
    """What to do with an arriving event."""

    NEW = "new"  # process it
    DUPLICATE = "duplicate"  # processed already: drop
    STALE_EPOCH = "stale_epoch"  # from a store the agent replaced: drop


@dataclass(frozen=True, slots=True)
class Gap:
    """Seqs ``first``..``last`` of ``epoch`` that are gone; ``count`` of them never arrived."""

    epoch: str
    first: int
    last: int
    count: int


@dataclass(slots=True)
class Request:
    """The replay request under way."""

    command_id: str
    after_seq: int
    deadline: float
    through: int | None = None  # from the answer: its events run up to this seq


class DeliveryTracker:
    """The delivery state of one agent's events (see the module docstring)."""

    def __init__(self) -> None:
        """A tracker that has not heard from the agent yet."""
        self.epoch: str | None = None
        self.start = 0  # seqs up to here are from before the first contact
        self.done = 0  # every seq up to here is processed or reported lost
        self.ranges: list[list[int]] = []  # processed seqs above ``done``: sorted [first, last]
        self.target = 0  # the newest seq known to exist
        self.retired: list[str] = []  # epochs of the agent's earlier stores
        self.lost = 0
        self.gaps: list[Gap] = []  # the latest, for diagnostics
        self.duplicates = 0
        self.stale = 0
        self.rebased = 0
        self.requests = 0
        self.request: Request | None = None
        self.behind_since: float | None = None  # since then ``done`` is stuck below ``target``
        self.ask_at: float | None = None  # after a (re)subscription: ask then, unless ...
        self._ask_done = 0  # ... ``done`` has moved on from this since
        self._behind_done = 0
        self._new_gaps: list[Gap] = []

    # ------------------------------------------------------------------ what arrives

    def event(self, epoch: str, seq: int, now: float, *, known_id: bool = False) -> Verdict:
        """An event arrived: record it when it is new. ``known_id``: the history has its id
        (what decides for events from before the first contact, which are not tracked)."""
        if not self._follow(epoch, start=seq - 1):
            self.stale += 1
            return Verdict.STALE_EPOCH
        if seq <= self.start:
            if known_id:
                self.duplicates += 1
                return Verdict.DUPLICATE
            return Verdict.NEW
        if seq <= self.done or self._processed(seq):
            self.duplicates += 1
            return Verdict.DUPLICATE
        self._add(seq)
        self.target = max(self.target, seq)
        self._settle(now)
        return Verdict.NEW

    def state(self, epoch: str, last_seq: int, oldest_seq: int, now: float) -> None:
        """The agent's state: the newest seq it created and the oldest it still keeps."""
        if not self._follow(epoch, start=last_seq):
            self.stale += 1
            return
        if last_seq < self.done:
            # The same store, but it has given out fewer seqs than we processed: it lost
            # events it had published (restored from a backup, say), and its next events reuse
            # those numbers. Follow it, or they would all look like duplicates.
            self.rebased += 1
            self.start = self.done = self.target = last_seq
            self.ranges = []
            self.request = None
        self.target = max(self.target, last_seq)
        self._lose_below(oldest_seq)
        self._settle(now)

    def replay_answer(self, answer: dict[str, Any], now: float) -> None:
        """The agent's answer to our replay request (the command result's ``replay``)."""
        if answer["epoch"] != self.epoch:
            return  # about another store: the state will say which one is current
        self.target = max(self.target, answer["last_seq"])
        if (gap := answer["gap"]) is not None:
            self._lose_below(gap["last_seq"] + 1)
        if not answer["count"] and gap is None:
            # Nothing after what we asked for existed: seqs we only heard of beyond it (a
            # forged event, say) do not exist; keep only what really arrived.
            self.target = max(answer["last_seq"], self.done, *(run[1] for run in self.ranges))
        if self.request is not None:
            if answer["count"]:
                self.request.through = answer["through_seq"]
                self.request.deadline = now + BATCH_TIMEOUT_S
            else:
                self.request = None
        self._settle(now)

    def replay_refused(self, now: float) -> None:
        """The agent refused our request (too many): ask again a little later."""
        if self.request is not None:
            self.request.deadline = now + REFUSED_RETRY_S

    # ------------------------------------------------------------------ what to ask

    def resubscribed(self, now: float) -> None:
        """HA (re)subscribed: with a clean session, anything published meanwhile was missed.
        Ask in ``SETTLE_S`` seconds, whatever the agent's state says by then, unless events
        arrive in order meanwhile (the agent is sending what follows anyway)."""
        self.ask_at, self._ask_done = now + SETTLE_S, self.done

    def want_replay(self, now: float) -> tuple[int, int | None] | None:
        """``(after_seq, through_seq)`` to ask the agent for now, or None: the first run of
        missing seqs (``through_seq`` None: up to the agent's newest)."""
        if self.epoch is None:
            return None  # no contact yet: the retained state will tell where to start
        # The first run of missing seqs: up to what arrived beyond it, else up to the newest
        # known to exist (what follows is on its way, or asked for later), else open.
        if self.ranges:
            ask: tuple[int, int | None] = (self.done, self.ranges[0][0] - 1)
        else:
            ask = (self.done, self.target if self.target > self.done else None)
        if self.ask_at is not None and now >= self.ask_at:
            self.ask_at = None
            if self.done == self._ask_done:
                return ask  # whatever is under way: HA was away
        request = self.request
        if request is not None:
            if request.through is not None and self.done >= request.through:
                self.request = None  # its events are in: on to the rest at once, if any
                return ask if self.target > self.done else None
            if now < request.deadline:
                return None
            self.request = None  # no answer, or its events never came: ask again
        if self.target <= self.done or self.behind_since is None:
            return None
        return ask if now - self.behind_since >= SETTLE_S else None

    def asked(self, command_id: str, after_seq: int, now: float) -> None:
        """A replay request was sent."""
        self.requests += 1
        self.request = Request(command_id, after_seq, now + RESULT_TIMEOUT_S)

    def next_check(self) -> float | None:
        """When ``want_replay`` may have something new to say without anything arriving."""
        times = [] if self.ask_at is None else [self.ask_at]
        if self.request is not None:
            times.append(self.request.deadline)
        elif self.behind_since is not None:
            times.append(self.behind_since + SETTLE_S)
        return min(times, default=None)

    def take_gaps(self) -> list[Gap]:
        """Gaps found since the last call (to tell the owner once)."""
        gaps, self._new_gaps = self._new_gaps, []
        return gaps

    # ------------------------------------------------------------------ storage

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready state to store with the history."""
        return {
            "epoch": self.epoch,
            "start": self.start,
            "done": self.done,
            "ranges": [list(run) for run in self.ranges],
            "target": self.target,
            "retired": list(self.retired),
            "lost": self.lost,
            "gaps": [asdict(gap) for gap in self.gaps],
        }

    @classmethod
    def from_dict(cls, data: Any) -> DeliveryTracker:
        """The stored state; a fresh tracker when there is none or it is unusable."""
        tracker = cls()
        if not isinstance(data, dict):
            return tracker
        try:
            epoch = data["epoch"]
            tracker.epoch = None if epoch is None else str(epoch)
            tracker.start = int(data["start"])
            tracker.done = int(data["done"])
            tracker.ranges = sorted(
                [int(first), int(last)] for first, last in data["ranges"][:MAX_RANGES]
            )
            tracker.target = int(data["target"])
            tracker.retired = [str(epoch) for epoch in data["retired"][-MAX_RETIRED_EPOCHS:]]
            tracker.lost = int(data["lost"])
            tracker.gaps = [Gap(**gap) for gap in data["gaps"][-MAX_GAPS_KEPT:]]
        except (KeyError, TypeError, ValueError):
            return cls()
        return tracker

    def diagnostics(self) -> dict[str, Any]:
        """What the diagnostics download shows."""
        return {
            **self.as_dict(),
            "missing": max(self.target - self.done - self._processed_between(self.done + 1), 0),
            "duplicates": self.duplicates,
            "stale_epoch": self.stale,
            "rebased": self.rebased,
            "replay_requests": self.requests,
            "request": None if self.request is None else asdict(self.request),
        }

    # ------------------------------------------------------------------ internals

    def _follow(self, epoch: str, start: int) -> bool:
        """Take ``epoch`` as the current one when it is (or becomes) so; False for an old one."""
        if epoch == self.epoch:
            return True
        if epoch in self.retired:
            return False
        if self.epoch is None:
            self.start = self.done = self.target = max(start, 0)
        else:
            # A new store (deleted, moved aside, a new machine): everything in it is new to
            # us, from seq 1 on.
            self.retired = [*self.retired, self.epoch][-MAX_RETIRED_EPOCHS:]
            self.start = self.done = self.target = 0
        self.epoch = epoch
        self.ranges = []
        self.request = None
        self.behind_since = None
        return True

    def _processed(self, seq: int) -> bool:
        i = bisect.bisect_right(self.ranges, [seq, _NO_END]) - 1
        return i >= 0 and self.ranges[i][0] <= seq <= self.ranges[i][1]

    def _processed_between(self, first: int, last: int = _NO_END) -> int:
        """How many seqs in ``first``..``last`` were processed above ``done``."""
        top = last
        return sum(
            max(0, min(run[1], top) - max(run[0], first) + 1)
            for run in self.ranges
            if run[1] >= first and run[0] <= top
        )

    def _add(self, seq: int) -> None:
        ranges = self.ranges
        i = bisect.bisect_left(ranges, [seq, seq])
        joins_before = i > 0 and ranges[i - 1][1] + 1 == seq
        joins_after = i < len(ranges) and ranges[i][0] - 1 == seq
        if joins_before and joins_after:
            ranges[i - 1][1] = ranges[i][1]
            del ranges[i]
        elif joins_before:
            ranges[i - 1][1] = seq
        elif joins_after:
            ranges[i][0] = seq
        else:
            ranges.insert(i, [seq, seq])
        self._advance()
        if len(ranges) > MAX_RANGES:
            # Pathological fragmentation: give up on the oldest hole rather than grow.
            self._lose_below(ranges[0][0])

    def _advance(self) -> None:
        while self.ranges and self.ranges[0][0] <= self.done + 1:
            self.done = max(self.done, self.ranges.pop(0)[1])

    def _lose_below(self, limit: int) -> None:
        """Seqs below ``limit`` are gone from the agent: whatever of them is missing is lost."""
        if limit <= self.done + 1:
            return
        first, last = self.done + 1, limit - 1
        missing = (last - first + 1) - self._processed_between(first, last)
        if missing > 0 and self.epoch is not None:
            gap = Gap(self.epoch, first, last, missing)
            self.lost += missing
            self.gaps = [*self.gaps, gap][-MAX_GAPS_KEPT:]
            self._new_gaps.append(gap)
        self.done = last
        self.ranges = [run for run in self.ranges if run[1] > last]
        if self.ranges and self.ranges[0][0] <= last:
            self.ranges[0][0] = last + 1
        self._advance()

    def _settle(self, now: float) -> None:
        """Note since when ``done`` has been stuck below a seq known to exist (events that
        keep arriving in order are progress, not a loss)."""
        if self.target <= self.done:
            self.behind_since = None
        elif self.behind_since is None or self.done != self._behind_done:
            self.behind_since, self._behind_done = now, self.done
