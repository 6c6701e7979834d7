"""A real ``hass`` process for tests: its own config folder, an owner, the HTTP API.

No pytest in here. ``RealHass(tmp_dir, broker_port)`` writes a minimal configuration
(``frontend``, ``http`` on a free port of 127.0.0.1, an appliance to isolate; no
``default_config``, so nothing reaches outside this machine), copies the integration into
``custom_components`` as HACS would, and starts Home Assistant from this venv:

- Home Assistant 2026.2 refuses Python older than 3.13.2 in ``__main__.validate_python``;
  this machine has 3.13.0, so the process runs a two-line shim that lowers that module's
  ``REQUIRED_PYTHON_VER`` to the running version and calls ``homeassistant.__main__.main()``,
  with the same arguments as ``hass``.
- Requirements are checked as for a user, but offline (``PIP_NO_INDEX``/``UV_OFFLINE``): a
  requirement the venv does not meet fails the start instead of downloading anything.
- Onboarding: the steps other than the owner are marked done in storage before the start
  (the core-config step would set up integrations that go on the internet), then the owner
  is created through the onboarding API and a token fetched as the frontend does.

``stop()`` sends SIGTERM to the PID it started, then SIGKILL after a bound.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
OWNER, PASSWORD = "owner", "lan-guard-test-password"
APPLIANCE = "input_boolean.coffee_machine"

SHIM = (
    "import sys, homeassistant.__main__ as m; "
    "m.REQUIRED_PYTHON_VER = sys.version_info[:3]; "
    "sys.exit(m.main())"
)

CONFIGURATION = """\
homeassistant:
  name: LAN Guard test home
  unit_system: metric
  time_zone: UTC
  country: JP
  latitude: 35.68
  longitude: 139.76
  elevation: 0
frontend:
http:
  server_host: {host}
  server_port: {port}
logger:
  default: warning
  logs:
    custom_components.lan_guard: info
input_boolean:
  coffee_machine:
    name: Coffee machine
    initial: true
"""


class RealHass:
    """One Home Assistant process on 127.0.0.1 (see the module docstring)."""

    def __init__(self, directory: Path, port: int) -> None:
        self.config = directory / "config"
        self.port = port
        self.url = f"http://{HOST}:{port}"
        self.client_id = f"{self.url}/"
        self.token: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = directory / "hass.out"

    # ----------------------------------------------------------------- life cycle

    def write_config(self) -> None:
        """configuration.yaml, the integration as HACS installs it, onboarding but the owner."""
        (self.config / ".storage").mkdir(parents=True, exist_ok=True)
        (self.config / "configuration.yaml").write_text(
            CONFIGURATION.format(host=HOST, port=self.port), encoding="utf-8"
        )
        shutil.copytree(
            ROOT / "custom_components" / "lan_guard",
            self.config / "custom_components" / "lan_guard",
            ignore=shutil.ignore_patterns("__pycache__"),
        )
        onboarding = {
            "version": 4,
            "minor_version": 1,
            "key": "onboarding",
            "data": {"done": ["core_config", "analytics", "integration"]},
        }
        (self.config / ".storage" / "onboarding").write_text(
            json.dumps(onboarding), encoding="utf-8"
        )

    def start(self, timeout: float = 120.0) -> None:
        """Start and wait until the HTTP API answers."""
        env = {
            **os.environ,
            "PYTHONDONTWRITEBYTECODE": "1",
            "PIP_NO_INDEX": "1",
            "UV_OFFLINE": "1",
        }
        with self._log.open("ab") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-c", SHIM, "--config", str(self.config), "--log-no-color"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"hass exited at start-up:\n{self.output()}")
            try:
                self.request("GET", "/api/onboarding", auth=False)
                return
            except (OSError, urllib.error.URLError):
                time.sleep(0.5)
        self.stop()  # a process that never answered must not outlive the test
        raise RuntimeError(f"hass did not answer within {timeout} s:\n{self.output()}")

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (a clean shutdown writes storage), SIGKILL if it does not end in time."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()

    def output(self) -> str:
        """What the process printed (its log)."""
        return self._log.read_text(encoding="utf-8", errors="replace")[-20000:]

    # ----------------------------------------------------------------- the owner

    def onboard_owner(self) -> None:
        """Create the owner through the onboarding API and keep an access token."""
        answer = self.request(
            "POST",
            "/api/onboarding/users",
            {
                "client_id": self.client_id,
                "name": "Owner",
                "username": OWNER,
                "password": PASSWORD,
                "language": "en",
            },
            auth=False,
        )
        tokens = self.request(
            "POST",
            "/auth/token",
            form={
                "grant_type": "authorization_code",
                "code": answer["auth_code"],
                "client_id": self.client_id,
            },
            auth=False,
        )
        self.token = tokens["access_token"]

    # ----------------------------------------------------------------- HTTP API

    def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        form: dict[str, str] | None = None,
        auth: bool = True,
    ) -> Any:
        """One REST call to this process (127.0.0.1 only); the decoded JSON answer."""
        headers = {}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        elif form is not None:
            data = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if auth:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.url + path, data, headers, method=method)
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def state(self, entity_id: str) -> dict[str, Any] | None:
        """An entity's state as the REST API gives it, None when it does not exist."""
        try:
            result: dict[str, Any] = self.request("GET", f"/api/states/{entity_id}")
        except urllib.error.HTTPError as err:
            if err.code == 404:
                return None
            raise
        return result

    def flow(self, kind: str, handler: str, user_input: dict[str, Any]) -> dict[str, Any]:
        """Start a config or options flow and submit its first form (``kind``: the API's
        ``config_entries/flow`` or ``config_entries/options/flow``)."""
        form = self.request("POST", f"/api/config/{kind}", {"handler": handler})
        result: dict[str, Any] = self.request(
            "POST", f"/api/config/{kind}/{form['flow_id']}", user_input
        )
        return result
