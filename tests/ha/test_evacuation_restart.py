"""Evacuation across the entry's life: an HA restart, a reload or saved options keep it
running; disabling or deleting the entry, or the owner, end it. Nothing isolated is forgotten."""

from __future__ import annotations

import asyncio
from typing import Any
from unittest.mock import patch

import pytest
from homeassistant.config_entries import ConfigEntryDisabler
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import issue_registry as ir

from custom_components.lan_guard.const import DOMAIN
from custom_components.lan_guard.evacuation.machine import Left
from custom_components.lan_guard.evacuation.record import Host, Outcome, Phase, Reason
from custom_components.lan_guard.evacuation.runner import storage_key

from .conftest import BASE, example, make_entry, make_event, publish, setup_entry, unload
from .evacuation_fixtures import (
    CULPRIT_IP,
    CULPRIT_MAC,
    HEATER,
    SWITCH,
    TV,
    FakeAgent,
    host_left,
    publish_event,
    setup_appliances,
    setup_evacuation,
)

pytestmark = pytest.mark.usefixtures("mqtt_mock")


def _stored_record(since: str) -> dict[str, Any]:
    """What an evacuation in progress leaves in storage when HA stops."""
    return {
        "phase": "active",
        "reason": "event",
        "started_at": "2026-11-25T21:00:08+00:00",
        "event": {"kind": "syn_scan", "level": 2},
        "culprits": [
            {
                "mac": CULPRIT_MAC,
                "ip": CULPRIT_IP,
                "vendor": None,
                "hostname": None,
                "since": since,
                "quarantine": {"ok": True, "reason": None, "detail": None},
                "in_force": True,
                "left": False,
            }
        ],
        "appliances": {
            TV: {"state": "on", "attributes": {"friendly_name": "TV"}},
            HEATER: {"state": "off", "attributes": {}},
        },
        "hold": False,
    }


async def test_restart_mid_evacuation_resumes_and_restores_what_was_on(
    hass: HomeAssistant, mqtt_mock: Any, hass_storage: dict[str, Any]
) -> None:
    entry = make_entry(isolate_entities=[TV, HEATER])
    hass_storage[storage_key(entry.entry_id)] = {
        "version": 1,
        "minor_version": 1,
        "key": storage_key(entry.entry_id),
        "data": _stored_record("2026-11-25T21:00:05.000Z"),
    }
    # After the restart the TV came back on by itself (its integration restored it).
    await setup_appliances(hass)
    agent = FakeAgent(hass, mqtt_mock)
    await setup_entry(hass, entry)
    await hass.async_block_till_done(wait_background_tasks=True)
    manager = entry.runtime_data.evacuation
    assert manager.record.phase is Phase.ACTIVE
    assert hass.states.get(SWITCH).state == "on"
    assert hass.states.get(TV).state == "off"  # isolation re-asserted
    assert agent.actions() == [("quarantine", CULPRIT_MAC)]  # the agent may have restarted too

    publish_event(hass, host_left())
    await hass.async_block_till_done()
    assert not manager.active
    assert hass.states.get(TV).state == "on"
    assert hass.states.get(HEATER).state == "off"
    assert storage_key(entry.entry_id) not in hass_storage
    await unload(hass, entry)


