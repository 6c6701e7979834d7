"""Base entity: one device per agent, translated names, availability from the agent's status."""

from __future__ import annotations

from homeassistant.core import callback
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import Entity

from .const import DOMAIN
from .coordinator import LanGuardCoordinator


class LanGuardEntity(Entity):
    """An entity of one agent, refreshed whenever the coordinator says so."""

    _attr_has_entity_name = True
    _attr_should_poll = False

    def __init__(self, coordinator: LanGuardCoordinator, key: str) -> None:
        """Name and unique id come from the entity key (``translation_key``)."""
        self.coordinator = coordinator
        self._attr_translation_key = key
        self._attr_unique_id = f"{coordinator.agent_id}-{key}"
        self._attr_device_info = DeviceInfo(identifiers={(DOMAIN, coordinator.agent_id)})

    @property
    def available(self) -> bool:
        """Available while the agent says it is online and MQTT is connected."""
        return self.coordinator.online

    async def async_added_to_hass(self) -> None:
        """Follow the coordinator's updates."""
        await super().async_added_to_hass()
        self.async_on_remove(self.coordinator.async_add_listener(self._handle_coordinator_update))

    @callback
    def _handle_coordinator_update(self) -> None:
        self.async_write_ha_state()
