"""Event history: the last 1,000 events plus labelled ones, stored in HA storage."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from unittest.mock import patch

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util

from custom_components.lan_guard.const import DOMAIN, Label
from custom_components.lan_guard.history import EventHistory
from custom_components.lan_guard.models import LanGuardEvent

from .conftest import make_event


def event(**kwargs: Any) -> LanGuardEvent:
    return LanGuardEvent(make_event(**kwargs), dt_util.utcnow())


async def test_it_keeps_the_last_events_and_every_label(hass: HomeAssistant) -> None:
    history = EventHistory(hass, "entry")
    with (
        patch("custom_components.lan_guard.history.MAX_EVENTS", 5),
        patch("custom_components.lan_guard.history.MAX_LABELLED", 3),
    ):
        first = event()
        history.add(first)
        history.label(first, Label.ALARM)
        for _ in range(10):
            history.add(event())
        assert len(history) == 6  # 5 unlabelled + the labelled one
        assert first.id in history
        labelled = [event() for _ in range(4)]
        for item in labelled:
            history.add(item)
            history.label(item, Label.NORMAL)
        # Beyond the labelled cap, the oldest labelled event goes.
        assert first.id not in history
        assert sum(1 for e in history if e.label) == 3
    await history.async_flush()


async def test_it_survives_a_restart(hass: HomeAssistant, hass_storage: dict[str, Any]) -> None:
    history = EventHistory(hass, "entry")
    kept = event(level=3)
    kept.assessment = {"verdict": "alarm", "probability": 0.97}
    history.add(kept)
    history.add(event(kind="host_left", level=0))
    history.label(kept, Label.ALARM)
    history.acknowledged["x" * 32] = 2
    await history.async_flush()
    assert hass_storage[f"{DOMAIN}.entry"]["data"]["acknowledged"] == {"x" * 32: 2}

    again = EventHistory(hass, "entry")
    await again.async_load()
    restored = again.get(kept.id)
    assert restored is not None
    assert restored.payload == kept.payload
    assert restored.received_at == kept.received_at
    assert restored.assessment == kept.assessment
    assert restored.label is Label.ALARM
    assert restored.labelled_at == kept.labelled_at
    assert again.acknowledged == {"x" * 32: 2}
    assert again.last_threat() is not None
    assert again.last_threat().id == kept.id  # host_left is not a culprit
    assert [r["event"]["id"] for r in again.export(labelled_only=True)] == [kept.id]
    await again.async_remove()
    assert f"{DOMAIN}.entry" not in hass_storage


async def test_counting_threats_in_a_window(hass: HomeAssistant) -> None:
    history = EventHistory(hass, "entry")
    await history.async_load()  # nothing stored yet
    old = event()
    old.received_at -= timedelta(hours=25)
    history.add(old)
    history.add(event())
    history.add(event(kind="host_left", level=0))
    assert history.count_threats_since(dt_util.utcnow() - timedelta(hours=24)) == 1
    await history.async_flush()


async def test_a_failed_write_is_logged_never_raised(
    hass: HomeAssistant, caplog: pytest.LogCaptureFixture
) -> None:
    """The entry must unload whatever storage says (a full disk, an unwritable value)."""
    history = EventHistory(hass, "entry")
    history.add(event())
    with patch.object(history._store, "async_save", side_effect=TypeError("Recursion limit")):
        await history.async_flush()
    assert "Could not write the event history of lan_guard.entry" in caplog.text
    assert len(history) == 1
