"""LAN Guard: early warning of LAN reconnaissance, from sensor agents over MQTT."""

from __future__ import annotations

from homeassistant.components import mqtt
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryNotReady
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.typing import ConfigType

from . import issues
from .blueprint_install import async_install_blueprints
from .const import CONF_AGENT_ID, DOMAIN, PLATFORMS
from .coordinator import LanGuardConfigEntry, LanGuardCoordinator
from .evacuation import EvacuationManager, async_remove_store
from .evacuation_services import async_setup_evacuation_services
from .history import EventHistory
from .learner import Learner
from .learner_services import async_setup_learner_services
from .panel import async_register_panel
from .services import async_setup_services
from .websocket_api import async_setup_websocket_api

CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the actions once, whatever the number of agents."""
    async_setup_services(hass)
    async_setup_evacuation_services(hass)
    await async_install_blueprints(hass)
    async_setup_learner_services(hass)
    async_setup_websocket_api(hass)
    await async_register_panel(hass)
    return True


async def async_setup_entry(hass: HomeAssistant, entry: LanGuardConfigEntry) -> bool:
    """Set up one agent: wait for MQTT, subscribe, then the entities."""
    if not await mqtt.async_wait_for_mqtt_client(hass):
        issues.async_create_mqtt_not_setup(hass)
        raise ConfigEntryNotReady(translation_domain=DOMAIN, translation_key="mqtt_not_ready")
    issues.async_delete_mqtt_not_setup(hass)

    dr.async_get(hass).async_get_or_create(
        config_entry_id=entry.entry_id,
        identifiers={(DOMAIN, entry.data[CONF_AGENT_ID])},
        name=entry.title,
        manufacturer="LAN Guard",
        model="Sensor agent",
    )
    coordinator = LanGuardCoordinator(hass, entry)
    learner = Learner(hass, entry.entry_id)  # verdicts from the first event on
    await learner.async_load()
    coordinator.classifier = learner
    await coordinator.async_start()
    entry.runtime_data = coordinator
    coordinator.evacuation = EvacuationManager(hass, entry, coordinator)
    await coordinator.evacuation.async_setup()
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    return True


async def async_unload_entry(hass: HomeAssistant, entry: LanGuardConfigEntry) -> bool:
    """Unsubscribe, stop timers, write the history; nothing of the agent stays behind."""
    unloaded = await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
    if unloaded:
        # Undo isolation while the agent's topics are still subscribed.
        if (evacuation := entry.runtime_data.evacuation) is not None:
            await evacuation.async_unload()
        await entry.runtime_data.async_stop()
        if isinstance(learner := entry.runtime_data.classifier, Learner):
            await learner.async_flush()
        issues.async_delete_agent_offline(hass, entry)
    return unloaded


async def async_remove_entry(hass: HomeAssistant, entry: LanGuardConfigEntry) -> None:
    """The agent was removed: delete its stored events and labels."""
    await EventHistory(hass, entry.entry_id).async_remove()
    await Learner(hass, entry.entry_id).async_remove()
    await async_remove_store(hass, entry.entry_id)
