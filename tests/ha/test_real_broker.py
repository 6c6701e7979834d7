"""Real parts end to end: mosquitto on 127.0.0.1, HA's own MQTT client, the real agent.

The agent replays a capture it generated (``lan-guard-agent generate demo``: a ransomware-like
culprit does an ARP scan, a SYN scan of the monitoring node's ransomware ports, an SMB session,
and then leaves) and publishes, signed, to the broker; HA receives it through its MQTT
integration. Nothing is mocked between the agent's socket and the entities.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from homeassistant.components import mqtt
from homeassistant.config_entries import SOURCE_MQTT
from homeassistant.const import EVENT_STATE_CHANGED
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.data_entry_flow import FlowResultType
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.lan_guard.const import (
    CONF_NOTIFY_LEVEL,
    CONF_SIGNING_KEY,
    DOMAIN,
    EVENT_LAN_GUARD,
)
from custom_components.lan_guard.coordinator import LanGuardCoordinator
from tests.broker import Mosquitto

from .conftest import PREFIX, make_entry, unload

pytestmark = [
    pytest.mark.broker,
    pytest.mark.skipif(shutil.which("mosquitto") is None, reason="needs the mosquitto binary"),
]

AGENT_CLI = str(Path(sys.executable).with_name("lan-guard-agent"))
KEY = "real-broker-shared-key-0123"  # the agent wants at least 16 characters
# The generated demo's monitoring node (sensor_agent.synth.NODE) and its culprit.
NODE_IP, NODE_MAC = "192.0.2.10", "b8:27:eb:0a:00:0a"
CULPRIT_MAC, CULPRIT_IP, CULPRIT_NAME = "00:1b:21:42:00:42", "192.0.2.66", "DESKTOP-K3V9Q2"
ENTITY = "lan_guard_pi_livingroom"  # the entity id stem of the agent "pi-livingroom"


async def until(predicate: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.05)


async def agent(*args: str, env: dict[str, str] | None = None) -> str:
    """Run the agent's CLI to its end (bounded), return its output."""
    process = await asyncio.create_subprocess_exec(
        AGENT_CLI,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, **(env or {})},
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    text = output.decode(errors="replace")
    assert process.returncode == 0, text
    return text


async def replay(capture: Path, broker: Mosquitto, agent_id: str) -> str:
    return await agent(
        "replay",
        str(capture),
        "--agent-id",
        agent_id,
        "--node-ip",
        NODE_IP,
        "--node-mac",
        NODE_MAC,
        "--no-stdout",
        "--mqtt-host",
        broker.host,
        "--mqtt-port",
        str(broker.port),
        "--mqtt-topic-prefix",
        PREFIX,
        env={"LAN_GUARD_MQTT_SHARED_KEY": KEY},
    )


@pytest.fixture
async def broker() -> AsyncIterator[Mosquitto]:
    with Mosquitto() as running:
        yield running


@pytest.fixture
async def capture(tmp_path: Path) -> Path:
    path = tmp_path / "demo.pcap"
    await agent("generate", "demo", str(path))
    return path


