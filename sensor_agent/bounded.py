"""Bounded per-address tables that a spray of forged addresses cannot flush.

Every piece of state the agent keeps per MAC or IP (detector state, ARP bindings, the hosts
inventory) lives in a :class:`BoundedTable`: a cap on entries, expiry after a time to live,
and an eviction order chosen so that a flood of new addresses costs the sprayer its own
entries, never the ones that matter:

* A new key starts *on probation*. It becomes *established* when it is refreshed while in
  the table (heard twice).
* A full table makes room for a new key by evicting the least recently *refreshed*
  probationary entry. Established entries give way only to other established entries, beyond
  ``max_items - max_items // 8`` of them. A spray of one-frame addresses, however long,
  therefore churns the probationary part only.
* Keys evicted from a full table are remembered, without their state, in a small Bloom filter
  (:class:`RecentKeys`: the last ``16 * max_items`` at least, up to 131,072). A key that
  comes back while remembered waits in a small part of its own (*returning*,
  ``max_items // 16``), out of the spray's way, until it is heard once more and established:
  a slow scanner whose state a spray pushed out between two probes still adds up. The
  filter's rare false positives land there too, and get no further unless heard twice. It
  costs memory only once a table was full, and time only in the tables that ask for it
  (``remember``: those of slow evidence).
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
    twice that). Three hashes and 16 bits per key: under 0.5 % false positives (a new key
    taken for a known one) when a generation is full, at 2 bytes per key. Python's hash of
    ``bytes`` is salted per process, so an attacker cannot aim forged addresses at the bits
    of a remembered key.
    """

    MAX_CAPACITY = 1 << 17  # three 21-bit slices of one 64-bit hash address the bits

    def __init__(self, capacity: int) -> None:
        self.capacity = min(max(capacity, 64), self.MAX_CAPACITY)
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
        h = hash(key)
        mask = self._mask
        a, b, c = h & mask, (h >> 21) & mask, (h >> 42) & mask
        for bits in (current, self._previous):
            if (
                bits
                and bits[a >> 3] >> (a & 7) & 1
                and bits[b >> 3] >> (b & 7) & 1
                and bits[c >> 3] >> (c & 7) & 1
            ):
                return True
        return False

    def add(self, key: bytes) -> None:
        if self._added >= self.capacity or not self._current:
            self._previous, self._current = self._current, bytearray(self._size)
            self._added = 0
        h = hash(key)
        mask = self._mask
        a, b, c = h & mask, (h >> 21) & mask, (h >> 42) & mask
        bits = self._current
        bits[a >> 3] |= 1 << (a & 7)
        bits[b >> 3] |= 1 << (b & 7)
        bits[c >> 3] |= 1 << (c & 7)
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
        self.max_returning = max(self.max_items // 16, 1)
        self.keep = keep
        self.on_evict = on_evict
        # Least recently refreshed first: both expiry and eviction look at the front only.
        # OrderedDicts, not dicts: taking from the front of a plain dict that keeps losing its
        # first entries scans over the holes they leave (slow under a spray).
        self.probation: OrderedDict[bytes, V] = OrderedDict()
        self.returning: OrderedDict[bytes, V] = OrderedDict()
        self.established: OrderedDict[bytes, V] = OrderedDict()
        self.pinned: dict[bytes, V] = {}
        self.recent = RecentKeys(16 * self.max_items) if remember else None
        self.evictions = 0

    def _parts(self) -> tuple[dict[bytes, V], ...]:
        return (self.established, self.returning, self.probation, self.pinned)

    def __len__(self) -> int:
        return sum(len(part) for part in self._parts())

    def __contains__(self, key: object) -> bool:
        return any(key in part for part in self._parts())

    def __iter__(self) -> Iterator[bytes]:
        for part in self._parts():
            yield from part

    def values(self) -> Iterator[V]:
        for part in self._parts():
            yield from part.values()

    def get(self, key: bytes) -> V | None:
        """The state of ``key`` (a lookup: it is not refreshed)."""
        state = self.established.get(key)
        if state is None:
            state = self.probation.get(key)
            if state is None and self.returning:
                state = self.returning.get(key)
            if state is None and self.pinned:
                state = self.pinned.get(key)
        return state

    def is_established(self, key: bytes) -> bool:
        """Whether ``key`` was heard more than once (or pinned): no one-frame spray wrote it."""
        return key in self.established or key in self.pinned

    def touch(self, key: bytes) -> None:
        """``key`` was refreshed: it becomes the most recent (and established, if it was new)."""
        if key in self.established:
            self.established.move_to_end(key)
            return
        state = self._take_new(key)
        if state is not None:
            self._establish(key, state)

    def put(self, key: bytes, state: V) -> None:
        """Set the state of ``key``: a refresh if it is known, else a newcomer."""
        established = self.established
        if key in established:
            established[key] = state
            established.move_to_end(key)
        elif key in self.pinned:
            self.pinned[key] = state
        elif self._take_new(key) is not None:
            self._establish(key, state)
        else:
            self._add(key, state)

    def pin(self, key: bytes, state: V) -> None:
        """Keep ``key`` for good: never evicted, never expired."""
        self.discard(key)
        self.pinned[key] = state

    def discard(self, key: bytes) -> None:
        """Forget ``key`` (not counted as an eviction)."""
        for part in self._parts():
            part.pop(key, None)

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
        state = self._take_new(key)
        if state is not None:  # heard again: established
            if now - state.last > window_s:
                state = new()
            self._establish(key, state)
            return state
        state = self.pinned.get(key) if self.pinned else None
        if state is not None:
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
        for items in (self.probation, self.returning, self.established):
            while items:
                key = next(iter(items))
                if items[key].last >= horizon:
                    break
                del items[key]
                dropped += 1
        return dropped

    def _take_new(self, key: bytes) -> V | None:
        """Remove ``key`` from probation or returning; its state, if it was there."""
        state = self.probation.pop(key, None)
        if state is None and self.returning:
            state = self.returning.pop(key, None)
        return state

    def _add(self, key: bytes, state: V) -> None:
        """A newcomer: on probation, or returning when a spray pushed it out recently."""
        probation = self.probation
        if len(probation) + len(self.returning) + len(self.established) >= self.max_items:
            if probation and self.keep is None:  # the common case of a spray, inline
                old_key, old_state = probation.popitem(last=False)
                self._evicted(old_key, old_state)
            else:
                self._make_room()
        recent = self.recent
        if recent is not None and key in recent:
            returning = self.returning
            if len(returning) >= self.max_returning:
                self._evict(returning)
            returning[key] = state
        else:
            probation[key] = state

    def _establish(self, key: bytes, state: V) -> None:
        established = self.established
        while len(established) >= self.max_established:
            self._evict(established)
        established[key] = state

    def _make_room(self) -> None:
        """Evict one entry for a newcomer: probation's least recently refreshed one first
        (one the owner wants kept is promoted instead), then a returning one."""
        probation = self.probation
        while probation:
            key, state = probation.popitem(last=False)
            if self.keep is not None and self.keep(key, state):
                self._establish(key, state)
                continue
            self._evicted(key, state)
            return
        if self.returning:
            self._evict(self.returning)
        elif len(self.established) >= self.max_items:
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
