"""The inbox panel: registered with the integration, its module served from its own folder."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from homeassistant.components.frontend import DATA_PANELS
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.lan_guard.const import DOMAIN, PANEL_URL_PATH
from custom_components.lan_guard.panel import PANEL_ELEMENT

from .conftest import setup_entry, unload

pytestmark = pytest.mark.usefixtures("mqtt_mock")

MODULE = Path(__file__).resolve().parents[2] / "custom_components" / DOMAIN / "frontend"


async def test_the_panel_is_in_the_sidebar_without_any_manual_step(
    hass: HomeAssistant, hass_client: ClientSessionGenerator
) -> None:
    assert await async_setup_component(hass, "frontend", {})
    entry = await setup_entry(hass)
    panel = hass.data[DATA_PANELS][PANEL_URL_PATH]
    assert panel.sidebar_title == "LAN Guard"
    assert panel.require_admin is False  # reading is for everyone; acting needs an admin
    custom = panel.config["_panel_custom"]
    assert custom["name"] == PANEL_ELEMENT
    assert custom["embed_iframe"] is False
    url = custom["module_url"]
    assert re.fullmatch(rf"/{DOMAIN}_static/{PANEL_ELEMENT}\.js\?v=\d+\.\d+\.\d+", url)

    client = await hass_client()
    response = await client.get(url)
    assert response.status == 200
    text = await response.text()
    assert f'customElements.define("{PANEL_ELEMENT}"' in text
    # Only the module's folder is served, not the integration's Python or storage.
    assert (await client.get(f"/{DOMAIN}_static/__init__.py")).status == 404
    await unload(hass, entry)


async def test_without_a_frontend_nothing_is_registered(hass: HomeAssistant) -> None:
    entry = await setup_entry(hass)
    assert PANEL_URL_PATH not in hass.data.get(DATA_PANELS, {})
    await unload(hass, entry)


def test_the_module_puts_data_on_the_page_as_text_only() -> None:
    """Host names, vendors and samples come from the LAN: never parsed as markup."""
    source = (MODULE / f"{PANEL_ELEMENT}.js").read_text(encoding="utf-8")
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in source, sink
    assert "createTextNode" in source
    # No import: nothing to build, nothing fetched from elsewhere.
    assert not re.search(r"^\s*import\b", source, re.MULTILINE)
