"""Actions: label_event (from automations and scripts) and export_events (response data)."""

from __future__ import annotations

from typing import Any

import pytest
import voluptuous as vol
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ServiceValidationError

from custom_components.lan_guard.const import DOMAIN, Label

from .conftest import make_event, publish, setup_entry, unload

pytestmark = pytest.mark.usefixtures("mqtt_mock")


async def test_label_event_stores_the_label_and_persists_it(
    hass: HomeAssistant, hass_storage: dict[str, Any]
) -> None:
    entry = await setup_entry(hass)
    event = make_event(level=2)
    publish(hass, "event", event)
    await hass.async_block_till_done()
    await hass.services.async_call(
        DOMAIN,
        "label_event",
        {"event_id": event["id"].upper(), "verdict": "normal"},
        blocking=True,
    )
    assert entry.runtime_data.coordinator.history.get(event["id"]).label is Label.NORMAL
    await unload(hass, entry)
    stored = hass_storage[f"{DOMAIN}.{entry.entry_id}"]["data"]["events"]
    assert stored[0]["label"] == "normal"
    assert stored[0]["labelled_at"] is not None


async def test_label_of_an_unknown_event_is_a_clear_error(hass: HomeAssistant) -> None:
    entry = await setup_entry(hass)
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN, "label_event", {"event_id": "e" * 32, "verdict": "alarm"}, blocking=True
        )
    assert err.value.translation_key == "unknown_event"
    assert err.value.translation_placeholders == {"event_id": "e" * 32}
    assert str(err.value) == f"No stored event has the ID {'e' * 32}"
    await unload(hass, entry)


@pytest.mark.parametrize(
    "data",
    [
        {"event_id": "not-an-id", "verdict": "alarm"},
        {"event_id": "e" * 32, "verdict": "maybe"},
        {"event_id": "e" * 32},
    ],
)
async def test_label_input_is_validated(hass: HomeAssistant, data: dict[str, str]) -> None:
    entry = await setup_entry(hass)
    with pytest.raises(vol.Invalid):
        await hass.services.async_call(DOMAIN, "label_event", data, blocking=True)
    await unload(hass, entry)


async def test_export_returns_events_and_labels(hass: HomeAssistant) -> None:
    entry = await setup_entry(hass)
    first, second = make_event(level=1, kind="arp_scan"), make_event(level=3, kind="session")
    publish(hass, "event", first)
    publish(hass, "event", second)
    await hass.async_block_till_done()
    await hass.services.async_call(
        DOMAIN, "label_event", {"event_id": second["id"], "verdict": "alarm"}, blocking=True
    )
    everything = await hass.services.async_call(
        DOMAIN, "export_events", {}, blocking=True, return_response=True
    )
    assert everything is not None
    [agent] = everything["agents"]
    assert agent["agent_id"] == "pi-livingroom"
    assert agent["config_entry_id"] == entry.entry_id
    assert [r["event"]["id"] for r in agent["events"]] == [first["id"], second["id"]]
    assert [r["label"] for r in agent["events"]] == [None, "alarm"]
    labelled = await hass.services.async_call(
        DOMAIN,
        "export_events",
        {"config_entry_id": entry.entry_id, "labelled_only": True},
        blocking=True,
        return_response=True,
    )
    assert labelled is not None
    assert [r["event"]["id"] for r in labelled["agents"][0]["events"]] == [second["id"]]
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN,
            "export_events",
            {"config_entry_id": "nope"},
            blocking=True,
            return_response=True,
        )
    assert err.value.translation_key == "entry_not_loaded"
    await unload(hass, entry)
