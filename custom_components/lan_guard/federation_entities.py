"""The federation's entities: the global model in use (sensor) and forgetting contributed
examples (button). Both exist only while the owner contributes labels."""

from __future__ import annotations

from typing import Any

from homeassistant.components.button import ButtonEntity
from homeassistant.components.sensor import SensorEntity
from homeassistant.const import EntityCategory

from .entity import LanGuardEntity
from .federation import Federation


class GlobalModelSensor(LanGuardEntity, SensorEntity):
    """The version of the provider's global model the classifier uses as its prior."""

    _attr_entity_category = EntityCategory.DIAGNOSTIC

    def __init__(self, federation: Federation) -> None:
        """One per agent that contributes."""
        super().__init__(federation.coordinator, "global_model")
        self.federation = federation

    @property
    def available(self) -> bool:
        """The model lives in HA: available whether or not the agent is online."""
        return True

    @property
    def native_value(self) -> int | None:
        """The global model's version; unknown before the first one."""
        prior = self.federation.learner.global_prior
        return None if prior is None else int(prior["version"])

    @property
    def extra_state_attributes(self) -> dict[str, Any]:
        """Round, sites, differential privacy, contributed labels, why a model was refused."""
        prior = self.federation.learner.global_prior or {}
        privacy = prior.get("privacy") or {}
        return {
            "round": prior.get("round"),
            "sites": prior.get("sites"),
            "epsilon": privacy.get("epsilon"),
            "delta": privacy.get("delta"),
            "contributed_labels": self.federation.contributed,
            "refused": self.federation.refused,
        }


class DeleteContributedButton(LanGuardEntity, ButtonEntity):
    """Asks the agent's node to forget every example this home contributed."""

    def __init__(self, federation: Federation) -> None:
        """One per agent that contributes."""
        super().__init__(federation.coordinator, "delete_contributed")
        self.federation = federation

    @property
    def available(self) -> bool:
        """The request waits at the broker for an agent that is away (its session is kept)."""
        return True

    async def async_press(self) -> None:
        """Send the signed request (the agent acts when it is online: QoS 1)."""
        await self.federation.async_delete_contributed()
