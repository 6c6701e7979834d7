"""Switch: evacuation mode of one agent (on: appliances and the culprit isolated)."""

from __future__ import annotations

from typing import Any

from homeassistant.components.switch import SwitchEntity
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import LanGuardCoordinator
from .entity import LanGuardEntity
from .evacuation.record import Reason
from .evacuation.runner import EvacuationRunner
from .runtime import LanGuardConfigEntry

PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: LanGuardConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """One evacuation switch per agent."""
    data = entry.runtime_data
    async_add_entities([EvacuationSwitch(data.coordinator, data.evacuation)])


class EvacuationSwitch(LanGuardEntity, SwitchEntity):
    """On while evacuation mode runs; the owner can start or end it by hand."""

    def __init__(self, coordinator: LanGuardCoordinator, runner: EvacuationRunner) -> None:
        """Follow the evacuation as well as the agent."""
        super().__init__(coordinator, "evacuation_mode")
        self._runner = runner

    async def async_added_to_hass(self) -> None:
        """Refresh on every evacuation step."""
        await super().async_added_to_hass()
        self.async_on_remove(self._runner.async_add_listener(self._handle_coordinator_update))

    @property
    def available(self) -> bool:
        """Appliances can be isolated and restored even while the agent is offline."""
        return True

    @property
    def is_on(self) -> bool:
        """Evacuation mode runs (also while waiting for the owner to confirm a restore)."""
        return self._runner.active

    @property
    def extra_state_attributes(self) -> dict[str, Any]:
        """Phase, culprits with their quarantine outcome, isolated appliances."""
        return self._runner.attributes()

    async def async_turn_on(self, **kwargs: Any) -> None:
        """Start evacuation by hand: isolate the appliances (no culprit to quarantine)."""
        await self._runner.async_start()

    async def async_turn_off(self, **kwargs: Any) -> None:
        """End evacuation: lift quarantines, restore the appliances."""
        await self._runner.async_stop(Reason.OWNER)