async def test_resume_waits_for_the_subscription_at_most_a_while(
    hass: HomeAssistant, mqtt_mock: Any, hass_storage: dict[str, Any], monkeypatch: Any
) -> None:
    monkeypatch.setattr("custom_components.lan_guard.evacuation.runner._RESUME_WAIT_S", 0.01)
    entry = make_entry(isolate_entities=[TV])
    record = _stored_record("2026-11-25T21:00:05.000Z")
    record["culprits"] = []
    hass_storage[storage_key(entry.entry_id)] = {
        "version": 1,
        "minor_version": 1,
        "key": storage_key(entry.entry_id),
        "data": record,
    }
    await setup_appliances(hass)
    FakeAgent(hass, mqtt_mock)
    entry.add_to_hass(hass)
    coordinator_event = __import__("asyncio").Event()  # never set: the broker is slow
    from custom_components.lan_guard import coordinator as coordinator_module

    original = coordinator_module.LanGuardCoordinator.__init__

    def slow_subscription(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.subscribed = coordinator_event

    monkeypatch.setattr(coordinator_module.LanGuardCoordinator, "__init__", slow_subscription)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done(wait_background_tasks=True)
    assert hass.states.get(TV).state == "off"
    await unload(hass, entry)


async def test_options_saved_mid_evacuation_keep_it_running(
    hass: HomeAssistant, mqtt_mock: Any, hass_storage: dict[str, Any]
) -> None:
    """Saving any option reloads the entry: the appliances stay off, the culprit isolated."""
    entry, manager, agent, phone = await setup_evacuation(hass, mqtt_mock)
    publish_event(hass, make_event(level=2))
    await hass.async_block_till_done()
    assert hass.states.get(TV).state == "off"
    told = len(phone)

    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"notify_level": "2", "offline_minutes": 30}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    # The agent's retained messages, as the broker sends them on the new subscription.
    publish(hass, "status", "online", retain=True)
    publish(hass, "quarantine", example("quarantine"), retain=True)
    await hass.async_block_till_done(wait_background_tasks=True)
    assert entry.options["offline_minutes"] == 30

    runner = entry.runtime_data.evacuation
    assert runner is not manager  # a new runner, resumed from storage
    assert runner.record.phase is Phase.ACTIVE
    assert hass.states.get(SWITCH).state == "on"
    assert hass.states.get(TV).state == "off"
    assert hass.states.get(HEATER).state == "off"
    assert ("release", CULPRIT_MAC) not in agent.actions()
    assert len(phone) == told  # nothing to tell: nothing changed for the owner
    assert storage_key(entry.entry_id) in hass_storage

    # It still ends as it should: the culprit leaves, service comes back.
    publish_event(hass, host_left())
    await hass.async_block_till_done()
    assert not runner.active
    assert hass.states.get(TV).state == "on"
    assert agent.actions()[-1] == ("release", CULPRIT_MAC)
    await unload(hass, entry)


async def test_disabling_the_entry_ends_the_evacuation(
    hass: HomeAssistant, mqtt_mock: Any, hass_storage: dict[str, Any]
) -> None:
    entry, manager, agent, phone = await setup_evacuation(hass, mqtt_mock)
    publish_event(hass, make_event(level=2))
    await hass.async_block_till_done()
    await hass.config_entries.async_set_disabled_by(entry.entry_id, ConfigEntryDisabler.USER)
    await hass.async_block_till_done()
    assert agent.actions() == [("quarantine", CULPRIT_MAC), ("release", CULPRIT_MAC)]
    assert hass.states.get(TV).state == "on"
    assert "LAN Guard was removed or disabled for this agent" in phone[-1].data["message"]
    assert storage_key(entry.entry_id) not in hass_storage
    # Events after the unload change nothing.
    publish_event(hass, make_event(level=3))
    await hass.async_block_till_done()
    assert manager.record.phase is Phase.IDLE


async def test_removing_the_entry_ends_the_evacuation(
    hass: HomeAssistant, mqtt_mock: Any, hass_storage: dict[str, Any]
) -> None:
    entry, _, agent, _ = await setup_evacuation(hass, mqtt_mock)
    publish_event(hass, make_event(level=2))
    await hass.async_block_till_done()
    assert hass.states.get(TV).state == "off"

    # The entry is unloaded first; the agent is then heard again (its retained status).
    removal = hass.async_create_task(hass.config_entries.async_remove(entry.entry_id))
    for _ in range(50):
        await asyncio.sleep(0.01)
        if any(c.args[0] == f"{BASE}/#" for c in mqtt_mock.async_subscribe.call_args_list[1:]):
            break
    publish(hass, "status", "online")
    await removal
    assert agent.actions() == [("quarantine", CULPRIT_MAC), ("release", CULPRIT_MAC)]
    assert hass.states.get(TV).state == "on"
    assert storage_key(entry.entry_id) not in hass_storage


async def test_removing_the_entry_while_the_agent_is_away_tells_what_is_left(
    hass: HomeAssistant,
    mqtt_mock: Any,
    hass_storage: dict[str, Any],
    issue_registry: ir.IssueRegistry,
    monkeypatch: Any,
) -> None:
    monkeypatch.setattr("custom_components.lan_guard.evacuation.runner._AGENT_WAIT_S", 0.05)
    entry, _, agent, _ = await setup_evacuation(hass, mqtt_mock)
    publish_event(hass, make_event(level=2))
    await hass.async_block_till_done()
    await hass.config_entries.async_remove(entry.entry_id)
    issue = issue_registry.async_get_issue(DOMAIN, f"evacuation_incomplete_{entry.entry_id}")
    assert issue is not None and issue.is_persistent
    assert f"quarantine of {CULPRIT_MAC} ({CULPRIT_IP})" in issue.translation_placeholders["items"]
    assert hass.states.get(TV).state == "on"  # what could be undone, was
    assert agent.actions() == [("quarantine", CULPRIT_MAC)]
    assert storage_key(entry.entry_id) not in hass_storage  # nothing would resume it


