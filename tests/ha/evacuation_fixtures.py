"""Shared set-up of the evacuation tests: appliances, a fake agent answering commands."""

from __future__ import annotations

import json
from typing import Any

from homeassistant.core import HomeAssistant, ServiceCall
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_mqtt_message,
    async_mock_service,
)

from custom_components.lan_guard.const import (
    CONF_EVACUATION_RESTORE,
    CONF_EVACUATION_TRIGGER,
    CONF_ISOLATE_ENTITIES,
    CONF_NOTIFY_TARGETS,
)
from custom_components.lan_guard.evacuation.runner import EvacuationRunner

from .conftest import BASE, example, make_entry, publish, setup_entry

TV = "input_boolean.tv"  # on before evacuation: switched off, then back on
HEATER = "input_boolean.heater"  # off before: stays off afterwards
CULPRIT_MAC = "b8:27:eb:4c:21:9a"  # the contract examples' culprit
CULPRIT_IP = "192.168.1.23"
SWITCH = "switch.lan_guard_pi_livingroom_evacuation_mode"
PHONE = "mobile_app_phone"


class FakeAgent:
    """Answers the commands HA publishes, as the agent's command handler would."""

    def __init__(self, hass: HomeAssistant, mqtt_mock: Any) -> None:
        self.hass = hass
        self.commands: list[dict[str, Any]] = []
        self.answer = "ok"  # "ok", "refuse" or "silent"
        self.error = "refused: nft failed"  # the reason given with "refuse"
        mqtt_mock.async_publish.side_effect = self._publish

    async def _publish(self, topic: str, payload: Any, qos: int = 0, retain: bool = False) -> None:
        if not topic.endswith("/command"):
            return
        command = json.loads(payload)
        self.commands.append(command)
        if self.answer == "silent":
            return
        ok = self.answer == "ok"
        result = {
            "id": command["id"],
            "ok": ok,
            "error": None if ok else self.error,
            "action": command["action"],
            "mac": command["mac"],
        }
        async_fire_mqtt_message(self.hass, f"{BASE}/command/result", json.dumps(result), qos=1)

    def actions(self) -> list[tuple[str, str]]:
        return [(command["action"], command["mac"]) for command in self.commands]


async def setup_appliances(hass: HomeAssistant) -> None:
    """Two appliances: the TV is on, the heater off."""
    assert await async_setup_component(
        hass,
        "input_boolean",
        {"input_boolean": {"tv": {"name": "TV", "initial": True}, "heater": {"initial": False}}},
    )
    await hass.async_block_till_done()


async def setup_evacuation(
    hass: HomeAssistant, mqtt_mock: Any, **options: Any
) -> tuple[MockConfigEntry, EvacuationRunner, FakeAgent, list[ServiceCall]]:
    """Appliances, a phone, the fake agent and an entry with evacuation options."""
    await setup_appliances(hass)
    phone = async_mock_service(hass, "notify", PHONE)
    agent = FakeAgent(hass, mqtt_mock)
    settings = {
        CONF_ISOLATE_ENTITIES: [TV, HEATER],
        CONF_NOTIFY_TARGETS: [f"notify.{PHONE}"],
        CONF_EVACUATION_TRIGGER: "level",
        CONF_EVACUATION_RESTORE: "auto",
        **options,
    }
    entry = await setup_entry(hass, make_entry(**settings))
    return entry, entry.runtime_data.evacuation, agent, phone


def info_without_enforcer() -> dict[str, Any]:
    info = example("info")
    info["capabilities"] = ["detect", "decoys", "hosts"]
    return info


def host_left(mac: str = CULPRIT_MAC, ip: str | None = CULPRIT_IP) -> dict[str, Any]:
    from .conftest import make_event

    return make_event("host_left", level=0, mac=mac, ip=ip)


def publish_event(hass: HomeAssistant, event: dict[str, Any]) -> None:
    publish(hass, "event", event)
