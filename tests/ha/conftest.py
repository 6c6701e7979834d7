"""Fixtures of the Home Assistant tests: the integration, example payloads, an agent's topics."""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_mqtt_message,
)

from custom_components.lan_guard.const import (
    CONF_AGENT_ID,
    CONF_ALLOWLIST,
    CONF_NOTIFY_LEVEL,
    CONF_NOTIFY_TARGETS,
    CONF_OFFLINE_MINUTES,
    CONF_TOPIC_PREFIX,
    DOMAIN,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "schema" / "examples"
AGENT = "pi-livingroom"  # the agent id of the contract's examples
PREFIX = "lan_guard"
BASE = f"{PREFIX}/{AGENT}"
EXAMPLE_KEY = "example-shared-key-0123"
EVACUATION_TRIGGER = "evacuation_trigger"
EPOCH = "3f9c2e71a4b85d06c1e7f2a9b3d4e5f6"  # the examples' event store
_SEQS = itertools.count(1000)  # every made event a new seq of that store, in creation order


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> Iterator[None]:
    """Let HA load custom_components/lan_guard."""
    yield


def example(name: str) -> dict[str, Any]:
    """A fresh copy of ``schema/examples/<name>.json``."""
    data: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text(encoding="utf-8"))
    return copy.deepcopy(data)


def iso(moment: datetime) -> str:
    """Contract timestamp."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def make_event(
    kind: str = "syn_scan",
    *,
    level: int = 2,
    incident_id: str | None = None,
    mac: str = "b8:27:eb:4c:21:9a",
    ip: str | None = "192.168.1.23",
    detected_at: datetime | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """A valid event of this agent with fresh ids and the next seq (based on the contract's
    example)."""
    event = example(f"event.{kind}")
    moment = detected_at or datetime.now(UTC)
    event.update(
        id=uuid.uuid4().hex,
        incident_id=incident_id or uuid.uuid4().hex,
        agent_id=AGENT,
        seq=next(_SEQS),
        level=level,
        first_seen=iso(moment),
        last_seen=iso(moment),
        detected_at=iso(moment),
    )
    event["source"].update(mac=mac, ip=ip)
    event.update(overrides)
    return event


def make_state(
    incidents: list[dict[str, Any]], updated_at: datetime | None = None
) -> dict[str, Any]:
    """A valid state payload listing ``incidents`` (dicts with incident_id, level, mac)."""
    state = example("state.quiet")
    moment = updated_at or datetime.now(UTC)
    state["updated_at"] = iso(moment)
    state["incidents"] = [
        {
            "incident_id": item["incident_id"],
            "source": {
                "mac": item.get("mac", "b8:27:eb:4c:21:9a"),
                "ip": item.get("ip", "192.168.1.23"),
                "vendor": None,
                "hostname": None,
            },
            "level": item["level"],
            "kinds": item.get("kinds", ["syn_scan"]),
            "first_seen": iso(moment),
            "last_seen": iso(moment),
            "events": 1,
        }
        for item in incidents
    ]
    state["level"] = max((item["level"] for item in incidents), default=0)
    return state


def publish(
    hass: HomeAssistant, topic: str, payload: dict[str, Any] | str | bytes, retain: bool = False
) -> None:
    """Deliver a message on ``<prefix>/<agent>/<topic>`` as the broker would."""
    raw = json.dumps(payload) if isinstance(payload, dict) else payload
    async_fire_mqtt_message(hass, f"{BASE}/{topic}", raw, qos=1, retain=retain)


def default_options(**overrides: Any) -> dict[str, Any]:
    """The options a new entry gets, with changes."""
    return {
        CONF_NOTIFY_TARGETS: [],
        CONF_NOTIFY_LEVEL: 2,
        CONF_ALLOWLIST: [],
        CONF_OFFLINE_MINUTES: 10,
        **overrides,
    }


def make_entry(**options: Any) -> MockConfigEntry:
    """A config entry for the example agent.

    Evacuation (tested in its own modules) only starts by hand here, so these tests
    see the integration's own behaviour and never wait for a quarantine command's answer.
    """
    return MockConfigEntry(
        domain=DOMAIN,
        title=f"LAN Guard {AGENT}",
        unique_id=AGENT,
        data={CONF_TOPIC_PREFIX: PREFIX, CONF_AGENT_ID: AGENT},
        options=default_options(**{EVACUATION_TRIGGER: "manual", **options}),
    )


async def setup_entry(
    hass: HomeAssistant, entry: MockConfigEntry | None = None, online: bool = True
) -> MockConfigEntry:
    """Add and set up the entry; with ``online`` the agent announces itself first."""
    entry = entry or make_entry()
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    if online:
        publish(hass, "status", "online", retain=True)
        publish(hass, "info", example("info"), retain=True)
        await hass.async_block_till_done()
    return entry


async def unload(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Unload at the end of a test so no timer outlives it."""
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


async def until(predicate: Callable[[], Any], within: float, what: str) -> None:
    """Poll until ``predicate()`` holds; after ``within`` seconds fail, saying ``what``."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.05)
