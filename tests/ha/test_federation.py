"""Federated learning in Home Assistant (custom_components/lan_guard/federation.py and
federation_entities.py): consent, contributed labels, the global model's checks."""

from __future__ import annotations

import json
import time
from typing import Any
from unittest.mock import MagicMock

import pytest
from homeassistant.core import HomeAssistant

from custom_components.lan_guard.const import (
    CONF_CONTRIBUTE_LABELS,
    CONF_SIGNING_KEY,
    DOMAIN,
    EVENT_LAN_GUARD,
)
from custom_components.lan_guard.learning.features import FEATURE_VERSION, N_FEATURES
from custom_components.lan_guard.learning.model import OnlineLogisticModel
from custom_components.lan_guard.signing import sign, signing_key
from sensor_agent import signing as agent_signing

from .conftest import AGENT, BASE, make_entry, make_event, publish, setup_entry, unload

KEY = "federation-shared-key-0123"
SENSOR = "sensor.lan_guard_pi_livingroom_global_model"
BUTTON = "button.lan_guard_pi_livingroom_delete_contributed_labels"


def published(mqtt_mock: MagicMock, sub: str) -> list[dict[str, Any]]:
    return [
        json.loads(call.args[1])
        for call in mqtt_mock.async_publish.call_args_list
        if call.args[0] == f"{BASE}/{sub}"
    ]


def global_model(number: int, **changes: Any) -> dict[str, Any]:
    """A global model that calls every event an alarm (a large bias)."""
    model = OnlineLogisticModel().to_dict()
    model["weights"] = [5.0] + [0.0] * (N_FEATURES - 1)
    model.update(changes.pop("model", {}))
    payload = {
        "schema": 1,
        "id": f"m{number}",
        "agent_id": AGENT,
        "version": number,
        "round": 2,
        "run_id": "c" * 32,
        "feature_version": model["feature_version"],
        "sites": 3,
        "privacy": {"noise_multiplier": 1.0, "clipping_norm": 10.0, "epsilon": 7.1, "delta": 1e-5},
        "model": model,
        **changes,
    }
    return agent_signing.sign(
        payload, KEY.encode(), 1_800_000_000.0, agent_id=AGENT, topic="site/global_model"
    )


async def contributing(hass: HomeAssistant, **options: Any) -> Any:
    return await setup_entry(
        hass,
        make_entry(**{CONF_SIGNING_KEY: KEY, CONF_CONTRIBUTE_LABELS: True, **options}),
        online=False,
    )


async def test_by_default_nothing_is_contributed_nor_shown(
    hass: HomeAssistant, mqtt_mock: MagicMock
) -> None:
    entry = await setup_entry(hass, make_entry(**{CONF_SIGNING_KEY: KEY}), online=False)
    event = make_event("flood", level=1)
    event = agent_signing.sign(event, KEY.encode(), time.time(), agent_id=AGENT, topic="event")
    publish(hass, "event", event)
    await hass.async_block_till_done()
    await hass.services.async_call(
        DOMAIN, "label_event", {"event_id": event["id"], "verdict": "alarm"}, blocking=True
    )
    assert published(mqtt_mock, "training/example") == []
    assert hass.states.get(SENSOR) is None and hass.states.get(BUTTON) is None
    await unload(hass, entry)


async def test_each_label_sends_its_features_signed_to_the_agent_and_the_button_forgets(
    hass: HomeAssistant, mqtt_mock: MagicMock
) -> None:
    entry = await contributing(hass)
    event = make_event("flood", level=1)
    signed = agent_signing.sign(event, KEY.encode(), time.time(), agent_id=AGENT, topic="event")
    publish(hass, "event", signed)
    await hass.async_block_till_done()
    await hass.services.async_call(
        DOMAIN, "label_event", {"event_id": event["id"], "verdict": "alarm"}, blocking=True
    )
    [example] = published(mqtt_mock, "training/example")
    agent_signing.verify(
        example, KEY.encode(), example["ts"], agent_id=AGENT, topic="training/example"
    )
    assert {k: v for k, v in example.items() if k not in ("ts", "sig", "features")} == {
        "schema": 1,
        "id": event["id"],
        "feature_version": FEATURE_VERSION,
        "label": "alarm",
    }
    assert len(example["features"]) == N_FEATURES  # numbers only: no address, name or time
    assert hass.states.get(SENSOR).attributes["contributed_labels"] == 1  # type: ignore[union-attr]

    await hass.services.async_call("button", "press", {"entity_id": BUTTON}, blocking=True)
    [delete] = published(mqtt_mock, "training/delete")
    agent_signing.verify(
        delete, KEY.encode(), delete["ts"], agent_id=AGENT, topic="training/delete"
    )
    assert hass.states.get(SENSOR).attributes["contributed_labels"] == 0  # type: ignore[union-attr]
    await unload(hass, entry)


