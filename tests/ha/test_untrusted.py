"""Text from the network is shown inert: a corpus of injections through every rendering path.

The oracle is a real CommonMark renderer with HTML and link detection on (markdown-it-py
with linkify, stricter than the frontend's GFM: it also links bare domains and e-mail
addresses) for what Home Assistant renders as Markdown, and an HTML parser plus the same
link detector for what phones and the logbook show as text. Every path runs in English and
Japanese; benign names must still read as they are.
"""

from __future__ import annotations

import json
import unicodedata
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from homeassistant.components import persistent_notification
from homeassistant.config_entries import SOURCE_MQTT
from homeassistant.const import EVENT_LOGBOOK_ENTRY
from homeassistant.core import HomeAssistant, ServiceCall
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.service_info.mqtt import MqttServiceInfo
from homeassistant.setup import async_setup_component
from linkify_it import LinkifyIt
from markdown_it import MarkdownIt
from pytest_homeassistant_custom_component.common import (
    async_capture_events,
    async_mock_service,
)

from custom_components.lan_guard import untrusted
from custom_components.lan_guard.const import CONF_NOTIFY_TARGETS, DOMAIN
from custom_components.lan_guard.evacuation.runner import issue_id
from custom_components.lan_guard.evacuation.runner import notification_id as evac_id
from custom_components.lan_guard.notifications import inbox_url, notification_id
from custom_components.lan_guard.untrusted import inert, printable

from .conftest import example, make_entry, make_event, publish, setup_entry, unload
from .evacuation_fixtures import HEATER, PHONE, SWITCH, TV, setup_evacuation

pytestmark = pytest.mark.usefixtures("mqtt_mock")
TRANSLATIONS = Path(__file__).resolve().parents[2] / "custom_components/lan_guard/translations"
LANGUAGES = ["en", "ja"]
INBOX = inbox_url()

INJECTIONS = [
    "[Restore service](https://example.invalid/x)",
    "![x](https://example.invalid/x.png)",
    "[Restore][1]\n\n[1]: https://example.invalid/x",
    "<https://example.invalid/login>",
    "<support@example.invalid>",
    "https://example.invalid/restore?now=1",
    "ftp://example.invalid/x",
    "//example.invalid/x",
    "www.example.invalid",
    "Call support: evil.com or help@evil.com",
    "<img src=x onerror=alert(1)>",
    '<a href="https://example.invalid">Restore</a>',
    "<script>alert(1)</script>",
    "<!-- hidden --> visible",
    "&lt;b&gt; &#x202E; &#60;img&#62; &amp;",
    "kids\u202elaptop.exe",  # right-to-left override
    "\u2066isolated\u2069 \u200f\u061c",
    "zero\u200bwidth\u2060joiner\ufeff\u00ad",
    "tag\U000e0041\U000e0042",
    "line1\nline2\r\n- [link](https://example.invalid)\n# Heading\n> quote",
    "`code` **bold** ~~gone~~ _em_ *em* \\*",
    "| a | b |\n|---|---|\n| c | d |",
    "javascript:alert(1)",
    "悪意のある[リンク](https://example.invalid)を<b>クリック</b>",
    "A" * 255,
]
# Benign names that must read exactly as they are.
BENIGN = [
    "kids-laptop",
    "ゆきのiPhone",
    "ESP_3C61A5",
    "Hon Hai Precision Ind. Co.,Ltd.",
    "Yuki's iPad (2)",
    "192.168.1.23",
    "リビングのテレビ",
]


