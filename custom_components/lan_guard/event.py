"""Event entity: one event type per kind, carrying the event's id, level, culprit, evidence."""

from __future__ import annotations

from homeassistant.components.event import EventEntity
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .const import Kind
from .entity import LanGuardEntity
from .models import LanGuardEvent
from .runtime import LanGuardConfigEntry

PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: LanGuardConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """One activity event entity per agent."""
    async_add_entities([LanGuardEventEntity(entry.runtime_data.coordinator, "activity")])


class LanGuardEventEntity(LanGuardEntity, EventEntity):
    """Fires for every accepted agent event, so automations can trigger on it."""

    _attr_event_types = [kind.value for kind in Kind]

    async def async_added_to_hass(self) -> None:
        """Listen to the coordinator's events too (it restores the last one by itself)."""
        await super().async_added_to_hass()
        self.async_on_remove(self.coordinator.async_add_event_listener(self._async_on_event))

    @callback
    def _async_on_event(self, event: LanGuardEvent) -> None:
        self._trigger_event(event.kind.value, event.event_data())
        self.async_write_ha_state()
