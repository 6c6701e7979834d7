"""End-to-end delivery through a broker crash, beside bare QoS 1, on a real mosquitto.

A stream of 4,000 events over 4 seconds; a quarter in, mosquitto is killed (SIGKILL: nothing
saved) and started again after 1 s; the subscriber, with a clean session as Home Assistant's
MQTT client has, reconnects ``--reconnect`` seconds after the broker is back (1 s, and 10 s:
HA's own reconnect interval).

- LAN Guard: the real agent (``lan-guard-agent replay --speed 1 --stay`` of a generated
  capture whose every frame makes an event), and a subscriber that follows the integration's
  own delivery tracker (``custom_components/lan_guard/delivery.py``: de-duplication by seq,
  ``replay`` commands for what is missing, lost events counted).
- Baseline, same broker, same kill, same subscriber reconnects: a bare paho publisher (QoS 1,
  paho's own queue and reconnect) sending the same events at the same pace, and a bare
  subscriber.

Printed: events sent, received (distinct), duplicates, lost, and how long after the broker
came back the subscriber had every event; for LAN Guard also the replay requests.

    .venv/bin/python benchmarks/delivery_e2e.py [--events 4000] [--reconnect 1 10]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from custom_components.lan_guard.delivery import DeliveryTracker, Verdict
from sensor_agent.synth import bench_node, scan_frames, write_pcap
from tests.broker import Mosquitto

AGENT_ID = "bench-delivery"
PREFIX = f"lan_guard/{AGENT_ID}"
AGENT_CLI = str(Path(sys.executable).with_name("lan-guard-agent"))
BROKER_DOWN_S = 1.0


def wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within {timeout} s")
        time.sleep(0.01)


class Subscriber:
    """A clean-session subscriber that reconnects when told to (a new client each time).

    With ``tracker`` it does what the integration does: drops duplicates by seq and asks the
    agent to replay what is missing; without, it only records what arrives.
    """

    def __init__(self, port: int, tracker: DeliveryTracker | None) -> None:
        self.port = port
        self.tracker = tracker
        self.lock = threading.Lock()
        self.ids: set[str] = set()
        self.messages = 0
        self.requests = 0
        self.complete_at: float | None = None
        self.expected: int | None = None
        self.client: paho.Client | None = None
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, daemon=True)
        self._ticker.start()

    def connect(self) -> None:
        client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, clean_session=True)
        client.reconnect_delay_set(3600, 3600)  # it reconnects only when told to
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        subscribed = threading.Event()
        client.user_data_set(subscribed)
        client.connect("127.0.0.1", self.port, keepalive=10)
        client.loop_start()
        self.client = client
        if not subscribed.wait(10):
            raise TimeoutError("the subscriber was not subscribed")

    def drop(self) -> None:
        """The broker died: this client is gone (a new one connects later)."""
        if self.client is not None:
            self.client.loop_stop()
            self.client = None

    def close(self) -> None:
        self._stop.set()
        if self.client is not None:
            self.client.disconnect()
            self.client.loop_stop()

    def _on_connect(self, client: paho.Client, subscribed: Any, *args: Any) -> None:
        client.subscribe([(f"{PREFIX}/event", 1), (f"{PREFIX}/state", 1)], qos=1)
        client.subscribe(f"{PREFIX}/command/result", qos=1)

    def _on_subscribe(self, client: paho.Client, subscribed: Any, *args: Any) -> None:
        if self.tracker is not None:
            with self.lock:
                self.tracker.resubscribed(time.time())
        subscribed.set()

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        payload = json.loads(msg.payload)
        name = msg.topic.rsplit("/", 1)[1] if not msg.topic.endswith("result") else "result"
        now = time.time()
        with self.lock:
            if name == "event":
                self.messages += 1
                if self.tracker is None or (
                    self.tracker.event(payload["epoch"], payload["seq"], now) is Verdict.NEW
                ):
                    self.ids.add(payload["id"])
                if self.expected is not None and len(self.ids) >= self.expected:
                    self.complete_at = self.complete_at or time.monotonic()
            elif self.tracker is not None and name == "state":
                self.tracker.state(
                    payload["epoch"], payload["last_seq"], payload["oldest_seq"], now
                )
            elif self.tracker is not None and name == "result":
                if "replay" in payload:
                    self.tracker.replay_answer(payload["replay"], now)
                else:
                    self.tracker.replay_refused(now)

    def _tick(self) -> None:
        """What the coordinator's timers do: ask when the tracker says so."""
        while not self._stop.wait(0.05):
            if self.tracker is None or self.client is None:
                continue
            with self.lock:
                ask = self.tracker.want_replay(time.time())
                if ask is None:
                    continue
                command_id = uuid.uuid4().hex
                command: dict[str, Any] = {
                    "id": command_id,
                    "action": "replay",
                    "after_seq": ask[0],
                    "ts": time.time(),
                }
                if ask[1] is not None:
                    command["through_seq"] = ask[1]
                self.tracker.asked(command_id, ask[0], time.time())
                self.requests += 1
            self.client.publish(f"{PREFIX}/command", json.dumps(command), qos=1)

    def expect(self, count: int) -> None:
        with self.lock:
            self.expected = count
            if len(self.ids) >= count:
                self.complete_at = self.complete_at or time.monotonic()


def kill_and_reconnect(broker: Mosquitto, subscriber: Subscriber, reconnect_s: float) -> float:
    """Kill the broker, start it after BROKER_DOWN_S, reconnect the subscriber after
    ``reconnect_s`` more; returns when the broker came back (monotonic)."""
    broker.kill()
    subscriber.drop()
    time.sleep(BROKER_DOWN_S)
    broker.start()
    back = time.monotonic()
    time.sleep(reconnect_s)
    subscriber.connect()
    return back


