"""psoc.console.feed: keys committed out of order are still shown (Tail); incidents are
sent at once when new or higher, their counts at most once a second (Pushes)."""

from __future__ import annotations

from psoc.console.feed import Pushes, Tail


def test_a_late_commit_below_the_last_key_is_asked_for_again() -> None:
    tail = Tail(after=10, hold_s=5)
    tail.seen([11, 14], now=100)
    assert tail.after == 14 and set(tail.holes) == {12, 13}
    tail.seen([12], now=101)
    assert set(tail.holes) == {13}
    tail.seen([], now=106)  # 13 never came (a rolled-back insert): forgotten
    assert tail.holes == {}


def test_holes_are_bounded() -> None:
    tail = Tail(after=0, max_holes=100)
    tail.seen([1_000_000], now=0)
    assert len(tail.holes) <= 100 and tail.after == 1_000_000


def test_a_new_incident_and_a_higher_level_go_at_once_counts_once_a_second() -> None:
    pushes = Pushes(every_s=1.0)
    a, b = ("s1", "a" * 32), ("s1", "b" * 32)
    assert pushes.due({a: 1}, now=0.0) == {a}  # new
    assert pushes.due({a: 1, b: 1}, now=0.2) == {b}  # a: only its count changed, it waits
    assert pushes.due({a: 2}, now=0.4) == {a}  # its level rose
    assert pushes.due({a: 2}, now=0.6) == set()
    assert pushes.due({}, now=1.0) == set()  # a was sent at 0.4
    assert pushes.due({}, now=1.5) == {a}  # its waiting count, a second after
    assert pushes.due({}, now=3.0) == set()  # nothing left waiting


def test_pushes_forget_quiet_incidents_but_never_drop_a_waiting_one() -> None:
    pushes = Pushes(every_s=1.0, max_keys=2)
    keys = [("s1", str(n) * 32) for n in range(3)]
    pushes.due({keys[0]: 1}, now=0.0)
    pushes.due({keys[0]: 1}, now=0.1)  # waiting
    assert pushes.due({keys[1]: 1, keys[2]: 1}, now=0.2) == {keys[0], keys[1], keys[2]}
    assert len(pushes.sent) <= 2 and not pushes.waiting
