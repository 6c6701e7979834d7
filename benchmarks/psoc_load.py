"""PSOC load: N simulated sites publish realistic agent traffic into the PSOC on loopback.

Everything runs on this machine: a mosquitto (the PSOC broker), a throw-away PostgreSQL
(durable settings: fsync on), ``--workers`` ``lan-guard-psoc worker`` processes sharing the
stream through a shared subscription, and a ``lan-guard-psoc console`` whose live feed (SSE)
an operator's session reads. The sites are simulated the way their bridges deliver them:
signed events on ``sites/<site>/lan_guard/<agent>/event`` and a retained ``state`` every
``--state-every`` seconds per site, over ``--connections`` MQTT connections (pre-encoded
packets: see ``Bridges``).

Printed:
- baseline, same run: the same simulated bridges -> mosquitto -> a paho subscriber at the
  same rate (no PSOC): publish -> receive lag p50/p99;
- the PSOC at ``--rate`` events/s for ``--seconds``: sustained stored events/s, lag from
  publish to stored (the row's ``stored_at``) and to visible in the console's live feed,
  p50/p99; CPU (share of one core) and peak RSS of the broker, the workers, the console,
  PostgreSQL and this script; losses and events counted twice towards incidents (must be 0);
- the console's queries on the resulting tables (ms): incident queue, one incident's
  timeline and audit, sites list, SOC figures, the feed's tail.

    .venv/bin/python benchmarks/psoc_load.py [--sites 1000] [--rate 5000] [--seconds 20]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import selectors
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, select

from psoc import signatures, topics
from psoc.console.auth import hash_password
from psoc.db.engine import make_engine, upgrade
from psoc.db.models import Event, Incident
from psoc.store import Store
from tests.broker import Collector, Mosquitto, free_port
from tests.psoc.pg import Postgres

PASSWORD = "benchmark password"
TICKS = os.sysconf("SC_CLK_TCK")


def iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"


def epoch_of(agent_id: str) -> str:
    """The agent's event store id (32 hex digits), fixed per agent for the run."""
    return uuid.uuid5(uuid.NAMESPACE_OID, f"store-{agent_id}").hex


def event_payload(agent_id: str, n: int, now: float) -> dict[str, Any]:
    """An agent event as the demo's culprit produces them: a scan in escalating steps."""
    level = (1, 1, 2, 2, 3)[n % 5]
    kind = {1: "arp_scan", 2: "syn_scan", 3: "session"}[level]
    return {
        "schema": 1,
        "id": uuid.uuid4().hex,
        "incident_id": uuid.uuid5(uuid.NAMESPACE_OID, f"{agent_id}-{n // 25}").hex,
        "agent_id": agent_id,
        "seq": n + 1,
        "epoch": epoch_of(agent_id),
        "kind": kind,
        "level": level,
        "source": {
            "mac": "00:1b:21:42:00:42",
            "ip": "192.0.2.66",
            "vendor": "Intel",
            "hostname": "DESKTOP-K3V9Q2",
        },
        "first_seen": iso(now - 3),
        "last_seen": iso(now),
        "detected_at": iso(now),
        "evidence": {
            "target_count": 24,
            "targets": ["192.0.2.1", "192.0.2.2"],
            "ports": [445, 139, 554],
            "rate": 8.0,
        },
    }


def state_payload(agent_id: str, now: float, last_seq: int) -> dict[str, Any]:
    return {
        "schema": 1,
        "agent_id": agent_id,
        "level": 2,
        "incidents": [],
        "counters": {
            "frames": 100_000,
            "events": last_seq,
            "parse_errors": 0,
            "kernel_drops": 0,
            "outbox_dropped": 0,
        },
        "updated_at": iso(now),
        "epoch": epoch_of(agent_id),
        "last_seq": last_seq,
        "oldest_seq": 1,
    }


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, byte = divmod(n, 128)
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _mqtt_string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("!H", len(raw)) + raw


def publish_packet(topic: str, payload: bytes, mid: int, retain: bool) -> bytes:
    """An MQTT 3.1.1 PUBLISH at QoS 1, encoded once before the clock starts."""
    body = _mqtt_string(topic) + struct.pack("!H", mid) + payload
    return bytes([0x32 | int(retain)]) + _varint(len(body)) + body


