"""LAN Guard: early warning of LAN reconnaissance, from sensor agents over MQTT."""

from __future__ import annotations

from datetime import timedelta

from homeassistant.components import mqtt
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryNotReady
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.event import async_track_time_interval
from homeassistant.helpers.typing import ConfigType

from . import issues
from .blueprint_install import async_install_blueprints
from .const import (
    CONF_AGENT_ID,
    CONF_QUESTIONS_PER_DAY,
    DEFAULT_QUESTIONS_PER_DAY,
    DOMAIN,
    PLATFORMS,
)
from .coordinator import LanGuardCoordinator
from .evacuation.record import Reason
from .evacuation.runner import EvacuationRunner, async_end_for_removed_entry
from .evacuation.services import async_setup_evacuation_services
from .federation import Federation
from .history import EventHistory
from .learner import Learner
from .learner_services import async_setup_learner_services
from .notifications import IncidentNotifier
from .panel import async_register_panel
from .provider.link import ProviderLink
from .runtime import LanGuardConfigEntry, LanGuardData
from .services import async_setup_services
from .websocket_api import async_setup_websocket_api

CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)
# How often unanswered questions are looked at: they expire after a day, minutes late is fine.
QUESTION_CHECK = timedelta(minutes=10)


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the actions, the inbox and its commands once, whatever the number of agents."""
    async_setup_services(hass)
    async_setup_evacuation_services(hass)
    await async_install_blueprints(hass)
    async_setup_learner_services(hass)
    async_setup_websocket_api(hass)
    await async_register_panel(hass)
    return True


async def async_setup_entry(hass: HomeAssistant, entry: LanGuardConfigEntry) -> bool:
    """Set up one agent: wait for MQTT, build its parts, subscribe, then the entities."""
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
    # Verdicts from the first event on; the agent's hosts say how long each device has been on
    # the LAN (read only once events flow, when the coordinator below exists).
    learner = Learner(
        hass,
        entry.entry_id,
        hosts=lambda: coordinator.hosts,
        questions_per_day=int(entry.options.get(CONF_QUESTIONS_PER_DAY, DEFAULT_QUESTIONS_PER_DAY)),
    )
    await learner.async_load()
    coordinator = LanGuardCoordinator(hass, entry, classifier=learner)
    notifier = IncidentNotifier(
        hass,
        entry,
        coordinator.history,
        coordinator.notify_level,
        coordinator.allowlist,
        learner=learner,
    )
    evacuation = EvacuationRunner.from_entry(hass, entry, coordinator)
    entry.async_on_unload(coordinator.async_add_event_listener(notifier.async_event))
    entry.async_on_unload(
        async_track_time_interval(hass, notifier.async_withdraw_expired, QUESTION_CHECK)
    )
    await coordinator.async_start()
    provider = ProviderLink(hass, entry, coordinator, learner, evacuation)
    try:
        await evacuation.async_setup()
    except Exception:
        await coordinator.async_stop()  # nothing of the agent stays subscribed
        raise
    federation = Federation(hass, coordinator, learner)
    await federation.async_start()
    entry.runtime_data = LanGuardData(
        coordinator, learner, notifier, evacuation, provider, federation
    )
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    # After the entities: the agent's events arriving meanwhile find them all there.
    await provider.async_start()
    return True


async def async_unload_entry(hass: HomeAssistant, entry: LanGuardConfigEntry) -> bool:
    """Stop listening and write what is kept. An evacuation keeps running across a reload
    (options saved, HA restart): the next set-up resumes it. Disabling the entry ends it."""
    unloaded = await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
    if unloaded:
        data = entry.runtime_data
        if entry.disabled_by is not None:
            # While the agent's topics are still subscribed, so quarantines can be lifted.
            await data.evacuation.async_stop(Reason.REMOVED)
        await data.provider.async_stop()
        await data.evacuation.async_close()
        data.federation.async_stop()
        await data.coordinator.async_stop()
        await data.learner.async_flush()
        issues.async_delete_agent_offline(hass, entry)
    return unloaded


async def async_remove_entry(hass: HomeAssistant, entry: LanGuardConfigEntry) -> None:
    """The agent was removed: undo its evacuation, delete its stored events and labels."""
    await async_end_for_removed_entry(hass, entry)
    await EventHistory(hass, entry.entry_id).async_remove()
    await Learner(hass, entry.entry_id).async_remove()
