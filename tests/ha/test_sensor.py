"""Sensors: level, open incidents, last culprit, events in 24 h, hosts seen; restore."""

from __future__ import annotations

from datetime import timedelta

import pytest
from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant, State
from pytest_homeassistant_custom_component.common import (
    async_fire_time_changed,
    mock_restore_cache_with_extra_data,
)

from .conftest import example, make_event, make_state, publish, setup_entry, unload

pytestmark = pytest.mark.usefixtures("mqtt_mock")
SENSOR = "sensor.lan_guard_pi_livingroom_"
LEVEL = f"{SENSOR}level"
OPEN = f"{SENSOR}open_incidents"
CULPRIT = f"{SENSOR}last_culprit"
EVENTS = f"{SENSOR}events_in_the_last_24_hours"
HOSTS = f"{SENSOR}hosts_seen"


def state(hass: HomeAssistant, entity_id: str) -> State:
    found = hass.states.get(entity_id)
    assert found is not None, entity_id
    return found


async def test_values_follow_the_agent(hass: HomeAssistant) -> None:
    entry = await setup_entry(hass)
    for entity_id in (LEVEL, OPEN, HOSTS, CULPRIT):
        assert state(hass, entity_id).state == "unknown"
    assert state(hass, EVENTS).state == "0"
    publish(hass, "state", example("state"), retain=True)
    publish(hass, "hosts", example("hosts"), retain=True)
    await hass.async_block_till_done()
    assert state(hass, LEVEL).state == str(example("state")["level"])
    assert state(hass, OPEN).state == str(len(example("state")["incidents"]))
    listed = state(hass, OPEN).attributes["incidents"]
    assert [i["incident_id"] for i in listed] == [
        i["incident_id"] for i in example("state")["incidents"]
    ]
    hosts = example("hosts")["hosts"]
    assert state(hass, HOSTS).state == str(len(hosts))
    assert state(hass, HOSTS).attributes["present"] == sum(1 for h in hosts if h["present"])
    assert state(hass, HOSTS).attributes["truncated"] is False
    await unload(hass, entry)


async def test_last_culprit_and_its_identity(hass: HomeAssistant) -> None:
    entry = await setup_entry(hass)
    event = make_event(level=3, kind="session")
    publish(hass, "event", event)
    publish(hass, "event", make_event("host_left", level=0, mac="00:11:22:33:44:55"))
    await hass.async_block_till_done()
    culprit = state(hass, CULPRIT)
    assert culprit.state == "kids-laptop"
    assert culprit.attributes["mac"] == "b8:27:eb:4c:21:9a"
    assert culprit.attributes["ip"] == "192.168.1.23"
    assert culprit.attributes["vendor"] == event["source"]["vendor"]
    assert culprit.attributes["kind"] == "session"
    assert culprit.attributes["level"] == 3
    assert culprit.attributes["event_id"] == event["id"]
    assert culprit.attributes["label"] is None
    # Without a host name the IP names the culprit, without an IP the MAC.
    nameless = make_event(level=2, ip=None)
    nameless["source"]["hostname"] = None
    publish(hass, "event", nameless)
    await hass.async_block_till_done()
    assert state(hass, CULPRIT).state == "b8:27:eb:4c:21:9a"
    await unload(hass, entry)


async def test_events_age_out_of_the_24_hour_window(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory
) -> None:
    entry = await setup_entry(hass)
    publish(hass, "event", make_event(level=1, kind="arp_scan"))
    publish(hass, "event", make_event(level=2))
    publish(hass, "event", make_event("host_left", level=0))  # not a threat
    await hass.async_block_till_done()
    assert state(hass, EVENTS).state == "2"
    freezer.tick(timedelta(hours=23))
    publish(hass, "event", make_event(level=2))
    await hass.async_block_till_done()
    assert state(hass, EVENTS).state == "3"
    freezer.tick(timedelta(hours=1, minutes=1))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert state(hass, EVENTS).state == "1"
    await unload(hass, entry)


async def test_values_survive_a_restart(hass: HomeAssistant) -> None:
    mock_restore_cache_with_extra_data(
        hass,
        [
            (State(LEVEL, "3"), {"native_value": 3, "native_unit_of_measurement": None}),
            (State(OPEN, "2"), {"native_value": 2, "native_unit_of_measurement": None}),
            (State(HOSTS, "7"), {"native_value": 7, "native_unit_of_measurement": None}),
        ],
    )
    entry = await setup_entry(hass)
    assert state(hass, LEVEL).state == "3"
    assert state(hass, OPEN).state == "2"
    assert state(hass, HOSTS).state == "7"
    # The agent reports again: live values replace the restored ones.
    publish(hass, "state", make_state([]), retain=True)
    await hass.async_block_till_done()
    assert state(hass, LEVEL).state == "0"
    assert state(hass, OPEN).state == "0"
    assert state(hass, HOSTS).state == "7"
    await unload(hass, entry)


async def test_reload_keeps_the_last_values(hass: HomeAssistant) -> None:
    entry = await setup_entry(hass)
    event = make_event(level=3, kind="session")
    publish(hass, "event", event)
    publish(hass, "hosts", example("hosts"), retain=True)
    await hass.async_block_till_done()
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    publish(hass, "status", "online", retain=True)  # the new subscription gets the status
    await hass.async_block_till_done()
    assert state(hass, LEVEL).state == "3"
    assert state(hass, OPEN).state == "1"
    assert state(hass, HOSTS).state == str(len(example("hosts")["hosts"]))
    assert state(hass, CULPRIT).state == "kids-laptop"  # from the stored history
    assert state(hass, CULPRIT).attributes["event_id"] == event["id"]
    assert state(hass, EVENTS).state == "1"
    await unload(hass, entry)
