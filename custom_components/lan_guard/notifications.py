"""Telling the owner: a persistent notification and actionable phone notifications.

Texts come from the translations (``common`` and the event entity's kind names) in HA's
configured language. Phone notifications carry two buttons whose action ids name the verdict
and the event (``LAN_GUARD_NORMAL_<event id>`` / ``LAN_GUARD_ALARM_<event id>``); the
coordinator turns a press (``mobile_app_notification_action``) into a label.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

import voluptuous as vol
from homeassistant.components import persistent_notification
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.translation import async_get_translations

from .allowlist import Allowlist
from .const import (
    ACTION_PREFIX,
    CONF_AGENT_ID,
    CONF_NOTIFY_TARGETS,
    DOMAIN,
    PANEL_URL_PATH,
    Label,
)
from .models import LanGuardEvent, Verdict
from .untrusted import SAMPLE, inert

if TYPE_CHECKING:
    from homeassistant.config_entries import ConfigEntry

_LOGGER = logging.getLogger(__name__)

NOTIFY_DOMAIN = "notify"
_ACTION = re.compile(rf"{ACTION_PREFIX}(NORMAL|ALARM)_([0-9a-f]{{32}})")
_COMMON = f"component.{DOMAIN}.common."
_KIND = f"component.{DOMAIN}.entity.event.activity.state_attributes.event_type.state."


def wanted(event: LanGuardEvent, notify_level: int, allowlist: Allowlist) -> bool:
    """Notification policy for a threat not from a trusted host. While the level rule decides
    (no classifier, or its level prior before enough labels) the owner's notify level does.
    Once the learned model decides, its verdict does: an alarm notifies and an unsure verdict
    asks (both with the buttons), whatever the level; a normal one is only logged."""
    if not event.is_threat or allowlist.contains(event.source):
        return False
    if event.verdict is None or (event.assessment or {}).get("source") == "prior":
        return event.level >= notify_level
    return event.verdict is not Verdict.NORMAL


def action_id(label: Label, event_id: str) -> str:
    """The action id of a notification button."""
    return f"{ACTION_PREFIX}{label.value.upper()}_{event_id}"


def parse_action(action: Any) -> tuple[Label, str] | None:
    """(label, event id) of one of our buttons, None for anyone else's action."""
    if not isinstance(action, str) or (match := _ACTION.fullmatch(action)) is None:
        return None
    return Label(match.group(1).lower()), match.group(2)


def notification_id(incident_id: str) -> str:
    """One persistent notification per incident: later events of it replace the text."""
    return f"{DOMAIN}_{incident_id}"


def inbox_url(event_id: str | None = None) -> str:
    """The owner's inbox (the sidebar panel), opened at one event when given."""
    return f"/{PANEL_URL_PATH}" + (f"?event={event_id}" if event_id else "")


def inbox_link(texts: dict[str, str], event_id: str | None = None) -> str:
    """A markdown link to the inbox: persistent notifications have no buttons, it has."""
    return texts[f"{_COMMON}notify_inbox_link"].format(url=inbox_url(event_id))


def async_dismiss(hass: HomeAssistant, incident_id: str) -> None:
    """Remove the incident's persistent notification (acknowledged)."""
    persistent_notification.async_dismiss(hass, notification_id(incident_id))


async def async_notify(hass: HomeAssistant, entry: ConfigEntry, event: LanGuardEvent) -> None:
    """Persistent notification plus every configured notify target; failures are logged."""
    texts = await async_get_translations(hass, hass.config.language, "common", [DOMAIN])
    kinds = await async_get_translations(hass, hass.config.language, "entity", [DOMAIN])
    title, summary, fields = render(texts, kinds, event, entry.data[CONF_AGENT_ID])
    # An unsure verdict is a question to the owner: the answer teaches the classifier.
    question = [texts[f"{_COMMON}notify_question"]] if event.verdict is Verdict.UNSURE else []
    persistent_notification.async_create(
        hass,
        "\n\n".join(
            [
                summary,
                "\n".join(f"- **{name}**: {value}" for name, value in fields),
                *question,
                inbox_link(texts, event.id),
            ]
        ),
        title,
        notification_id(event.incident_id),
    )
    message = "\n".join([summary, *(f"{name}: {value}" for name, value in fields), *question])
    data = {
        "tag": notification_id(event.incident_id),
        "group": DOMAIN,
        # Tapping the notification opens the inbox at this event (iOS: url, Android: clickAction).
        "url": inbox_url(event.id),
        "clickAction": inbox_url(event.id),
        "actions": [
            {
                "action": action_id(Label.NORMAL, event.id),
                "title": texts[f"{_COMMON}action_normal"],
            },
            {"action": action_id(Label.ALARM, event.id), "title": texts[f"{_COMMON}action_alarm"]},
        ],
    }
    await async_notify_targets(hass, entry, title, message, data, about=f"event {event.id}")


async def async_notify_targets(
    hass: HomeAssistant,
    entry: ConfigEntry,
    title: str,
    message: str,
    data: dict[str, Any],
    *,
    about: str,
) -> None:
    """Call every configured notify target; a failing one is logged (``about`` says what for)."""
    for target in entry.options.get(CONF_NOTIFY_TARGETS, []):
        service = target.removeprefix(f"{NOTIFY_DOMAIN}.")
        try:
            await hass.services.async_call(
                NOTIFY_DOMAIN,
                service,
                {"title": title, "message": message, "data": data},
                blocking=True,
            )
        except (HomeAssistantError, vol.Invalid) as err:
            _LOGGER.warning("Could not notify %s.%s of %s: %s", NOTIFY_DOMAIN, service, about, err)


def render(
    texts: dict[str, str], kinds: dict[str, str], event: LanGuardEvent, agent: str
) -> tuple[str, str, list[tuple[str, str]]]:
    """Title, one-line summary, and (name, value) lines of a notification."""

    def text(key: str, **placeholders: Any) -> str:
        return texts[f"{_COMMON}{key}"].format(**placeholders)

    unknown = text("unknown")
    # Everything the agent reports was chosen by someone on the LAN: shown inert.
    source = {key: inert(source_value) for key, source_value in event.source.items()}
    kind = kinds.get(f"{_KIND}{event.kind.value}", event.kind.value)
    culprit = source.get("hostname") or source.get("ip") or source["mac"]
    title = text("notify_title", kind=kind, level=event.level)
    summary = text("notify_summary", kind=kind, culprit=culprit, agent=agent, level=event.level)
    fields = [
        (text("field_mac"), source["mac"]),
        (text("field_ip"), source.get("ip") or unknown),
        (text("field_vendor"), source.get("vendor") or unknown),
        (text("field_hostname"), source.get("hostname") or unknown),
    ]
    evidence = event.payload["evidence"]
    if ports := evidence.get("ports"):
        fields.append((text("field_ports"), ", ".join(str(port) for port in ports[:20])))
    if (count := evidence.get("target_count")) is not None:
        fields.append((text("field_targets"), str(count)))
    if (sample := evidence.get("sample")) is not None:
        fields.append((text("field_sample"), inert(sample, SAMPLE)))
    if (verdict := event.verdict) is not None:
        value = text(f"verdict_{verdict.value}")
        if isinstance(probability := (event.assessment or {}).get("probability"), float | int):
            value = f"{value} ({probability:.0%})"
        fields.append((text("field_verdict"), value))
    fields.append((text("field_event_id"), event.id))
    return title, summary, fields
