"""psoc.console.feed.Tail: keys committed out of order are still shown; holes are forgotten."""

from __future__ import annotations

from psoc.console.feed import Tail


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