class Bridges:
    """``connections`` MQTT connections that send pre-encoded QoS 1 PUBLISH packets, paced.

    The simulated sites' bridges run on this machine too, so they must take as little of
    its two cores as they can: the PSOC's cost is what is measured, and a paho client's
    per-message Python work at 5,000 messages/s would take a large share of a core (at a
    site each bridge runs on its own broker). The PUBACKs are read and counted by one
    thread; mosquitto itself parses and checks every packet as it would a bridge's.
    """

    def __init__(self, port: int, connections: int) -> None:
        self.socks: list[socket.socket] = []
        for n in range(connections):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            body = _mqtt_string("MQTT") + bytes([4, 0x02]) + struct.pack("!H", 0)
            body += _mqtt_string(f"bench-bridge-{n}-{os.getpid()}")
            sock.sendall(b"\x10" + _varint(len(body)) + body)
            if sock.recv(4) != b"\x20\x02\x00\x00":
                raise RuntimeError("the broker refused a simulated bridge's connection")
            self.socks.append(sock)
        self.acked = 0
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._read_acks, daemon=True)
        self._reader.start()

    def _read_acks(self) -> None:
        with selectors.DefaultSelector() as selector:
            for sock in self.socks:
                selector.register(sock, selectors.EVENT_READ)
            while not self._stop.is_set():
                for key, _ in selector.select(0.2):
                    data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                    self.acked += len(data) // 4  # PUBACKs only: 4 bytes each

    def run(
        self, messages: Sequence[tuple[bytes, str | None]], rate: float, sent: dict[str, float]
    ) -> float:
        """Send at ``rate`` packets/s (each when due, in 2 ms steps); ``sent[id] = time``
        for each event; returns the elapsed time."""
        start = time.time()
        for n, (packet, event_id) in enumerate(messages):
            delay = start + n / rate - time.time()
            if delay > 0.002:
                time.sleep(delay)
            if event_id is not None:
                sent[event_id] = time.time()
            self.socks[n % len(self.socks)].sendall(packet)
        return time.time() - start

    def close(self) -> None:
        self._stop.set()
        self._reader.join()
        for sock in self.socks:
            sock.close()


def baseline(rate: float, seconds: float) -> tuple[float, float]:
    """Bare broker: publish -> subscriber lag (p50, p99 ms) at the same rate."""
    with (
        Mosquitto(extra_config="max_inflight_messages 2000\n") as broker,
        Collector(broker.port, "bench/#") as seen,
    ):
        pub = Bridges(broker.port, 1)
        count = int(rate * seconds)
        body = json.dumps(event_payload("a", 0, time.time())).encode()
        sent: dict[str, float] = {}
        messages = [
            (publish_packet(f"bench/{n}", body, n % 65535 + 1, False), str(n)) for n in range(count)
        ]
        pub.run(messages, rate, sent)
        seen.wait_for(lambda m: len(m) >= count, 60)
        pub.close()
    # the collector stamps time.monotonic(), the publisher time.time(): one clock for both
    offset = time.time() - time.monotonic()
    lag_ms = [(m.at + offset - sent[m.topic.split("/")[1]]) * 1000 for m in seen.messages]
    return percentile(lag_ms, 0.5), percentile(lag_ms, 0.99)


def proc_cpu_rss(pids: list[int]) -> tuple[float, float]:
    """CPU seconds and RSS (MB) summed over ``pids`` (Linux /proc)."""
    cpu, rss = 0.0, 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            cpu += (int(fields[11]) + int(fields[12])) / TICKS
            status = Path(f"/proc/{pid}/status").read_text()
            found = re.search(r"VmRSS:\s+(\d+)", status)
            rss += int(found.group(1)) / 1024 if found else 0
        except (OSError, IndexError, ValueError):
            continue
    return cpu, rss


def postgres_pids(postmaster: int) -> list[int]:
    pids = [postmaster]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == postmaster:
                    pids.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return pids


class Sampler:
    """Samples CPU and RSS of named process groups every 0.5 s while the load runs."""

    def __init__(self, groups: dict[str, Callable[[], list[int]]]) -> None:
        self.groups = groups
        self.start_cpu = {name: proc_cpu_rss(pids())[0] for name, pids in groups.items()}
        self.peak_rss = dict.fromkeys(groups, 0.0)
        self.t0 = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            for name, pids in self.groups.items():
                self.peak_rss[name] = max(self.peak_rss[name], proc_cpu_rss(pids())[1])

    def stop(self) -> dict[str, tuple[float, float, float]]:
        self._stop.set()
        self._thread.join()
        elapsed = time.monotonic() - self.t0
        used = {
            name: proc_cpu_rss(pids())[0] - self.start_cpu[name]
            for name, pids in self.groups.items()
        }
        return {
            name: (used[name] / elapsed * 100, self.peak_rss[name], used[name]) for name in used
        }


