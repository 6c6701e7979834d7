"""Persistent memory of one agent: recent events, the owner's labels, acknowledgements.

Kept in HA storage (``.storage/lan_guard.<entry_id>``) so it survives restarts. It is the
classifier's training data: labelled events are kept beyond the last ``MAX_EVENTS`` (up to
``MAX_LABELLED``), so a label is never lost just because many unlabelled events followed.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterator
from datetime import datetime
from typing import Any, TypedDict

from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util

from .const import DOMAIN, MAX_EVENTS, MAX_LABELLED, SAVE_DELAY, STORAGE_VERSION, Label
from .models import LanGuardEvent

_LOGGER = logging.getLogger(__name__)


class StoredHistory(TypedDict):
    """What is written to storage."""

    events: list[dict[str, Any]]
    acknowledged: dict[str, int]


class EventHistory:
    """Recent events by id (oldest first), their labels, and acknowledged incident levels."""

    def __init__(self, hass: HomeAssistant, entry_id: str) -> None:
        """Nothing is read until ``async_load``."""
        self._store: Store[StoredHistory] = Store(
            hass, STORAGE_VERSION, f"{DOMAIN}.{entry_id}", private=True, atomic_writes=True
        )
        self._events: OrderedDict[str, LanGuardEvent] = OrderedDict()
        # incident_id -> the level the owner acknowledged it at
        self.acknowledged: dict[str, int] = {}

    async def async_load(self) -> None:
        """Read what an earlier run stored."""
        stored = await self._store.async_load()
        if stored is None:
            return
        for record in stored["events"]:
            event = LanGuardEvent.from_record(record)
            self._events[event.id] = event
        self.acknowledged = dict(stored["acknowledged"])

    def __contains__(self, event_id: object) -> bool:
        """Whether the event is remembered."""
        return event_id in self._events

    def __len__(self) -> int:
        """How many events are remembered."""
        return len(self._events)

    def __iter__(self) -> Iterator[LanGuardEvent]:
        """Events, oldest first."""
        return iter(self._events.values())

    def get(self, event_id: str) -> LanGuardEvent | None:
        """The remembered event with this id."""
        return self._events.get(event_id)

    def add(self, event: LanGuardEvent) -> None:
        """Remember a new event, forgetting the oldest unlabelled one beyond the cap."""
        self._events[event.id] = event
        self._evict(lambda e: e.label is None, MAX_EVENTS)
        self._evict(lambda e: e.label is not None, MAX_LABELLED)
        self.schedule_save()

    def label(self, event: LanGuardEvent, label: Label) -> None:
        """Store the owner's label with the event."""
        event.label = label
        event.labelled_at = dt_util.utcnow()
        self._evict(lambda e: e.label is not None, MAX_LABELLED)
        self.schedule_save()

    def last_threat(self) -> LanGuardEvent | None:
        """The newest event that has a culprit (not a host leaving)."""
        return next((e for e in reversed(self._events.values()) if e.is_threat), None)

    def count_threats_since(self, since: datetime) -> int:
        """Threat events received at or after ``since``."""
        return sum(1 for e in self._events.values() if e.is_threat and e.received_at >= since)

    def export(self, labelled_only: bool = False) -> list[dict[str, Any]]:
        """Stored records, oldest first (service response, diagnostics)."""
        return [
            e.as_record() for e in self._events.values() if not labelled_only or e.label is not None
        ]

    def schedule_save(self) -> None:
        """Write soon; many events in a burst become one write."""
        self._store.async_delay_save(self._data, SAVE_DELAY)

    async def async_flush(self) -> None:
        """Write now (on unload), cancelling any pending delayed write.

        A failure is logged, never raised: the entry must unload whatever the history holds.
        """
        try:
            await self._store.async_save(self._data())
        except (HomeAssistantError, OSError, TypeError, ValueError):
            _LOGGER.exception("Could not write the event history of %s", self._store.key)

    async def async_remove(self) -> None:
        """Delete the stored file (the entry was removed)."""
        await self._store.async_remove()

    def _data(self) -> StoredHistory:
        return {
            "events": [e.as_record() for e in self._events.values()],
            "acknowledged": dict(self.acknowledged),
        }

    def _evict(self, matches: Any, cap: int) -> None:
        candidates = [event_id for event_id, e in self._events.items() if matches(e)]
        for event_id in candidates[: max(0, len(candidates) - cap)]:
            del self._events[event_id]
