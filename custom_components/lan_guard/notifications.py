"""Telling the owner about threats: one notification per incident, updated as it grows.

An incident's notification (persistent, and on each phone with the incident as its tag) shows
the incident, not its last event: the highest level, every kind seen, and the most telling
event (the newest at the highest level, e.g. the level-3 session and its data sample) with
its evidence, its verdict, and the **Normal**/**Alarm** buttons for it. Later events replace
it in place. Whether a phone alerts again or is updated silently is one decision,
``push_decision``.

Texts come from the translations (``common`` and the event entity's kind names) in HA's
configured language. Button action ids name the verdict and the event
(``LAN_GUARD_NORMAL_<event id>`` / ``LAN_GUARD_ALARM_<event id>``); the coordinator turns a
press (``mobile_app_notification_action``) into a label. The persistent notification has no
buttons: it links to the owner's inbox, where the event can be answered. Everything the agent
reports was chosen by someone on the LAN: it is shown inert (``untrusted``).
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import voluptuous as vol
from homeassistant.components import persistent_notification
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.translation import async_get_translations

from .allowlist import Allowlist
from .const import (
    ACTION_PREFIX,
    CONF_AGENT_ID,
    CONF_NOTIFY_TARGETS,
    DOMAIN,
    ISSUE_NOTIFY_FAILED,
    PANEL_URL_PATH,
    Kind,
    Label,
)
from .models import IncidentView, LanGuardEvent, Verdict
from .untrusted import SAMPLE, inert

if TYPE_CHECKING:
    from homeassistant.config_entries import ConfigEntry

    from .delivery import Gap
    from .history import EventHistory

_LOGGER = logging.getLogger(__name__)

NOTIFY_DOMAIN = "notify"
# Notify actions that are not a phone: the persistent notification is always created anyway,
# and notify.send_message needs a notify entity (it fails without one).
NOT_PHONES = frozenset({"persistent_notification", "send_message"})
MAX_LISTED = 20  # ports or addresses shown; the rest is "and N more"
_TRACKED_INCIDENTS = 512  # incidents whose pushes are remembered (oldest forgotten first)
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


def inbox_link(texts: Mapping[str, str], event_id: str | None = None) -> str:
    """A markdown link to the inbox: persistent notifications have no buttons, it has."""
    return texts[f"{_COMMON}notify_inbox_link"].format(url=inbox_url(event_id))


def lost_notification_id(entry_id: str) -> str:
    """One notification per agent about lost events: a later loss updates it."""
    return f"{DOMAIN}_lost_{entry_id}"


async def async_notify_lost(
    hass: HomeAssistant, entry: ConfigEntry, gaps: list[Gap], total: int
) -> None:
    """Tell the owner that events of the agent are gone for good (persistent notification)."""
    texts = await async_get_translations(hass, hass.config.language, "common", [DOMAIN])
    lines = [
        texts[f"{_COMMON}lost_range"].format(count=gap.count, first=gap.first, last=gap.last)
        for gap in gaps
    ]
    message = texts[f"{_COMMON}lost_message"].format(agent=entry.data[CONF_AGENT_ID], total=total)
    persistent_notification.async_create(
        hass,
        "\n".join([message, "", *(f"- {line}" for line in lines)]),
        texts[f"{_COMMON}lost_title"],
        lost_notification_id(entry.entry_id),
    )


def async_dismiss(hass: HomeAssistant, incident_id: str) -> None:
    """Remove the incident's persistent notification (acknowledged)."""
    persistent_notification.async_dismiss(hass, notification_id(incident_id))


def phone_targets(hass: HomeAssistant) -> list[str]:
    """The notify actions that can reach a phone, the companion app's (``mobile_app_*``) first."""
    names = [
        name
        for name in hass.services.async_services_for_domain(NOTIFY_DOMAIN)
        if name not in NOT_PHONES
    ]
    return sorted(names, key=lambda name: (not name.startswith("mobile_app_"), name))


# --------------------------------------------------------------------- the incident


class Delivery(StrEnum):
    """How a phone gets an incident's notification."""

    PUSH = "push"  # alert the owner
    SILENT = "silent"  # replace the shown notification without a sound


def push_decision(pushed_level: int | None, view: IncidentView) -> Delivery:
    """The push policy: alert when an incident is first notified and each time its highest
    level rises; any other news updates the notification in place, silently.

    ``pushed_level`` is the highest level pushed for the incident so far (None: never)."""
    if pushed_level is None or view.level > pushed_level:
        return Delivery.PUSH
    return Delivery.SILENT


@dataclass(frozen=True, slots=True)
class Rendered:
    """An incident's notification as text."""

    title: str
    summary: str
    fields: list[tuple[str, str]]
    question: str | None  # asked when the verdict is unsure
    answer: str  # where to answer: the persistent notification has no buttons, the inbox has


