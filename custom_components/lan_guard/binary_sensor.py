"""Binary sensor: a threat is present (an open incident at or above the notify level)."""

from __future__ import annotations

from typing import Any

from homeassistant.components.binary_sensor import BinarySensorDeviceClass, BinarySensorEntity
from homeassistant.const import STATE_ON
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.restore_state import RestoreEntity

from .entity import LanGuardEntity
from .runtime import LanGuardConfigEntry

PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: LanGuardConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """One threat sensor per agent."""
    async_add_entities([LanGuardThreatSensor(entry.runtime_data.coordinator, "threat")])


class LanGuardThreatSensor(LanGuardEntity, BinarySensorEntity, RestoreEntity):
    """On while an open, unacknowledged, non-allowlisted incident is at or above the level."""

    _attr_device_class = BinarySensorDeviceClass.SAFETY
    _restored: bool | None = None

    async def async_added_to_hass(self) -> None:
        """Until the agent reports its incidents again, show what was shown before."""
        await super().async_added_to_hass()
        if (last := await self.async_get_last_state()) is not None:
            self._restored = last.state == STATE_ON

    @property
    def is_on(self) -> bool | None:
        """Live when the incidents are known, else the restored state."""
        if not self.coordinator.incidents_known:
            return self._restored
        return bool(self.coordinator.threat_incidents())

    @property
    def extra_state_attributes(self) -> dict[str, Any]:
        """The incidents behind the threat and the level that counts."""
        return {
            "notify_level": self.coordinator.notify_level,
            "incidents": [incident.summary() for incident in self.coordinator.threat_incidents()],
        }
