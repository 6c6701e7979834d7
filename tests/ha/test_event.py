"""Event entity: one event type per kind, with the event's id, level, culprit and evidence."""

from __future__ import annotations

import pytest
from homeassistant.core import HomeAssistant, State
from pytest_homeassistant_custom_component.common import mock_restore_cache_with_extra_data

from custom_components.lan_guard.const import Kind

from .conftest import make_event, publish, setup_entry, unload

pytestmark = pytest.mark.usefixtures("mqtt_mock")
ACTIVITY = "event.lan_guard_pi_livingroom_activity"


async def test_every_kind_is_an_event_type(hass: HomeAssistant) -> None:
    entry = await setup_entry(hass)
    assert hass.states.get(ACTIVITY).attributes["event_types"] == [k.value for k in Kind]
    await unload(hass, entry)


@pytest.mark.parametrize("kind", [k.value for k in Kind])
async def test_each_event_fires_with_its_data(hass: HomeAssistant, kind: str) -> None:
    entry = await setup_entry(hass)
    event = make_event(kind, level=0 if kind == "host_left" else 1)
    publish(hass, "event", event)
    await hass.async_block_till_done()
    state = hass.states.get(ACTIVITY)
    assert state.state not in ("unknown", "unavailable")
    attributes = state.attributes
    assert attributes["event_type"] == kind
    assert attributes["event_id"] == event["id"]
    assert attributes["incident_id"] == event["incident_id"]
    assert attributes["level"] == event["level"]
    assert attributes["culprit"] == event["source"]
    assert attributes["evidence"] == event["evidence"]
    assert attributes["detected_at"] == event["detected_at"]
    # The classifier's prior judged it (no label yet), and says so.
    stored = entry.runtime_data.coordinator.history.get(event["id"])
    assert stored is not None
    assert stored.assessment is not None
    assert attributes["verdict"] == stored.assessment["verdict"]
    assert (attributes["decided_by"], attributes["labels"]) == ("prior", 0)
    await unload(hass, entry)


async def test_the_last_event_survives_a_restart(hass: HomeAssistant) -> None:
    mock_restore_cache_with_extra_data(
        hass,
        [
            (
                State(ACTIVITY, "2026-11-25T21:00:08.021+00:00"),
                {"last_event_type": "syn_scan", "last_event_attributes": {"level": 2}},
            )
        ],
    )
    entry = await setup_entry(hass)
    state = hass.states.get(ACTIVITY)
    assert state.state == "2026-11-25T21:00:08.021+00:00"
    assert state.attributes["event_type"] == "syn_scan"
    assert state.attributes["level"] == 2
    await unload(hass, entry)
