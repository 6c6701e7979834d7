"""What one agent's config entry runs, built in one place (``async_setup_entry``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from homeassistant.config_entries import ConfigEntry

from .coordinator import LanGuardCoordinator
from .evacuation.runner import EvacuationRunner
from .federation import Federation
from .learner import Learner
from .notifications import IncidentNotifier
from .provider.link import ProviderLink


@dataclass(frozen=True, slots=True)
class LanGuardData:
    """``entry.runtime_data``: the agent's model, its classifier, notifier, evacuation and
    the site channel to the owner's provider, federated learning."""

    coordinator: LanGuardCoordinator
    learner: Learner
    notifier: IncidentNotifier
    evacuation: EvacuationRunner
    provider: ProviderLink
    federation: Federation


LanGuardConfigEntry: TypeAlias = ConfigEntry[LanGuardData]
