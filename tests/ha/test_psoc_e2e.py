"""The PSOC's acceptance with the real integration in-process at the consenting site.

The world of ``tests/psoc/world.py``, all real: PostgreSQL, the PSOC's broker (TLS, the ACL
``site add`` wrote), its worker and console processes, two site brokers bridged to it, a real
agent replaying the demo capture at each site. At ``home-a`` this Home Assistant runs LAN
Guard (its MQTT integration connected to the site's broker; the owner lets the provider see
the site and start evacuation mode); ``home-b`` refuses its provider (``ha_double``, which
answers as the integration does without that consent).

An operator labels the incident and requests isolation through the console, as a browser
would (``tests/psoc/test_e2e.py`` drives the console with Chromium): the label reaches the
site's classifier, evacuation starts at ``home-a`` and the owner is told, it is refused at
``home-b``, the owner ends it, and the audit log records each step. The PSOC runs in other
processes; this one runs Home Assistant (its plugin and the PSOC's tests do not share a
process), so every blocking step of the world runs in Home Assistant's executor.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from homeassistant.components import mqtt, persistent_notification
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.lan_guard.const import (
    CONF_AGENT_ID,
    CONF_EVACUATION_TRIGGER,
    CONF_PROVIDER_MAY_EVACUATE,
    CONF_PROVIDER_MAY_SEE,
    CONF_SIGNING_KEY,
    CONF_TOPIC_PREFIX,
    DOMAIN,
    PROVIDER_NOTIFICATION_PREFIX,
    TRIGGER_MANUAL,
)
from custom_components.lan_guard.evacuation.record import Reason
from custom_components.lan_guard.runtime import LanGuardData
from tests.psoc.pg import Postgres
from tests.psoc.world import World, build, csrf_of

from .conftest import default_options, unload, until

pytestmark = [pytest.mark.broker]

CULPRIT_MAC = "00:1b:21:42:00:42"  # the demo capture's culprit (sensor_agent.synth)


@pytest.fixture
async def world(hass: HomeAssistant, socket_enabled: None, tmp_path: Path) -> AsyncIterator[World]:
    postgres = Postgres()
    await hass.async_add_executor_job(postgres.start)
    try:
        db_url = await hass.async_add_executor_job(postgres.create_database, "e2e")
        built = await hass.async_add_executor_job(
            build, tmp_path, db_url, {"home-a": None, "home-b": False}
        )
        try:
            yield built
        finally:
            await hass.async_add_executor_job(built.close)
    finally:
        await hass.async_add_executor_job(postgres.close)


class Psoc:
    """The operator's side, through the console's HTTP (blocking: run in the executor)."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.client: httpx.Client | None = None

    def login(self) -> None:
        self.client = self.world.login("alice")

    def close(self) -> None:
        if self.client is not None:
            self.client.close()

    def incident(self, site_id: str) -> dict[str, Any] | None:
        from psoc.db.engine import make_engine
        from psoc.store import Store

        engine = make_engine(self.world.db_url)
        try:
            rows = Store(engine).queue(site_id=site_id, include_closed=True)
            events = Store(engine).incident_events(rows[0]["id"]) if rows else []
        finally:
            engine.dispose()
        found = [r for r in rows if r["mac"] == CULPRIT_MAC and r["level"] == 3]
        return {**found[0], "events": events} if found else None

    def act(self, pk: int, action: str, **form: str) -> int:
        assert self.client is not None
        page = self.client.get(f"/incidents/{pk}")
        done = self.client.post(
            f"/incidents/{pk}/{action}", data={"csrf": csrf_of(page.text), **form}
        )
        return done.status_code

    def audit(self) -> str:
        assert self.client is not None
        return self.client.get("/audit").text


