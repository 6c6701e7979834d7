"""The shipped blueprints: installed for HA, valid for its blueprint loader, and working."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from homeassistant.components.automation import DOMAIN as AUTOMATION
from homeassistant.components.blueprint import BLUEPRINT_SCHEMA
from homeassistant.components.blueprint.models import Blueprint
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from homeassistant.util.yaml import load_yaml_dict
from pytest_homeassistant_custom_component.common import async_mock_service

from custom_components.lan_guard.blueprint_install import SHIPPED, async_install_blueprints
from custom_components.lan_guard.const import CONF_EVACUATION_TRIGGER, DOMAIN

from .conftest import make_event, unload
from .evacuation_fixtures import CULPRIT_IP, CULPRIT_MAC, TV, publish_event, setup_evacuation

pytestmark = pytest.mark.usefixtures("mqtt_mock")

NOTIFY = "notify_phone_on_lan_threat.yaml"
EVACUATE = "evacuate_on_alarm.yaml"


@pytest.mark.parametrize("name", [NOTIFY, EVACUATE])
def test_blueprints_pass_the_blueprint_loader(name: str) -> None:
    blueprint = Blueprint(
        load_yaml_dict(str(SHIPPED / "automation" / name)),
        expected_domain=AUTOMATION,
        schema=BLUEPRINT_SCHEMA,
    )
    assert blueprint.domain == AUTOMATION
    assert blueprint.name.startswith("LAN Guard")
    assert "min_level" in blueprint.inputs


async def test_installed_once_and_never_overwritten(hass: HomeAssistant, tmp_path: Path) -> None:
    hass.config.config_dir = str(tmp_path)
    assert await async_install_blueprints(hass) == []  # no blueprint folder: no automations
    (tmp_path / "blueprints").mkdir()
    copied = await async_install_blueprints(hass)
    target = tmp_path / "blueprints" / "automation" / DOMAIN
    assert sorted(Path(path).name for path in copied) == sorted([EVACUATE, NOTIFY])
    (target / NOTIFY).write_text("# my own edits\n", encoding="utf-8")
    assert await async_install_blueprints(hass) == []
    assert (target / NOTIFY).read_text(encoding="utf-8") == "# my own edits\n"


async def test_install_failure_is_logged(
    hass: HomeAssistant, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "blueprints").mkdir()
    (tmp_path / "blueprints" / "automation").write_text("not a folder", encoding="utf-8")
    hass.config.config_dir = str(tmp_path)
    assert await async_install_blueprints(hass) == []
    assert "Could not install the LAN Guard blueprints" in caplog.text


async def _automations(hass: HomeAssistant, tmp_path: Path, **inputs: Any) -> None:
    hass.config.config_dir = str(tmp_path)
    (tmp_path / "blueprints").mkdir()
    await async_install_blueprints(hass)
    config = [
        {
            "id": name,
            "alias": name.removesuffix(".yaml"),
            "use_blueprint": {"path": f"{DOMAIN}/{name}", "input": inputs[name]},
        }
        for name in inputs
    ]
    assert await async_setup_component(hass, AUTOMATION, {AUTOMATION: config})
    await hass.async_block_till_done()


async def test_blueprints_notify_the_phone_and_evacuate(
    hass: HomeAssistant, mqtt_mock: Any, tmp_path: Path
) -> None:
    entry, manager, agent, _ = await setup_evacuation(
        hass, mqtt_mock, **{CONF_EVACUATION_TRIGGER: "manual"}
    )
    pixel = async_mock_service(hass, "notify", "mobile_app_pixel")
    await _automations(
        hass,
        tmp_path,
        **{
            NOTIFY: {"notify_action": "notify.mobile_app_pixel", "min_level": 2},
            # The classifier may still be unsure of a first scan: the level decides here.
            EVACUATE: {"min_level": 2, "require_alarm_verdict": False},
        },
    )
    for name in (NOTIFY, EVACUATE):
        assert hass.states.get(f"automation.{name.removesuffix('.yaml')}").state == "on"

    publish_event(hass, make_event("arp_scan", level=1))  # below both levels
    await hass.async_block_till_done()
    assert pixel == [] and not manager.active

    event = make_event(level=2)
    publish_event(hass, event)
    await hass.async_block_till_done(wait_background_tasks=True)
    assert len(pixel) == 1
    data = pixel[0].data
    assert CULPRIT_MAC in data["message"] and CULPRIT_IP in data["message"]
    assert [a["action"] for a in data["data"]["actions"]] == [
        f"LAN_GUARD_NORMAL_{event['id']}",
        f"LAN_GUARD_ALARM_{event['id']}",
    ]
    assert manager.active
    assert agent.actions() == [("quarantine", CULPRIT_MAC)]
    assert hass.states.get(TV).state == "off"
    await unload(hass, entry)
