"""The owner's experience end to end: a real ``hass`` process with its frontend, Mosquitto,
the real agent, and headless Chromium clicking through the web UI.

How Home Assistant is started (Python version shim, offline requirements, onboarding) is
described in ``real_hass.py``; the browser's set-up in ``browser.py``. The run writes the
README's screenshots to ``docs/screenshots/``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.broker import Mosquitto, free_port
from tests.browser.browser import CHROMEDRIVER, CHROMIUM, Browser, wait
from tests.browser.real_hass import APPLIANCE, OWNER, PASSWORD, ROOT, RealHass
from tests.captures import first_seconds

pytestmark = [
    pytest.mark.broker,
    pytest.mark.skipif(shutil.which("mosquitto") is None, reason="needs the mosquitto binary"),
    pytest.mark.skipif(
        not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)),
        reason="needs Debian's chromium and chromium-driver (scripts/setup.sh installs them)",
    ),
]

AGENT = "hallway-pi"
STEM = "lan_guard_hallway_pi"  # entity ids of the agent "hallway-pi"
KEY = "browser-test-shared-key-0123"
AGENT_CLI = str(Path(sys.executable).with_name("lan-guard-agent"))
SCREENSHOTS = ROOT / "docs" / "screenshots"
# The demo capture's first 90 s: ARP scan, SYN scan of the node, SMB session (5 events).
ATTACK_SECONDS = 90


def agent(*args: str, env: dict[str, str] | None = None) -> str:
    """The real agent's CLI, run to its end (bounded)."""
    done = subprocess.run(
        [AGENT_CLI, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def replay(capture: Path, broker: Mosquitto) -> None:
    """The agent replays a capture and publishes to the broker, signed."""
    agent(
        "replay",
        str(capture),
        "--agent-id",
        AGENT,
        "--node-ip",
        "192.0.2.10",
        "--no-stdout",
        "--mqtt-host",
        broker.host,
        "--mqtt-port",
        str(broker.port),
        env={
            "LAN_GUARD_MQTT_SHARED_KEY": KEY,
            "LAN_GUARD_MQTT_OUTBOX_PATH": str(capture.with_name("outbox.sqlite")),
        },
    )


@pytest.fixture
def broker() -> Iterator[Mosquitto]:
    with Mosquitto() as running:
        yield running


@pytest.fixture
def home(tmp_path: Path, broker: Mosquitto) -> Iterator[RealHass]:
    """Home Assistant with an owner and its MQTT integration on the test's broker."""
    hass = RealHass(tmp_path, free_port())
    hass.write_config()
    try:
        hass.start()
        hass.onboard_owner()
        mqtt = hass.flow(
            "config_entries/flow", "mqtt", {"broker": broker.host, "port": broker.port}
        )
        assert mqtt["type"] == "create_entry", mqtt
        yield hass
    except BaseException:
        print(hass.output())  # shown by pytest when the test fails
        raise
    finally:
        hass.stop()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    session = Browser(tmp_path / "chromium-profile")
    try:
        yield session
    finally:
        session.quit()


def inbox_rows(browser: Browser) -> list[dict[str, Any]]:
    """The inbox's table as the owner sees it: event id, proposal class, pressed label."""
    rows: list[dict[str, Any]] = browser.driver.execute_script(
        """
        const inbox = arguments[0];
        return [...inbox.shadowRoot.querySelectorAll('tr[data-event-id]')].map((row) => ({
          id: row.dataset.eventId,
          proposal: row.querySelector('[data-role=proposal]')?.className ?? '',
          label: row.querySelector('button[aria-pressed=true]')?.dataset.action ?? null,
        }));
        """,
        browser.deep("lan-guard-inbox"),
    )
    return rows


def inbox_part(browser: Browser, selector: str) -> Any:
    """An element inside the inbox panel's shadow root."""
    inbox = browser.deep("lan-guard-inbox")
    return inbox.shadow_root.find_element("css selector", selector) if inbox else None


def press(browser: Browser, selector: str, what: str) -> None:
    """Click a button of the inbox, again if the panel re-rendered under the pointer."""

    def click() -> bool:
        inbox_part(browser, selector).click()
        return True

    wait(click, 10, what)


def test_the_owner_answers_and_restores_service_from_the_inbox(
    home: RealHass, broker: Mosquitto, browser: Browser, tmp_path: Path
) -> None:
    capture = tmp_path / "demo.pcap"
    agent("generate", "demo", str(capture))
    attack = first_seconds(capture, ATTACK_SECONDS, tmp_path / "attack.pcap")

    # The agent announces itself (retained info): MQTT discovery offers it to the owner.
    replay(attack, broker)
    browser.login(home.url, OWNER, PASSWORD)

    def discovered() -> dict[str, Any] | None:
        flows = browser.call_ws({"type": "config_entries/flow/progress"})
        return next((f for f in flows if f["handler"] == "lan_guard"), None)

    flow = wait(discovered, 30, "the discovery flow")
    assert flow["context"]["source"] == "mqtt"
    browser.get(f"{home.url}/config/integrations/dashboard")
    wait(lambda: "LAN Guard" in browser.text(), 30, "the discovered agent on the dashboard")
    added = home.request("POST", f"/api/config/config_entries/flow/{flow['flow_id']}", {})
    assert added["type"] == "create_entry", added
    entry_id = added["result"]["entry_id"]

    # The owner's options: the signing key, an appliance to isolate, no quarantine backend
    # (a replaying agent has no enforcer).
    options = home.flow(
        "config_entries/options/flow",
        entry_id,
        {
            "notify_level": "2",
            "offline_minutes": 10,
            "signing_key": KEY,
            "evacuation": {"isolate_entities": [APPLIANCE], "quarantine_backend": "none"},
        },
    )
    assert options["type"] == "create_entry", options
    wait(lambda: home.state(f"switch.{STEM}_evacuation_mode"), 30, "the entities")

    # The attack, now heard by Home Assistant: the SYN scan (level 2) starts evacuation.
    replay(attack, broker)
    wait(
        lambda: (
            home.state(f"switch.{STEM}_evacuation_mode")["state"] == "on"
            and home.state(APPLIANCE)["state"] == "off"
        ),
        30,
        "evacuation mode isolating the coffee machine",
    )

    # The device page: every entity of the agent.
    [device] = [
        d
        for d in browser.call_ws({"type": "config/device_registry/list"})
        if ["lan_guard", AGENT] in d["identifiers"]
    ]
    browser.get(f"{home.url}/config/devices/device/{device['id']}")
    wait(lambda: "Evacuation mode" in browser.text(), 30, "the device page")
    browser.screenshot(SCREENSHOTS / "device.png")

    # The notifications link to the inbox, where the buttons are.
    notifications = browser.call_ws({"type": "persistent_notification/get"})
    assert notifications, "no persistent notification"
    assert all("](/lan-guard" in n["message"] for n in notifications), notifications
    wait(lambda: browser.deep("ha-sidebar"), 10, "the sidebar")
    browser.driver.execute_script(
        "arguments[0].dispatchEvent(new CustomEvent('hass-show-notifications',"
        " {bubbles: true, composed: true}))",
        browser.deep("ha-sidebar"),
    )
    wait(lambda: "LAN Guard inbox" in browser.text(browser.deep("ha-notification-drawer")),
         15, "the notification drawer")  # fmt: skip
    browser.screenshot(SCREENSHOTS / "notification.png")

    # The inbox: the attack's five events, unanswered, with the system's proposals.
    browser.get(f"{home.url}/lan-guard")
    rows = wait(lambda: len(inbox_rows(browser)) == 5 and inbox_rows(browser), 30, "the events")
    assert [row["label"] for row in rows] == [None] * 5
    labels = inbox_part(browser, "[data-role=labels]")
    assert labels.get_attribute("data-labels") == "0"
    evacuation = inbox_part(browser, "[data-role=evacuation]")
    assert evacuation.get_attribute("data-phase") == "active"
    browser.screenshot(SCREENSHOTS / "inbox.png")

    # Labelling from the panel reaches the classifier.
    session = next(row for row in rows if "verdict-alarm" in row["proposal"])
    press(browser, f'tr[data-event-id="{session["id"]}"] button[data-action=label-alarm]', "Alarm")
    wait(
        lambda: inbox_part(browser, "[data-role=labels]").get_attribute("data-labels") == "1",
        15,
        "the label count to grow",
    )
    accuracy = home.state(f"sensor.{STEM}_classifier_accuracy")
    assert accuracy is not None and accuracy["attributes"]["labels"] == 1
    assert (
        next(r for r in inbox_rows(browser) if r["id"] == session["id"])["label"] == "label-alarm"
    )

    # Restore from the panel ends the evacuation and switches the appliance back on.
    press(browser, "button[data-action=restore]", "Restore service")
    wait(
        lambda: inbox_part(browser, "[data-role=evacuation]").get_attribute("data-phase") == "idle",
        30,
        "the evacuation to end",
    )
    assert home.state(f"switch.{STEM}_evacuation_mode")["state"] == "off"
    assert home.state(APPLIANCE)["state"] == "on"