async def test_a_verified_global_model_becomes_the_prior_and_decides(
    hass: HomeAssistant, mqtt_mock: MagicMock
) -> None:
    entry = await contributing(hass)
    bus: list[Any] = []
    hass.bus.async_listen(EVENT_LAN_GUARD, bus.append)
    assert hass.states.get(SENSOR).state == "unknown"  # type: ignore[union-attr]
    publish(hass, "site/global_model", global_model(4), retain=True)
    await hass.async_block_till_done()
    state = hass.states.get(SENSOR)
    assert state is not None and state.state == "4"
    assert state.attributes["round"] == 2 and state.attributes["sites"] == 3
    assert state.attributes["epsilon"] == 7.1 and state.attributes["refused"] is None
    event = make_event("flood", level=1)  # the level rule: normal; this global model: alarm
    signed = agent_signing.sign(event, KEY.encode(), time.time(), agent_id=AGENT, topic="event")
    publish(hass, "event", signed)
    await hass.async_block_till_done()
    assert bus[-1].data["verdict"] == "alarm"
    # An older model (replayed, or a PSOC's mistake) and the same one again change nothing.
    # (Published while HA is subscribed, the broker delivers them without the retain flag.)
    publish(hass, "site/global_model", global_model(3))
    publish(hass, "site/global_model", global_model(4))
    await hass.async_block_till_done()
    assert hass.states.get(SENSOR).state == "4"  # type: ignore[union-attr]
    # A newer one replaces it, under the owner's labels; resetting the model keeps it.
    publish(hass, "site/global_model", global_model(5))
    await hass.async_block_till_done()
    assert hass.states.get(SENSOR).state == "5"  # type: ignore[union-attr]
    await hass.services.async_call(DOMAIN, "reset_model", {}, blocking=True)
    accuracy = hass.states.get("sensor.lan_guard_pi_livingroom_classifier_accuracy")
    assert accuracy is not None and accuracy.attributes["prior"] == "global model"
    own = entry.runtime_data.learner.classifier.own  # a fresh own model on the global prior
    assert own.labels == 0 and own.mean[0] == pytest.approx(5.0)
    # The prior stays across a restart of the integration.
    await unload(hass, entry)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert hass.states.get(SENSOR).state == "5"  # type: ignore[union-attr]
    await unload(hass, entry)


async def test_a_stored_global_model_stays_the_prior_of_what_is_restored(
    hass: HomeAssistant, mqtt_mock: MagicMock, hass_storage: dict[str, Any]
) -> None:
    entry = await contributing(hass)
    publish(hass, "site/global_model", global_model(4), retain=True)
    await hass.async_block_till_done()
    await unload(hass, entry)
    stored = f"{DOMAIN}.{entry.entry_id}.classifier"
    for broken, prior in (
        ("history", "global model"),  # the own model is restored, its prior with it
        ("own", "global model"),  # a fresh own model, on the global prior again
        ("global_prior", "hand-set"),  # cannot be taken out: afresh on the hand-set prior
    ):
        hass_storage[stored]["data"][broken] = "broken"
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
        learner = entry.runtime_data.learner
        assert learner.stats()["prior"] == prior and learner.reset_reason is not None
        bias = learner.classifier.own.mean[0]
        assert bias == pytest.approx(5.0) if prior == "global model" else bias < 0
        await unload(hass, entry)


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (global_model(5, model={"feature_version": FEATURE_VERSION + 1}), "feature version"),
        ({**global_model(5), "version": 6}, "signature"),
        (
            agent_signing.sign(
                {k: v for k, v in global_model(5).items() if k not in ("ts", "sig")},
                b"another-key-of-enough-length",
                1_800_000_000.0,
                agent_id=AGENT,
                topic="site/global_model",
            ),
            "signature",
        ),
        (global_model(5, agent_id="pi-kitchen"), "another agent"),
        (global_model(5, version="5"), "not an integer"),
        ({"schema": 1}, "not a global model"),
    ],
)
async def test_a_global_model_that_cannot_be_used_is_refused_with_its_reason(
    hass: HomeAssistant, mqtt_mock: MagicMock, payload: dict[str, Any], why: str
) -> None:
    entry = await contributing(hass)
    publish(hass, "site/global_model", payload, retain=True)
    await hass.async_block_till_done()
    state = hass.states.get(SENSOR)
    assert state is not None and state.state == "unknown"
    assert why in state.attributes["refused"]
    await unload(hass, entry)


async def test_contributing_needs_the_signing_key(
    hass: HomeAssistant, mqtt_mock: MagicMock, caplog: pytest.LogCaptureFixture
) -> None:
    entry = await setup_entry(hass, make_entry(**{CONF_CONTRIBUTE_LABELS: True}), online=False)
    assert hass.states.get(SENSOR) is None
    assert "contributing needs the shared signing key" in caplog.text
    assert entry.runtime_data.federation.active is False
    await unload(hass, entry)


def test_the_integration_signs_examples_as_the_agent_verifies() -> None:
    payload = {"schema": 1, "id": "x", "feature_version": 1, "features": [1.0], "label": "normal"}
    signed = sign(payload, signing_key(KEY), 1_800_000_000.0, AGENT, "training/example")
    agent_signing.verify(
        signed, KEY.encode(), 1_800_000_000.0, agent_id=AGENT, topic="training/example"
    )