@pytest.fixture
async def mqtt_entry(
    hass: HomeAssistant, socket_enabled: None, mock_hass_config: None, broker: Mosquitto
) -> AsyncIterator[MockConfigEntry]:
    """HA's real MQTT integration, connected to the test broker."""
    entry = MockConfigEntry(
        domain=mqtt.DOMAIN,
        data={mqtt.CONF_BROKER: broker.host, "port": broker.port},
        options={mqtt.CONF_BIRTH_MESSAGE: {}, mqtt.CONF_WILL_MESSAGE: {}},
        version=mqtt.CONFIG_ENTRY_VERSION,
        minor_version=mqtt.CONFIG_ENTRY_MINOR_VERSION,
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await until(lambda: mqtt.is_connected(hass), 10, "HA's MQTT client to connect")
    yield entry
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


@pytest.mark.usefixtures("mqtt_entry")
async def test_the_real_agent_drives_the_entities(
    hass: HomeAssistant, broker: Mosquitto, capture: Path
) -> None:
    entry = make_entry(**{CONF_SIGNING_KEY: KEY, CONF_NOTIFY_LEVEL: 2})
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    coordinator: LanGuardCoordinator = entry.runtime_data
    # Publishing before HA's subscription is acknowledged would lose the first messages.
    await asyncio.wait_for(coordinator.subscribed.wait(), timeout=10)

    bus: list[dict[str, Any]] = []
    seen: dict[str, list[str]] = {}
    activity: list[dict[str, Any]] = []  # the event entity's data while it was available

    @callback
    def record(event: Event) -> None:
        if event.event_type == EVENT_LAN_GUARD:
            bus.append(dict(event.data))
        elif (new := event.data["new_state"]) is not None:
            seen.setdefault(new.entity_id, []).append(new.state)
            if new.entity_id == f"event.{ENTITY}_activity" and new.state not in (
                "unavailable",
                "unknown",
            ):
                activity.append(dict(new.attributes))

    unsubscribe = [
        hass.bus.async_listen(EVENT_LAN_GUARD, record),
        hass.bus.async_listen(EVENT_STATE_CHANGED, record),
    ]
    summary = await replay(capture, broker, "pi-livingroom")
    assert "events       6" in summary
    # The replay ends with the agent's last state and its status going offline.
    await until(
        lambda: len(coordinator.history) == 6 and coordinator.status == "offline",
        20,
        f"all six events and the final status (history {len(coordinator.history)})",
    )
    await hass.async_block_till_done()
    for remove in unsubscribe:
        remove()

    # Every message was signed by the agent and verified by the integration.
    assert not coordinator.bad_payloads, coordinator.last_refused
    assert coordinator.info is not None
    assert coordinator.info["interface"] == "replay:demo.pcap"
    assert [e["kind"] for e in bus] == [
        "arp_scan",
        "syn_scan",
        "session",
        "arp_scan",
        "syn_scan",
        "host_left",
    ]
    assert {e["culprit"]["mac"] for e in bus} == {CULPRIT_MAC}
    assert bus[2]["level"] == 3
    assert bus[2]["evidence"]["port"] == 445

    # While the agent was online the threat went on (a level 2 scan, notify level 2), and
    # the agent's last state closed the incident once the culprit had left.
    threat = [s for s in seen[f"binary_sensor.{ENTITY}_threat"] if s != "unavailable"]
    assert "on" in threat
    assert threat[-1] == "off"
    level = [s for s in seen[f"sensor.{ENTITY}_level"] if s != "unavailable"]
    assert "3" in level
    assert level[-1] == "0"
    fired = list(dict.fromkeys((a["event_id"], a["event_type"]) for a in activity))
    assert fired == [(e["event_id"], e["kind"]) for e in bus]
    assert activity[2]["culprit"]["hostname"] == CULPRIT_NAME
    assert coordinator.level == 0
    assert coordinator.incidents == {}
    assert coordinator.hosts is not None
    assert CULPRIT_MAC in {h["mac"] for h in coordinator.hosts["hosts"]}

    # Now the agent is offline: its entities say so, HA's own records stay.
    assert hass.states.get(f"binary_sensor.{ENTITY}_threat").state == "unavailable"
    culprit = coordinator.history.last_threat()
    assert culprit is not None
    assert culprit.source == {
        "mac": CULPRIT_MAC,
        "ip": CULPRIT_IP,
        "vendor": "Intel Corporate",
        "hostname": CULPRIT_NAME,
    }
    assert coordinator.events_in_window() == 5  # host_left is information, not a threat

    # The agent comes back (the same replay again): retained status, info and state arrive.
    await replay(capture, broker, "pi-livingroom")
    await until(lambda: len(coordinator.history) == 12, 20, "the second run's events")
    assert not coordinator.bad_payloads, coordinator.last_refused
    await unload(hass, entry)


@pytest.mark.usefixtures("mqtt_entry")
async def test_a_new_agent_is_discovered_from_its_retained_info(
    hass: HomeAssistant, broker: Mosquitto, capture: Path
) -> None:
    await replay(capture, broker, "garage-pi")
    # HA's MQTT integration subscribes to the manifest's lan_guard/+/info and starts a flow.
    await until(
        lambda: bool(hass.config_entries.flow.async_progress_by_handler(DOMAIN)),
        20,
        "the discovery flow",
    )
    [flow] = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert flow["context"]["source"] == SOURCE_MQTT
    assert flow["context"]["unique_id"] == "garage-pi"
    result = await hass.config_entries.flow.async_configure(flow["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"] == {"topic_prefix": PREFIX, "agent_id": "garage-pi"}
    entry = result["result"]
    await hass.async_block_till_done()
    coordinator: LanGuardCoordinator = entry.runtime_data
    # The retained info, state and hosts reach the new entry; the agent is offline now.
    await until(
        lambda: coordinator.info is not None and coordinator.status == "offline",
        20,
        "the retained info and status",
    )
    assert coordinator.hosts is not None
    await unload(hass, entry)
