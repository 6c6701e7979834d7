"""Telling the owner about evacuation: notifications, logbook entries, a repair issue.

Texts come from the translations (``common.evac_*``, ``common.log_*``,
``common.quarantine_*``) in HA's configured language. Phone notifications of evacuation
carry buttons whose action ids name the choice and the config entry
(``LAN_GUARD_EVAC_RESTORE_<entry id>`` / ``LAN_GUARD_EVAC_KEEP_<entry id>``).
"""

from __future__ import annotations

import logging
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from homeassistant.components import persistent_notification
from homeassistant.const import EVENT_LOGBOOK_ENTRY
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.translation import async_get_translations

from .const import (
    CONF_AGENT_ID,
    DOMAIN,
    EVACUATION_ACTION_PREFIX,
    ISSUE_EVACUATION_INCOMPLETE,
)
from .notifications import async_notify_targets, inbox_link, inbox_url

if TYPE_CHECKING:
    from homeassistant.config_entries import ConfigEntry

_LOGGER = logging.getLogger(__name__)

_COMMON = f"component.{DOMAIN}.common."


class Choice(StrEnum):
    """The buttons of an evacuation notification."""

    RESTORE = "restore"
    KEEP = "keep"


def action_id(choice: Choice, entry_id: str) -> str:
    """The action id of an evacuation button."""
    return f"{EVACUATION_ACTION_PREFIX}{choice.value.upper()}_{entry_id}"


def parse_action(action: Any) -> tuple[Choice, str] | None:
    """(choice, config entry id) of an evacuation button, None for anything else."""
    if not isinstance(action, str) or not action.startswith(EVACUATION_ACTION_PREFIX):
        return None
    choice, _, entry_id = action.removeprefix(EVACUATION_ACTION_PREFIX).partition("_")
    if choice.lower() not in Choice.__members__.values() or not entry_id:
        return None
    return Choice(choice.lower()), entry_id


def notification_id(entry_id: str) -> str:
    """One persistent notification per agent's evacuation; each step replaces the text."""
    return f"{DOMAIN}_evacuation_{entry_id}"


def issue_id(entry_id: str) -> str:
    """One repair issue per agent when isolation could not be undone."""
    return f"{ISSUE_EVACUATION_INCOMPLETE}_{entry_id}"


class Texts:
    """The integration's ``common`` translations in HA's language, formatted by key."""

    def __init__(self, texts: dict[str, str]) -> None:
        """Wrap the flat translation dict."""
        self._texts = texts

    @classmethod
    async def async_load(cls, hass: HomeAssistant) -> Texts:
        """Load (cached by HA after the first call)."""
        return cls(await async_get_translations(hass, hass.config.language, "common", [DOMAIN]))

    def __call__(self, key: str, **placeholders: Any) -> str:
        """The text of ``common.<key>`` with its placeholders filled."""
        return self._texts[f"{_COMMON}{key}"].format(**placeholders)


async def async_notify(
    hass: HomeAssistant,
    entry: ConfigEntry,
    title: str,
    message: str,
    buttons: list[tuple[Choice, str]] | None = None,
) -> None:
    """Persistent notification plus every notify target; failures are logged, not raised."""
    texts = await async_get_translations(hass, hass.config.language, "common", [DOMAIN])
    persistent_notification.async_create(
        hass, f"{message}\n\n{inbox_link(texts)}", title, notification_id(entry.entry_id)
    )
    data: dict[str, Any] = {
        "tag": notification_id(entry.entry_id),
        "group": DOMAIN,
        "url": inbox_url(),
        "clickAction": inbox_url(),
    }
    if buttons:
        data["actions"] = [
            {"action": action_id(choice, entry.entry_id), "title": text} for choice, text in buttons
        ]
    await async_notify_targets(hass, entry, title, message, data, about="evacuation")


def log_entry(hass: HomeAssistant, message: str, entity_id: str | None) -> None:
    """A logbook entry (the logbook integration records ``logbook_entry`` events)."""
    data = {"name": "LAN Guard", "message": message, "domain": DOMAIN}
    if entity_id is not None:
        data["entity_id"] = entity_id
    hass.bus.async_fire(EVENT_LOGBOOK_ENTRY, data)


def create_incomplete_issue(hass: HomeAssistant, entry: ConfigEntry, items: str) -> None:
    """Something stays isolated that could not be undone: the owner must know."""
    ir.async_create_issue(
        hass,
        DOMAIN,
        issue_id(entry.entry_id),
        is_fixable=False,
        is_persistent=True,
        severity=ir.IssueSeverity.ERROR,
        translation_key=ISSUE_EVACUATION_INCOMPLETE,
        translation_placeholders={"agent": entry.data[CONF_AGENT_ID], "items": items},
    )


def delete_incomplete_issue(hass: HomeAssistant, entry: ConfigEntry) -> None:
    """Everything is undone."""
    ir.async_delete_issue(hass, DOMAIN, issue_id(entry.entry_id))
