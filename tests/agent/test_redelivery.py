"""Redelivery: replay requests go to the event store, bounded per request and rate-limited."""

from __future__ import annotations

from pathlib import Path

import pytest

from sensor_agent.outbox import Outbox
from sensor_agent.redelivery import Redelivery, RedeliveryRefused
from tests.contract import validate


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> Outbox:
    outbox = Outbox(tmp_path / "store.sqlite", keep_rows=8)
    for n in range(12):
        outbox.acknowledge(outbox.append({"n": n}))
    return outbox


def test_an_answer_says_what_comes_again_and_what_is_gone(store: Outbox) -> None:
    redelivery = Redelivery(store, batch=3)
    answer = redelivery(1)
    assert answer == {
        "epoch": store.epoch,
        "after_seq": 1,
        "count": 3,
        "first_seq": 5,
        "through_seq": 7,
        "last_seq": 12,
        "gap": {"first_seq": 2, "last_seq": 4},  # 8 kept: 1..4 are gone
    }
    assert [entry.seq for entry in store.after(0, 100)] == [5, 6, 7]
    assert redelivery(8, through_seq=9)["through_seq"] == 9  # the sender has 10 on
    assert redelivery(12)["count"] == 0
    result = {"id": "r1", "ok": True, "error": None, "action": "replay", "replay": answer}
    validate("command_result", result)


def test_requests_beyond_the_burst_are_refused_until_the_bucket_refills(store: Outbox) -> None:
    clock = Clock()
    redelivery = Redelivery(store, burst=2, rate_per_s=0.5, clock=clock)
    redelivery(0)
    redelivery(0)
    with pytest.raises(RedeliveryRefused, match=r"too many replay requests; ask again in 2\.0 s"):
        redelivery(0)
    clock.now += 2.0
    redelivery(0)  # one token back
    with pytest.raises(RedeliveryRefused):
        redelivery(0)
    clock.now += 100.0  # never more than the burst
    redelivery(0)
    redelivery(0)
    with pytest.raises(RedeliveryRefused):
        redelivery(0)


@pytest.mark.parametrize("bad", [{"batch": 0}, {"burst": 0}, {"rate_per_s": 0.0}])
def test_bounds_must_be_positive(store: Outbox, bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Redelivery(store, **bad)  # type: ignore[arg-type]
