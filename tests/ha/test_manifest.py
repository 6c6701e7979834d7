"""Packaging for HACS: manifest (hassfest's rules for custom integrations), hacs.json, icons,
brand icon, and a folder that needs nothing outside itself."""

from __future__ import annotations

import ast
import json
from pathlib import Path

from PIL import Image

from custom_components.lan_guard.const import DOMAIN, PLATFORMS

ROOT = Path(__file__).resolve().parents[2]
FOLDER = ROOT / "custom_components" / DOMAIN


def test_manifest_follows_hassfest_for_custom_integrations() -> None:
    manifest = json.loads((FOLDER / "manifest.json").read_text(encoding="utf-8"))
    keys = list(manifest)
    assert keys[:2] == ["domain", "name"]
    assert keys[2:] == sorted(keys[2:])
    assert manifest["domain"] == DOMAIN
    assert manifest["dependencies"] == ["mqtt"]
    assert manifest["iot_class"] == "local_push"
    assert manifest["config_flow"] is True
    assert manifest["mqtt"] == ["lan_guard/+/info"]
    assert manifest["version"].count(".") == 2
    for key in ("codeowners", "documentation", "issue_tracker"):
        assert manifest[key], key


def test_hacs_json() -> None:
    hacs = json.loads((ROOT / "hacs.json").read_text(encoding="utf-8"))
    assert hacs["name"] == "LAN Guard"
    assert hacs["homeassistant"] == "2026.2.0"


def test_brand_icon_is_256_square() -> None:
    with Image.open(FOLDER / "brand" / "icon.png") as icon:
        assert icon.size == (256, 256)
        assert icon.mode == "RGBA"


def test_icons_name_real_entities_and_actions() -> None:
    icons = json.loads((FOLDER / "icons.json").read_text(encoding="utf-8"))
    strings = json.loads((FOLDER / "translations" / "en.json").read_text(encoding="utf-8"))
    for platform, entities in icons["entity"].items():
        assert platform in {p.value for p in PLATFORMS}
        assert set(entities) <= set(strings["entity"][platform]), platform
    assert set(icons["services"]) <= set(strings["services"])


def test_the_folder_imports_nothing_from_outside() -> None:
    """HACS installs this folder alone: no sensor_agent, no tests, only HA and the stdlib."""
    for path in FOLDER.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top not in {"sensor_agent", "tests", "custom_components"}, (path, name)
