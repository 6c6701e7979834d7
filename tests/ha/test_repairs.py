"""Repairs: an agent offline too long (fixable), and the issue helpers."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import async_fire_time_changed

from custom_components.lan_guard.const import CONF_OFFLINE_MINUTES, DOMAIN
from custom_components.lan_guard.issues import agent_offline_issue_id
from custom_components.lan_guard.repairs import async_create_fix_flow

from .conftest import make_entry, publish, setup_entry, unload

pytestmark = pytest.mark.usefixtures("mqtt_mock")


async def go_offline_for(hass: HomeAssistant, freezer: FrozenDateTimeFactory, minutes: int) -> None:
    freezer.tick(timedelta(minutes=minutes))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()


async def test_offline_too_long_raises_a_fixable_issue_that_clears_when_back(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, issue_registry: ir.IssueRegistry
) -> None:
    entry = await setup_entry(hass, make_entry(**{CONF_OFFLINE_MINUTES: 5}))
    issue_id = agent_offline_issue_id(entry.entry_id)
    publish(hass, "status", "offline")
    await hass.async_block_till_done()
    await go_offline_for(hass, freezer, 4)
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is None
    await go_offline_for(hass, freezer, 2)
    issue = issue_registry.async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert issue.is_fixable
    assert issue.translation_key == "agent_offline"
    assert issue.translation_placeholders == {"agent": "pi-livingroom", "minutes": "5"}
    publish(hass, "status", "online")
    await hass.async_block_till_done()
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is None
    await unload(hass, entry)


async def test_an_agent_that_never_shows_up_is_reported_too(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, issue_registry: ir.IssueRegistry
) -> None:
    entry = await setup_entry(hass, online=False)
    await go_offline_for(hass, freezer, 11)
    assert issue_registry.async_get_issue(DOMAIN, agent_offline_issue_id(entry.entry_id))
    # Unloading the entry takes its issue away.
    await unload(hass, entry)
    assert not issue_registry.async_get_issue(DOMAIN, agent_offline_issue_id(entry.entry_id))


async def test_the_fix_flow_sets_a_new_limit_and_rechecks(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    issue_registry: ir.IssueRegistry,
    hass_client: Any,
) -> None:
    assert await async_setup_component(hass, "repairs", {})
    entry = await setup_entry(hass, online=False)
    issue_id = agent_offline_issue_id(entry.entry_id)
    await go_offline_for(hass, freezer, 11)
    client = await hass_client()
    response = await client.post(
        "/api/repairs/issues/fix", json={"handler": DOMAIN, "issue_id": issue_id}
    )
    assert response.status == 200
    flow = await response.json()
    assert flow["step_id"] == "confirm"
    assert flow["description_placeholders"] == {"agent": "pi-livingroom", "minutes": "10"}
    response = await client.post(
        f"/api/repairs/issues/fix/{flow['flow_id']}", json={CONF_OFFLINE_MINUTES: 60}
    )
    assert response.status == 200
    assert (await response.json())["type"] == FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert entry.options[CONF_OFFLINE_MINUTES] == 60
    # Reloaded: the issue is gone, and comes back only after the new limit.
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is None
    assert entry.runtime_data.coordinator.offline_minutes == 60
    await go_offline_for(hass, freezer, 30)
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is None
    await go_offline_for(hass, freezer, 31)
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is not None
    await unload(hass, entry)


async def test_the_fix_flow_of_a_removed_agent_aborts(hass: HomeAssistant) -> None:
    flow = await async_create_fix_flow(hass, "agent_offline_gone", {"entry_id": "gone"})
    flow.hass = hass
    result = await flow.async_step_init()
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "entry_removed"
    with pytest.raises(ValueError):
        await async_create_fix_flow(hass, "something_else", None)
