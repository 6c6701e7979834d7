"""The classifier's sensor: prequential accuracy (each label scored before it was learned),
with the label counts, the imported models and what decides verdicts right now (the prior
before any label, the model after)."""

from __future__ import annotations

from typing import Any

from homeassistant.components.sensor import SensorEntity, SensorStateClass
from homeassistant.const import PERCENTAGE, EntityCategory

from .coordinator import LanGuardCoordinator
from .entity import LanGuardEntity
from .learner import Learner


class ModelAccuracySensor(LanGuardEntity, SensorEntity):
    """How often the model was right about the events the owner labelled."""

    _attr_native_unit_of_measurement = PERCENTAGE
    _attr_state_class = SensorStateClass.MEASUREMENT
    _attr_suggested_display_precision = 1
    _attr_entity_category = EntityCategory.DIAGNOSTIC

    def __init__(self, coordinator: LanGuardCoordinator, learner: Learner) -> None:
        """One per agent."""
        super().__init__(coordinator, "model_accuracy")
        self.learner = learner

    @property
    def available(self) -> bool:
        """The model lives in HA: available whether or not the agent is online."""
        return True

    @property
    def native_value(self) -> float | None:
        """Accuracy in percent; unknown before the first label."""
        accuracy = self.learner.stats()["accuracy"]
        return None if accuracy is None else round(100.0 * accuracy, 1)

    @property
    def extra_state_attributes(self) -> dict[str, Any]:
        """Label counts, imports, what decides, the feature version."""
        stats = self.learner.stats()
        return {
            "labels": stats["labels"],
            "labels_normal": stats["labels_normal"],
            "labels_alarm": stats["labels_alarm"],
            "imported_models": stats["imported_models"],
            "imported_labels": stats["imported_labels"],
            "decided_by": stats["decided_by"],
            "feature_version": stats["feature_version"],
            # "global model" once the provider's federated model is this home's prior.
            "prior": stats["prior"],
        }
