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
from collections.abc import AsyncIterator
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
from tests.captures import first_seconds

from .conftest import PREFIX, make_entry, unload, until

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
    """One agent run; its outbox is its own (other agents may run on this machine)."""
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
        env={
            "LAN_GUARD_MQTT_SHARED_KEY": KEY,
            "LAN_GUARD_MQTT_OUTBOX_PATH": str(capture.with_name(f"{agent_id}-outbox.sqlite")),
        },
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
    coordinator: LanGuardCoordinator = entry.runtime_data.coordinator
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
    # Run 1: the first 90 s of the capture: ARP scan, SYN scan of the node, SMB session.
    first = first_seconds(capture, 90, capture.with_name("attack.pcap"))
    summary = await replay(first, broker, "pi-livingroom")
    assert "events       5" in summary, summary
    await until(
        lambda: (
            len(coordinator.history) == 5
            and coordinator.level == 3
            and coordinator.status == "offline"
        ),
        20,
        "the attack's events, the agent's last state and its status",
    )
    await hass.async_block_till_done()

    # Every message was signed by the agent and verified by the integration.
    assert not coordinator.bad_payloads, coordinator.last_refused
    assert coordinator.info is not None
    assert coordinator.info["interface"] == "replay:attack.pcap"
    assert [(e["kind"], e["level"]) for e in bus] == [
        ("arp_scan", 1),
        ("syn_scan", 2),
        ("session", 3),
        ("arp_scan", 1),
        ("syn_scan", 2),
    ]
    assert {e["culprit"]["mac"] for e in bus} == {CULPRIT_MAC}
    assert bus[2]["evidence"]["port"] == 445
    fired = list(dict.fromkeys((a["event_id"], a["event_type"]) for a in activity))
    assert fired == [(e["event_id"], e["kind"]) for e in bus]
    assert activity[2]["culprit"]["hostname"] == CULPRIT_NAME

    # What the entities showed while the agent was online, last value last.
    def shown(entity_id: str) -> list[str]:
        return [state for state in seen[entity_id] if state != "unavailable"]

    assert shown(f"binary_sensor.{ENTITY}_threat")[-1] == "on"
    assert shown(f"sensor.{ENTITY}_level")[-1] == "3"
    assert shown(f"sensor.{ENTITY}_open_incidents")[-1] == "1"
    assert shown(f"sensor.{ENTITY}_last_culprit")[-1] == CULPRIT_NAME
    assert shown(f"sensor.{ENTITY}_events_in_the_last_24_hours")[-1] == "5"
    assert int(shown(f"sensor.{ENTITY}_hosts_seen")[-1]) >= 5
    # The replay is over, so the agent is offline and its entities say so.
    assert hass.states.get(f"binary_sensor.{ENTITY}_threat").state == "unavailable"
    culprit = hass.states.get(f"sensor.{ENTITY}_last_culprit")
    assert culprit.state == "unavailable"
    assert coordinator.history.last_threat().source == {  # type: ignore[union-attr]
        "mac": CULPRIT_MAC,
        "ip": CULPRIT_IP,
        "vendor": "Intel Corporate",
        "hostname": CULPRIT_NAME,
    }

    # Run 2: the whole capture; the culprit goes silent and leaves, and the agent's last
    # state closes every incident (run 1's too: it is older than that state).
    await replay(capture, broker, "pi-livingroom")
    await until(
        lambda: (
            len(coordinator.history) == 11
            and coordinator.agent_state is not None
            and coordinator.agent_state["updated_at"] == "2026-11-25T09:07:59.700Z"
            and coordinator.status == "offline"
        ),
        20,
        "the second run's events and last state",
    )
    await hass.async_block_till_done()
    for remove in unsubscribe:
        remove()
    assert not coordinator.bad_payloads, coordinator.last_refused
    assert [e["kind"] for e in bus[5:]] == [
        "arp_scan",
        "syn_scan",
        "session",
        "arp_scan",
        "syn_scan",
        "host_left",
    ]
    assert coordinator.incidents == {}
    assert coordinator.level == 0
    assert coordinator.threat_incidents() == []
    assert coordinator.events_in_window() == 10  # host_left is information, not a threat
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
    coordinator: LanGuardCoordinator = entry.runtime_data.coordinator
    # The retained info, state and hosts reach the new entry; the agent is offline now.
    await until(
        lambda: coordinator.info is not None and coordinator.status == "offline",
        20,
        "the retained info and status",
    )
    assert coordinator.hosts is not None
    await unload(hass, entry)
