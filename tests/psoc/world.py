"""The PSOC's end-to-end world, all real:

- the PSOC broker (mosquitto, TLS, per-site passwords and the ACL ``site add`` wrote);
- site brokers, each bridged to it with the configuration ``site add`` printed;
- PostgreSQL, a ``lan-guard-psoc worker`` and a ``lan-guard-psoc console`` process;
- at each site, a real ``lan-guard-agent replay`` of the demo capture, started on demand;
- at each site, its Home Assistant side: the real integration, which the caller runs
  in-process and connects to ``site.broker`` (``tests/ha/test_psoc_e2e.py``), or, for a site
  that refuses its provider, ``ha_double`` (a test double answering as the integration does).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from sensor_agent.synth import NODE, ROUTER, demo_frames, write_pcap
from tests.broker import BrokerTls, Mosquitto, free_port, make_pki
from tests.psoc.ha_double import HomeAssistantDouble

PSOC = [sys.executable, "-m", "psoc.cli"]
PASSWORD = "correct horse battery"


def run_psoc(db_url: str, *args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [*PSOC, "--db", db_url, "--log-level", "WARNING", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
        timeout=60,
    )
    if done.returncode != 0:
        raise RuntimeError(f"lan-guard-psoc {args[0]} failed: {done.stderr}")
    return done.stdout


@dataclass
class Site:
    site_id: str
    key: bytes
    broker: Mosquitto
    ha: HomeAssistantDouble | None  # None: the caller runs the real integration
    agent_id: str


@dataclass
class World:
    dir: Path
    db_url: str
    psoc_broker: Mosquitto
    console_url: str
    sites: dict[str, Site] = field(default_factory=dict)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    capture: Path | None = None

    def replay(self, site_id: str) -> subprocess.Popen[bytes]:
        """A real agent replays the demo capture into the site's broker (signed, site key)."""
        site = self.sites[site_id]
        if self.capture is None:
            self.capture = self.dir / "demo.pcap"
            write_pcap(self.capture, demo_frames())
        env = {
            **os.environ,
            "LAN_GUARD_MQTT_SHARED_KEY": site.key.decode(),
            "LAN_GUARD_MQTT_OUTBOX_PATH": str(self.dir / f"outbox-{site_id}.sqlite"),
        }
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sensor_agent.cli",
                "replay",
                str(self.capture),
                "--node-ip",
                NODE.ip,
                "--gateway-ip",
                ROUTER.ip,
                "--agent-id",
                site.agent_id,
                "--mqtt-host",
                "127.0.0.1",
                "--mqtt-port",
                str(site.broker.port),
                "--no-stdout",
                "--no-progress",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(self.dir / f"agent-{site_id}.log").open("ab"),
        )
        self.procs.append(proc)
        return proc

    def login(self, username: str) -> httpx.Client:
        client = httpx.Client(base_url=self.console_url, follow_redirects=False, timeout=10)
        page = client.get("/login")
        token = csrf_of(page.text)
        done = client.post(
            "/login", data={"csrf": token, "username": username, "password": PASSWORD}
        )
        assert done.status_code == 303, done.text
        return client

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        for site in self.sites.values():
            if site.ha is not None:
                site.ha.close()
            site.broker.close()
        self.psoc_broker.close()


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF token on the page"
    return found.group(1)


def build(directory: Path, db_url: str, consents: dict[str, bool | None]) -> World:
    """Everything of the module doc, started and connected; close() stops it all.

    ``consents``: per site, whether its double lets the provider start evacuation mode, or
    None for a site whose Home Assistant side the caller runs (no double)."""
    pki = make_pki(directory / "pki")
    passwords, acl = directory / "passwords", directory / "acl"
    psoc_port = free_port()
    service = run_psoc(
        db_url, "service-user", "psoc", "--passwords", str(passwords), "--acl", str(acl)
    )
    service_env = dict(
        line.split("=", 1) for line in service.splitlines() if line.startswith("LAN_GUARD_")
    )
    keys: dict[str, bytes] = {}
    bridges: dict[str, str] = {}
    for site_id in consents:
        out = run_psoc(
            db_url,
            "site",
            "add",
            site_id,
            "--passwords",
            str(passwords),
            "--acl",
            str(acl),
            "--psoc-host",
            "127.0.0.1",
            "--psoc-port",
            str(psoc_port),
            "--site-cafile",
            str(pki.ca_file),
        )
        keys[site_id] = re.search(r"signing key\): (\S+)", out).group(1).encode()  # type: ignore[union-attr]
        bridges[site_id] = out
    for name in ("alice", "bob"):
        run_psoc(
            db_url,
            "user",
            "add",
            name,
            "--role",
            "responder",
            env={"LAN_GUARD_PSOC_PASSWORD": PASSWORD},
        )
    for site_id in consents:
        run_psoc(
            db_url,
            "user",
            "add",
            f"customer-{site_id}",
            "--role",
            "customer",
            "--site",
            site_id,
            env={"LAN_GUARD_PSOC_PASSWORD": PASSWORD},
        )
    psoc_broker = Mosquitto(
        psoc_port,
        tls=BrokerTls.from_pki(pki),
        extra_config=f"allow_anonymous false\npassword_file {passwords}\nacl_file {acl}\n"
        "max_inflight_messages 1000\n",
    ).start()
    console_port = free_port()
    world = World(directory, db_url, psoc_broker, f"http://127.0.0.1:{console_port}")
    env = {
        **os.environ,
        **service_env,
        "LAN_GUARD_PSOC_MQTT_CAFILE": str(pki.ca_file),
        "PYTHONUNBUFFERED": "1",
    }
    common = ["--mqtt-host", "127.0.0.1", "--mqtt-port", str(psoc_port)]
    log = (directory / "psoc.log").open("ab")
    try:
        world.procs.append(
            subprocess.Popen(
                [*PSOC, "--db", db_url, "worker", *common, "--client-id", "e2e-worker"],
                env=env,
                stderr=log,
                stdout=subprocess.DEVNULL,
            )
        )
        world.procs.append(
            subprocess.Popen(
                [
                    *PSOC,
                    "--db",
                    db_url,
                    "console",
                    *common,
                    "--port",
                    str(console_port),
                    "--insecure-cookies",
                ],
                env=env,
                stderr=log,
                stdout=subprocess.DEVNULL,
            )
        )
        for site_id, may_evacuate in consents.items():
            broker = Mosquitto(extra_config=bridges[site_id]).start()
            ha = None
            if may_evacuate is not None:
                ha = HomeAssistantDouble(
                    broker.port, keys[site_id], agent_id=f"pi-{site_id}", may_evacuate=may_evacuate
                )
            world.sites[site_id] = Site(site_id, keys[site_id], broker, ha, f"pi-{site_id}")
        wait_until(lambda: httpx.get(f"{world.console_url}/healthz").status_code == 200, 60)
        # the worker's session exists before any agent speaks (a broker keeps messages only
        # for subscriptions it has)
        wait_until(lambda: " as e2e-worker " in psoc_broker.log(), 60)
        time.sleep(1.0)
    except BaseException:
        world.close()
        raise
    return world


def wait_until(predicate: Any, timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(step)
    return False
