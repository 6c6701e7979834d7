"""Packaging for HACS: manifest (hassfest's rules for custom integrations), hacs.json, icons,
brand icon, and a folder that needs nothing outside itself."""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import homeassistant
from packaging.requirements import Requirement
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
    # The panel needs the frontend (every UI has it); a headless HA runs without it.
    assert manifest["after_dependencies"] == ["frontend", "http", "network", "panel_custom"]
    assert manifest["iot_class"] == "local_push"
    assert manifest["config_flow"] is True
    assert manifest["mqtt"] == ["lan_guard/+/info"]
    assert manifest["version"].count(".") == 2
    for key in ("codeowners", "documentation", "issue_tracker"):
        assert manifest[key], key


def test_hacs_json_and_readme_agree_on_the_minimum_version() -> None:
    hacs = json.loads((ROOT / "hacs.json").read_text(encoding="utf-8"))
    assert hacs["name"] == "LAN Guard"
    assert hacs["homeassistant"] == "2026.2.0"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "Home Assistant 2026.2 or later" in readme
    # The bundled brand icon is shown from 2026.3 on; the README says so.
    assert "`brand/icon.png`" in readme
    assert "2026.3" in readme


def _third_party_imports() -> set[str]:
    """Top-level modules the integration imports that neither HA nor the stdlib provide."""
    found: set[str] = set()
    for path in FOLDER.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    # voluptuous is a requirement of Home Assistant itself.
    return found - set(sys.stdlib_module_names) - {"homeassistant", "voluptuous", "__future__"}


def test_every_import_is_a_requirement_that_home_assistant_accepts() -> None:
    """What HA installs for the integration must fit HA's own pinned package constraints,
    or the integration fails to load on an installation like a user's."""
    manifest = json.loads((FOLDER / "manifest.json").read_text(encoding="utf-8"))
    requirements = {Requirement(text).name: Requirement(text) for text in manifest["requirements"]}
    assert set(requirements) == _third_party_imports() == {"numpy"}
    constraints = Path(homeassistant.__file__).with_name("package_constraints.txt")
    pinned = {
        Requirement(line).name: Requirement(line)
        for line in constraints.read_text(encoding="utf-8").splitlines()
        if "==" in line and not line.startswith("#")
    }
    for name, requirement in requirements.items():
        [spec] = pinned[name].specifier
        assert requirement.specifier.contains(spec.version), (requirement, spec)


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
