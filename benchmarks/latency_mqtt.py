"""Latency from the frame that crosses a detection threshold to MQTT, on a real broker.

Each trial is a new source that sends ARP requests to distinct addresses; the request that
reaches ``min_targets`` makes the pipeline emit a level-1 event. Timed from just before that
frame enters ``Pipeline.feed`` to:

- queued:   ``feed`` returned (detector, incident, event stored in the durable outbox);
- publish:  MqttSink handed the event to paho (signed, if a key is set);
- received: a subscriber on the same mosquitto (127.0.0.1) has the message.

Baseline, same broker and subscriber: a bare paho client publishing a payload of the same
size with QoS 1 (no pipeline, no outbox). Target: received p99 under 50 ms.

    .venv-agent/bin/python benchmarks/latency_mqtt.py [--trials 300] [--signed]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from scapy.layers.l2 import ARP, Ether

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sensor_agent.detectors.arp_scan import ArpScanConfig
from sensor_agent.pipeline import Pipeline, PipelineConfig
from sensor_agent.sinks import RetainedTopic
from sensor_agent.sinks.mqtt import MqttSettings, MqttSink, _Connection
from tests.broker import Mosquitto

AGENT = "bench"
MIN_TARGETS = ArpScanConfig().min_targets


class TimedSink(MqttSink):
    """MqttSink that notes when each event is handed to paho (after signing, encoding)."""

    def __init__(self, settings: MqttSettings) -> None:
        self.handed_over: dict[str, float] = {}
        super().__init__(settings)

    def _publish(
        self,
        conn: _Connection,
        name: str,
        body: bytes,
        retain: bool = False,
        seq: int | None = None,
    ) -> None:
        if name == "event":  # noted just before the call, so it is there when it arrives
            now = time.perf_counter()
            self.handed_over[json.loads(body)["incident_id"]] = now
        super()._publish(conn, name, body, retain=retain, seq=seq)


class LastEvent:
    """A second sink that remembers the incident id of the latest event."""

    def __init__(self) -> None:
        self.incident_id = ""

    def event(self, event: Mapping[str, Any]) -> None:
        self.incident_id = event["incident_id"]

    def retained(self, topic: RetainedTopic, payload: Mapping[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


def scan_frames(trial: int) -> list[bytes]:
    """ARP requests of one new source to MIN_TARGETS distinct addresses (doc range only)."""
    mac = f"02:00:00:{trial >> 16 & 0xFF:02x}:{trial >> 8 & 0xFF:02x}:{trial & 0xFF:02x}"
    src_ip = f"198.51.{100 + (trial >> 8) % 100}.{trial % 250 + 1}"
    return [
        bytes(
            Ether(src=mac, dst="ff:ff:ff:ff:ff:ff")
            / ARP(op=1, hwsrc=mac, psrc=src_ip, pdst=f"203.0.113.{target + 1}")
        )
        for target in range(MIN_TARGETS)
    ]


class Arrivals:
    """Arrival time of each event at the subscriber, by incident id (or baseline id)."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self.cond = threading.Condition()

    def wait(self, key: str, timeout: float = 5.0) -> float:
        with self.cond:
            if not self.cond.wait_for(lambda: key in self.at, timeout):
                raise TimeoutError(f"{key} never arrived")
            return self.at[key]


def subscriber(port: int, arrivals: Arrivals) -> paho.Client:
    client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    subscribed = threading.Event()

    def on_message(client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        now = time.perf_counter()
        payload: dict[str, Any] = json.loads(msg.payload)
        with arrivals.cond:
            arrivals.at[payload.get("incident_id") or payload["id"]] = now
            arrivals.cond.notify_all()

    client.on_message = on_message
    client.on_subscribe = lambda *args: subscribed.set()
    client.connect("127.0.0.1", port)
    client.subscribe([(f"lan_guard/{AGENT}/event", 1), ("baseline/#", 1)])
    client.loop_start()
    if not subscribed.wait(10):
        raise TimeoutError("subscriber not ready")
    return client


def agent_trials(
    port: int, trials: int, signed: bool, arrivals: Arrivals
) -> dict[str, list[float]]:
    workdir = Path(tempfile.mkdtemp(prefix="lan-guard-bench-"))
    settings = MqttSettings(
        host="127.0.0.1",
        port=port,
        agent_id=AGENT,
        outbox_path=str(workdir / "outbox.sqlite"),
        shared_key="benchmark-shared-key" if signed else None,
    )
    sink = TimedSink(settings)
    sink.wait_connected(10)
    last = LastEvent()
    pipeline = Pipeline(PipelineConfig(agent_id=AGENT), sinks=[sink, last])
    queued, handed, received = [], [], []
    try:
        for trial in range(trials):
            frames = scan_frames(trial)
            ts = time.time()
            pipeline.feed_many([ts] * (len(frames) - 1), frames[:-1])
            before = pipeline.events
            start = time.perf_counter()
            pipeline.feed(time.time(), frames[-1])
            done = time.perf_counter()
            if pipeline.events != before + 1:
                raise RuntimeError("the crossing frame did not raise exactly one event")
            key = last.incident_id
            arrived = arrivals.wait(key)
            queued.append(done - start)
            handed.append(sink.handed_over[key] - start)
            received.append(arrived - start)
    finally:
        sink.close()
    return {"queued": queued, "publish": handed, "received": received}


def baseline_trials(port: int, trials: int, arrivals: Arrivals) -> dict[str, list[float]]:
    client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    client.connect("127.0.0.1", port)
    client.loop_start()
    pad = "x" * 700  # about the size of an event
    received = []
    try:
        for _ in range(trials):
            key = uuid.uuid4().hex
            start = time.perf_counter()
            client.publish("baseline/event", json.dumps({"id": key, "pad": pad}), qos=1)
            received.append(arrivals.wait(key) - start)
    finally:
        client.disconnect()
        client.loop_stop()
    return {"received": received}


def summary(values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    p99 = statistics.quantiles(ms, n=100, method="inclusive")[98]
    return f"p50 {statistics.median(ms):7.2f} ms   p99 {p99:7.2f} ms   max {ms[-1]:7.2f} ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--signed", action="store_true", help="sign events (shared key)")
    args = parser.parse_args(argv)
    with Mosquitto() as broker:
        arrivals = Arrivals()
        sub = subscriber(broker.port, arrivals)
        try:
            baseline = baseline_trials(broker.port, args.trials, arrivals)
            agent = agent_trials(broker.port, args.trials, args.signed, arrivals)
        finally:
            sub.disconnect()
            sub.loop_stop()
    mode = "signed" if args.signed else "unsigned"
    print(f"MQTT latency, {args.trials} trials, mosquitto on 127.0.0.1, events {mode}")
    print(f"  baseline paho publish -> received : {summary(baseline['received'])}")
    print(f"  agent frame -> queued (outbox)    : {summary(agent['queued'])}")
    print(f"  agent frame -> publish (paho)     : {summary(agent['publish'])}")
    print(f"  agent frame -> received           : {summary(agent['received'])}")
    p99 = statistics.quantiles(agent["received"], n=100, method="inclusive")[98] * 1000
    verdict = "meets" if p99 < 50 else "MISSES"
    print(f"  target p99 < 50 ms (frame -> received): {verdict} ({p99:.2f} ms)")
    return 0 if p99 < 50 else 1


if __name__ == "__main__":
    raise SystemExit(main())
