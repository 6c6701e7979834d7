"""Headless Chromium driven by Selenium, as a person would use Home Assistant's web UI.

No pytest in here. Debian's ``chromium`` and ``chromedriver`` (paths explicit, so Selenium
Manager looks nothing up and downloads nothing), a fresh profile per run, and every host name
resolving to nothing but 127.0.0.1: the page can reach the test's Home Assistant and nothing
else. Home Assistant's frontend is made of web components, so elements are found with a
query that walks every shadow root (``deep``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
T = TypeVar("T")

FLAGS = (
    "--headless=new",
    "--no-sandbox",  # we run as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-dev-shm-usage",
    "--window-size=1400,1000",
    "--lang=en-US",
    # Only the test's own server: any host name but 127.0.0.1 fails to resolve.
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
)

# The first element matching a CSS selector in the document or any shadow root under it
# (breadth first), optionally below a given element.
_DEEP = """
const [selector, start] = arguments;
const queue = [start ? (start.shadowRoot || start) : document];
while (queue.length) {
  const root = queue.shift();
  const found = root.querySelector(selector);
  if (found) return found;
  for (const node of root.querySelectorAll('*')) if (node.shadowRoot) queue.push(node.shadowRoot);
}
return null;
"""
# All text of the page, shadow roots included (what a person can read).
_TEXT = """
const parts = [];
const walk = (root) => {
  for (const node of root.childNodes) {
    if (node.nodeType === Node.TEXT_NODE) parts.push(node.textContent);
    else if (node.nodeType === Node.ELEMENT_NODE) {
      if (node.shadowRoot) walk(node.shadowRoot);
      if (!['STYLE', 'SCRIPT'].includes(node.tagName)) walk(node);
    }
  }
};
walk(arguments[0] ? (arguments[0].shadowRoot || arguments[0]) : document.body);
return parts.join(' ').replace(/\\s+/g, ' ');
"""
# hass.callWS as the logged-in page does it (the frontend's own connection).
_CALL_WS = """
const [message, done] = arguments;
document.querySelector('home-assistant').hass.callWS(message)
  .then((result) => done({result}), (error) => done({error: String(error.message || error)}));
"""


class Browser:
    """One headless Chromium session (see the module docstring)."""

    def __init__(self, profile: Path) -> None:
        options = Options()
        options.binary_location = CHROMIUM
        for flag in (*FLAGS, f"--user-data-dir={profile}"):
            options.add_argument(flag)
        self.driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
        self.driver.set_script_timeout(30)

    def quit(self) -> None:
        self.driver.quit()

    def get(self, url: str) -> None:
        self.driver.get(url)

    def deep(self, selector: str, under: WebElement | None = None) -> WebElement | None:
        """The first element matching ``selector``, looking into every shadow root."""
        found: WebElement | None = self.driver.execute_script(_DEEP, selector, under)
        return found

    def text(self, under: WebElement | None = None) -> str:
        """The readable text of the page (or of one element), shadow roots included."""
        text: str = self.driver.execute_script(_TEXT, under)
        return text

    def call_ws(self, message: dict[str, Any]) -> Any:
        """A websocket command through the page's own authenticated connection."""
        answer = self.driver.execute_async_script(_CALL_WS, message)
        if "error" in answer:
            raise RuntimeError(f"{message['type']}: {answer['error']}")
        return answer["result"]

    def screenshot(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.driver.save_screenshot(str(path))

    def login(self, url: str, username: str, password: str) -> None:
        """Home Assistant's own login page, filled in and sent with Enter."""
        self.get(f"{url}/")
        user = wait(lambda: self.deep('input[autocomplete="username"], input[name="username"]'),
                    30, "the login form")  # fmt: skip
        secret = wait(lambda: self.deep('input[type="password"]'), 10, "the password field")
        user.send_keys(username)
        secret.send_keys(password, Keys.ENTER)
        wait(
            lambda: "/auth/" not in self.driver.current_url and self.deep("ha-sidebar"),
            30,
            "the home page after logging in",
        )


def wait(probe: Callable[[], T | bool | None], within: float, what: str) -> T:
    """Poll ``probe`` until it returns something true; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    last_error: Exception | None = None
    while True:
        try:
            result = probe()
        except Exception as err:  # the page is between two states: ask again
            result, last_error = None, err
        if result:
            return result  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what} ({last_error})")
        time.sleep(0.2)
