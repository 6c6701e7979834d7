"""Config flow: discovery, manual set-up, every error, options and reconfigure."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest.mock import AsyncMock, patch

import pytest
from homeassistant.components import mqtt
from homeassistant.config_entries import SOURCE_MQTT, SOURCE_USER
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType, InvalidData
from homeassistant.helpers.service_info.mqtt import MqttServiceInfo
from pytest_homeassistant_custom_component.common import (
    async_fire_mqtt_message,
    async_mock_service,
)

from custom_components.lan_guard.const import (
    CONF_AGENT_ID,
    CONF_ALLOWLIST,
    CONF_NOTIFY_LEVEL,
    CONF_NOTIFY_TARGETS,
    CONF_OFFLINE_MINUTES,
    CONF_SIGNING_KEY,
    CONF_TOPIC_PREFIX,
    DOMAIN,
)

from .conftest import AGENT, BASE, PREFIX, default_options, example, make_entry

INFO_TOPIC = f"{BASE}/info"


@pytest.fixture(autouse=True)
def no_setup() -> Iterator[AsyncMock]:
    """The flow is tested alone: creating an entry does not set the agent up."""
    with patch("custom_components.lan_guard.async_setup_entry", return_value=True) as setup:
        yield setup


@contextmanager
def retained(hass: HomeAssistant, messages: dict[str, bytes]) -> Iterator[None]:
    """The broker hands a retained message to whoever subscribes to its topic."""
    real_subscribe = mqtt.async_subscribe

    async def subscribe(hass_: HomeAssistant, topic: str, *args: Any, **kwargs: Any) -> Any:
        unsubscribe = await real_subscribe(hass_, topic, *args, **kwargs)
        if topic in messages:
            hass.loop.call_soon(async_fire_mqtt_message, hass, topic, messages[topic], 1, True)
        return unsubscribe

    with patch("custom_components.lan_guard.config_flow.mqtt.async_subscribe", subscribe):
        yield


def discovery(topic: str = INFO_TOPIC, payload: Any = None) -> MqttServiceInfo:
    raw = json.dumps(example("info")) if payload is None else payload
    return MqttServiceInfo(
        topic=topic,
        payload=raw,
        qos=1,
        retain=True,
        subscribed_topic="lan_guard/+/info",
        timestamp=0,
    )


USER_INPUT = {CONF_TOPIC_PREFIX: PREFIX, CONF_AGENT_ID: AGENT}


async def test_user_without_mqtt_is_told_to_set_it_up(hass: HomeAssistant) -> None:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "mqtt_not_configured"


@pytest.mark.usefixtures("mqtt_mock")
async def test_user_adds_an_agent_that_answers(hass: HomeAssistant) -> None:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    with retained(hass, {INFO_TOPIC: json.dumps(example("info")).encode()}):
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {CONF_TOPIC_PREFIX: f" {PREFIX} ", CONF_AGENT_ID: AGENT}
        )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == f"LAN Guard {AGENT}"
    assert result["data"] == USER_INPUT
    assert result["options"] == default_options()
    assert result["result"].unique_id == AGENT


@pytest.mark.usefixtures("mqtt_mock")
@pytest.mark.parametrize(
    ("user_input", "errors"),
    [
        ({CONF_TOPIC_PREFIX: "lan/#", CONF_AGENT_ID: AGENT}, {CONF_TOPIC_PREFIX: "invalid_prefix"}),
        ({CONF_TOPIC_PREFIX: "lan/", CONF_AGENT_ID: AGENT}, {CONF_TOPIC_PREFIX: "invalid_prefix"}),
        ({CONF_TOPIC_PREFIX: "", CONF_AGENT_ID: AGENT}, {CONF_TOPIC_PREFIX: "invalid_prefix"}),
        (
            {CONF_TOPIC_PREFIX: "a\x00b", CONF_AGENT_ID: AGENT},
            {CONF_TOPIC_PREFIX: "invalid_prefix"},
        ),
        ({CONF_TOPIC_PREFIX: PREFIX, CONF_AGENT_ID: "pi/1"}, {CONF_AGENT_ID: "invalid_agent_id"}),
        (
            {CONF_TOPIC_PREFIX: "+", CONF_AGENT_ID: ""},
            {CONF_TOPIC_PREFIX: "invalid_prefix", CONF_AGENT_ID: "invalid_agent_id"},
        ),
    ],
)
async def test_user_input_errors_name_the_field(
    hass: HomeAssistant, user_input: dict[str, str], errors: dict[str, str]
) -> None:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(result["flow_id"], user_input)
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == errors


@pytest.mark.usefixtures("mqtt_mock")
async def test_user_agent_that_does_not_answer(hass: HomeAssistant) -> None:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    with patch("custom_components.lan_guard.config_flow.AGENT_ANSWER_TIMEOUT", 0.05):
        result = await hass.config_entries.flow.async_configure(result["flow_id"], USER_INPUT)
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "no_answer"}
    # The agent starts; the same form succeeds.
    with retained(hass, {INFO_TOPIC: json.dumps(example("info")).encode()}):
        result = await hass.config_entries.flow.async_configure(result["flow_id"], USER_INPUT)
    assert result["type"] is FlowResultType.CREATE_ENTRY


@pytest.mark.usefixtures("mqtt_mock")
@pytest.mark.parametrize(
    "payload",
    [
        b"garbage",
        json.dumps({**example("info"), "agent_id": "another-agent"}).encode(),
        json.dumps({**example("info"), "schema": 2}).encode(),
    ],
)
async def test_user_agent_with_bad_info(hass: HomeAssistant, payload: bytes) -> None:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    with retained(hass, {INFO_TOPIC: payload}):
        result = await hass.config_entries.flow.async_configure(result["flow_id"], USER_INPUT)
    assert result["errors"] == {"base": "invalid_info"}


@pytest.mark.usefixtures("mqtt_mock")
async def test_user_while_mqtt_is_disconnected(hass: HomeAssistant) -> None:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    with patch("custom_components.lan_guard.config_flow.mqtt.is_connected", return_value=False):
        result = await hass.config_entries.flow.async_configure(result["flow_id"], USER_INPUT)
    assert result["errors"] == {"base": "mqtt_not_connected"}


@pytest.mark.usefixtures("mqtt_mock")
async def test_user_same_agent_twice_aborts(hass: HomeAssistant) -> None:
    make_entry().add_to_hass(hass)
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(result["flow_id"], USER_INPUT)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


@pytest.mark.usefixtures("mqtt_mock")
async def test_discovery_offers_the_agent_and_adds_it(hass: HomeAssistant) -> None:
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_MQTT}, data=discovery()
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "discovery_confirm"
    info = example("info")
    assert result["description_placeholders"] == {
        "agent_id": AGENT,
        "version": info["version"],
        "interface": info["interface"],
        "node_ip": info["node"]["ip"],
    }
    flows = hass.config_entries.flow.async_progress()
    assert flows[0]["context"]["title_placeholders"] == {"agent_id": AGENT}
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"] == USER_INPUT
    assert result["result"].unique_id == AGENT


@pytest.mark.usefixtures("mqtt_mock")
async def test_discovery_of_a_replaying_agent_without_node_ip(hass: HomeAssistant) -> None:
    result = await hass.config_entries.flow.async_init(
        DOMAIN,
        context={"source": SOURCE_MQTT},
        data=discovery(payload=json.dumps(example("info.replay"))),
    )
    assert result["description_placeholders"]["node_ip"] == "-"


@pytest.mark.usefixtures("mqtt_mock")
async def test_discovery_via_the_manifests_mqtt_topic(hass: HomeAssistant) -> None:
    """HA itself starts the flow when an agent's retained info arrives on lan_guard/+/info."""
    async_fire_mqtt_message(hass, INFO_TOPIC, json.dumps(example("info")), retain=True)
    await hass.async_block_till_done(wait_background_tasks=True)
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [flow["context"]["source"] for flow in flows] == [SOURCE_MQTT]
    assert flows[0]["context"]["unique_id"] == AGENT


