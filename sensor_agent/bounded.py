"""Bounded per-address tables that a spray of forged addresses cannot flush.

Every piece of state the agent keeps per MAC or IP (detector state, ARP bindings, the hosts
inventory) lives in a :class:`BoundedTable`: a cap on entries, expiry after a time to live,
and an eviction order chosen so that a flood of new addresses costs the sprayer its own
entries, never the ones that matter:

* A new key starts *on probation*. It becomes *established* when it is refreshed again
  (heard twice), or when it comes back after a spray pushed it out (see below).
* A full table makes room for a new key by evicting the least recently *refreshed*
  probationary entry. Established entries give way only to other established entries, beyond
  ``max_items - reserve`` of them. A spray of one-frame addresses, however long, therefore
  churns the probationary part only.
* Keys evicted from a full table are remembered, without their state, in a small Bloom filter
  (two generations of ``16 * max_items`` keys each, at most 2**20). A key that comes back
  while remembered is established at once: a slow scanner whose state a spray pushed out
  between two probes still adds up. The filter costs memory only once a table was full, and
  time only in the tables that ask for it (``remember``: those of slow evidence).
* ``pin`` makes an entry permanent (the gateway's ARP binding): never evicted nor expired.
* ``keep`` (optional) names probationary entries the owner needs (the binding of a host the
  inventory knows): they are promoted instead of evicted.
* Every eviction is counted (``evictions``): a full table means someone sprays addresses.

An attacker who sends every forged address twice can still fill the established part; that
costs twice the frames and is reported as a spray by the detectors.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Generic, Protocol, TypeVar


class Timed(Protocol):
    """What a table entry must tell: when it was last refreshed (for expiry)."""

    @property
    def last(self) -> float: ...


V = TypeVar("V", bound=Timed)


class RecentKeys:
    """Keys seen recently, without their values: a two-generation Bloom filter.

    A key added stays a member until ``capacity`` further keys have been added (and at most
    twice that). One hash and 16 bits per key: below 6 % false positives (a new key taken for
    a known one) while a generation fills, at 2 bytes per key. Python's hash of ``bytes`` is
    salted per process, so an attacker cannot aim forged addresses at a remembered key's bit.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = max(capacity, 64)
        bits = 1 << (16 * self.capacity - 1).bit_length()
        self._mask = bits - 1
        self._size = bits >> 3
        self._current = bytearray()  # allocated on first use: most tables never fill
        self._previous = bytearray()
        self._added = 0

    def __contains__(self, key: object) -> bool:
        current = self._current
        if not current:
            return False
        h = hash(key) & self._mask
        if current[h >> 3] >> (h & 7) & 1:
            return True
        previous = self._previous
        return bool(previous) and bool(previous[h >> 3] >> (h & 7) & 1)

    def add(self, key: bytes) -> None:
        if self._added >= self.capacity or not self._current:
            self._previous, self._current = self._current, bytearray(self._size)
            self._added = 0
        h = hash(key) & self._mask
        self._current[h >> 3] |= 1 << (h & 7)
        self._added += 1