class _Html(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.links: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        self.tags.append(tag)
        if tag == "a":
            self.links.append(dict(attrs).get("href") or "")

    def handle_startendtag(self, tag: str, attrs: Any) -> None:
        self.tags.append(tag)

    def handle_comment(self, data: str) -> None:
        self.tags.append("!--")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def html_of(text: str) -> _Html:
    parser = _Html()
    parser.feed(text)
    parser.close()
    return parser


_MARKDOWN = MarkdownIt("commonmark", {"html": True, "linkify": True, "breaks": True}).enable(
    ["linkify", "strikethrough", "table"]
)
_MARKDOWN.linkify.set({"fuzzy_email": True})
_LINKS = LinkifyIt().set({"fuzzy_email": True})


def hidden(text: str) -> list[str]:
    """Control and format characters (bidi overrides, zero-width ...), line breaks aside."""
    return [c for c in text if c != "\n" and unicodedata.category(c) in ("Cc", "Cf")]


def _without_own(text: str) -> str:
    """The owner's own entity ids (``input_boolean.tv`` looks like a domain) are not from
    the network: leave them out of the link check."""
    return text.replace(TV, "TV_ENTITY").replace(HEATER, "HEATER_ENTITY")


def assert_inert_markdown(markdown: str, template_tags: set[str]) -> None:
    """Rendered as the frontend would: only our template's own tags, no link, nothing hidden."""
    rendered = html_of(_MARKDOWN.render(_without_own(markdown)))
    # The one link a template has: to the owner's own inbox.
    links = [href.partition("?")[0] for href in rendered.links]
    assert set(links) <= {INBOX} and len(links) <= 1, (markdown, links)
    assert set(rendered.tags) - {"a"} <= template_tags, (markdown, rendered.tags)
    assert hidden("".join(rendered.text)) == [], markdown


def assert_inert_text(text: str) -> None:
    """Shown as text (iOS), as HTML (Android) or in the logbook: no tag, entity, link, hidden."""
    parsed = html_of(text)
    assert parsed.tags == [], text
    assert "".join(parsed.text) == text, text  # no entity was decoded
    assert not _LINKS.test(_without_own(text)), (text, _LINKS.match(_without_own(text)))
    assert hidden(text) == [], text


def test_inert_keeps_benign_names_and_bounds_the_rest() -> None:
    for name in BENIGN:
        assert inert(name) == name
        assert printable(name) == name
    long = inert("A" * 255)
    assert long == "A" * (untrusted.NAME - 1) + "…"
    assert inert(None) == ""
    assert inert("a\n\n\tb  c") == "a b c"
    assert printable("line1\nfake log line\u202e") == "line1 fake log line\ufffd"
    assert inert("kids\u202elaptop") == "kids\ufffdlaptop"  # visibly not what it looks like
    for text in INJECTIONS:
        shown = inert(text, 300)
        assert_inert_text(shown)
        assert_inert_markdown(shown, {"p"})


def hostile_event(text: str, kind: str = "session") -> dict[str, Any]:
    event = make_event(kind=kind, level=3)
    event["source"].update(hostname=text[:255], vendor=text[::-1][:255])
    if kind == "session":
        event["evidence"]["sample"] = text[:256]
    return event


@pytest.mark.parametrize("language", LANGUAGES)
async def test_event_notifications(hass: HomeAssistant, language: str) -> None:
    hass.config.language = language
    phone = async_mock_service(hass, "notify", PHONE)
    entry = await setup_entry(hass, make_entry(**{CONF_NOTIFY_TARGETS: [f"notify.{PHONE}"]}))
    events = [hostile_event(text) for text in INJECTIONS]
    benign = [hostile_event(name) for name in BENIGN]
    for event in [*events, *benign]:
        publish(hass, "event", event)
    await hass.async_block_till_done()
    notes = persistent_notification._async_get_or_create_notifications(hass)
    assert len(notes) == len(phone) == len(events) + len(benign)
    lines = {len(call.data["message"].splitlines()) for call in phone}
    assert len(lines) == 1  # a newline in a name adds no line
    for call in phone:
        assert_inert_text(call.data["title"])
        assert_inert_text(call.data["message"])
    for event in events:
        note = notes[notification_id(event["incident_id"])]
        assert_inert_markdown(note["message"], {"ul", "li", "strong", "p"})
        assert_inert_markdown(note["title"], {"p"})
    for name, event in zip(BENIGN, benign, strict=True):
        message = notes[notification_id(event["incident_id"])]["message"]
        assert name in message
        assert name[::-1] in message  # the vendor
        [call] = [c for c in phone if event["id"] in c.data["message"]]
        assert f": {name}" in call.data["message"]
    # The raw values stay in the data: attributes and the bus event are not markup.
    culprit = hass.states.get("sensor.lan_guard_pi_livingroom_last_culprit")
    assert culprit.attributes["hostname"] == benign[-1]["source"]["hostname"]
    stored = entry.runtime_data.coordinator.history.get(events[0]["id"])
    assert stored.source["hostname"] == INJECTIONS[0]
    await unload(hass, entry)


def _ours(calls: list[ServiceCall]) -> list[ServiceCall]:
    return [c for c in calls if c.data["data"]["tag"].startswith(f"{DOMAIN}_evacuation_")]


@pytest.mark.parametrize("language", LANGUAGES)
async def test_evacuation_notifications_logbook_and_repair(
    hass: HomeAssistant, mqtt_mock: Any, language: str
) -> None:
    hass.config.language = language
    name = "<b>TV</b> [Restore](https://example.invalid) \u202e"
    assert await async_setup_component(
        hass,
        "input_boolean",
        {"input_boolean": {"tv": {"name": name, "initial": True}, "heater": {"initial": False}}},
    )
    logbook = async_capture_events(hass, EVENT_LOGBOOK_ENTRY)
    entry, manager, agent, phone = await setup_evacuation(hass, mqtt_mock)
    # The agent refuses with words of its own: they are shown inert too.
    agent.answer = "refuse"
    agent.error = "nft: see https://example.invalid/fix <img src=x onerror=alert(1)>\nok"
    publish(hass, "event", hostile_event("[Restore service](https://example.invalid/x)\u202e"))
    await hass.async_block_till_done()
    assert hass.states.get(SWITCH).state == "on"
    # The culprit is gone; a second culprit is quarantined, then its release refused.
    await manager.async_stop()
    agent.answer = "ok"
    publish(hass, "event", hostile_event("<img src=x onerror=alert(1)>", kind="syn_scan"))
    await hass.async_block_till_done()
    agent.answer = "refuse"
    await manager.async_stop()
    await hass.async_block_till_done()

    issue = ir.async_get(hass).async_get_issue(DOMAIN, issue_id(entry.entry_id))
    assert issue is not None
    texts = json.loads((TRANSLATIONS / f"{language}.json").read_text(encoding="utf-8"))
    description = texts["issues"]["evacuation_incomplete"]["description"]
    assert_inert_markdown(description.format(**issue.translation_placeholders), {"p", "code"})
    note = persistent_notification._async_get_or_create_notifications(hass)[evac_id(entry.entry_id)]
    assert_inert_markdown(note["message"], {"p", "br"})
    messages = [call.data["message"] for call in _ours(phone)]
    assert len(messages) >= 4  # started twice, restored, not fully undone
    for message in messages:
        assert_inert_markdown(message, {"p", "br"})  # also the persistent one of each step
        assert_inert_text(message)
    entries = [event.data["message"] for event in logbook]
    assert any("\uff1cb\uff1eTV" in entry for entry in entries)  # the appliance's name
    assert any("nft: see https\uff1a//example\uff0einvalid" in m for m in messages)
    for message in entries:
        assert_inert_text(message)
    assert hass.states.get(HEATER).state == "off"
    assert hass.states.get(TV).state == "on"
    await unload(hass, entry)


@pytest.mark.parametrize("language", LANGUAGES)
async def test_discovery_dialog(hass: HomeAssistant, language: str) -> None:
    hass.config.language = language
    info = {
        **example("info"),
        "version": "[Update now](https://example.invalid/update)",
        "interface": "eth0` <img src=x onerror=alert(1)> `",
    }
    result = await hass.config_entries.flow.async_init(
        DOMAIN,
        context={"source": SOURCE_MQTT},
        data=MqttServiceInfo(
            topic="lan_guard/pi-livingroom/info",
            payload=json.dumps(info),
            qos=1,
            retain=True,
            subscribed_topic="lan_guard/+/info",
            timestamp=0,
        ),
    )
    assert result["step_id"] == "discovery_confirm"
    texts = json.loads((TRANSLATIONS / f"{language}.json").read_text(encoding="utf-8"))
    description = texts["config"]["step"]["discovery_confirm"]["description"]
    shown = description.format(**result["description_placeholders"])
    assert_inert_markdown(shown, {"p", "strong", "code"})
    assert "pi-livingroom" in shown