@pytest.mark.usefixtures("mqtt_mock")
@pytest.mark.parametrize(
    "info",
    [
        discovery(topic="lan_guard/info"),
        discovery(topic=f"{BASE}/state"),
        discovery(payload=""),
        discovery(payload="{not json"),
        discovery(payload=json.dumps({**example("info"), "agent_id": "other"})),
        discovery(topic="lan_guard/pi-livingroom\n/info"),
    ],
)
async def test_discovery_of_something_else_aborts(
    hass: HomeAssistant, info: MqttServiceInfo
) -> None:
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_MQTT}, data=info
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "invalid_discovery_info"


@pytest.mark.usefixtures("mqtt_mock")
async def test_discovery_of_a_configured_agent_aborts(hass: HomeAssistant) -> None:
    make_entry().add_to_hass(hass)
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_MQTT}, data=discovery()
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


@pytest.mark.usefixtures("mqtt_mock")
async def test_reconfigure_moves_the_agent_to_another_prefix(hass: HomeAssistant) -> None:
    entry = make_entry()
    entry.add_to_hass(hass)
    result = await entry.start_reconfigure_flow(hass)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "reconfigure"
    assert result["description_placeholders"] == {"agent_id": AGENT}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_TOPIC_PREFIX: "home/#"}
    )
    assert result["errors"] == {CONF_TOPIC_PREFIX: "invalid_prefix"}
    with patch("custom_components.lan_guard.config_flow.AGENT_ANSWER_TIMEOUT", 0.05):
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {CONF_TOPIC_PREFIX: "home/lan_guard"}
        )
    assert result["errors"] == {"base": "no_answer"}
    topic = f"home/lan_guard/{AGENT}/info"
    with retained(hass, {topic: json.dumps(example("info")).encode()}):
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {CONF_TOPIC_PREFIX: "home/lan_guard"}
        )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert entry.data == {CONF_TOPIC_PREFIX: "home/lan_guard", CONF_AGENT_ID: AGENT}


