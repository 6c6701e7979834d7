"""The inbox's websocket commands: list (filters, order, bounds), label, evacuation, updates."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import async_fire_time_changed
from pytest_homeassistant_custom_component.typing import WebSocketGenerator

from custom_components.lan_guard.const import CONF_ISOLATE_ENTITIES, DOMAIN
from custom_components.lan_guard.websocket_api import PAGE_SIZE_MAX

from .conftest import make_entry, make_event, publish, setup_entry, unload
from .evacuation_fixtures import TV, setup_appliances

pytestmark = pytest.mark.usefixtures("mqtt_mock")

ARP, SYN, SMB = ("arp_scan", 1), ("syn_scan", 2), ("session", 3)


async def send(client: Any, message: dict[str, Any]) -> dict[str, Any]:
    await client.send_json_auto_id(message)
    response: dict[str, Any] = await client.receive_json()
    return response


def publish_events(hass: HomeAssistant, *kinds: tuple[str, int]) -> list[dict[str, Any]]:
    """One event per (kind, level), a second apart (oldest first), as the agent sends them."""
    start = dt_util.utcnow() - timedelta(minutes=5)
    events = []
    for number, (kind, level) in enumerate(kinds):
        event = make_event(kind, level=level, detected_at=start + timedelta(seconds=number))
        publish(hass, "event", event)
        events.append(event)
    return events


async def test_events_are_listed_unanswered_first_with_the_proposal(
    hass: HomeAssistant, hass_ws_client: WebSocketGenerator
) -> None:
    entry = await setup_entry(hass)
    arp, syn, smb = publish_events(hass, ARP, SYN, SMB)
    publish(hass, "event", make_event("host_left", level=0))  # information, not a question
    await hass.async_block_till_done()
    client = await hass_ws_client(hass)
    await send(client, {"type": "lan_guard/label", "event_id": smb["id"], "verdict": "alarm"})

    result = (await send(client, {"type": "lan_guard/events/list"}))["result"]
    assert [row["event_id"] for row in result["events"]] == [syn["id"], arp["id"], smb["id"]]
    assert (result["total"], result["unlabelled"]) == (3, 2)
    row = result["events"][2]
    assert row["label"] == "alarm" and row["labelled_at"] is not None
    assert row["proposal"] == {"verdict": "alarm", "probability": 0.9, "decided_by": "prior"}
    assert row["culprit"] == smb["source"]
    assert row["config_entry_id"] == entry.entry_id
    assert (row["kind"], row["level"], row["agent_id"]) == ("session", 3, "pi-livingroom")
    assert row["evidence"]["sample"] == smb["evidence"]["sample"]

    # Newest first only: the answered one is no longer pushed down.
    plain = await send(client, {"type": "lan_guard/events/list", "unlabelled_first": False})
    assert [r["event_id"] for r in plain["result"]["events"]] == [smb["id"], syn["id"], arp["id"]]
    await unload(hass, entry)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"status": "unlabelled"}, ["syn", "arp"]),
        ({"status": "labelled"}, ["smb"]),
        ({"verdict": "unsure"}, ["syn"]),
        ({"verdict": "normal", "status": "unlabelled"}, ["arp"]),
        ({"limit": 1}, ["syn"]),
        ({"limit": 1, "offset": 2}, ["smb"]),
        ({"config_entry_id": "another entry"}, []),
    ],
)
async def test_filters_and_pages(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    query: dict[str, Any],
    expected: list[str],
) -> None:
    entry = await setup_entry(hass)
    events = dict(zip(("arp", "syn", "smb"), publish_events(hass, ARP, SYN, SMB), strict=True))
    await hass.async_block_till_done()
    client = await hass_ws_client(hass)
    await send(
        client, {"type": "lan_guard/label", "event_id": events["smb"]["id"], "verdict": "alarm"}
    )
    result = (await send(client, {"type": "lan_guard/events/list", **query}))["result"]
    assert [row["event_id"] for row in result["events"]] == [events[n]["id"] for n in expected]
    await unload(hass, entry)


@pytest.mark.parametrize(
    "query",
    [
        {"limit": PAGE_SIZE_MAX + 1},
        {"limit": 0},
        {"offset": -1},
        {"offset": 10**9},
        {"verdict": "maybe"},
        {"status": "spam"},
    ],
)
async def test_list_input_is_bounded(
    hass: HomeAssistant, hass_ws_client: WebSocketGenerator, query: dict[str, Any]
) -> None:
    entry = await setup_entry(hass)
    client = await hass_ws_client(hass)
    response = await send(client, {"type": "lan_guard/events/list", **query})
    assert not response["success"]
    assert response["error"]["code"] == "invalid_format"
    await unload(hass, entry)


async def test_only_known_evidence_leaves_home_assistant(
    hass: HomeAssistant, hass_ws_client: WebSocketGenerator
) -> None:
    entry = await setup_entry(hass)
    event = make_event("syn_scan", level=2)
    event["evidence"]["note"] = "<img src=x onerror=alert(1)>"  # extra keys are allowed
    publish(hass, "event", event)
    await hass.async_block_till_done()
    client = await hass_ws_client(hass)
    [row] = (await send(client, {"type": "lan_guard/events/list"}))["result"]["events"]
    assert "note" not in row["evidence"]
    assert row["evidence"]["ports"] == event["evidence"]["ports"]
    await unload(hass, entry)


async def test_labelling_from_the_inbox_teaches_the_classifier(
    hass: HomeAssistant, hass_ws_client: WebSocketGenerator
) -> None:
    entry = await setup_entry(hass)
    [syn] = publish_events(hass, SYN)
    await hass.async_block_till_done()
    client = await hass_ws_client(hass)
    agents = (await send(client, {"type": "lan_guard/inbox/agents"}))["result"]["agents"]
    assert agents[0]["classifier"]["labels"] == 0
    response = await send(
        client, {"type": "lan_guard/label", "event_id": syn["id"].upper(), "verdict": "normal"}
    )
    assert response["success"], response
    assert response["result"]["event"]["label"] == "normal"
    assert response["result"]["agent"]["classifier"]["labels"] == 1
    assert entry.runtime_data.learner.stats()["labels_normal"] == 1
    assert entry.runtime_data.coordinator.history.get(syn["id"]).label == "normal"

    unknown = await send(
        client, {"type": "lan_guard/label", "event_id": "e" * 32, "verdict": "alarm"}
    )
    assert unknown["error"]["code"] == "not_found"
    await unload(hass, entry)


async def test_a_host_leaving_is_not_a_question(
    hass: HomeAssistant, hass_ws_client: WebSocketGenerator
) -> None:
    entry = await setup_entry(hass)
    left = make_event("host_left", level=0)
    publish(hass, "event", left)
    await hass.async_block_till_done()
    client = await hass_ws_client(hass)
    response = await send(
        client, {"type": "lan_guard/label", "event_id": left["id"], "verdict": "alarm"}
    )
    assert response["error"]["code"] == "not_found"
    assert entry.runtime_data.coordinator.history.get(left["id"]).label is None
    await unload(hass, entry)


async def test_restore_and_keep_from_the_inbox(
    hass: HomeAssistant, hass_ws_client: WebSocketGenerator
) -> None:
    await setup_appliances(hass)
    entry = await setup_entry(hass, make_entry(**{CONF_ISOLATE_ENTITIES: [TV]}))
    await hass.services.async_call(
        DOMAIN, "start_evacuation", {"config_entry_id": entry.entry_id}, blocking=True
    )
    assert hass.states.get(TV).state == "off"
    client = await hass_ws_client(hass)
    [agent] = (await send(client, {"type": "lan_guard/inbox/agents"}))["result"]["agents"]
    assert agent["evacuation"]["phase"] == "active"
    assert agent["evacuation"]["isolated"] == [TV]

    kept = await send(
        client, {"type": "lan_guard/evacuation/keep", "config_entry_id": entry.entry_id}
    )
    assert kept["result"]["agent"]["evacuation"]["hold"] is True
    restored = await send(
        client, {"type": "lan_guard/evacuation/restore", "config_entry_id": entry.entry_id}
    )
    assert restored["result"]["agent"]["evacuation"]["phase"] == "idle"
    assert hass.states.get(TV).state == "on"

    unknown = await send(client, {"type": "lan_guard/evacuation/restore", "config_entry_id": "x"})
    assert unknown["error"]["code"] == "not_found"
    await unload(hass, entry)


@pytest.mark.parametrize(
    "message",
    [
        {"type": "lan_guard/label", "event_id": "e" * 32, "verdict": "alarm"},
        {"type": "lan_guard/evacuation/restore", "config_entry_id": "x"},
        {"type": "lan_guard/evacuation/keep", "config_entry_id": "x"},
    ],
)
async def test_only_an_administrator_changes_anything(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    hass_read_only_access_token: str,
    message: dict[str, Any],
) -> None:
    entry = await setup_entry(hass)
    client = await hass_ws_client(hass, hass_read_only_access_token)
    response = await send(client, message)
    assert response["error"]["code"] == "unauthorized"
    # Reading stays open to every user (they see the entities' states anyway).
    assert (await send(client, {"type": "lan_guard/events/list"}))["success"]
    await unload(hass, entry)


async def test_the_panel_hears_of_every_change_also_after_a_reload(
    hass: HomeAssistant, hass_ws_client: WebSocketGenerator
) -> None:
    entry = await setup_entry(hass)
    client = await hass_ws_client(hass)
    subscribed = await send(client, {"type": "lan_guard/inbox/subscribe"})
    assert subscribed["success"]

    async def changed() -> dict[str, Any]:
        async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=1))
        message: dict[str, Any] = await client.receive_json()
        return message

    publish_events(hass, ARP, SYN)  # a burst: one message
    await hass.async_block_till_done()
    message = await changed()
    assert message == {"id": subscribed["id"], "type": "event", "event": {"changed": True}}

    # Saving options reloads the entry: a new coordinator, still followed.
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert (await changed())["event"] == {"changed": True}
    publish_events(hass, SMB)
    await hass.async_block_till_done()
    assert (await changed())["event"] == {"changed": True}

    await client.send_json_auto_id({"type": "unsubscribe_events", "subscription": subscribed["id"]})
    assert (await client.receive_json())["success"]
    await unload(hass, entry)
