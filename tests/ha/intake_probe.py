"""Measured part of ``benchmarks/ha_intake.py`` (not collected by the test run: no ``test_``
file name). How long one agent payload holds Home Assistant's event loop in the real
coordinator (the MQTT callback, handler included), beside the landed intake's decode and
validation on the loop (what the landed callback held at least) in the same run.

    .venv/bin/python -m pytest tests/ha/intake_probe.py -q -p no:cacheprovider
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from homeassistant.core import HomeAssistant

from custom_components.lan_guard.const import BadPayload
from custom_components.lan_guard.intake import OFF_LOOP_BYTES, decode
from custom_components.lan_guard.payloads import validate

from .conftest import auto_enable_custom_integrations, example, publish, setup_entry

__all__ = ["auto_enable_custom_integrations"]  # the fixture, for pytest
pytestmark = pytest.mark.usefixtures("mqtt_mock")
TRIALS = 3


def hosts(count: int) -> bytes:
    payload = example("hosts")
    template = payload["hosts"][1]
    payload["hosts"] = [
        {**template, "mac": f"b8:27:eb:{i >> 16:02x}:{(i >> 8) & 255:02x}:{i & 255:02x}"}
        for i in range(count)
    ]
    return json.dumps(payload).encode()


def best_ms(run: Callable[[], Any]) -> float:
    best = float("inf")
    for _ in range(TRIALS):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best * 1000


def landed(name: str, raw: bytes) -> None:
    """What the landed callback did on the loop: decode and validate, whatever the size."""
    # A refusal (or the RecursionError) took its time all the same.
    with contextlib.suppress(Exception):
        validate(name, json.loads(raw))


async def test_how_long_a_payload_holds_the_event_loop(hass: HomeAssistant) -> None:
    entry = await setup_entry(hass)
    coordinator = entry.runtime_data.coordinator
    cases = [
        ("hosts: 100,000", "hosts", "hosts", hosts(100_000)),
        ("hosts: 4,096", "hosts", "hosts", hosts(4096)),
        ("hosts: 512", "hosts", "hosts", hosts(512)),
        ("nested 10,000 deep", "state", "state", b"[" * 10_000 + b"]" * 10_000),
        ("hosts: 60", "hosts", "hosts", hosts(60)),
    ]
    rows = []
    for label, topic, name, payload in cases:
        held: list[float] = []
        for _ in range(TRIALS):
            start = time.perf_counter()
            publish(hass, topic, payload)  # the MQTT callback runs to its end here
            held.append((time.perf_counter() - start) * 1000)
            await hass.async_block_till_done()
        baseline = best_ms(partial(landed, name, payload))
        # The intake's own share of "held": the decoding done on the loop (none off it).
        on_loop = len(payload) <= OFF_LOOP_BYTES
        now = datetime.now(UTC)
        intake = best_ms(partial(decode, name, payload, now)) if on_loop else 0.0
        size = len(payload) / 1024
        rows.append(
            {
                "payload": label,
                "kib": size,
                "held_ms": min(held),
                "decode_ms": intake,
                "landed_ms": baseline,
            }
        )
    assert coordinator.bad_payloads[BadPayload.TOO_LARGE] == TRIALS  # the 100,000 hosts
    assert coordinator.bad_payloads[BadPayload.TOO_DEEP] == TRIALS
    assert len(coordinator.hosts["hosts"]) == 60
    if target := os.environ.get("LAN_GUARD_INTAKE_FIGURES"):
        await hass.async_add_executor_job(Path(target).write_text, json.dumps(rows))
    for row in rows:
        print(row)
