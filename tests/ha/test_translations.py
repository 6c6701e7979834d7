"""Translations: English and Japanese say the same things, with the same placeholders, and
every key the integration uses exists."""

from __future__ import annotations

import json
import re
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from homeassistant.core import HomeAssistant
from homeassistant.helpers.translation import async_get_translations

from custom_components.lan_guard.const import DOMAIN, ISSUE_AGENT_OFFLINE, ISSUE_MQTT_NOT_SETUP
from custom_components.lan_guard.sensor import SENSORS

FOLDER = Path(__file__).resolve().parents[2] / "custom_components" / DOMAIN
LANGUAGES = ("en", "ja")


def load(language: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (FOLDER / "translations" / f"{language}.json").read_text(encoding="utf-8")
    )
    return data


def flatten(tree: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_japanese_has_every_english_key_and_no_other() -> None:
    english, japanese = dict(flatten(load("en"))), dict(flatten(load("ja")))
    assert set(japanese) == set(english)


def test_placeholders_are_the_same_in_both_languages() -> None:
    japanese = dict(flatten(load("ja")))
    for key, text in flatten(load("en")):
        assert placeholders(japanese[key]) == placeholders(text), key


def test_japanese_is_japanese() -> None:
    """Every Japanese sentence has kana or kanji (names such as "LAN Guard" aside)."""
    english = dict(flatten(load("en")))
    for key, text in flatten(load("ja")):
        if text != english[key] and len(text) > 12:
            assert re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", text), key


def test_the_keys_the_integration_uses_exist() -> None:
    strings = load("en")
    config = strings["config"]
    assert {"user", "discovery_confirm", "reconfigure"} <= set(config["step"])
    assert {
        "invalid_prefix",
        "invalid_agent_id",
        "mqtt_not_connected",
        "no_answer",
        "invalid_info",
    } <= set(config["error"])
    assert {
        "already_configured",
        "already_in_progress",
        "mqtt_not_configured",
        "invalid_discovery_info",
        "reconfigure_successful",
    } <= set(config["abort"])
    assert "invalid_allowlist" in strings["options"]["error"]
    assert {"mqtt_not_ready", "unknown_event", "entry_not_loaded"} <= set(strings["exceptions"])
    assert {ISSUE_MQTT_NOT_SETUP, ISSUE_AGENT_OFFLINE} <= set(strings["issues"])
    assert "confirm" in strings["issues"][ISSUE_AGENT_OFFLINE]["fix_flow"]["step"]
    entity = strings["entity"]
    assert {d.key for d in SENSORS} <= set(entity["sensor"])
    assert "threat" in entity["binary_sensor"]
    assert "acknowledge" in entity["button"]
    assert "activity" in entity["event"]


def test_every_action_and_its_fields_are_translated() -> None:
    services = yaml.safe_load((FOLDER / "services.yaml").read_text(encoding="utf-8"))
    strings = load("en")
    for name, service in services.items():
        assert {"name", "description"} <= set(strings["services"][name]), name
        for field, spec in (service.get("fields") or {}).items():
            assert {"name", "description"} <= set(strings["services"][name]["fields"][field])
            selector = spec.get("selector") or {}
            for config in selector.values():
                if isinstance(config, dict) and (key := config.get("translation_key")):
                    options = set(strings["selector"][key]["options"])
                    assert set(config["options"]) <= options, (name, field)


@pytest.mark.parametrize("language", LANGUAGES)
async def test_home_assistant_loads_them(
    hass: HomeAssistant, language: str, enable_custom_integrations: None
) -> None:
    texts = await async_get_translations(hass, language, "common", [DOMAIN])
    assert texts[f"component.{DOMAIN}.common.action_alarm"] in ("Alarm", "警報")
    config = await async_get_translations(hass, language, "config", [DOMAIN])
    assert f"component.{DOMAIN}.config.step.user.title" in config


HTML = re.compile(r"<[a-z].*?>", re.IGNORECASE)
URL = re.compile(r"((ftp|ftps|scp|http|https|mqtt|mqtts|socket|socks5)://|www\.)\S+", re.I)


@pytest.mark.parametrize("language", LANGUAGES)
def test_strings_follow_hassfests_value_rules(language: str) -> None:
    """What hassfest refuses in a translation: HTML, URLs (placeholders instead), leading or
    trailing spaces, placeholders that are not identifiers or sit in single quotes."""
    for key, text in flatten(load(language)):
        assert isinstance(text, str), key
        assert not HTML.search(text), key
        assert not URL.search(text), key
        assert text == text.strip(), key
        assert all(name.isidentifier() for name in placeholders(text)), key
        assert not re.search(r"'\{\w+\}'", text), key


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_field_description_belongs_to_a_field(language: str) -> None:
    strings = load(language)
    flows = [strings["config"], strings["options"]]
    flows += [issue["fix_flow"] for issue in strings["issues"].values() if "fix_flow" in issue]
    for flow in flows:
        for step_id, step in flow["step"].items():
            assert set(step.get("data_description", {})) <= set(step.get("data", {})), step_id
            for name, section in step.get("sections", {}).items():
                described = set(section.get("data_description", {}))
                assert described <= set(section.get("data", {})), (step_id, name)
    for name, issue in strings["issues"].items():
        assert "title" in issue, name
        assert ("description" in issue) != ("fix_flow" in issue), name