class BoundedTable(Generic[V]):
    """``key (bytes) -> state`` with a cap, a TTL and the eviction rules of the module."""

    def __init__(
        self,
        max_items: int,
        ttl_s: float,
        *,
        keep: Callable[[bytes, V], bool] | None = None,
        on_evict: Callable[[bytes, V], None] | None = None,
        remember: bool = True,
    ) -> None:
        self.max_items = max(max_items, 1)
        self.ttl_s = ttl_s
        # An eighth of the table stays free for newcomers however many are established.
        self.max_established = max(self.max_items - max(self.max_items // 8, 1), 1)
        self.keep = keep
        self.on_evict = on_evict
        # Least recently refreshed first: both expiry and eviction look at the front only.
        # OrderedDicts, not dicts: taking from the front of a plain dict that keeps losing its
        # first entries scans over the holes they leave (slow under a spray).
        self.probation: OrderedDict[bytes, V] = OrderedDict()
        self.established: OrderedDict[bytes, V] = OrderedDict()
        self.pinned: dict[bytes, V] = {}
        self.recent = RecentKeys(min(16 * self.max_items, 1 << 20)) if remember else None
        self.evictions = 0

    def __len__(self) -> int:
        return len(self.probation) + len(self.established) + len(self.pinned)

    def __contains__(self, key: object) -> bool:
        return key in self.established or key in self.probation or key in self.pinned

    def __iter__(self) -> Iterator[bytes]:
        yield from self.established
        yield from self.probation
        yield from self.pinned

    def values(self) -> Iterator[V]:
        yield from self.established.values()
        yield from self.probation.values()
        yield from self.pinned.values()

    def get(self, key: bytes) -> V | None:
        """The state of ``key`` (a lookup: it is not refreshed)."""
        state = self.established.get(key)
        if state is None:
            state = self.probation.get(key)
            if state is None:
                state = self.pinned.get(key)
        return state

    def is_established(self, key: bytes) -> bool:
        """Whether ``key`` was heard more than once (or pinned): no one-frame spray wrote it."""
        return key in self.established or key in self.pinned

    def touch(self, key: bytes) -> None:
        """``key`` was refreshed: it becomes the most recent (and established, if it was on
        probation)."""
        if key in self.established:
            self.established.move_to_end(key)
        elif key in self.probation:
            self._establish(key, self.probation.pop(key))

    def put(self, key: bytes, state: V) -> None:
        """Set the state of ``key``: a refresh if it is known, else a newcomer."""
        established = self.established
        if key in established:
            established[key] = state
            established.move_to_end(key)
        elif key in self.probation:
            del self.probation[key]
            self._establish(key, state)
        elif key in self.pinned:
            self.pinned[key] = state
        else:
            self._add(key, state)

    def pin(self, key: bytes, state: V) -> None:
        """Keep ``key`` for good: never evicted, never expired."""
        self.probation.pop(key, None)
        self.established.pop(key, None)
        self.pinned[key] = state

    def discard(self, key: bytes) -> None:
        """Forget ``key`` (not counted as an eviction)."""
        self.probation.pop(key, None)
        self.established.pop(key, None)
        self.pinned.pop(key, None)

    def current(self, key: bytes, now: float, window_s: float, new: Callable[[], V]) -> V:
        """The state of ``key`` as of ``now``: a ``new()`` one when it has none or its last
        refresh is more than ``window_s`` old (a fresh episode), else the existing one.
        Either way it is refreshed; the caller sets its ``last`` to ``now``."""
        established = self.established
        state = established.get(key)
        if state is not None:
            if now - state.last > window_s:
                state = established[key] = new()
            established.move_to_end(key)
            return state
        state = self.probation.pop(key, None)
        if state is not None:  # heard again: established
            if now - state.last > window_s:
                state = new()
            self._establish(key, state)
            return state
        if key in self.pinned:
            state = self.pinned[key]
            if now - state.last > window_s:
                state = self.pinned[key] = new()
            return state
        state = new()
        self._add(key, state)
        return state

    def expire(self, now: float) -> int:
        """Drop every entry (but the pinned ones) idle for longer than the TTL; how many."""
        horizon = now - self.ttl_s
        dropped = 0
        for items in (self.probation, self.established):
            while items:
                key = next(iter(items))
                if items[key].last >= horizon:
                    break
                del items[key]
                dropped += 1
        return dropped

    def _add(self, key: bytes, state: V) -> None:
        """A newcomer: on probation, unless a spray pushed it out recently."""
        probation = self.probation
        if len(probation) + len(self.established) >= self.max_items:
            if probation and self.keep is None:  # the common case of a spray, inline
                old_key, old_state = probation.popitem(last=False)
                self._evicted(old_key, old_state)
            else:
                self._make_room()
        if self.recent is not None and key in self.recent:
            self._establish(key, state)
        else:
            probation[key] = state

    def _establish(self, key: bytes, state: V) -> None:
        established = self.established
        while len(established) >= self.max_established:
            self._evict(established)
        established[key] = state

    def _make_room(self) -> None:
        """Evict one entry for a newcomer: probation's least recently refreshed one first
        (one the owner wants kept is promoted instead)."""
        probation = self.probation
        while probation:
            key, state = probation.popitem(last=False)
            if self.keep is not None and self.keep(key, state):
                self._establish(key, state)
                continue
            self._evicted(key, state)
            return
        if len(self.established) >= self.max_items:
            self._evict(self.established)

    def _evict(self, items: OrderedDict[bytes, V]) -> None:
        key, state = items.popitem(last=False)
        self._evicted(key, state)

    def _evicted(self, key: bytes, state: V) -> None:
        self.evictions += 1
        if self.recent is not None:
            self.recent.add(key)
        on_evict = self.on_evict
        if on_evict is not None:
            on_evict(key, state)
