"""Buttons: acknowledge the open incidents (clears the threat until one escalates); forget
the labels this home contributed to federated learning."""

from __future__ import annotations

from homeassistant.components.button import ButtonEntity
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .entity import LanGuardEntity
from .federation_entities import DeleteContributedButton
from .runtime import LanGuardConfigEntry

PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: LanGuardConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """One acknowledge button per agent; forgetting contributed labels when contributing."""
    async_add_entities([LanGuardAcknowledgeButton(entry.runtime_data.coordinator, "acknowledge")])
    if entry.runtime_data.federation.active:
        async_add_entities([DeleteContributedButton(entry.runtime_data.federation)])


class LanGuardAcknowledgeButton(LanGuardEntity, ButtonEntity):
    """Marks the open incidents as reviewed."""

    @property
    def available(self) -> bool:
        """The owner can acknowledge even while the agent is offline."""
        return True

    async def async_press(self) -> None:
        """Acknowledge every open incident at its current level."""
        self.coordinator.async_acknowledge()