class IncidentNotifier:
    """Notifies the owner of one agent's incidents (an event listener of the coordinator)."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry,
        history: EventHistory,
        notify_level: int,
        allowlist: Allowlist,
    ) -> None:
        """Nothing is sent until an event comes."""
        self.hass = hass
        self.entry = entry
        self.history = history
        self.notify_level = notify_level
        self.allowlist = allowlist
        self._pushed: OrderedDict[str, int] = OrderedDict()

    @callback
    def async_event(self, event: LanGuardEvent) -> None:
        """An accepted event: notify if the policy wants it."""
        if wanted(event, self.notify_level, self.allowlist):
            # After the event is fully accepted (entities, bus event), as evacuation.
            self.entry.async_create_task(
                self.hass,
                self.async_notify(event),
                f"{DOMAIN} notify {event.id}",
                eager_start=False,
            )

    async def async_notify(self, event: LanGuardEvent) -> None:
        """Create or replace the notification of ``event``'s incident; failures are logged."""
        hass = self.hass
        view = IncidentView.of(self.history.incident(event.incident_id) or [event])
        if view is None:  # pragma: no cover - only threats are wanted
            return
        delivery = push_decision(self._pushed.get(view.incident_id), view)
        if delivery is Delivery.PUSH:
            self._pushed[view.incident_id] = view.level
            self._pushed.move_to_end(view.incident_id)
            while len(self._pushed) > _TRACKED_INCIDENTS:
                self._pushed.popitem(last=False)
        texts = await async_get_translations(hass, hass.config.language, "common", [DOMAIN])
        kinds = await async_get_translations(hass, hass.config.language, "entity", [DOMAIN])
        shown = render(texts, kinds, view, self.entry.data[CONF_AGENT_ID])
        question = [shown.question] if shown.question else []
        persistent_notification.async_create(
            hass,
            "\n\n".join(
                [
                    shown.summary,
                    "\n".join(f"- **{name}**: {value}" for name, value in shown.fields),
                    *question,
                    shown.answer,
                ]
            ),
            shown.title,
            notification_id(view.incident_id),
        )
        message = "\n".join(
            [shown.summary, *(f"{name}: {value}" for name, value in shown.fields), *question]
        )
        headline = view.headline
        data: dict[str, Any] = {
            "tag": notification_id(view.incident_id),
            "group": DOMAIN,
            # Tapping the notification opens the inbox at this event (iOS: url, Android:
            # clickAction).
            "url": inbox_url(headline.id),
            "clickAction": inbox_url(headline.id),
            "actions": [
                {
                    "action": action_id(label, headline.id),
                    "title": texts[f"{_COMMON}action_{label.value}"],
                }
                for label in (Label.NORMAL, Label.ALARM)
            ],
        }
        if delivery is Delivery.SILENT:
            # Android: no sound for an update of a shown notification; iOS: no alert.
            data |= {"alert_once": True, "push": {"interruption-level": "passive"}}
        await async_notify_targets(hass, self.entry, shown.title, message, data, about=headline.id)


async def async_notify_targets(
    hass: HomeAssistant,
    entry: ConfigEntry,
    title: str,
    message: str,
    data: dict[str, Any],
    *,
    about: str,
) -> None:
    """Call every configured notify target. A failing one is logged and raises a repair
    issue (the owner would otherwise never know); it goes once every target worked."""
    failed: list[str] = []
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
            failed.append(f"{NOTIFY_DOMAIN}.{service} ({err})")
    issue = f"{ISSUE_NOTIFY_FAILED}_{entry.entry_id}"
    if not failed:
        ir.async_delete_issue(hass, DOMAIN, issue)
        return
    ir.async_create_issue(
        hass,
        DOMAIN,
        issue,
        is_fixable=False,
        severity=ir.IssueSeverity.WARNING,
        translation_key=ISSUE_NOTIFY_FAILED,
        translation_placeholders={"agent": entry.data[CONF_AGENT_ID], "targets": ", ".join(failed)},
    )


# --------------------------------------------------------------------- texts


def render(
    texts: Mapping[str, str], kinds: Mapping[str, str], view: IncidentView, agent: str
) -> Rendered:
    """An incident's notification in the owner's language."""

    def text(key: str, **placeholders: Any) -> str:
        return texts[f"{_COMMON}{key}"].format(**placeholders)

    def kind_name(kind: str) -> str:
        return kinds.get(f"{_KIND}{kind}", kind)

    event = view.headline
    unknown = text("unknown")
    # Everything the agent reports was chosen by someone on the LAN: shown inert.
    source = {key: inert(value) for key, value in event.source.items() if value is not None}
    kind = kind_name(event.kind.value)
    culprit = source.get("hostname") or source.get("ip") or source["mac"]
    title = text("notify_title", kind=kind, level=view.level)
    summary = text("notify_summary", kind=kind, culprit=culprit, agent=agent, level=view.level)
    others = [kind_name(other) for other in view.kinds if other != event.kind.value]
    if others:
        summary = f"{summary} {text('notify_also', kinds=', '.join(others))}"
    fields = [
        (text("field_mac"), source["mac"]),
        (text("field_ip"), source.get("ip") or unknown),
        (text("field_vendor"), source.get("vendor") or unknown),
        (text("field_hostname"), source.get("hostname") or unknown),
        *_evidence(text, event.kind, event.payload["evidence"]),
    ]
    if (verdict := event.verdict) is not None:
        value = text(f"verdict_{verdict.value}")
        if isinstance(probability := (event.assessment or {}).get("probability"), float | int):
            value = f"{value} ({probability:.0%})"
        fields.append((text("field_verdict"), value))
    fields.append((text("field_event_id"), event.id))
    question = text("notify_question") if event.verdict is Verdict.UNSURE else None
    return Rendered(title, summary, fields, question, inbox_link(texts, event.id))