def timed(fn: Callable[[], object], repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sites", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=5000, help="events per second")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument(
        "--state-every",
        type=float,
        default=1,
        help="seconds between a site's states (an agent sends one within a second of an event)",
    )
    parser.add_argument("--drain-s", type=float, default=60, help="wait this long for a backlog")
    args = parser.parse_args()
    if not Path("/usr/lib/postgresql").exists():
        print("PostgreSQL is not installed (scripts/setup.sh all)")
        return 1

    print(
        f"PSOC load: {args.sites:,} sites, {args.rate:,.0f} events/s for {args.seconds:g} s, "
        f"{args.workers} workers, PostgreSQL (fsync on), {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f} (other jobs on this machine)"
    )
    b50, b99 = baseline(args.rate, min(args.seconds, 10))
    print(
        f"baseline  bare mosquitto publish -> subscribe at {args.rate:,.0f} msg/s: "
        f"lag p50 {b50:.1f} ms, p99 {b99:.1f} ms"
    )

    with (
        tempfile.TemporaryDirectory(prefix="lan-guard-psoc-bench-") as tmp,
        Postgres(durable=True) as pg,
    ):
        db_url = pg.create_database("bench")
        engine = make_engine(db_url)
        upgrade(engine)
        store = Store(engine)
        now = time.time()
        keys = {}
        for n in range(args.sites):
            site = store.add_site(f"site{n:04d}", f"Site {n}", f"site-site{n:04d}", now)
            keys[site.site_id] = site.key.encode()
        store.add_user("operator", hash_password(PASSWORD), "viewer", now)
        broker = Mosquitto(
            extra_config="max_inflight_messages 2000\nmax_queued_messages 1000000\n"
        ).start()
        console_port = free_port()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        psoc = [sys.executable, "-m", "psoc.cli", "--db", db_url, "--log-level", "WARNING"]
        common = ["--mqtt-host", "127.0.0.1", "--mqtt-port", str(broker.port)]
        log = open(Path(tmp) / "psoc.log", "ab")  # noqa: SIM115 - closed at the end
        workers = [
            subprocess.Popen(
                [*psoc, "worker", *common, "--client-id", f"bench-{n}"], env=env, stderr=log
            )
            for n in range(args.workers)
        ]
        console = subprocess.Popen(
            [*psoc, "console", *common, "--port", str(console_port), "--insecure-cookies"],
            env=env,
            stderr=log,
        )
        try:
            base = f"http://127.0.0.1:{console_port}"
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{base}/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
            time.sleep(2.0)  # workers subscribed
            client = httpx.Client(base_url=base, timeout=10)
            token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text).group(1)  # type: ignore[union-attr]
            client.post(
                "/login", data={"csrf": token, "username": "operator", "password": PASSWORD}
            )
            seen_in_feed: dict[str, float] = {}

            def read_feed() -> None:
                try:
                    with client.stream("GET", "/feed", timeout=None) as response:
                        for line in response.iter_lines():
                            if line.startswith("data: "):
                                at = time.time()
                                for event in json.loads(line[6:])["events"]:
                                    seen_in_feed.setdefault(event["event_id"], at)
                except httpx.HTTPError:
                    pass

            threading.Thread(target=read_feed, daemon=True).start()
            time.sleep(1.0)

            # the traffic, prepared (and signed, as the agents do) before the clock starts
            total = int(args.rate * args.seconds)
            agents = [f"pi-{n:04d}" for n in range(args.sites)]
            seqs = dict.fromkeys(agents, 0)
            messages: list[tuple[bytes, str | None]] = []
            states_every = max(1, int(args.rate * args.state_every / args.sites))
            for n in range(total):
                i = n % args.sites
                site_id, agent = f"site{i:04d}", agents[i]
                payload = event_payload(agent, seqs[agent], now)
                seqs[agent] += 1
                body = json.dumps(
                    signatures.sign(payload, keys[site_id], agent, "event", now)
                ).encode()
                topic = topics.agent_topic(site_id, agent, "event")
                mid = len(messages) % 65535 + 1
                messages.append((publish_packet(topic, body, mid, False), payload["id"]))
                if n % states_every == 0:
                    state = state_payload(agent, now + n / args.rate, seqs[agent])
                    body = json.dumps(
                        signatures.sign(state, keys[site_id], agent, "state", now)
                    ).encode()
                    topic = topics.agent_topic(site_id, agent, "state")
                    mid = len(messages) % 65535 + 1
                    messages.append((publish_packet(topic, body, mid, True), None))
            pub = Bridges(broker.port, args.connections)
            sampler = Sampler(
                {
                    "mosquitto": lambda: [broker._proc.pid] if broker._proc else [],
                    "workers": lambda: [w.pid for w in workers],
                    "console": lambda: [console.pid],
                    "postgresql": lambda: postgres_pids(pg.pid() or 0),
                    "sites+feed": lambda: [os.getpid()],  # this script: bridges, browser
                }
            )
            sent: dict[str, float] = {}
            t0 = time.time()
            took = pub.run(messages, args.rate * len(messages) / total, sent)
            print(f"sent      {len(messages):,} messages ({total:,} events) in {took:.1f} s")
            with engine.connect() as conn:

                def count() -> int:
                    return int(conn.execute(select(func.count()).select_from(Event)).scalar() or 0)

                deadline = time.monotonic() + args.seconds + args.drain_s
                while count() < total and time.monotonic() < deadline:
                    time.sleep(0.2)
                stored_n = count()
                last = conn.execute(select(func.max(Event.stored_at))).scalar() or t0
                rows = conn.execute(select(Event.event_id, Event.stored_at)).all()
                counted = int(conn.execute(select(func.sum(Incident.events))).scalar() or 0)
            usage = sampler.stop()
            time.sleep(1.0)  # the feed's last poll
            pub.close()
            store_lag = [(stored_at - sent[e]) * 1000 for e, stored_at in rows if e in sent]
            feed_lag = [(at - sent[e]) * 1000 for e, at in seen_in_feed.items() if e in sent]
            print(
                f"PSOC      {stored_n:,} of {total:,} events stored within {args.drain_s:g} s "
                f"of the end (lost: {total - stored_n:,}; stored twice: none, by the unique key; "
                f"counted towards incidents: {counted:,}), sustained "
                f"{stored_n / (last - t0):,.0f} events/s"
            )
            print(
                f"          publish -> stored: p50 {percentile(store_lag, 0.5):.0f} ms, "
                f"p99 {percentile(store_lag, 0.99):.0f} ms"
            )
            print(
                f"          publish -> console live feed: p50 {percentile(feed_lag, 0.5):.0f} ms, "
                f"p99 {percentile(feed_lag, 0.99):.0f} ms ({len(feed_lag):,} events in the feed)"
            )
            total_ms = 0.0
            for name, (cpu, rss, cpu_s) in usage.items():
                per_event = cpu_s / max(stored_n, 1) * 1000
                if name != "sites+feed":  # the load and the browser are not the PSOC's cost
                    total_ms += per_event
                print(
                    f"          {name:<11} CPU {cpu:5.0f}% of a core "
                    f"({per_event:.3f} ms per event), peak RSS {rss:6.0f} MB"
                )
            load, cores = os.getloadavg()[0], os.cpu_count() or 1
            print(
                f"          CPU per event, PSOC parts: {total_ms:.3f} ms -> on {cores} idle cores "
                f"about {cores * 1000 / total_ms:,.0f} events/s (load average now: {load:.1f})"
            )
            print("console queries on these tables (best of 5):")
            queue = store.queue()
            pk = queue[0]["id"]
            for label, fn in (
                ("incident queue (open, by level and age)", store.queue),
                (
                    "one site's incidents",
                    lambda: store.queue(site_id="site0007", include_closed=True),
                ),
                ("one incident's timeline", lambda: store.incident_events(pk)),
                ("one incident's audit trail", lambda: store.audit(incident=pk)),
                ("sites list (1,000 sites)", store.sites_overview),
                (
                    "live feed tail (last 5,000 events)",
                    lambda: store.tail("events", stored_n - 5000, []),
                ),
                ("SOC figures (all incidents)", store.figures),
            ):
                print(f"  {label:<40} {timed(fn):8.1f} ms")
            print(f"  ({len(queue)} open incidents in the queue's first page; {stored_n:,} events)")
        finally:
            for proc in [*workers, console]:
                proc.terminate()
            for proc in [*workers, console]:
                proc.wait(15)
            broker.close()
            engine.dispose()
            log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
