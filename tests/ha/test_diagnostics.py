"""Diagnostics: what the agent reported, refused payloads and the events, all redacted."""

from __future__ import annotations

import json

import pytest
from homeassistant.components.diagnostics import REDACTED
from homeassistant.core import HomeAssistant

from custom_components.lan_guard.const import CONF_ALLOWLIST, CONF_SIGNING_KEY
from custom_components.lan_guard.diagnostics import async_get_config_entry_diagnostics
from custom_components.lan_guard.signing import sign, signing_key

from .conftest import AGENT, example, make_entry, make_event, publish, setup_entry, unload

pytestmark = pytest.mark.usefixtures("mqtt_mock")


async def test_diagnostics_are_useful_and_leak_no_identity(hass: HomeAssistant) -> None:
    entry = await setup_entry(
        hass,
        make_entry(**{CONF_SIGNING_KEY: "top secret", CONF_ALLOWLIST: ["192.168.1.2/32"]}),
        online=False,
    )
    key = signing_key("top secret")
    now = 1_800_000_000.0
    publish(hass, "status", "online", retain=True)
    publish(hass, "hosts", sign(example("hosts"), key, now, AGENT, "hosts"), retain=True)
    info = {**example("info"), "gateway_mac": "a0:63:91:0e:12:34"}
    publish(hass, "info", sign(info, key, now, AGENT, "info"), retain=True)
    event = make_event(level=3, kind="session")
    publish(hass, "event", sign(event, key, now, AGENT, "event"))  # stale: refused
    publish(hass, "event", b"{broken")
    await hass.async_block_till_done()
    entry.runtime_data.coordinator.async_process_event(event)  # accepted as if fresh
    label_event = entry.runtime_data.coordinator.history.get(event["id"])
    assert label_event is not None

    diagnostics = await async_get_config_entry_diagnostics(hass, entry)
    text = json.dumps(diagnostics)
    for secret in (
        "top secret",
        "192.168.1.2",
        "b8:27:eb:4c:21:9a",
        "a0:63:91:0e:12:34",
        "192.168.1.23",
        "kids-laptop",
    ):
        assert secret not in text, secret
    assert event["evidence"]["sample"] not in text
    assert diagnostics["entry"]["options"][CONF_SIGNING_KEY] == REDACTED
    assert diagnostics["agent"]["status"] == "online"
    assert diagnostics["agent"]["hosts"]["hosts"][0]["mac"] == REDACTED
    assert diagnostics["agent"]["info"]["gateway_mac"] == REDACTED
    assert diagnostics["refused_payloads"]["counts"] == {"stale": 1, "not_json": 1}
    assert diagnostics["refused_payloads"]["last"]["not_json"]["topic"] == "event"
    assert diagnostics["signing"] == {
        "enabled": True,
        "legacy_signatures": False,
        "agent_format": 2,
        "remembered_ids": 0,
    }
    assert diagnostics["delivery"]["epoch"] is None  # no event or state taken from the agent
    assert diagnostics["delivery"]["lost"] == 0
    [record] = diagnostics["history"]
    assert record["event"]["id"] == event["id"]
    assert record["event"]["source"]["mac"] == REDACTED
    assert record["event"]["kind"] == "session"
    assert diagnostics["incidents"][0]["level"] == 3
    await unload(hass, entry)
