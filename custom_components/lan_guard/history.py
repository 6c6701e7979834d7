"""Persistent memory of one agent: recent events, the owner's labels, acknowledgements, and
which of the agent's events were processed (``delivery.py``).

Kept in HA storage (``.storage/lan_guard.<entry_id>``) so it survives restarts. It is the
classifier's training data: labelled events are kept beyond the last ``MAX_EVENTS`` (up to
``MAX_LABELLED``), so a label is never lost just because many unlabelled events followed.
The delivery state is written in the same file as the events, so after a power cut both are
as of the same moment: what the file lacks is fetched from the agent again, once.
"""

from __future__ import annotations

import bisect
import logging
from collections import OrderedDict, defaultdict
from collections.abc import Iterator
from datetime import datetime
from typing import Any, TypedDict

from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util

from .const import DOMAIN, MAX_EVENTS, MAX_LABELLED, SAVE_DELAY, STORAGE_VERSION, Label
from .delivery import DeliveryTracker
from .models import LanGuardEvent

_LOGGER = logging.getLogger(__name__)


class StoredHistory(TypedDict, total=False):
    """What is written to storage (``delivery`` is missing in files of earlier versions)."""

    events: list[dict[str, Any]]
    acknowledged: dict[str, int]
    delivery: dict[str, Any]


class EventHistory:
    """Recent events by id (oldest first), their labels, and acknowledged incident levels."""

    def __init__(self, hass: HomeAssistant, entry_id: str) -> None:
        """Nothing is read until ``async_load``."""
        self._store: Store[StoredHistory] = Store(
            hass, STORAGE_VERSION, f"{DOMAIN}.{entry_id}", private=True, atomic_writes=True
        )
        self._events: OrderedDict[str, LanGuardEvent] = OrderedDict()
        self._labelled = 0
        # When each remembered threat was received, sorted: entities count the last 24 hours
        # on every refresh, and a scan of every event each time made catching up slow.
        self._threat_times: list[datetime] = []
        # incident_id -> its remembered events' ids, oldest first (notifications, sensors)
        self._incidents: defaultdict[str, list[str]] = defaultdict(list)
        # incident_id -> the level the owner acknowledged it at
        self.acknowledged: dict[str, int] = {}
        self.delivery = DeliveryTracker()

    async def async_load(self) -> None:
        """Read what an earlier run stored."""
        stored = await self._store.async_load()
        if stored is None:
            return
        for record in stored["events"]:
            event = LanGuardEvent.from_record(record)
            self._events[event.id] = event
            self._incidents[event.incident_id].append(event.id)
        self._labelled = sum(1 for e in self._events.values() if e.label is not None)
        self._threat_times = sorted(e.received_at for e in self._events.values() if e.is_threat)
        self.acknowledged = dict(stored["acknowledged"])
        self.delivery = DeliveryTracker.from_dict(stored.get("delivery"))

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
        if event.id in self._events:  # the same id again replaces it (indexes too)
            self._forget(event.id)
        self._incidents[event.incident_id].append(event.id)
        self._events[event.id] = event
        if event.label is not None:
            self._labelled += 1
        if event.is_threat:
            bisect.insort(self._threat_times, event.received_at)
        self._evict()
        self.schedule_save()

    def label(self, event: LanGuardEvent, label: Label) -> None:
        """Store the owner's label with the event."""
        if event.label is None:
            self._labelled += 1
        event.label = label
        event.labelled_at = dt_util.utcnow()
        self._evict()
        self.schedule_save()

    def last_threat(self) -> LanGuardEvent | None:
        """The newest event that has a culprit (not a host leaving)."""
        return next((e for e in reversed(self._events.values()) if e.is_threat), None)

    def incident(self, incident_id: str) -> list[LanGuardEvent]:
        """The remembered events of one incident, oldest first."""
        return [self._events[event_id] for event_id in self._incidents.get(incident_id, [])]

    def count_threats_since(self, since: datetime) -> int:
        """Threat events received at or after ``since``."""
        return len(self._threat_times) - bisect.bisect_left(self._threat_times, since)

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
            "delivery": self.delivery.as_dict(),
        }

    def _evict(self) -> None:
        """Forget the oldest unlabelled events beyond ``MAX_EVENTS`` and the oldest labelled
        ones beyond ``MAX_LABELLED``: a walk from the old end that stops as soon as both
        are within bounds (one step for each new event, in the common case)."""
        unlabelled_excess = len(self._events) - self._labelled - MAX_EVENTS
        labelled_excess = self._labelled - MAX_LABELLED
        if unlabelled_excess <= 0 and labelled_excess <= 0:
            return
        forget = []
        for event_id, event in self._events.items():
            if unlabelled_excess <= 0 and labelled_excess <= 0:
                break
            if event.label is None and unlabelled_excess > 0:
                unlabelled_excess -= 1
                forget.append(event_id)
            elif event.label is not None and labelled_excess > 0:
                labelled_excess -= 1
                forget.append(event_id)
        for event_id in forget:
            self._forget(event_id)

    def _forget(self, event_id: str) -> None:
        """Drop one event and its entries in the indexes."""
        event = self._events.pop(event_id)
        if event.label is not None:
            self._labelled -= 1
        if event.is_threat:
            times = self._threat_times
            del times[bisect.bisect_left(times, event.received_at)]
        siblings = self._incidents[event.incident_id]
        siblings.remove(event_id)
        if not siblings:
            del self._incidents[event.incident_id]