async def test_an_agent_gone_at_restore_leaves_an_issue_until_undone(
    hass: HomeAssistant,
    mqtt_mock: Any,
    hass_storage: dict[str, Any],
    issue_registry: ir.IssueRegistry,
) -> None:
    entry, manager, agent, phone = await setup_evacuation(hass, mqtt_mock)
    publish_event(hass, make_event(level=2))
    await hass.async_block_till_done()
    publish(hass, "status", "offline")  # the agent is gone: the release cannot be sent
    await hass.async_block_till_done()
    await manager.async_stop()
    issue = issue_registry.async_get_issue(DOMAIN, f"evacuation_incomplete_{entry.entry_id}")
    assert issue is not None and issue.is_persistent
    assert f"quarantine of {CULPRIT_MAC} ({CULPRIT_IP})" in issue.translation_placeholders["items"]
    assert phone[-1].data["title"] == "LAN Guard: evacuation not fully undone"
    assert hass.states.get(TV).state == "on"  # what could be undone, was
    stored = hass_storage[storage_key(entry.entry_id)]["data"]
    assert stored["phase"] == "active"
    assert [c["mac"] for c in stored["culprits"]] == [CULPRIT_MAC]
    assert stored["appliances"] == {}

    # Reloaded (the agent is back): the leftover is re-asserted, then undone by the owner.
    await unload(hass, entry)
    assert await hass.config_entries.async_setup(entry.entry_id)
    publish(hass, "status", "online")
    await hass.async_block_till_done(wait_background_tasks=True)
    manager = entry.runtime_data.evacuation
    assert manager.active
    await manager.async_stop()
    assert not manager.active
    assert issue_registry.async_get_issue(DOMAIN, f"evacuation_incomplete_{entry.entry_id}") is None
    assert agent.actions()[-1] == ("release", CULPRIT_MAC)
    await unload(hass, entry)


async def test_appliances_that_fail_to_switch(
    hass: HomeAssistant, mqtt_mock: Any, issue_registry: ir.IssueRegistry
) -> None:
    hass.states.async_set("fan.no_service", "on")  # no fan integration: turn_off fails
    entry, manager, _, phone = await setup_evacuation(
        hass, mqtt_mock, isolate_entities=[TV, "fan.no_service", "light.missing"]
    )
    publish_event(hass, make_event(level=2))
    await hass.async_block_till_done()
    started = next(c for c in phone if c.data["title"] == "LAN Guard: evacuation mode on")
    assert "Could not switch off: no service (fan.no_service)." in started.data["message"]
    assert "light.missing" not in manager.record.appliances  # nothing to record
    hass.states.async_set("fan.no_service", "off")  # it went off by itself; it cannot come on
    await manager.async_stop()
    issue = issue_registry.async_get_issue(DOMAIN, f"evacuation_incomplete_{entry.entry_id}")
    assert issue is not None
    assert issue.translation_placeholders["items"] == "no service (fan.no_service)"
    assert hass.states.get(TV).state == "on"
    assert manager.active
    await unload(hass, entry)


