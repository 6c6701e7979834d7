"""Offer the shipped blueprints: HA loads them from ``<config>/blueprints/automation/<domain>/``.

HACS installs only ``custom_components/lan_guard``, so the blueprints travel inside it and are
copied to the owner's blueprint folder at start-up (when that folder exists: HA's automation
integration creates it). A file already there is never overwritten: the owner may have
edited it (delete it to get the shipped version back).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from homeassistant.core import HomeAssistant

from .const import DOMAIN

_LOGGER = logging.getLogger(__name__)

SHIPPED = Path(__file__).parent / "blueprints"


def _copy_missing(source: Path, target: Path) -> list[str]:
    if not target.is_dir():  # HA creates it (with its own blueprints) when automations load
        return []
    copied: list[str] = []
    for blueprint in sorted(source.glob("*/*.yaml")):
        destination = target / blueprint.parent.name / DOMAIN / blueprint.name
        if destination.exists():
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(blueprint, destination)
        copied.append(str(destination))
    return copied


async def async_install_blueprints(hass: HomeAssistant) -> list[str]:
    """Copy the shipped blueprints the owner does not have yet; the paths copied."""
    target = Path(hass.config.path("blueprints"))
    try:
        copied = await hass.async_add_executor_job(_copy_missing, SHIPPED, target)
    except OSError as err:
        _LOGGER.warning("Could not install the LAN Guard blueprints into %s: %s", target, err)
        return []
    for path in copied:
        _LOGGER.info("Installed blueprint %s", path)
    return copied
