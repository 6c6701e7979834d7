"""Set-up, unload, reload and removal of an agent's entry."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from unittest.mock import patch

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import issue_registry as ir
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.lan_guard.const import DOMAIN, ISSUE_MQTT_NOT_SETUP
from custom_components.lan_guard.coordinator import LanGuardCoordinator

from .conftest import AGENT, BASE, example, make_entry, make_event, publish, setup_entry, unload

README = Path(__file__).resolve().parents[2] / "README.md"
ENTITIES = [
    "binary_sensor.lan_guard_pi_livingroom_threat",
    "button.lan_guard_pi_livingroom_acknowledge",
    "event.lan_guard_pi_livingroom_activity",
    "sensor.lan_guard_pi_livingroom_level",
    "sensor.lan_guard_pi_livingroom_open_incidents",
    "sensor.lan_guard_pi_livingroom_last_culprit",
    "sensor.lan_guard_pi_livingroom_events_in_the_last_24_hours",
    "sensor.lan_guard_pi_livingroom_hosts_seen",
]


async def test_setup_creates_one_device_with_its_entities(
    hass: HomeAssistant,
    mqtt_mock: Any,
    device_registry: dr.DeviceRegistry,
    entity_registry: er.EntityRegistry,
) -> None:
    entry = await setup_entry(hass)
    assert entry.state is ConfigEntryState.LOADED
    assert isinstance(entry.runtime_data.coordinator, LanGuardCoordinator)
    device = device_registry.async_get_device(identifiers={(DOMAIN, AGENT)})
    assert device is not None
    assert device.sw_version == example("info")["version"]
    assert (dr.CONNECTION_NETWORK_MAC, example("info")["node"]["mac"]) in device.connections
    entities = er.async_entries_for_config_entry(entity_registry, entry.entry_id)
    assert {e.entity_id for e in entities} >= set(ENTITIES)
    assert all(e.device_id == device.id for e in entities)
    assert all(e.unique_id.startswith(f"{AGENT}-") for e in entities)
    for entity_id in ENTITIES:
        assert hass.states.get(entity_id) is not None, entity_id
    await unload(hass, entry)


async def test_the_readme_names_the_entities_as_they_are(
    hass: HomeAssistant, mqtt_mock: Any, entity_registry: er.EntityRegistry
) -> None:
    """Its entity table: the real entity ids, and what stays usable while the agent is away."""
    table = re.findall(
        r"^\| `([a-z_]+\.lan_guard_<agent>_[a-z0-9_]+)` \|[^|]*\| (available|unavailable) \|$",
        README.read_text(encoding="utf-8"),
        re.MULTILINE,
    )
    readme = {entity.replace("<agent>", "pi_livingroom"): when for entity, when in table}
    entry = await setup_entry(hass)
    entities = er.async_entries_for_config_entry(entity_registry, entry.entry_id)
    assert set(readme) == {e.entity_id for e in entities}
    publish(hass, "status", "offline")
    await hass.async_block_till_done()
    for entity_id, when in readme.items():
        unavailable = hass.states.get(entity_id).state == "unavailable"
        assert unavailable is (when == "unavailable"), entity_id
    await unload(hass, entry)


async def test_unload_leaves_nothing_behind(hass: HomeAssistant, mqtt_mock: Any) -> None:
    entry = await setup_entry(hass)
    coordinator: LanGuardCoordinator = entry.runtime_data.coordinator
    listeners_before = hass.bus.async_listeners()
    assert any(c.args[0] == f"{BASE}/#" for c in mqtt_mock.async_subscribe.call_args_list)
    await unload(hass, entry)
    assert entry.state is ConfigEntryState.NOT_LOADED
    for entity_id in ENTITIES:
        assert hass.states.get(entity_id).state == "unavailable"
    assert coordinator._update_listeners == []
    assert coordinator._event_listeners == []
    assert coordinator._offline_timer is None
    listeners_after = hass.bus.async_listeners()
    assert listeners_after.get("mobile_app_notification_action", 0) < listeners_before.get(
        "mobile_app_notification_action", 0
    )
    # Messages after unload reach nobody: the subscription is gone.
    publish(hass, "event", make_event())
    await hass.async_block_till_done()
    assert len(coordinator.history) == 0


async def test_a_failed_set_up_leaves_nothing_subscribed(
    hass: HomeAssistant, mqtt_mock: Any
) -> None:
    entry = make_entry()
    entry.add_to_hass(hass)
    before = hass.bus.async_listeners().get("mobile_app_notification_action", 0)
    with patch(
        "custom_components.lan_guard.EvacuationRunner.async_setup",
        side_effect=OSError("storage broken"),
    ):
        assert not await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_ERROR
    assert hass.bus.async_listeners().get("mobile_app_notification_action", 0) == before
    publish(hass, "event", make_event())  # reaches nobody
    await hass.async_block_till_done()


async def test_reload_keeps_history_and_entities(hass: HomeAssistant, mqtt_mock: Any) -> None:
    entry = await setup_entry(hass)
    publish(hass, "event", make_event(level=3))
    await hass.async_block_till_done()
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert len(entry.runtime_data.coordinator.history) == 1
    assert len(hass.states.async_entity_ids()) >= len(ENTITIES)
    await unload(hass, entry)


async def test_removing_the_entry_deletes_its_stored_events(
    hass: HomeAssistant, mqtt_mock: Any, hass_storage: dict[str, Any]
) -> None:
    entry = await setup_entry(hass)
    publish(hass, "event", make_event())
    await hass.async_block_till_done()
    await unload(hass, entry)
    key = f"{DOMAIN}.{entry.entry_id}"
    assert len(hass_storage[key]["data"]["events"]) == 1
    assert await hass.config_entries.async_remove(entry.entry_id)
    await hass.async_block_till_done()
    assert key not in hass_storage


async def test_without_mqtt_a_repair_names_the_problem(
    hass: HomeAssistant, issue_registry: ir.IssueRegistry
) -> None:
    entry: MockConfigEntry = make_entry()
    entry.add_to_hass(hass)
    assert not await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_RETRY
    issue = issue_registry.async_get_issue(DOMAIN, ISSUE_MQTT_NOT_SETUP)
    assert issue is not None
    assert issue.translation_key == ISSUE_MQTT_NOT_SETUP
    assert not issue.is_fixable
    assert issue.learn_more_url == "https://www.home-assistant.io/integrations/mqtt/"
    assert er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id) == []
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_when_mqtt_comes_up_the_retry_succeeds(
    hass: HomeAssistant, mqtt_mock: Any, issue_registry: ir.IssueRegistry
) -> None:
    entry: MockConfigEntry = make_entry()
    entry.add_to_hass(hass)
    with patch("custom_components.lan_guard.mqtt.async_wait_for_mqtt_client", return_value=False):
        assert not await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert issue_registry.async_get_issue(DOMAIN, ISSUE_MQTT_NOT_SETUP) is not None
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert issue_registry.async_get_issue(DOMAIN, ISSUE_MQTT_NOT_SETUP) is None
    await unload(hass, entry)