async def test_edges_after_unload_without_backend_and_without_ha_addresses(
    hass: HomeAssistant,
    mqtt_mock: Any,
    hass_storage: dict[str, Any],
    caplog: Any,
    monkeypatch: Any,
) -> None:
    from unittest.mock import patch

    from homeassistant.exceptions import HomeAssistantError

    from custom_components.lan_guard import coordinator as coordinator_module

    entry = make_entry(isolate_entities=[TV], quarantine_backend="none")
    # Quarantined by the agent before the owner switched the backend off.
    hass_storage[storage_key(entry.entry_id)] = {
        "version": 1,
        "minor_version": 1,
        "key": storage_key(entry.entry_id),
        "data": _stored_record("2026-11-25T21:00:05.000Z"),
    }
    await setup_appliances(hass)
    FakeAgent(hass, mqtt_mock)
    original = coordinator_module.LanGuardCoordinator.__init__

    def slow_subscription(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.subscribed = __import__("asyncio").Event()  # the resume keeps waiting

    monkeypatch.setattr(coordinator_module.LanGuardCoordinator, "__init__", slow_subscription)
    with patch(
        "custom_components.lan_guard.evacuation.runner.network.async_get_enabled_source_ips",
        side_effect=HomeAssistantError("no adapters"),
    ):
        await setup_entry(hass, entry)
    assert "Could not read Home Assistant's own addresses: no adapters" in caplog.text
    manager = entry.runtime_data.evacuation
    await manager.async_handle(Left("02:00:00:00:00:99"))  # not a culprit: ignored
    assert manager.active
    # Before the resume; recorded by a version that did not say which backend isolated it,
    # so the options' backend ("none") is all there is to release it with.
    await manager.async_stop()
    culprit = manager.record.culprits[CULPRIT_MAC]
    assert culprit.quarantine == Outcome(False, "no_backend")
    assert ir.async_get(hass).async_get_issue(DOMAIN, f"evacuation_incomplete_{entry.entry_id}")
    await unload(hass, entry)
    await manager.async_start()  # too late: unloaded
    assert manager.record.reason is Reason.EVENT


async def test_a_culprit_is_released_by_the_backend_that_isolated_it(
    hass: HomeAssistant, mqtt_mock: Any
) -> None:
    """The owner switches quarantine off mid-evacuation: the agent still lifts its own."""
    entry, _, agent, _ = await setup_evacuation(hass, mqtt_mock)
    publish_event(hass, make_event(level=2))
    await hass.async_block_till_done()
    hass.config_entries.async_update_entry(
        entry, options={**entry.options, "quarantine_backend": "none"}
    )
    await hass.config_entries.async_reload(entry.entry_id)
    publish(hass, "status", "online", retain=True)
    await hass.async_block_till_done(wait_background_tasks=True)
    runner = entry.runtime_data.evacuation
    assert runner.policy.backend == "none"
    assert runner.record.culprits[CULPRIT_MAC].backend == "agent"
    await runner.async_stop()
    assert not runner.active
    assert agent.actions()[-1] == ("release", CULPRIT_MAC)
    await unload(hass, entry)


async def test_a_broken_backend_costs_its_outcome_not_the_evacuation(
    hass: HomeAssistant, mqtt_mock: Any, caplog: pytest.LogCaptureFixture
) -> None:
    entry, manager, agent, phone = await setup_evacuation(hass, mqtt_mock)

    async def broken(mac: str, ip: str | None) -> Any:
        raise RuntimeError("bug in a backend")

    enforcer = manager.backends["agent"]
    working = enforcer.async_quarantine
    enforcer.async_quarantine = broken  # type: ignore[method-assign]
    await manager.async_start(Host(CULPRIT_MAC, CULPRIT_IP))
    assert "The agent backend failed on" in caplog.text
    assert hass.states.get(TV).state == "off"  # the rest of the step went on
    culprit = manager.record.culprits[CULPRIT_MAC]
    assert culprit.unsure  # it may have gone out: released on restore
    assert (
        "the quarantine backend failed (RuntimeError: bug in a backend)"
        in (phone[-1].data["message"])
    )
    enforcer.async_quarantine = working  # type: ignore[method-assign]
    await manager.async_stop()
    assert not manager.active
    assert agent.actions() == [("release", CULPRIT_MAC)]
    await unload(hass, entry)


async def test_a_step_that_breaks_half_way_raises_a_repair_issue(
    hass: HomeAssistant, mqtt_mock: Any, issue_registry: ir.IssueRegistry
) -> None:
    entry, manager, _, _ = await setup_evacuation(hass, mqtt_mock)
    await manager.async_start(Host(CULPRIT_MAC, CULPRIT_IP))
    with (
        patch(
            "custom_components.lan_guard.evacuation.runner.async_reproduce_state",
            side_effect=RuntimeError("bug in a platform"),
        ),
        pytest.raises(RuntimeError, match="bug in a platform"),
    ):
        await manager.async_stop()
    assert manager.active  # the switch says isolation may be in force
    issue = issue_registry.async_get_issue(DOMAIN, f"evacuation_incomplete_{entry.entry_id}")
    assert issue is not None
    assert issue.translation_placeholders["items"] == (
        f"quarantine of {CULPRIT_MAC} ({CULPRIT_IP}), TV (input_boolean.tv), heater"
        " (input_boolean.heater)"
    )
    await manager.async_stop()
    assert not manager.active
    assert hass.states.get(TV).state == "on"
    assert issue_registry.async_get_issue(DOMAIN, f"evacuation_incomplete_{entry.entry_id}") is None
    await unload(hass, entry)
