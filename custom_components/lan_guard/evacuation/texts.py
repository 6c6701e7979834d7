"""Every text of evacuation mode: notifications, logbook lines, the repair issue's list.

Texts come from the translations in Home Assistant's language: ``common.evac_<say>_title``
and ``common.evac_<say>_message`` for a notification, ``common.log_<say>`` for a logbook
line (``Say`` in machine.py), ``common.quarantine_<reason>`` for a quarantine outcome and the
event entity's kind names. What the agent or a device reports (MAC, IP, vendor, host name, an
error message, an appliance's name) is shown inert (``untrusted``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers.translation import async_get_translations

from ..const import DOMAIN
from ..untrusted import DETAIL, inert
from .machine import Message, Say
from .record import Culprit, Outcome

_COMMON = f"component.{DOMAIN}.common."
_KINDS = f"component.{DOMAIN}.entity.event.activity.state_attributes.event_type.state."

Names = Callable[[str], str]
"""An entity id -> how the owner knows it, e.g. ``TV (input_boolean.tv)``."""


def who(culprit: Culprit) -> str:
    """``MAC (IP)``: short, for lists."""
    mac = inert(culprit.mac)
    return f"{mac} ({inert(culprit.ip)})" if culprit.ip else mac


class Texts:
    """The integration's ``common`` translations and kind names in HA's language."""

    def __init__(self, common: Mapping[str, str], kinds: Mapping[str, str]) -> None:
        """From the flat translation dicts."""
        self._common = common
        self._kinds = kinds

    @classmethod
    async def async_load(cls, hass: HomeAssistant) -> Texts:
        """Load (cached by HA after the first call)."""
        language = hass.config.language
        return cls(
            await async_get_translations(hass, language, "common", [DOMAIN]),
            await async_get_translations(hass, language, "entity", [DOMAIN]),
        )

    def __call__(self, key: str, **placeholders: Any) -> str:
        """The text of ``common.<key>`` with its placeholders filled."""
        return self._common[f"{_COMMON}{key}"].format(**placeholders)

    def kind(self, kind: str) -> str:
        """The translated name of an event kind."""
        return self._kinds.get(f"{_KINDS}{kind}", kind)

    # ----------------------------------------------------------------- pieces

    def quarantine(self, outcome: Outcome | None, backend: str | None) -> str:
        """What happened to a culprit's quarantine."""
        outcome = outcome or Outcome(False, "no_backend")
        if outcome.ok:
            return self("quarantine_ok", backend=backend or "")
        # The detail may be the agent's own words (its refusal): inert like its reports.
        return self(f"quarantine_{outcome.reason}", detail=inert(outcome.detail, DETAIL))

    def culprit(self, culprit: Culprit) -> str:
        """One culprit with its identity and its quarantine."""
        unknown = self("unknown")
        return self(
            "evac_culprit",
            mac=inert(culprit.mac),
            ip=inert(culprit.ip) or unknown,
            vendor=inert(culprit.vendor) or unknown,
            hostname=inert(culprit.hostname) or unknown,
            quarantine=self.quarantine(culprit.quarantine, culprit.backend),
        )

    def listing(self, items: Iterable[str]) -> str:
        """Comma-separated, or "none"."""
        return ", ".join(items) or self("none")

    def reason(self, message: Message) -> str:
        """Why evacuation started or ended."""
        if message.reason is None:
            return ""
        event = message.event
        detail = (
            self("evac_event", kind=self.kind(event["kind"]), level=event["level"]) if event else ""
        )
        return self(f"evac_reason_{message.reason.value}", event=detail)

    def issue_items(
        self, culprits: Iterable[Culprit], appliances: Iterable[str], name: Names
    ) -> str:
        """What stays isolated: the repair issue's list."""
        return self.listing(
            [self("evac_still_quarantined", culprit=who(culprit)) for culprit in culprits]
            + [name(entity_id) for entity_id in appliances]
        )

    # ----------------------------------------------------------------- whole texts

    def _placeholders(self, message: Message, name: Names, agent: str) -> dict[str, str]:
        culprits = message.culprits
        return {
            "agent": agent,
            "reason": self.reason(message),
            "culprit": who(culprits[0]) if culprits else self("none"),
            "culprits": "\n".join(self.culprit(culprit) for culprit in culprits) or self("none"),
            "lifted": self.listing(who(culprit) for culprit in culprits),
            "appliances": self.listing(name(entity_id) for entity_id in message.appliances),
            "restored": self.listing(name(entity_id) for entity_id in message.appliances),
            "failed": self.listing(name(entity_id) for entity_id in message.failed),
            "items": self.issue_items(message.kept, message.failed, name),
            "state": self.quarantine(culprits[0].quarantine, culprits[0].backend)
            if culprits
            else "",
        }

    def log(self, message: Message, name: Names, agent: str) -> str:
        """The logbook line of ``message``."""
        if message.say is Say.CULPRIT:
            return self.culprit(message.culprits[0])
        return self(f"log_{message.say.value}", **self._placeholders(message, name, agent))

    def notification(self, message: Message, name: Names, agent: str) -> tuple[str, str]:
        """Title and text of the evacuation notification for ``message``."""
        values = self._placeholders(message, name, agent)
        title = self(f"evac_{message.say.value}_title")
        lines = [self(f"evac_{message.say.value}_message", **values)]
        if message.say is Say.STARTED:
            lines.append(self("evac_isolated", appliances=values["appliances"]))
            if message.failed:
                lines.append(self("evac_not_isolated", appliances=values["failed"]))
            lines += [self.culprit(culprit) for culprit in message.culprits] or [
                self("evac_no_culprit")
            ]
        elif message.say in (Say.CULPRIT_ADDED, Say.CULPRIT_BACK, Say.CULPRIT_ISOLATED):
            lines.append(self.culprit(message.culprits[0]))
        return title, "\n".join(lines)
