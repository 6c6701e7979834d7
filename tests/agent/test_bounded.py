"""The bounded table every per-address state lives in: capped, expiring, and not flushable by
a spray of forged addresses."""

from __future__ import annotations

from dataclasses import dataclass
from random import Random

from hypothesis import given, settings
from hypothesis import strategies as st

from sensor_agent.bounded import BoundedTable, RecentKeys


@dataclass
class State:
    last: float


def key(i: int) -> bytes:
    return i.to_bytes(6, "big")


def heard(table: BoundedTable[State], k: bytes, now: float) -> State:
    state = table.current(k, now, 60.0, lambda: State(now))
    state.last = now
    return state


def test_a_spray_of_newcomers_never_pushes_out_an_established_entry() -> None:
    table: BoundedTable[State] = BoundedTable(100, 60.0)
    for i in range(10):  # ten sources, each heard twice
        heard(table, key(i), 0.0)
        heard(table, key(i), 1.0)
    for i in range(1000, 11_000):  # 10,000 forged sources, one frame each
        heard(table, key(i), 2.0)
    assert all(table.is_established(key(i)) for i in range(10))
    assert len(table) == 100 and table.evictions == 10_000 - 90


def test_eviction_takes_the_least_recently_refreshed_newcomer() -> None:
    table: BoundedTable[State] = BoundedTable(3, 60.0, remember=False)
    for i in range(3):
        table.put(key(i), State(float(i)))
    table.put(key(3), State(3.0))  # full: the oldest newcomer goes
    assert key(0) not in table and table.evictions == 1
    table.touch(key(1))  # refreshed: established, no longer the next to go
    table.put(key(4), State(4.0))
    assert sorted(table) == [key(1), key(3), key(4)]


def test_established_entries_give_way_only_to_established_ones() -> None:
    evicted: list[bytes] = []
    table: BoundedTable[State] = BoundedTable(
        8, 60.0, on_evict=lambda k, s: evicted.append(k), remember=False
    )
    assert table.max_established == 7  # an eighth stays free for newcomers
    for i in range(9):
        table.put(key(i), State(0.0))
        table.touch(key(i))
    assert len(table.established) == 7 and evicted == [key(0), key(1)]
    for i in range(100, 200):
        table.put(key(i), State(0.0))
    assert len(table.established) == 7 and len(table.probation) == 1


def test_a_key_pushed_out_by_a_spray_comes_back_out_of_the_sprays_way() -> None:
    table: BoundedTable[State] = BoundedTable(4096, 60.0)
    first = heard(table, b"scanner", 0.0)
    for i in range(10_000):
        heard(table, key(i), 1.0)
    assert b"scanner" not in table
    heard(table, b"scanner", 2.0)  # back: remembered, kept apart from the spray
    assert b"scanner" in table.returning
    for i in range(10_000, 20_000):
        heard(table, key(i), 3.0)
    assert heard(table, b"scanner", 4.0) is not first  # the state before the spray is lost
    assert table.is_established(b"scanner")
    assert len(table.established) == 1  # the filter's false positives got no further


def test_pinned_entries_are_never_evicted_nor_expired() -> None:
    table: BoundedTable[State] = BoundedTable(4, 10.0)
    table.pin(b"gateway", State(0.0))
    for i in range(1000):
        table.put(key(i), State(0.0))
    assert table.expire(1000.0) == 4
    assert list(table) == [b"gateway"] and table.is_established(b"gateway")
    table.put(b"gateway", State(5.0))  # a refresh keeps it pinned
    assert table.pinned[b"gateway"].last == 5.0


def test_an_entry_the_owner_keeps_is_promoted_instead_of_evicted() -> None:
    table: BoundedTable[State] = BoundedTable(16, 60.0, keep=lambda k, s: k == b"known")
    table.put(b"known", State(0.0))
    for i in range(1000):
        table.put(key(i), State(0.0))
    assert table.is_established(b"known")


def test_expiry_drops_idle_entries_of_both_parts() -> None:
    table: BoundedTable[State] = BoundedTable(16, 10.0)
    heard(table, b"old", 0.0)
    heard(table, b"old", 1.0)  # established
    heard(table, b"new", 5.0)
    assert table.expire(12.0) == 1 and list(table) == [b"new"]
    assert table.expire(20.0) == 1 and len(table) == 0


def test_current_starts_a_fresh_episode_after_the_window() -> None:
    table: BoundedTable[State] = BoundedTable(16, 600.0)
    first = heard(table, b"a", 0.0)
    assert heard(table, b"a", 30.0) is first
    assert heard(table, b"a", 100.0) is not first  # idle for longer than 60 s
    assert table.is_established(b"a")


def test_recent_keys_remember_capacity_keys_with_few_false_positives() -> None:
    recent = RecentKeys(10_000)
    assert b"anything" not in recent  # nothing allocated yet
    for i in range(10_000):
        recent.add(key(i))
    assert all(key(i) in recent for i in range(10_000))
    for i in range(10_000, 20_000):  # a second generation: the first is still remembered
        recent.add(key(i))
    assert all(key(i) in recent for i in range(20_000))
    rng = Random(1)
    strangers = [rng.randbytes(6) for _ in range(10_000)]
    false_positives = sum(k in recent for k in strangers)
    assert false_positives < 0.01 * len(strangers)  # two full generations
    for i in range(20_000, 40_000):
        recent.add(key(i))
    assert sum(key(i) in recent for i in range(10_000)) < 0.01 * 10_000  # forgotten


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=1, max_value=12),
    st.lists(
        st.tuples(
            st.sampled_from(["put", "touch", "pin", "discard", "expire"]), st.integers(0, 30)
        ),
        max_size=200,
    ),
)
def test_any_sequence_keeps_the_bounds(max_items: int, ops: list[tuple[str, int]]) -> None:
    table: BoundedTable[State] = BoundedTable(max_items, 5.0)
    pinned: set[bytes] = set()
    now = 0.0
    for op, i in ops:
        now += 1.0
        k = key(i)
        if op == "put":
            table.put(k, State(now))
        elif op == "touch":
            table.touch(k)
        elif op == "pin":
            table.pin(k, State(now))
            pinned.add(k)
        elif op == "discard":
            table.discard(k)
            pinned.discard(k)
        else:
            table.expire(now)
        assert len(table.probation) + len(table.returning) + len(table.established) <= max_items
        assert len(table.established) <= table.max_established
        assert pinned <= set(table)  # pinned: never evicted nor expired
        assert len(set(table)) == len(table)  # a key lives in one part only
        assert all(table.get(k) is not None for k in table)