# Kinds whose target_count counts ports of the node; kinds that list what they counted.
_PORT_SCANS = frozenset({Kind.SYN_SCAN, Kind.STEALTH_SCAN, Kind.UDP_SCAN})
_SPOOFS = frozenset({Kind.ARP_SPOOF, Kind.NDP_SPOOF})
_COUNTED_IN_LIST = {
    Kind.CACHE_EXHAUSTION: "claimed",
    Kind.ECHONET_CONTROL: "objects",
    Kind.ECHONET_SWEEP: "objects",
}


def _evidence(
    text: Callable[..., str], kind: Kind, evidence: Mapping[str, Any]
) -> list[tuple[str, str]]:
    """The evidence that tells what happened, each with the label it deserves."""
    fields: list[tuple[str, str]] = []
    count = evidence.get("target_count")
    port = evidence.get("port")

    def listed(key: str, label: str, total: int = 0) -> None:
        if isinstance(items := evidence.get(key), list) and items:
            shown = [inert(item) for item in items]
            fields.append((text(label), _cut(text, shown, max(len(items), total))))

    # A session names its one port twice (port, ports): said once.
    if (ports := evidence.get("ports")) and ports != [port]:
        total = max(len(ports), count or 0) if kind in _PORT_SCANS else len(ports)
        fields.append((text("field_ports"), _cut(text, [str(port) for port in ports], total)))
    if port is not None:
        fields.append((text("field_port"), str(port)))
    listed("techniques", "field_techniques")
    if count is not None and kind not in _COUNTED_IN_LIST:
        # A port scan counts the ports it probed, an ARP scan the addresses it asked for.
        key = "field_ports_probed" if kind in _PORT_SCANS else "field_targets"
        fields.append((text(key), str(count)))
    if targets := evidence.get("targets"):
        total = max(len(targets), count or 0)
        fields.append((text("field_addresses"), _cut(text, [inert(t) for t in targets], total)))
    if used := evidence.get("addresses"):
        # A spray: one sender, many addresses claimed or forged.
        total = max(len(used), evidence.get("address_count") or 0)
        fields.append((text("field_addresses_used"), _cut(text, [inert(a) for a in used], total)))
    if (counted := _COUNTED_IN_LIST.get(kind)) == "claimed":
        listed("claimed", "field_addresses_used", count or 0)
    # Scans from forged sources: the culprit is the MAC's own address, the rest decoys.
    listed("forged_ips", "field_forged_ips")
    if evidence.get("via_gateway") is True:
        listed("source_ips", "field_via_gateway")
    if kind in _SPOOFS and (ip := evidence.get("ip")) is not None:
        fields.append((text("field_claimed_ip"), inert(ip)))
        if old := evidence.get("old_mac"):
            fields.append((text("field_old_mac"), inert(old)))
    if kind is Kind.ROGUE_RA:
        listed("prefixes", "field_prefixes")
        if old := evidence.get("old_mac"):
            fields.append((text("field_router_mac"), inert(old)))
    if kind is Kind.ROGUE_DHCP:
        listed("routers", "field_routers_offered")
        listed("dns", "field_dns_offered")
        if old := evidence.get("old_mac"):
            fields.append((text("field_dhcp_server_mac"), inert(old)))
    if (clients := evidence.get("client_count")) is not None:
        fields.append((text("field_clients"), str(clients)))
    listed("services", "field_echonet_services")
    if counted == "objects":
        listed("objects", "field_echonet_objects", count or 0)
    if evidence.get("slow") is True and isinstance(
        horizon := evidence.get("horizon_s"), int | float
    ):
        fields.append((text("field_slow"), text("minutes", minutes=f"{horizon / 60:g}")))
    if (rate := evidence.get("rate")) is not None and kind is Kind.FLOOD:
        fields.append((text("field_rate"), f"{rate:g}"))
    if (sample := evidence.get("sample")) is not None:
        fields.append((text("field_sample"), inert(sample, SAMPLE)))
    return fields


def _cut(text: Callable[..., str], items: list[str], total: int) -> str:
    """The first ``MAX_LISTED`` items, and how many more there are."""
    shown = ", ".join(items[:MAX_LISTED])
    more = total - min(len(items), MAX_LISTED)
    return text("and_more", items=shown, count=more) if more > 0 else shown