def lan_guard(
    workdir: Path, capture: Path, events: int, reconnect_s: float
) -> tuple[dict[str, Any], list[bytes]]:
    """The real agent and a subscriber that follows the integration's delivery tracker."""
    with Mosquitto() as broker:
        subscriber = Subscriber(broker.port, DeliveryTracker())
        subscriber.connect()
        jsonl = workdir / f"events-{reconnect_s:g}.jsonl"
        agent = subprocess.Popen(
            [
                AGENT_CLI,
                "replay",
                str(capture),
                "--speed",
                "1",
                "--stay",
                "--agent-id",
                AGENT_ID,
                "--node-ip",
                bench_node()[0],
                "--no-stdout",
                "--events-jsonl",
                str(jsonl),
                "--mqtt-host",
                broker.host,
                "--mqtt-port",
                str(broker.port),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={
                **os.environ,
                "LAN_GUARD_LOG_LEVEL": "ERROR",
                "LAN_GUARD_INCIDENTS_UPDATE_INTERVAL_S": "0",
                "LAN_GUARD_MQTT_OUTBOX_PATH": str(workdir / f"store-{reconnect_s:g}.sqlite"),
            },
        )

        def logged() -> int:
            return len(jsonl.read_bytes().splitlines()) if jsonl.exists() else 0

        try:
            wait(lambda: logged() >= events // 4, 30, "first quarter of the stream")
            back = kill_and_reconnect(broker, subscriber, reconnect_s)
            wait(lambda: logged() >= events, 60, "end of the stream")
            subscriber.expect(events)
            wait(lambda: subscriber.complete_at is not None, 120, "every event")
            time.sleep(0.5)  # late duplicates, if any
        finally:
            agent.send_signal(signal.SIGTERM)
            agent.wait(30)
            subscriber.close()
        assert subscriber.complete_at is not None and subscriber.tracker is not None
        return {
            "sent": events,
            "received": len(subscriber.ids),
            "duplicates": subscriber.messages - len(subscriber.ids),
            "lost": events - len(subscriber.ids),
            "complete": subscriber.complete_at - back,
            "requests": subscriber.requests,
        }, jsonl.read_bytes().splitlines()


def bare_qos1(payloads: list[bytes], reconnect_s: float) -> dict[str, Any]:
    """A plain paho publisher (QoS 1, its own queue and reconnect) and a plain subscriber."""
    with Mosquitto() as broker:
        subscriber = Subscriber(broker.port, None)
        subscriber.connect()
        publisher = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2)
        publisher.reconnect_delay_set(1, 30)  # paho's whole seconds; the agent starts at 0.5
        publisher.connect("127.0.0.1", broker.port, keepalive=10)
        publisher.loop_start()
        back_at: list[float] = []
        killer = threading.Thread(
            target=lambda: back_at.append(kill_and_reconnect(broker, subscriber, reconnect_s))
        )
        started = time.monotonic()
        try:
            for n, payload in enumerate(payloads):
                if n == len(payloads) // 4:
                    killer.start()  # the same outage, while the stream goes on
                publisher.publish(f"{PREFIX}/event", payload, qos=1)
                delay = started + (n + 1) / 1000 - time.monotonic()  # the agent's pace
                if delay > 0:
                    time.sleep(delay)
            killer.join()
            back = back_at[0]
            subscriber.expect(len(payloads))
            # Whatever was going to come has come within a few seconds of the reconnect.
            deadline = time.monotonic() + 5
            while subscriber.complete_at is None and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            publisher.disconnect()
            publisher.loop_stop()
            subscriber.close()
        return {
            "sent": len(payloads),
            "received": len(subscriber.ids),
            "duplicates": subscriber.messages - len(subscriber.ids),
            "lost": len(payloads) - len(subscriber.ids),
            "complete": None if subscriber.complete_at is None else subscriber.complete_at - back,
            "requests": None,
        }


def row(label: str, figures: dict[str, Any], reconnect_s: float) -> str:
    complete = figures["complete"]
    when = (
        "never"
        if complete is None
        else f"{complete:.1f} s after the broker is back, {complete - reconnect_s:.1f} s after"
        " the subscriber"
    )
    requests = "" if figures["requests"] is None else f" ({figures['requests']} replay requests)"
    return (
        f"  {label:<10} sent {figures['sent']:>5}  received {figures['received']:>5}"
        f"  duplicates {figures['duplicates']:>4}  lost {figures['lost']:>5}"
        f"  all there: {when}{requests}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=4000)
    parser.add_argument("--reconnect", type=float, nargs="+", default=[1.0, 10.0])
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="lan-guard-delivery-") as tmp:
        workdir = Path(tmp)
        capture = workdir / "scans.pcap"
        write_pcap(capture, scan_frames(args.events))
        print(
            f"Delivery through a broker crash: {args.events} events over"
            f" {args.events / 1000:g} s, mosquitto SIGKILLed a quarter in and back after"
            f" {BROKER_DOWN_S:g} s, clean-session subscriber"
        )
        ok = True
        for reconnect_s in args.reconnect:
            ours, payloads = lan_guard(workdir, capture, args.events, reconnect_s)
            baseline = bare_qos1(payloads, reconnect_s)
            print(f"subscriber back {reconnect_s:g} s after the broker:")
            print(row("LAN Guard", ours, reconnect_s))
            print(row("bare QoS 1", baseline, reconnect_s))
            ok = ok and ours["lost"] == 0
        print(f"target: 0 lost end to end: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
