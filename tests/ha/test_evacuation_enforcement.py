"""Evacuation against what the agent really enforces: late answers, an agent restart."""

from __future__ import annotations

from typing import Any
from unittest.mock import patch

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError

from custom_components.lan_guard.evacuation.machine import QuarantineListed
from custom_components.lan_guard.evacuation.record import Reason

from .conftest import example, make_event, publish, unload
from .evacuation_fixtures import CULPRIT_MAC, publish_event, setup_evacuation

pytestmark = pytest.mark.usefixtures("mqtt_mock")


async def test_a_quarantine_answered_after_the_timeout_is_released_on_restore(
    hass: HomeAssistant, mqtt_mock: Any
) -> None:
    with patch("custom_components.lan_guard.evacuation.runner.COMMAND_TIMEOUT", 0.05):
        entry, manager, agent, _ = await setup_evacuation(hass, mqtt_mock)
    agent.answer = "silent"
    publish_event(hass, make_event(level=2))
    await hass.async_block_till_done()
    culprit = manager.record.culprits[CULPRIT_MAC]
    assert not culprit.in_force
    assert culprit.unsure
    assert culprit.quarantine is not None and culprit.quarantine.reason == "timeout"
    # The agent applies the command late; its answer finds nobody waiting.
    late = {"id": agent.commands[0]["id"], "ok": True, "error": None}
    publish(hass, "command/result", late)
    await hass.async_block_till_done()
    agent.answer = "ok"
    await manager.async_stop(Reason.OWNER)
    assert agent.actions() == [("quarantine", CULPRIT_MAC), ("release", CULPRIT_MAC)]
    assert not manager.active
    await unload(hass, entry)


async def test_a_failed_publish_is_released_on_restore(hass: HomeAssistant, mqtt_mock: Any) -> None:
    entry, manager, agent, _ = await setup_evacuation(hass, mqtt_mock)
    answer = mqtt_mock.async_publish.side_effect
    mqtt_mock.async_publish.side_effect = HomeAssistantError("broker gone")
    publish_event(hass, make_event(level=2))
    await hass.async_block_till_done()
    assert manager.record.culprits[CULPRIT_MAC].unsure
    mqtt_mock.async_publish.side_effect = answer
    await manager.async_stop()
    assert agent.actions() == [("release", CULPRIT_MAC)]
    await unload(hass, entry)


async def test_a_culprit_the_agent_lists_as_quarantined_is_released(
    hass: HomeAssistant, mqtt_mock: Any
) -> None:
    entry, manager, agent, _ = await setup_evacuation(hass, mqtt_mock)
    agent.answer = "refuse"
    publish_event(hass, make_event(level=2))
    await hass.async_block_till_done()
    culprit = manager.record.culprits[CULPRIT_MAC]
    assert not culprit.in_force and not culprit.unsure
    # ... yet the agent's retained state says the culprit is isolated (say an older command).
    publish(hass, "quarantine", example("quarantine"))
    await hass.async_block_till_done()
    agent.answer = "ok"
    await manager.async_stop(Reason.OWNER)
    assert agent.actions() == [("quarantine", CULPRIT_MAC), ("release", CULPRIT_MAC)]
    assert not manager.active
    await unload(hass, entry)


async def test_an_agent_restart_that_lifts_the_quarantine_is_met_by_quarantining_again(
    hass: HomeAssistant, mqtt_mock: Any
) -> None:
    entry, manager, agent, phone = await setup_evacuation(hass, mqtt_mock)
    publish_event(hass, make_event(level=2))
    await hass.async_block_till_done()
    assert manager.record.culprits[CULPRIT_MAC].in_force
    publish(hass, "quarantine", example("quarantine"))  # the culprit is listed
    await hass.async_block_till_done()
    assert agent.actions() == [("quarantine", CULPRIT_MAC)]
    # The agent restarts with an empty nftables table and says so.
    publish(hass, "quarantine", {**example("quarantine"), "hosts": []})
    await hass.async_block_till_done()
    assert agent.actions() == [("quarantine", CULPRIT_MAC)] * 2
    assert manager.record.culprits[CULPRIT_MAC].in_force
    assert phone[-1].data["title"] == "LAN Guard: quarantine lost"
    assert CULPRIT_MAC in phone[-1].data["message"]
    await unload(hass, entry)


async def test_a_stale_lost_quarantine_is_not_chased_once_released(
    hass: HomeAssistant, mqtt_mock: Any
) -> None:
    entry, manager, agent, _ = await setup_evacuation(hass, mqtt_mock)
    publish_event(hass, make_event(level=2))
    await hass.async_block_till_done()
    # A stale empty payload is only acted upon under the lock, after the restore ran.
    await manager.async_stop(Reason.OWNER)
    await manager.async_handle(QuarantineListed(frozenset()))
    await hass.async_block_till_done()
    assert agent.actions() == [("quarantine", CULPRIT_MAC), ("release", CULPRIT_MAC)]
    await unload(hass, entry)
