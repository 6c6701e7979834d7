"""The delivery tracker: new, duplicate and stale events; when to ask for what; lost events."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from custom_components.lan_guard.delivery import (
    BATCH_TIMEOUT_S,
    MAX_RANGES,
    MAX_RETIRED_EPOCHS,
    REFUSED_RETRY_S,
    RESULT_TIMEOUT_S,
    SETTLE_S,
    DeliveryTracker,
    Gap,
    Verdict,
)

E1, E2, E3 = "1" * 32, "2" * 32, "3" * 32
T = 1_800_000_000.0


def answer(
    after: int,
    first: int | None,
    through: int | None,
    last: int,
    *,
    gap: Any = None,
    epoch: str = E1,
) -> dict[str, Any]:
    count = 0 if first is None or through is None else through - first + 1
    return {
        "epoch": epoch,
        "after_seq": after,
        "count": count,
        "first_seq": first,
        "through_seq": through,
        "last_seq": last,
        "gap": None if gap is None else {"first_seq": gap[0], "last_seq": gap[1]},
    }


def started(last_seq: int = 0) -> DeliveryTracker:
    """A tracker whose first contact was a state saying ``last_seq``."""
    tracker = DeliveryTracker()
    tracker.state(E1, last_seq, 1, T)
    return tracker


def test_the_first_contact_starts_at_the_agents_newest_seq() -> None:
    tracker = DeliveryTracker()
    assert tracker.want_replay(T) is None  # nothing known yet: nothing to ask
    tracker.state(E1, 500, 1, T)
    assert (tracker.epoch, tracker.start, tracker.done) == (E1, 500, 500)
    assert tracker.want_replay(T + 60) is None  # events from before the entry are not fetched
    assert tracker.event(E1, 501, T) is Verdict.NEW
    # An older one arriving late is processed once (told apart by its id), never asked for.
    assert tracker.event(E1, 499, T, known_id=False) is Verdict.NEW
    assert tracker.event(E1, 499, T, known_id=True) is Verdict.DUPLICATE
    first_event = DeliveryTracker()
    assert first_event.event(E1, 7, T) is Verdict.NEW
    assert (first_event.start, first_event.done) == (6, 7)


def test_events_in_order_advance_and_duplicates_are_dropped() -> None:
    tracker = started()
    for seq in range(1, 6):
        assert tracker.event(E1, seq, T) is Verdict.NEW
    assert (tracker.done, tracker.ranges) == (5, [])
    assert tracker.event(E1, 3, T) is Verdict.DUPLICATE
    assert tracker.event(E1, 9, T) is Verdict.NEW
    assert tracker.event(E1, 9, T) is Verdict.DUPLICATE
    assert (tracker.done, tracker.ranges, tracker.duplicates) == (5, [[9, 9]], 2)
    for seq in (7, 6, 8):
        assert tracker.event(E1, seq, T) is Verdict.NEW
    assert (tracker.done, tracker.ranges) == (9, [])


def test_a_missing_seq_is_asked_for_once_delivery_stalls() -> None:
    tracker = started()
    tracker.event(E1, 1, T)
    tracker.event(E1, 3, T)  # 2 is missing (or still on its way)
    assert tracker.want_replay(T + SETTLE_S / 2) is None
    assert tracker.next_check() == T + SETTLE_S
    assert tracker.want_replay(T + SETTLE_S) == (1, 2)  # just the hole
    tracker.asked("r1", 1, T + SETTLE_S)
    assert tracker.want_replay(T + SETTLE_S + 1) is None  # one request at a time


def test_events_still_arriving_in_order_are_progress_not_a_loss() -> None:
    """An agent flushing its outbox announces seqs (state) before they arrive."""
    tracker = started()
    tracker.state(E1, 100, 1, T)
    for step, seq in enumerate(range(1, 100)):
        tracker.event(E1, seq, T + 0.5 + step * 0.1)  # slower than the settle time in total
        assert tracker.want_replay(T + 0.5 + step * 0.1) is None
    assert tracker.want_replay(T + 10.4 + SETTLE_S) == (99, 100)  # 100 never came: ask


def test_a_state_ahead_is_asked_for_up_to_the_agents_newest() -> None:
    tracker = started(10)
    tracker.state(E1, 40, 1, T)
    assert tracker.want_replay(T + SETTLE_S) == (10, 40)


def test_an_answer_paces_the_next_request_by_its_events_or_a_timeout() -> None:
    tracker = started()
    tracker.state(E1, 2500, 1, T)
    now = T + SETTLE_S
    assert tracker.want_replay(now) == (0, 2500)
    tracker.asked("r1", 0, now)
    tracker.replay_answer(answer(0, 1, 1000, 2500), now)
    assert tracker.request is not None and tracker.request.through == 1000
    assert tracker.want_replay(now + 1) is None  # its events are on their way
    for seq in range(1, 1001):
        tracker.event(E1, seq, now + 1)
    assert tracker.want_replay(now + 1) == (1000, 2500)  # they are in: on to the rest
    tracker.asked("r2", 1000, now + 1)
    tracker.replay_answer(answer(1000, 1001, 2000, 2500), now + 1)
    assert tracker.want_replay(now + 1 + BATCH_TIMEOUT_S - 0.1) is None
    assert tracker.want_replay(now + 1 + BATCH_TIMEOUT_S) == (1000, 2500)  # never came


def test_an_unanswered_or_refused_request_is_asked_again_later() -> None:
    tracker = started()
    tracker.state(E1, 5, 1, T)
    tracker.asked("r1", 0, T + SETTLE_S)
    assert tracker.next_check() == T + SETTLE_S + RESULT_TIMEOUT_S
    assert tracker.want_replay(T + SETTLE_S + RESULT_TIMEOUT_S) == (0, 5)
    tracker.asked("r2", 0, T + 20)
    tracker.replay_refused(T + 20)
    assert tracker.want_replay(T + 20 + REFUSED_RETRY_S - 0.1) is None
    assert tracker.want_replay(T + 20 + REFUSED_RETRY_S) == (0, 5)


def test_events_gone_from_the_agent_are_reported_once_counted_and_skipped() -> None:
    tracker = started()
    tracker.event(E1, 1, T)
    tracker.event(E1, 40, T)
    tracker.asked("r1", 1, T + SETTLE_S)
    tracker.replay_answer(answer(1, 30, 39, 40, gap=(2, 29)), T + SETTLE_S)
    assert tracker.take_gaps() == [Gap(E1, 2, 29, 28)]
    assert tracker.take_gaps() == []
    assert (tracker.lost, tracker.done) == (28, 29)
    for seq in range(30, 40):
        tracker.event(E1, seq, T + 2)
    assert tracker.done == 40
    # The state's oldest_seq tells the same: only what never arrived counts.
    tracker.event(E1, 45, T + 3)
    tracker.state(E1, 50, 48, T + 3)
    assert tracker.take_gaps() == [Gap(E1, 41, 47, 6)]
    assert (tracker.lost, tracker.done) == (34, 47)
    assert [gap.count for gap in tracker.gaps] == [28, 6]


def test_an_answer_that_nothing_exists_beyond_drops_seqs_only_heard_of() -> None:
    """A forged event with a huge seq (no key set) must not make HA ask forever."""
    tracker = started()
    tracker.event(E1, 1, T)
    tracker.event(E1, 10**12, T)
    tracker.asked("r1", 1, T + SETTLE_S)
    tracker.replay_answer(answer(1, None, None, 1), T + SETTLE_S)
    assert tracker.request is None
    assert tracker.target == 10**12  # it did arrive: processed, but nothing is missing below
    assert tracker.want_replay(T + 100) == (1, 10**12 - 1)
    tracker.asked("r2", 1, T + 100)
    tracker.replay_answer(answer(1, None, None, 1), T + 100)
    assert tracker.want_replay(T + 200) == (1, 10**12 - 1)  # asked again, at most this often
    spoofed = started()
    spoofed.state(E1, 10**12, 1, T)  # a state only: nothing of it arrived
    spoofed.asked("r1", 0, T + SETTLE_S)
    spoofed.replay_answer(answer(0, None, None, 0), T + SETTLE_S)
    assert spoofed.target == 0
    assert spoofed.want_replay(T + 100) is None


def test_a_new_store_starts_again_from_seq_1_and_old_epochs_are_refused() -> None:
    tracker = started(900)
    assert tracker.event(E2, 3, T) is Verdict.NEW  # the agent's store was replaced
    assert (tracker.epoch, tracker.retired, tracker.start, tracker.done) == (E2, [E1], 0, 0)
    assert tracker.want_replay(T + SETTLE_S) == (0, 2)  # everything of the new store is new
    assert tracker.event(E1, 901, T) is Verdict.STALE_EPOCH  # a late or replayed old one
    tracker.state(E1, 901, 1, T)
    assert (tracker.epoch, tracker.stale) == (E2, 2)
    for n in range(MAX_RETIRED_EPOCHS + 2):
        tracker.event(f"{n:032x}", 1, T)
    assert len(tracker.retired) == MAX_RETIRED_EPOCHS


def test_an_answer_about_another_store_is_ignored() -> None:
    tracker = started()
    tracker.event(E1, 2, T)
    tracker.asked("r1", 0, T + SETTLE_S)
    tracker.replay_answer(answer(0, None, None, 0, gap=(1, 1), epoch=E3), T + SETTLE_S)
    assert (tracker.lost, tracker.done) == (0, 0)


def test_a_store_that_lost_published_events_is_followed_from_its_newest() -> None:
    tracker = started()
    for seq in range(1, 11):
        tracker.event(E1, seq, T)
    tracker.state(E1, 6, 1, T)  # the same store says it gave out 6 only
    assert (tracker.done, tracker.rebased) == (6, 1)
    assert tracker.event(E1, 7, T) is Verdict.NEW  # its next event reuses 7: a new one


def test_ha_asks_after_each_resubscription_once_it_sees_where_it_stands() -> None:
    tracker = started(10)
    tracker.resubscribed(T)
    assert tracker.want_replay(T) is None
    assert tracker.next_check() == T + SETTLE_S
    tracker.event(E1, 15, T + 0.5)  # live again, above a hole
    assert tracker.want_replay(T + SETTLE_S) == (10, 14)
    tracker.asked("r1", 10, T + SETTLE_S)
    tracker.resubscribed(T + 5)  # away again: whatever is under way
    assert tracker.want_replay(T + 5 + SETTLE_S) == (10, 14)
    fresh = DeliveryTracker()
    fresh.resubscribed(T)
    assert fresh.want_replay(T + SETTLE_S) is None  # never heard of the agent: nothing to ask
    flowing = started(10)
    flowing.resubscribed(T)
    flowing.event(E1, 11, T + 0.5)  # the agent is sending what follows: no need to ask
    assert flowing.want_replay(T + SETTLE_S) is None
    quiet = started(10)
    quiet.resubscribed(T)
    assert quiet.want_replay(T + SETTLE_S) == (10, None)  # nothing says what we missed: ask


def test_fragmentation_is_bounded_by_giving_up_the_oldest_hole() -> None:
    tracker = started()
    for n in range(MAX_RANGES + 1):
        tracker.event(E1, 2 + 2 * n, T)  # every other seq: a hole each
    assert len(tracker.ranges) == MAX_RANGES
    assert tracker.take_gaps() == [Gap(E1, 1, 1, 1)]
    assert tracker.done == 2


def test_the_state_is_stored_and_read_back_and_garbage_gives_a_fresh_tracker() -> None:
    tracker = started()
    tracker.event(E1, 1, T)
    tracker.event(E1, 5, T)
    tracker.state(E2, 3, 1, T)
    tracker.state(E2, 9, 4, T)
    copy = DeliveryTracker.from_dict(tracker.as_dict())
    assert copy.as_dict() == tracker.as_dict()
    assert copy.gaps == tracker.gaps and copy.lost == 3
    for garbage in (None, [], {"epoch": E1}, {**tracker.as_dict(), "ranges": [["x"]]}):
        assert DeliveryTracker.from_dict(garbage).epoch is None
    diagnostics = tracker.diagnostics()
    assert diagnostics["missing"] == 6  # 4..9 announced, none arrived
    assert diagnostics["stale_epoch"] == 0


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 300), st.randoms(use_true_random=False), st.integers(0, 60))
def test_any_arrival_order_with_duplicates_processes_every_seq_once(
    count: int, rng: random.Random, duplicates: int
) -> None:
    seqs = list(range(1, count + 1))
    arrivals = seqs + [rng.choice(seqs) for _ in range(duplicates)]
    rng.shuffle(arrivals)
    tracker = started()
    new = [seq for seq in arrivals if tracker.event(E1, seq, T) is Verdict.NEW]
    assert sorted(new) == seqs
    assert (tracker.done, tracker.ranges, tracker.duplicates) == (count, [], duplicates)
    assert tracker.want_replay(T + 60) is None


@pytest.mark.parametrize("lost", [(1, 1), (3, 7)])
def test_a_gap_never_counts_what_did_arrive(lost: tuple[int, int]) -> None:
    tracker = started()
    arrived = [seq for seq in range(1, 10) if not lost[0] <= seq <= lost[1]]
    for seq in arrived:
        tracker.event(E1, seq, T)
    tracker.replay_answer(answer(0, None, None, 9, gap=(1, 9)), T)
    assert tracker.lost == lost[1] - lost[0] + 1
    assert tracker.done == 9
