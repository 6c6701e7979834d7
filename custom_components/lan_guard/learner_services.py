"""Actions of the verdict classifier: reset it, export its weights and counts, merge one in.

An export holds the model's feature version, weights, precision and label counts, never an
event or a source, so homes can pool what they learned without sharing their data.
"""

from __future__ import annotations

from typing import Any

import voluptuous as vol
from homeassistant.core import (
    HomeAssistant,
    ServiceCall,
    ServiceResponse,
    SupportsResponse,
    callback,
)
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import config_validation as cv

from .const import ATTR_CONFIG_ENTRY_ID, DOMAIN
from .learner import Learner
from .learning.model import ModelError
from .runtime import LanGuardConfigEntry

SERVICE_RESET_MODEL = "reset_model"
SERVICE_EXPORT_MODEL = "export_model"
SERVICE_IMPORT_MODEL = "import_model"
ATTR_MODEL = "model"

ENTRY_SCHEMA = vol.Schema({vol.Optional(ATTR_CONFIG_ENTRY_ID): cv.string})
IMPORT_SCHEMA = vol.Schema(
    {vol.Optional(ATTR_CONFIG_ENTRY_ID): cv.string, vol.Required(ATTR_MODEL): dict}
)


def _learners(call: ServiceCall) -> list[tuple[LanGuardConfigEntry, Learner]]:
    """The loaded agents' classifiers, or the one named by ``config_entry_id``."""
    entries: list[LanGuardConfigEntry] = call.hass.config_entries.async_loaded_entries(DOMAIN)
    wanted = call.data.get(ATTR_CONFIG_ENTRY_ID)
    found = [
        (entry, entry.runtime_data.learner)
        for entry in entries
        if wanted is None or entry.entry_id == wanted
    ]
    learners = [(entry, learner) for entry, learner in found if isinstance(learner, Learner)]
    if wanted is not None and not learners:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="entry_not_loaded",
            translation_placeholders={"entry_id": wanted},
        )
    return learners


async def _async_reset_model(call: ServiceCall) -> None:
    for entry, learner in _learners(call):
        learner.reset()
        entry.runtime_data.coordinator.async_update_listeners()


async def _async_export_model(call: ServiceCall) -> ServiceResponse:
    agents: list[Any] = []
    for entry, learner in _learners(call):
        try:
            model = learner.export()
        except ModelError as err:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="model_not_exportable",
                translation_placeholders={"agent": entry.title, "reason": str(err)},
            ) from err
        agents.append(
            {
                "agent_id": entry.runtime_data.coordinator.agent_id,
                "config_entry_id": entry.entry_id,
                "model": model,
            }
        )
    return {"agents": agents}


async def _async_import_model(call: ServiceCall) -> None:
    for entry, learner in _learners(call):
        try:
            learner.merge(call.data[ATTR_MODEL])
        except ModelError as err:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="model_not_importable",
                translation_placeholders={"reason": str(err)},
            ) from err
        entry.runtime_data.coordinator.async_update_listeners()


@callback
def async_setup_learner_services(hass: HomeAssistant) -> None:
    """Register the classifier's actions."""
    hass.services.async_register(
        DOMAIN, SERVICE_RESET_MODEL, _async_reset_model, schema=ENTRY_SCHEMA
    )
    hass.services.async_register(
        DOMAIN,
        SERVICE_EXPORT_MODEL,
        _async_export_model,
        schema=ENTRY_SCHEMA,
        supports_response=SupportsResponse.ONLY,
    )
    hass.services.async_register(
        DOMAIN, SERVICE_IMPORT_MODEL, _async_import_model, schema=IMPORT_SCHEMA
    )
