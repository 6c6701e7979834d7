"""The owner's inbox: a sidebar panel served from the integration's own folder.

HACS installs only ``custom_components/lan_guard``, so the panel's one JavaScript module
lives in ``frontend/`` here and is registered with the integration: nothing to add by hand.
It talks to Home Assistant through the websocket commands of ``websocket_api``.
"""

from __future__ import annotations

from pathlib import Path

from homeassistant.components import panel_custom
from homeassistant.components.http import StaticPathConfig
from homeassistant.core import HomeAssistant
from homeassistant.loader import async_get_integration

from .const import DOMAIN, PANEL_URL_PATH

PANEL_ELEMENT = "lan-guard-inbox"
STATIC_URL = f"/{DOMAIN}_static"
_FRONTEND = Path(__file__).parent / "frontend"


async def async_register_panel(hass: HomeAssistant) -> None:
    """Serve the module and add the sidebar entry (needs the frontend, as any UI does)."""
    if "frontend" not in hass.config.components:
        return  # a headless Home Assistant: the actions and entities still work
    integration = await async_get_integration(hass, DOMAIN)
    await hass.http.async_register_static_paths(
        [StaticPathConfig(STATIC_URL, str(_FRONTEND), cache_headers=True)]
    )
    await panel_custom.async_register_panel(
        hass,
        frontend_url_path=PANEL_URL_PATH,
        webcomponent_name=PANEL_ELEMENT,
        sidebar_title="LAN Guard",
        sidebar_icon="mdi:shield-search",
        # The version makes browsers fetch the module again after an update.
        module_url=f"{STATIC_URL}/{PANEL_ELEMENT}.js?v={integration.version}",
        require_admin=False,
    )
