"""End to end, all real: nmap -> agent on the router -> mosquitto -> HA -> nftables -> restore.

Root only (network namespaces; see ``e2e_lab.py`` for the lab and its bounds). HA runs in
process with its real MQTT client on 127.0.0.1; an input_boolean stands for the appliance
and a mocked notify action for the phone. The same run measures the latencies that
``benchmarks/evacuation_latency.py`` prints (written to ``$LAN_GUARD_E2E_TIMINGS``).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from homeassistant.components import mqtt
from homeassistant.const import EVENT_STATE_CHANGED
from homeassistant.core import Event, HomeAssistant, ServiceCall, callback
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.lan_guard.const import (
    CONF_AGENT_ID,
    CONF_ALLOWLIST,
    CONF_EVACUATION_RESTORE,
    CONF_EVACUATION_TRIGGER,
    CONF_ISOLATE_ENTITIES,
    CONF_NOTIFY_LEVEL,
    CONF_NOTIFY_TARGETS,
    CONF_OFFLINE_MINUTES,
    CONF_SIGNING_KEY,
    CONF_TOPIC_PREFIX,
    DOMAIN,
    EVENT_LAN_GUARD,
)

from .e2e_lab import (
    AGENT_ID,
    APPLIANCE_IP,
    INFECTED_IP,
    INFECTED_MAC,
    SHARED_KEY,
    EvacuationLab,
    EvacuationLabRun,
    skip_reason,
)

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason()))

APPLIANCE = "input_boolean.appliance"
SWITCH = f"switch.lan_guard_{AGENT_ID.replace('-', '_')}_evacuation_mode"
PHONE = "mobile_app_phone"


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[EvacuationLab]:
    with EvacuationLabRun(tmp_path) as running:
        running.start_agent()
        yield running


async def _until(check: Callable[[], object], limit_s: float, what: str) -> None:
    deadline = time.monotonic() + limit_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {limit_s} s waiting for {what}")
        await asyncio.sleep(0.02)


async def test_scan_evacuates_quarantines_and_restores_when_the_culprit_leaves(
    hass: HomeAssistant, socket_enabled: None, mock_hass_config: None, lab: EvacuationLab
) -> None:
    started = time.monotonic()
    run = hass.async_add_executor_job

    # HA's real MQTT client on the broker's 127.0.0.1 listener.
    mqtt_entry = MockConfigEntry(
        domain="mqtt",
        data={"broker": "127.0.0.1", "port": lab.port},
        version=1,
        minor_version=2,
    )
    mqtt_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(mqtt_entry.entry_id)
    await _until(lambda: mqtt.is_connected(hass), 10, "HA's MQTT client to connect")

    assert await async_setup_component(
        hass, "input_boolean", {"input_boolean": {"appliance": {"initial": True}}}
    )
    timeline: list[tuple[str, float]] = []
    phone: list[ServiceCall] = []

    async def phone_notified(call: ServiceCall) -> None:
        phone.append(call)
        timeline.append((f"notify:{call.data['title']}", time.time()))

    hass.services.async_register("notify", PHONE, phone_notified)

    @callback
    def on_event(event: Event) -> None:
        if event.event_type == EVENT_LAN_GUARD:
            timeline.append((f"event:{event.data['kind']}:{event.data['level']}", time.time()))
        elif event.data["entity_id"] in (SWITCH, APPLIANCE) and event.data["new_state"]:
            timeline.append(
                (f"{event.data['entity_id']}={event.data['new_state'].state}", time.time())
            )

    unsub_events = hass.bus.async_listen(EVENT_LAN_GUARD, on_event)
    unsub_states = hass.bus.async_listen(EVENT_STATE_CHANGED, on_event)

    entry = MockConfigEntry(
        domain=DOMAIN,
        title=f"LAN Guard {AGENT_ID}",
        unique_id=AGENT_ID,
        data={CONF_TOPIC_PREFIX: "lan_guard", CONF_AGENT_ID: AGENT_ID},
        options={
            CONF_NOTIFY_TARGETS: [f"notify.{PHONE}"],
            CONF_NOTIFY_LEVEL: 2,
            CONF_ALLOWLIST: [],
            CONF_OFFLINE_MINUTES: 10,
            CONF_SIGNING_KEY: SHARED_KEY,
            CONF_EVACUATION_TRIGGER: "level",
            CONF_EVACUATION_RESTORE: "auto",
            CONF_ISOLATE_ENTITIES: [APPLIANCE],
        },
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    coordinator = entry.runtime_data.coordinator
    manager = entry.runtime_data.evacuation
    unsub_results = coordinator.async_add_result_listener(
        lambda result: timeline.append(
            (f"result:{result.get('action')}:{result['ok']}", time.time())
        )
    )
    # Subscriptions acknowledged, and the agent (with its enforcer) announced itself.
    await _until(coordinator.subscribed.is_set, 10, "the subscription to be acknowledged")
    await _until(
        lambda: coordinator.online and coordinator.info is not None, 20, "the agent's info"
    )
    assert "enforcer" in coordinator.info["capabilities"], lab.agent_log()
    assert hass.states.get(SWITCH).state == "off"
    assert hass.states.get(APPLIANCE).state == "on"
    reached = await run(lab.pings_within, lab.infected, APPLIANCE_IP, True, 5.0)
    assert reached, "lab broken: the infected host cannot reach the appliance at first"

    # The infected host scans the router (the agent's node).
    watch = await run(lab.start_first_syn_watch)
    scan = await run(lab.scan)
    assert scan.returncode == 0, scan.stderr
    await _until(
        lambda: (
            manager.active
            and any(c.in_force for c in manager.record.culprits.values())
            and any(name.startswith("notify:LAN Guard: evacuation") for name, _ in timeline)
        ),
        15,
        f"evacuation with the culprit quarantined; agent log:\n{lab.agent_log()}",
    )
    first_syn_line = await run(watch.communicate)
    first_syn = float(first_syn_line[0].split()[0])

    names = [name for name, _ in timeline]
    event_at = names.index("event:syn_scan:2")
    switch_on_at = names.index(f"{SWITCH}=on")
    appliance_off_at = names.index(f"{APPLIANCE}=off")
    notified_at = names.index("notify:LAN Guard: evacuation mode on")
    assert event_at < switch_on_at < notified_at, names
    assert event_at < appliance_off_at < notified_at, names
    # The agent's "done" (its nft transaction is over) comes before the phone is told.
    assert event_at < names.index("result:quarantine:True") < notified_at, names
    assert hass.states.get(APPLIANCE).state == "off"
    culprit = manager.record.culprits[INFECTED_MAC]
    assert culprit.ip == INFECTED_IP and culprit.in_force
    # The quarantine is in force on the router: the culprit no longer reaches the appliance.
    assert INFECTED_MAC in await run(lab.quarantined_macs)
    assert not await run(lab.pings, lab.infected, APPLIANCE_IP)
    evacuation = next(c for c in phone if c.data["title"] == "LAN Guard: evacuation mode on")
    message = evacuation.data["message"]
    assert INFECTED_MAC in message and INFECTED_IP in message, message
    assert "quarantined (agent)" in message
    assert {a["title"] for a in evacuation.data["data"]["actions"]} == {
        "Restore service",
        "Keep isolated",
    }

    # The culprit is unplugged; the agent reports it gone; service comes back.
    await run(lab.infected.link_down)
    await _until(lambda: not manager.active, 25, f"restore; agent log:\n{lab.agent_log()}")
    restored = next(c for c in phone if c.data["title"] == "LAN Guard: service restored")
    assert INFECTED_MAC in restored.data["message"]
    assert hass.states.get(APPLIANCE).state == "on"
    assert hass.states.get(SWITCH).state == "off"
    assert INFECTED_MAC not in await run(lab.quarantined_macs)
    benign = await run(lab.benign_host_at_the_culprit_address)
    assert await run(lab.pings_within, benign, APPLIANCE_IP, True, 5.0)

    timings = {
        "first_syn": first_syn,
        "event_in_ha": timeline[event_at][1],
        # The agent answers once its nft transaction is done: the rule is in force by then.
        "quarantine_in_force": timeline[names.index("result:quarantine:True")][1],
        "notify_call": timeline[notified_at][1],
        "total_s": time.monotonic() - started,
    }
    print(
        "\nE2E timings (s after the first SYN):",
        {
            k: round(v - first_syn, 3)
            for k, v in timings.items()
            if k not in ("first_syn", "total_s")
        },
        f"whole test {timings['total_s']:.1f} s",
    )
    if path := os.environ.get("LAN_GUARD_E2E_TIMINGS"):
        await run(Path(path).write_text, json.dumps(timings), "utf-8")

    unsub_events()
    unsub_states()
    unsub_results()
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert await hass.config_entries.async_unload(mqtt_entry.entry_id)
    await hass.async_block_till_done()