@pytest.mark.usefixtures("mqtt_mock")
async def test_options_set_notifications_key_allowlist_and_offline_limit(
    hass: HomeAssistant,
) -> None:
    async_mock_service(hass, "notify", "mobile_app_pixel")
    entry = make_entry()
    entry.add_to_hass(hass)
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "init"
    targets = result["data_schema"].schema[CONF_NOTIFY_TARGETS].config
    assert "mobile_app_pixel" in targets["options"]
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {
            CONF_NOTIFY_TARGETS: ["mobile_app_pixel"],
            CONF_NOTIFY_LEVEL: "3",
            CONF_SIGNING_KEY: "  s3cret key ",
            CONF_ALLOWLIST: "AA-BB-CC-DD-EE-FF\n192.168.1.0/24\n \n10.0.0.2",
            CONF_OFFLINE_MINUTES: 30.0,
        },
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    # (Evacuation adds options of its own; these are the integration's.)
    assert {key: entry.options[key] for key in default_options()} | {
        CONF_SIGNING_KEY: entry.options[CONF_SIGNING_KEY]
    } == {
        CONF_NOTIFY_TARGETS: ["mobile_app_pixel"],
        CONF_NOTIFY_LEVEL: 3,
        CONF_SIGNING_KEY: "s3cret key",
        CONF_ALLOWLIST: ["aa:bb:cc:dd:ee:ff", "192.168.1.0/24", "10.0.0.2/32"],
        CONF_OFFLINE_MINUTES: 30,
    }