async def test_the_operator_evacuates_the_consenting_site_and_teaches_its_classifier(
    hass: HomeAssistant, mock_hass_config: None, world: World
) -> None:
    site = world.sites["home-a"]
    mqtt_entry = MockConfigEntry(
        domain=mqtt.DOMAIN,
        data={mqtt.CONF_BROKER: site.broker.host, "port": site.broker.port},
        options={mqtt.CONF_BIRTH_MESSAGE: {}, mqtt.CONF_WILL_MESSAGE: {}},
        version=mqtt.CONFIG_ENTRY_VERSION,
        minor_version=mqtt.CONFIG_ENTRY_MINOR_VERSION,
    )
    mqtt_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(mqtt_entry.entry_id)
    await until(lambda: mqtt.is_connected(hass), 10, "HA's MQTT client to connect")
    entry = MockConfigEntry(
        domain=DOMAIN,
        title=f"LAN Guard {site.agent_id}",
        unique_id=site.agent_id,
        data={CONF_TOPIC_PREFIX: "lan_guard", CONF_AGENT_ID: site.agent_id},
        options=default_options(
            **{
                CONF_SIGNING_KEY: site.key.decode(),
                CONF_EVACUATION_TRIGGER: TRIGGER_MANUAL,  # only the provider or the owner
                CONF_PROVIDER_MAY_SEE: True,
                CONF_PROVIDER_MAY_EVACUATE: True,
            }
        ),
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    data: LanGuardData = entry.runtime_data
    await asyncio.wait_for(data.provider.subscribed.wait(), 10)
    psoc = Psoc(world)
    await hass.async_add_executor_job(psoc.login)
    try:
        await hass.async_add_executor_job(world.replay, "home-a")
        await hass.async_add_executor_job(world.replay, "home-b")

        # the incident, with the verdict of the site's own classifier
        incident: dict[str, Any] | None = None

        async def incident_at(site_id: str, ready: Callable[[dict[str, Any]], bool]) -> Any:
            nonlocal incident
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                incident = await hass.async_add_executor_job(psoc.incident, site_id)
                if incident is not None and ready(incident):
                    return incident
                await asyncio.sleep(0.2)
            raise AssertionError(f"no such incident at {site_id}: {incident}")

        here = await incident_at("home-a", lambda i: i["verdict"] is not None)
        assert data.coordinator.history.get(here["events"][0]["event_id"]) is not None

        # the operator's label reaches the site's classifier (the owner's history stays theirs)
        labels_before = data.learner.stats()
        event_id = here["events"][-1]["event_id"]
        status = await hass.async_add_executor_job(
            lambda: psoc.act(here["id"], "label", event_id=event_id, label="alarm")
        )
        assert status == 303
        await until(lambda: data.provider.labels["alarm"] == 1, 10, "the label at the site")
        assert data.learner.stats() != labels_before
        event = data.coordinator.history.get(event_id)
        assert event is not None and event.label is None

        # isolation: evacuation starts at the consenting site, and its owner is told why
        asked = time.monotonic()
        status = await hass.async_add_executor_job(
            lambda: psoc.act(here["id"], "isolate", reason="ransomware-like scan of the LAN")
        )
        assert status == 303
        await until(lambda: data.evacuation.active, 10, "evacuation at home-a")
        started = time.monotonic() - asked
        assert data.evacuation.record.reason is Reason.PROVIDER
        assert CULPRIT_MAC in data.evacuation.record.culprits
        notes = persistent_notification._async_get_or_create_notifications(hass)
        told = f"{PROVIDER_NOTIFICATION_PREFIX}{entry.entry_id}"
        await until(lambda: told in notes, 10, "the owner to be told")
        note = notes[told]
        assert "alice" in note["message"] and "ransomware-like scan" in note["message"]
        await incident_at("home-a", lambda i: i["isolation"] == "active")
        print(f"operator's request -> evacuation on at the site: {started * 1000:.0f} ms")

        # ... and is refused at the site that did not allow it
        there = await incident_at("home-b", lambda i: True)
        status = await hass.async_add_executor_job(
            lambda: psoc.act(there["id"], "isolate", reason="scan")
        )
        assert status == 303
        await incident_at("home-b", lambda i: i["isolation"] == "refused")
        assert site.ha is None and world.sites["home-b"].ha is not None
        assert not world.sites["home-b"].ha.evacuating

        # the owner can always end it; the operator sees service restored
        await data.evacuation.async_stop()
        await incident_at("home-a", lambda i: i["isolation"] == "restored")

        page = await hass.async_add_executor_job(psoc.audit)
        for step in ("label", "request_isolation", "request_result", "site_evacuation"):
            assert f"<td>{step}</td>" in page, step
        assert "started" in page and "refused" in page
        assert "evacuation started by provider" in page
    finally:
        await hass.async_add_executor_job(psoc.close)
    assert not data.provider.refused, data.provider.last_refused
    await unload(hass, entry)
    assert await hass.config_entries.async_unload(mqtt_entry.entry_id)
    await hass.async_block_till_done()
