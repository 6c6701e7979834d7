"""Every text evacuation can say exists in English and Japanese and reads with its values."""

from __future__ import annotations

import itertools

import pytest
from homeassistant.core import HomeAssistant

from custom_components.lan_guard.evacuation.machine import Log, Message, Notify, Say
from custom_components.lan_guard.evacuation.record import Culprit, Outcome, Reason
from custom_components.lan_guard.evacuation.texts import Texts, who

from .test_evacuation_machine import POLICIES, _inputs, _records, _run, _world

CULPRIT = Culprit(
    "b8:27:eb:4c:21:9a",
    "192.168.1.23",
    "Raspberry Pi",
    "laptop",
    quarantine=Outcome(True),
    in_force=True,
    backend="agent",
)
REFUSED = Culprit("02:00:00:00:00:07", None, quarantine=Outcome(False, "protected_gateway"))


def _name(entity_id: str) -> str:
    return f"Name of {entity_id}"


def _said() -> list[tuple[type, Message]]:
    """Every (Log or Notify, message) the state machine produces in every phase."""
    said: list[tuple[type, Message]] = []
    world = _world(agent_listed=frozenset())
    for record, (_, event), policy, ok in itertools.product(
        _records().values(), _inputs().items(), POLICIES, (True, False)
    ):
        for step in _run(record, event, world, policy, ok):
            said += [(type(e), e.message) for e in step.effects if isinstance(e, Log | Notify)]
    return said


@pytest.mark.parametrize("language", ["en", "ja"])
async def test_every_message_renders(hass: HomeAssistant, language: str) -> None:
    hass.config.language = language
    texts = await Texts.async_load(hass)
    said = _said()
    assert {message.say for _, message in said} == set(Say)
    for kind, message in said:
        if kind is Log:
            line = texts.log(message, _name, "pi")
            assert line and "{" not in line, message
        else:
            title, text = texts.notification(message, _name, "pi")
            assert title.startswith("LAN Guard") and text and "{" not in text, message


async def test_a_started_notification_names_everything(hass: HomeAssistant) -> None:
    texts = await Texts.async_load(hass)
    message = Message(
        Say.STARTED,
        reason=Reason.EVENT,
        event={"kind": "session", "level": 3},
        culprits=(CULPRIT, REFUSED),
        appliances=("switch.tv",),
        failed=("fan.attic",),
    )
    title, text = texts.notification(message, _name, "pi")
    assert title == "LAN Guard: evacuation mode on"
    assert text.splitlines() == [
        "pi: evacuation mode started (detected Session with the monitoring node, level 3).",
        "Isolated appliances: Name of switch.tv.",
        "Could not switch off: Name of fan.attic.",
        "Culprit b8:27:eb:4c:21:9a (IP 192.168.1.23, vendor Raspberry Pi, host name laptop):"
        " quarantined (agent).",
        "Culprit 02:00:00:00:00:07 (IP unknown, vendor unknown, host name unknown): not"
        " quarantined: it is the router/gateway, which is never isolated.",
    ]
    assert who(REFUSED) == "02:00:00:00:00:07"
    assert texts.issue_items([CULPRIT], ["switch.tv"], _name) == (
        "quarantine of b8:27:eb:4c:21:9a (192.168.1.23), Name of switch.tv"
    )
    assert texts.issue_items([], [], _name) == "none"