@pytest.mark.usefixtures("mqtt_mock")
async def test_options_refuse_a_bad_allowlist_entry_and_clear_the_key(
    hass: HomeAssistant,
) -> None:
    entry = make_entry(**{CONF_SIGNING_KEY: "old"})
    entry.add_to_hass(hass)
    result = await hass.config_entries.options.async_init(entry.entry_id)
    user_input = {CONF_NOTIFY_LEVEL: "2", CONF_OFFLINE_MINUTES: 10, CONF_ALLOWLIST: "kitchen"}
    result = await hass.config_entries.options.async_configure(result["flow_id"], user_input)
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_ALLOWLIST: "invalid_allowlist"}
    assert result["description_placeholders"]["entry"] == "kitchen"
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {CONF_NOTIFY_LEVEL: "2", CONF_OFFLINE_MINUTES: 10}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert CONF_SIGNING_KEY not in entry.options
    assert entry.options[CONF_ALLOWLIST] == []


@pytest.mark.usefixtures("mqtt_mock")
async def test_options_name_a_bad_entry_of_the_evacuation_section(hass: HomeAssistant) -> None:
    entry = make_entry()
    entry.add_to_hass(hass)
    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {
            CONF_NOTIFY_LEVEL: "2",
            CONF_OFFLINE_MINUTES: 10,
            "evacuation": {
                "evacuation_trigger": "manual",
                "evacuation_level": "2",
                "evacuation_restore": "auto",
                "quarantine_backend": "none",
                "quarantine_block_state": "off",
                "protected_hosts": "the router",
            },
        },
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"protected_hosts": "invalid_protected_hosts"}
    assert result["description_placeholders"]["entry"] == "the router"


@pytest.mark.usefixtures("mqtt_mock")
async def test_phones_are_notify_actions_that_exist_companion_apps_first(
    hass: HomeAssistant,
) -> None:
    for name in ("mobile_app_pixel", "family", "mobile_app_iphone"):
        async_mock_service(hass, "notify", name)
    # Not phones: the persistent notification is made anyway; send_message needs an entity.
    async_mock_service(hass, "notify", "persistent_notification")
    async_mock_service(hass, "notify", "send_message")
    entry = make_entry(**{CONF_NOTIFY_TARGETS: ["notify.mobile_app_pixel", "notify.old_phone"]})
    entry.add_to_hass(hass)
    result = await hass.config_entries.options.async_init(entry.entry_id)
    config = result["data_schema"].schema[CONF_NOTIFY_TARGETS].config
    # What exists, companion apps first; a stored phone that is gone is shown to be taken out.
    assert config["options"] == ["mobile_app_iphone", "mobile_app_pixel", "family", "old_phone"]
    assert not config.get("custom_value")
    suggested = {
        str(key): key.description["suggested_value"]
        for key in result["data_schema"].schema
        if key.description
    }
    assert suggested[CONF_NOTIFY_TARGETS] == ["mobile_app_pixel", "old_phone"]
    for not_offered in ("persistent_notification", "send_message", "nowhere"):
        with pytest.raises(InvalidData):
            await hass.config_entries.options.async_configure(
                result["flow_id"],
                {
                    CONF_NOTIFY_TARGETS: [not_offered],
                    CONF_NOTIFY_LEVEL: "2",
                    CONF_OFFLINE_MINUTES: 10,
                },
            )
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {
            CONF_NOTIFY_TARGETS: ["mobile_app_pixel", "old_phone"],
            CONF_NOTIFY_LEVEL: "2",
            CONF_OFFLINE_MINUTES: 10,
        },
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_NOTIFY_TARGETS: "unknown_notify_target"}
    assert result["description_placeholders"]["entry"] == "notify.old_phone"
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {
            CONF_NOTIFY_TARGETS: ["mobile_app_pixel", "family"],
            CONF_NOTIFY_LEVEL: "2",
            CONF_OFFLINE_MINUTES: 10,
        },
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options[CONF_NOTIFY_TARGETS] == ["mobile_app_pixel", "family"]


@pytest.mark.usefixtures("mqtt_mock")
async def test_user_while_the_same_agent_is_being_discovered(hass: HomeAssistant) -> None:
    await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_MQTT}, data=discovery()
    )
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(result["flow_id"], USER_INPUT)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_in_progress"
