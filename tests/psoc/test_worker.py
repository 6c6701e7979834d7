"""psoc.ingest.worker against a real mosquitto: stores, snapshots retained, refuses and counts,
and two worker processes sharing the stream lose and duplicate nothing when one is killed;
its replay requests are the agent's own command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import func, select

from psoc.db.models import Event
from psoc.ingest.worker import BrokerSettings, Worker, replay_command
from psoc.store import ReplayRequest, Store
from psoc.topics import agent_topic
from sensor_agent.commands import CommandHandler
from sensor_agent.enforcer import NoEnforcer
from tests.broker import Mosquitto
from tests.contract import validate
from tests.psoc import payloads as p

pytestmark = pytest.mark.broker


def publisher(port: int) -> paho.Client:
    client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def wait_for(predicate: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def test_the_replay_request_is_one_the_agent_takes_and_only_that_agent() -> None:
    """What the worker publishes for a hole is the agent's own replay command (after_seq,
    through_seq), signed for that agent's command topic: the agent runs it, another agent
    sharing the site key refuses it."""
    asked: list[tuple[int, int | None]] = []

    def replay(after_seq: int, through_seq: int | None) -> dict[str, object]:
        asked.append((after_seq, through_seq))
        return {"count": 2}

    def agent(agent_id: str) -> CommandHandler:
        return CommandHandler(NoEnforcer(), agent_id=agent_id, key=p.KEY, replay=replay)

    for through in (4, None):
        raw = replay_command(ReplayRequest("s1", "pi-a", 2, "c" * 32, through), p.KEY, time.time())
        validate("command", json.loads(raw))
        assert agent("pi-a")(raw)["ok"] is True
        refused = agent("pi-b")(raw)
        assert refused["ok"] is False and "bad signature" in refused["error"]
    assert asked == [(2, 4), (2, None)]


@pytest.fixture
def broker() -> Iterator[Mosquitto]:
    with Mosquitto() as mosquitto:
        yield mosquitto


@pytest.fixture
def site_store(store: Store) -> Store:
    store.add_site("s1", "one", "site-s1", time.time(), key=p.KEY.decode())
    return store


def stored(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(Event)).scalar() or 0)


def test_worker_stores_snapshots_refuses_and_counts(broker: Mosquitto, site_store: Store) -> None:
    pub = publisher(broker.port)
    now = time.time()
    # retained before the worker exists: it must come from the snapshot subscription
    pub.publish(
        agent_topic("s1", "pi-a", "state"),
        p.signed(p.state(at=now, level=2), "state", now),
        qos=1,
        retain=True,
    ).wait_for_publish(5)
    worker = Worker(site_store, BrokerSettings(port=broker.port), client_id="w-test").start()
    try:
        assert worker.connected.wait(5)
        time.sleep(0.3)  # the SUBACKs
        good = [p.event(at=now, level=2, seq=n) for n in (1, 2, 3)]
        for event in good:
            pub.publish(agent_topic("s1", "pi-a", "event"), p.signed(event, "event", now), qos=1)
        pub.publish(
            agent_topic("s1", "pi-a", "event"), p.signed(good[0], "event", now), qos=1
        )  # twice
        pub.publish(
            agent_topic("s1", "pi-a", "event"), json.dumps(p.event(at=now)).encode(), qos=1
        )  # unsigned
        pub.publish(agent_topic("s1", "pi-a", "event"), b"{" * 100_000, qos=1)  # deep / not JSON
        forged = p.signed(p.event(at=now), "event", now, key=b"not-the-site-key-000000")
        pub.publish(agent_topic("s1", "pi-a", "event"), forged, qos=1)
        pub.publish(
            agent_topic("zz", "pi-a", "event"), p.signed(p.event(at=now), "event", now), qos=1
        )
        assert wait_for(lambda: sum(worker.rejected.values()) >= 4 and worker.stored >= 3, 10)
        assert stored(site_store) == 3
        assert site_store.agents("s1")[0]["level"] == 2  # the retained state, from the snapshot
        counters = site_store.counters()
        assert counters[("s1", "bad_signature")] == 2
        assert counters[("s1", "too_large")] == 1  # 100,000 bytes of "{": more than an event may be
        assert counters[("zz", "unknown_site")] == 1
    finally:
        worker.stop()
        pub.loop_stop()


def _worker_process(db_url: str, port: int, client_id: str, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "psoc.cli",
            "--db",
            db_url,
            "worker",
            "--mqtt-port",
            str(port),
            "--client-id",
            client_id,
        ],
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_two_workers_one_killed_mid_stream_lose_and_duplicate_nothing(
    broker: Mosquitto, site_store: Store, db_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "workers.log"
    workers = [_worker_process(db_url, broker.port, f"w{n}", log) for n in (1, 2)]
    try:
        # both connected and subscribed (their sessions persist from here on)
        assert wait_for(lambda: all(f" as w{n} " in broker.log() for n in (1, 2)), 60), broker.log()
        time.sleep(1.0)
        pub = publisher(broker.port)
        now = time.time()
        total = 4000
        events = [p.event(at=now, level=1, seq=n + 1, incident_id="c" * 32) for n in range(total)]
        for n, event in enumerate(events):
            pub.publish(agent_topic("s1", "pi-a", "event"), p.signed(event, "event", now), qos=1)
            if n == total // 2:
                wait_for(lambda: stored(site_store) > 200, 10)
                workers[0].send_signal(signal.SIGKILL)  # dies with messages in flight, unacked
                workers[0].wait()
        pub.loop_stop()
        time.sleep(1.0)
        workers[0] = _worker_process(
            db_url, broker.port, "w1", log
        )  # comes back: its session is there
        assert wait_for(lambda: stored(site_store) >= total, 60), (
            stored(site_store),
            log.read_text()[-2000:],
        )
        time.sleep(1.0)
        assert stored(site_store) == total
        [incident] = site_store.queue()
        assert incident["events"] == total  # each counted once
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            worker.wait(10)
