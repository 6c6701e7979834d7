"""``lan-guard-psoc demo``: the PSOC on one machine, with nothing to set up.

A mosquitto on a free loopback port, the PSOC (one worker and the console) on SQLite, three
sites, and the agent's demo capture replayed once per site by the real agent. The agents
publish straight to the PSOC broker under their site's prefix, which is what each site's
bridge does in a deployment (``lan-guard-psoc site add`` prints that bridge). Everything
stays on 127.0.0.1; the folder is temporary unless ``--dir`` is given.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from psoc import topics
from psoc.console import auth
from psoc.db.engine import make_engine, upgrade
from psoc.ingest.worker import BrokerSettings, Worker
from psoc.store import Store

SITES = ("home-1", "home-2", "office-3")
NODE_IP, GATEWAY_IP = "192.0.2.10", "192.0.2.1"  # the demo capture's LAN (sensor_agent.synth)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_port(port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


ServeConsole = Callable[[Store, BrokerSettings, int, threading.Event], None]


def run(args: argparse.Namespace, serve_console: ServeConsole) -> int:
    """Set up, replay, print where to look, then serve until Ctrl-C (or ``--exit-after``)."""
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not os.path.exists(mosquitto):
        print("lan-guard-psoc demo: mosquitto is not installed (scripts/psoc_demo.sh installs it)")
        return 1
    folder = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="lan-guard-psoc-demo-"))
    folder.mkdir(parents=True, exist_ok=True)
    broker_port = _free_port()
    (folder / "mosquitto.conf").write_text(
        f"listener {broker_port} 127.0.0.1\nallow_anonymous true\n"
        f"user {'root' if os.geteuid() == 0 else os.environ.get('USER', 'nobody')}\n",
        encoding="utf-8",
    )
    broker = subprocess.Popen(
        [mosquitto, "-c", str(folder / "mosquitto.conf")],
        stdout=subprocess.DEVNULL,
        stderr=(folder / "mosquitto.log").open("ab"),
    )
    procs: list[subprocess.Popen[bytes]] = [broker]
    stop = threading.Event()
    worker: Worker | None = None
    try:
        if not _wait_port(broker_port, 10):
            print("lan-guard-psoc demo: mosquitto did not start; see", folder / "mosquitto.log")
            return 1
        db = f"sqlite:///{folder / 'psoc.sqlite'}"
        engine = make_engine(db)
        upgrade(engine)
        store = Store(engine)
        now = time.time()
        keys = {}
        existing = {site.site_id: site.key for site in store.sites()}
        for site_id in SITES:
            keys[site_id] = (
                existing.get(site_id)
                or store.add_site(site_id, site_id, f"site-{site_id}", now).key
            )
        password = secrets.token_urlsafe(9)
        operator = f"operator-{secrets.token_hex(2)}"
        store.add_user(operator, auth.hash_password(password), "responder", now)
        customer = f"customer-{secrets.token_hex(2)}"
        store.add_user(customer, auth.hash_password(password), "customer", now, site_id=SITES[0])
        broker_settings = BrokerSettings(port=broker_port)
        worker = Worker(
            store, broker_settings, client_id=f"demo-worker-{secrets.token_hex(3)}"
        ).start()
        console_port = args.port or _free_port()
        console = threading.Thread(
            target=serve_console, args=(store, broker_settings, console_port, stop), daemon=True
        )
        console.start()
        worker.connected.wait(10)
        time.sleep(1.0)  # the worker's subscriptions are in place before the sites speak
        capture = folder / "demo.pcap"
        agent = [sys.executable, "-m", "sensor_agent.cli"]
        subprocess.run([*agent, "generate", "demo", str(capture)], check=True, capture_output=True)
        for site_id in SITES:
            env = {
                **os.environ,
                "LAN_GUARD_MQTT_SHARED_KEY": keys[site_id],
                "LAN_GUARD_MQTT_OUTBOX_PATH": str(folder / f"outbox-{site_id}.sqlite"),
                "LAN_GUARD_MQTT_TOPIC_PREFIX": f"{topics.SITES}/{site_id}/{topics.REMOTE_PREFIX}",
            }
            procs.append(
                subprocess.Popen(
                    [
                        *agent,
                        "replay",
                        str(capture),
                        "--node-ip",
                        NODE_IP,
                        "--gateway-ip",
                        GATEWAY_IP,
                        "--agent-id",
                        f"pi-{site_id}",
                        "--mqtt-host",
                        "127.0.0.1",
                        "--mqtt-port",
                        str(broker_port),
                        "--no-stdout",
                        "--no-progress",
                    ],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=(folder / f"agent-{site_id}.log").open("ab"),
                )
            )
        for proc in procs[1:]:
            proc.wait(60)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(store.queue()) < len(SITES):
            time.sleep(0.2)
        queue = store.queue()
        print("LAN Guard PSOC demo: three sites replayed the agent's demo capture (an infected")
        print("laptop scanning its LAN), and the PSOC stored what their agents saw.\n")
        print(f"Console:  http://127.0.0.1:{console_port}/")
        print(f"Operator: {operator} / {password}   (role responder: may act)")
        print(f"Customer: {customer} / {password}   (sees only site {SITES[0]})\n")
        print(f"Open incidents: {len(queue)}")
        for row in queue[:10]:
            print(
                f"  L{row['level']}  {row['site_id']:<9} {row['mac']} {row['ip'] or '-':<12} "
                f"{row['hostname'] or '-':<16} {row['events']} events"
            )
        print(
            "\nWhat to look at: the incident queue (highest level first); open an incident for the"
        )
        print("culprit (MAC, IP, vendor, host name), its L1 -> L2 -> L3 timeline and evidence, the")
        print(
            "supervisor view; label it, request isolation (no site's Home Assistant answers in this"
        )
        print("demo, so the request stays 'requested'), acknowledge, assign, mark the customer")
        print(
            "notified, close; then Sites, SOC figures and the Audit log. Log in as the customer in"
        )
        print(f"another browser profile: only {SITES[0]} is visible.")
        print(f"\nFiles (SQLite database, logs): {folder}")
        if args.exit_after is not None:
            stop.wait(args.exit_after)
        else:
            print("Ctrl-C stops the demo.")
            try:
                while not stop.wait(3600):
                    pass
            except KeyboardInterrupt:
                pass
        return 0 if len(queue) >= len(SITES) else 1
    finally:
        stop.set()
        if worker is not None:
            worker.stop()
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(10)
        if not args.dir:
            shutil.rmtree(folder, ignore_errors=True)
