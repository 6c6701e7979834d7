"""Sensors: current level, open incidents, last culprit, events in 24 h, hosts seen."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from homeassistant.components.sensor import (
    RestoreSensor,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import LanGuardCoordinator
from .entity import LanGuardEntity
from .federation_entities import GlobalModelSensor
from .learner_sensor import ModelAccuracySensor
from .models import IncidentView
from .runtime import LanGuardConfigEntry

PARALLEL_UPDATES = 0
MAX_LISTED_INCIDENTS = 20


def _level(coordinator: LanGuardCoordinator) -> int | None:
    return coordinator.level if coordinator.incidents_known else None


def _open_incidents(coordinator: LanGuardCoordinator) -> int | None:
    return len(coordinator.incidents) if coordinator.incidents_known else None


def _incident_list(coordinator: LanGuardCoordinator) -> dict[str, Any]:
    incidents = sorted(coordinator.incidents.values(), key=lambda i: -i.level)
    return {"incidents": [i.summary() for i in incidents[:MAX_LISTED_INCIDENTS]]}


def _hosts_seen(coordinator: LanGuardCoordinator) -> int | None:
    return None if coordinator.hosts is None else len(coordinator.hosts["hosts"])


def _hosts_attributes(coordinator: LanGuardCoordinator) -> dict[str, Any]:
    if coordinator.hosts is None:
        return {}
    hosts = coordinator.hosts["hosts"]
    return {
        "present": sum(1 for host in hosts if host["present"]),
        "truncated": coordinator.hosts.get("truncated", False),
    }


def _last_incident(coordinator: LanGuardCoordinator) -> IncidentView | None:
    """The incident of the newest threat event, whose most severe event is shown."""
    if (event := coordinator.history.last_threat()) is None:
        return None
    return IncidentView.of(coordinator.history.incident(event.incident_id) or [event])


def _last_culprit(coordinator: LanGuardCoordinator) -> str | None:
    if (view := _last_incident(coordinator)) is None:
        return None
    source = view.headline.source
    return str(source.get("hostname") or source.get("ip") or source["mac"])


def _culprit_attributes(coordinator: LanGuardCoordinator) -> dict[str, Any]:
    if (view := _last_incident(coordinator)) is None:
        return {}
    event = view.headline
    data = event.event_data()
    return {
        **event.source,
        "kind": data["kind"],
        "kinds": list(view.kinds),
        "level": data["level"],
        "event_id": data["event_id"],
        "incident_id": data["incident_id"],
        "detected_at": data["detected_at"],
        "verdict": data["verdict"],
        "probability": data["probability"],
        "decided_by": data["decided_by"],
        "labels": data["labels"],
        "label": event.label.value if event.label else None,
    }


@dataclass(frozen=True, kw_only=True)
class LanGuardSensorDescription(SensorEntityDescription):
    """How a sensor reads the coordinator; None means "not known yet" (restore)."""

    value_fn: Callable[[LanGuardCoordinator], int | str | None]
    attributes_fn: Callable[[LanGuardCoordinator], dict[str, Any]] | None = None


SENSORS: tuple[LanGuardSensorDescription, ...] = (
    LanGuardSensorDescription(
        key="level", state_class=SensorStateClass.MEASUREMENT, value_fn=_level
    ),
    LanGuardSensorDescription(
        key="open_incidents",
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=_open_incidents,
        attributes_fn=_incident_list,
    ),
    LanGuardSensorDescription(
        key="last_culprit", value_fn=_last_culprit, attributes_fn=_culprit_attributes
    ),
    LanGuardSensorDescription(
        key="events_24h",
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda coordinator: coordinator.events_in_window(),
    ),
    LanGuardSensorDescription(
        key="hosts_seen",
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=_hosts_seen,
        attributes_fn=_hosts_attributes,
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: LanGuardConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """The agent's sensors."""
    coordinator = entry.runtime_data.coordinator
    async_add_entities(LanGuardSensor(coordinator, description) for description in SENSORS)
    async_add_entities([ModelAccuracySensor(coordinator, entry.runtime_data.learner)])
    if entry.runtime_data.federation.active:
        async_add_entities([GlobalModelSensor(entry.runtime_data.federation)])


class LanGuardSensor(LanGuardEntity, RestoreSensor):
    """A value of the agent; the last known one is shown until the agent reports again."""

    entity_description: LanGuardSensorDescription
    _restored: int | str | None = None

    def __init__(
        self, coordinator: LanGuardCoordinator, description: LanGuardSensorDescription
    ) -> None:
        """Key, translation key and unique id from the description."""
        super().__init__(coordinator, description.key)
        self.entity_description = description

    async def async_added_to_hass(self) -> None:
        """Restore the last value (used while the live one is unknown)."""
        await super().async_added_to_hass()
        if (last := await self.async_get_last_sensor_data()) is not None:
            value = last.native_value
            self._restored = value if isinstance(value, int | str) else None

    @property
    def native_value(self) -> int | str | None:
        """Live value, or the restored one while the agent has not reported it."""
        value = self.entity_description.value_fn(self.coordinator)
        return self._restored if value is None else value

    @property
    def extra_state_attributes(self) -> dict[str, Any] | None:
        """Details (culprit identity, incident list, host counts)."""
        if self.entity_description.attributes_fn is None:
            return None
        return self.entity_description.attributes_fn(self.coordinator)
