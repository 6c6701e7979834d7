"""MqttSink against a real mosquitto on 127.0.0.1 (tests/broker.py): delivery, retained
payloads, last will, outages, restart, TLS, authentication, commands."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.publish as paho_publish
import pytest

from sensor_agent import signing
from sensor_agent.sinks.mqtt import (
    MqttConnectionError,
    MqttSettings,
    MqttSink,
    TlsSettings,
)
from tests.broker import BrokerTls, Collector, Mosquitto, Received, make_pki
from tests.contract import SCHEMA_DIR, validate

pytestmark = pytest.mark.broker

AGENT = "test-agent"
PREFIX = f"lan_guard/{AGENT}"
KEY = "a-shared-key-for-tests"
EXAMPLES = SCHEMA_DIR / "examples"
REPO = Path(__file__).resolve().parents[2]


def example(name: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text("utf-8"))
    if isinstance(payload, dict) and "agent_id" in payload:
        payload["agent_id"] = AGENT
    return payload


def new_event(n: int = 0, kind: str = "arp_scan") -> dict[str, Any]:
    """An event as the pipeline hands it over: the event store adds seq and epoch."""
    event = example(f"event.{kind}")
    event["id"] = uuid.uuid4().hex
    event["evidence"]["packets"] = n
    del event["seq"], event["epoch"]
    return event


DELIVERY = ("epoch", "last_seq", "oldest_seq")


def without_delivery(state: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in state.items() if key not in DELIVERY}


def event_ids(messages: list[Received]) -> list[str]:
    return [json.loads(m.payload)["id"] for m in messages if m.topic == f"{PREFIX}/event"]


def first_occurrences(ids: list[str]) -> list[str]:
    return list(dict.fromkeys(ids))


def count_events(n: int) -> Callable[[list[Received]], bool]:
    return lambda messages: len(set(event_ids(messages))) >= n


def wait_until(condition: Callable[[], bool], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def on_topic(collector: Collector, topic: str) -> list[Received]:
    with collector._cond:
        return [m for m in collector.messages if m.topic == topic]


@pytest.fixture(autouse=True)
def no_threads_left_behind() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        extra = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not extra:
            return
        time.sleep(0.05)
    pytest.fail(f"threads left running: {extra}")


@pytest.fixture
def broker() -> Iterator[Mosquitto]:
    with Mosquitto() as running:
        yield running


class SinkFactory:
    """Builds sinks for one test and closes them all at the end."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.sinks: list[MqttSink] = []

    def settings(self, port: int, **overrides: Any) -> MqttSettings:
        values: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": port,
            "agent_id": AGENT,
            "outbox_path": str(self.tmp_path / "outbox.sqlite"),
            "keepalive": 5,
            "reconnect_min_s": 0.05,
            "reconnect_max_s": 0.5,
        }
        values.update(overrides)
        return MqttSettings(**values)

    def __call__(self, port: int, handler: Any = None, **overrides: Any) -> MqttSink:
        sink = MqttSink(self.settings(port, **overrides), command_handler=handler)
        self.sinks.append(sink)
        return sink

    def close_all(self) -> None:
        for sink in self.sinks:
            sink.close()


@pytest.fixture
def make_sink(tmp_path: Path) -> Iterator[SinkFactory]:
    factory = SinkFactory(tmp_path)
    yield factory
    factory.close_all()


# -- delivery ------------------------------------------------------------------------


def test_events_arrive_once_in_order_with_qos1_and_follow_the_schema(
    broker: Mosquitto, make_sink: SinkFactory
) -> None:
    kinds = ["arp_scan", "syn_scan", "session", "flood", "arp_spoof", "host_left"]
    events = [new_event(n, kinds[n % len(kinds)]) for n in range(60)]
    with Collector(broker.port, f"{PREFIX}/#") as seen:
        sink = make_sink(broker.port)
        for event in events:
            sink.event(event)
        assert seen.wait_for(count_events(60), 10)
        received = on_topic(seen, f"{PREFIX}/event")
    assert event_ids(received) == [e["id"] for e in events]  # once each, in order
    epoch = sink.delivery()["epoch"]
    for seq, (message, sent) in enumerate(zip(received, events, strict=True), start=1):
        assert message.qos == 1
        assert not message.retain
        payload = json.loads(message.payload)
        validate("event", payload)
        assert payload == {**sent, "seq": seq, "epoch": epoch}  # no key: as given, numbered
    assert wait_until(lambda: sink.counters()["pending"] == 0)
    counters = sink.counters()
    assert counters["published"] == counters["acknowledged"] == 60
    assert counters["pending"] == counters["dropped"] == counters["reconnects"] == 0


def test_close_right_after_the_last_event_still_delivers_everything(
    broker: Mosquitto, make_sink: SinkFactory
) -> None:
    """A replay closes the sink within milliseconds of creating it."""
    events = [new_event(n) for n in range(50)]
    with Collector(broker.port, f"{PREFIX}/#") as seen:
        sink = make_sink(broker.port)
        sink.retained("info", example("info.replay"))
        for event in events:
            sink.event(event)
        sink.close()
        assert sink.counters()["pending"] == 0
        assert seen.wait_for(count_events(50), 5)
        assert seen.wait_for(lambda m: m[-1].payload == b"offline", 5)
    assert event_ids(seen.messages) == [e["id"] for e in events]
    assert len(on_topic(seen, f"{PREFIX}/info")) == 1


def test_the_retained_state_says_no_event_waits_once_all_are_delivered(
    broker: Mosquitto, make_sink: SinkFactory
) -> None:
    """The state counted the events still in the outbox when it was built: once they are
    delivered it is published again with none pending (not left at its old count)."""
    state = example("state")
    state["counters"]["outbox_pending"] = 5
    with Collector(broker.port, f"{PREFIX}/#") as seen:
        sink = make_sink(broker.port)
        sink.retained("state", state)
        for n in range(5):
            sink.event(new_event(n))
        sink.close()
        assert seen.wait_for(count_events(5), 5)
        assert seen.wait_for(lambda m: m[-1].payload == b"offline", 5)
    states = [json.loads(m.payload) for m in on_topic(seen, f"{PREFIX}/state")]
    delivery = {"epoch": states[-1]["epoch"], "last_seq": 5, "oldest_seq": 1}  # from the store
    assert states[-1] == {
        **state,
        "counters": {**state["counters"], "outbox_pending": 0},
        **delivery,
    }
    validate("state", states[-1])


def test_events_are_signed_at_publish_time_and_verify(
    broker: Mosquitto, make_sink: SinkFactory
) -> None:
    with Collector(broker.port, f"{PREFIX}/#") as seen:
        sink = make_sink(broker.port, shared_key=KEY)
        sink.retained("state", example("state"))
        before = time.time()
        for n in range(5):
            sink.event(new_event(n))
        assert seen.wait_for(count_events(5), 10)
        assert seen.wait_for(lambda m: any(x.topic == f"{PREFIX}/state" for x in m), 10)
    verifier = signing.Verifier(KEY.encode(), agent_id=AGENT, topic="event")
    for message in on_topic(seen, f"{PREFIX}/event"):
        payload = json.loads(message.payload)
        validate("event", payload)
        assert verifier.verify(payload, time.time()) == 2
        assert before <= payload["ts"] <= time.time()
    state = json.loads(on_topic(seen, f"{PREFIX}/state")[0].payload)
    validate("state", state)
    signing.verify(state, KEY.encode(), time.time(), agent_id=AGENT, topic="state")
    with pytest.raises(signing.SignatureError, match="bad signature"):  # bound to its topic
        signing.verify(state, KEY.encode(), time.time(), agent_id=AGENT, topic="info")


def test_status_is_online_while_connected_and_offline_after_close(
    broker: Mosquitto, make_sink: SinkFactory
) -> None:
    started = time.monotonic()
    sink = make_sink(broker.port)
    sink.wait_connected(10)
    assert time.monotonic() - started < 3  # returns when connected, not at the timeout
    with Collector(broker.port, f"{PREFIX}/status") as seen:
        assert seen.wait_for(lambda m: len(m) >= 1, 5)
        assert (seen.messages[0].payload, seen.messages[0].retain) == (b"online", True)
        sink.close()
        assert seen.wait_for(lambda m: len(m) >= 2, 5)
        assert seen.messages[1].payload == b"offline"
        assert not sink.connected
    with Collector(broker.port, f"{PREFIX}/status") as late:  # retained for anyone later
        assert late.wait_for(lambda m: len(m) >= 1, 5)
        assert late.messages[0].payload == b"offline"
        validate("status", late.messages[0].payload.decode())


RETAINED = {"info": "info", "state": "state", "hosts": "hosts", "quarantine": "quarantine"}


def publish_all_retained(sink: MqttSink) -> None:
    for topic, name in RETAINED.items():
        sink.retained(topic, example(name))  # type: ignore[arg-type]


def assert_late_subscriber_sees_retained(port: int) -> None:
    with Collector(port, f"{PREFIX}/#") as late:
        wanted = {f"{PREFIX}/{t}" for t in [*RETAINED, "status"]}
        assert late.wait_for(lambda m: {x.topic for x in m} >= wanted, 5)
        for message in late.messages:
            assert message.retain, message.topic
            name = message.topic.rsplit("/", 1)[1]
            if name == "status":
                assert message.payload == b"online"
            elif name == "state":  # with the event store's figures at publishing
                payload = json.loads(message.payload)
                validate(name, payload)
                assert without_delivery(payload) == without_delivery(example("state"))
                assert (payload["last_seq"], payload["oldest_seq"]) == (0, 1)
            else:
                payload = json.loads(message.payload)
                validate(name, payload)
                assert payload == example(RETAINED[name])


def test_retained_payloads_reach_a_late_subscriber(
    broker: Mosquitto, make_sink: SinkFactory
) -> None:
    with Collector(broker.port, f"{PREFIX}/#") as live:
        sink = make_sink(broker.port)
        publish_all_retained(sink)
        assert live.wait_for(lambda m: len({x.topic for x in m}) >= 5, 10)
    assert_late_subscriber_sees_retained(broker.port)


def test_only_the_latest_retained_payload_is_kept_and_unknown_topics_are_refused(
    broker: Mosquitto, make_sink: SinkFactory
) -> None:
    sink = make_sink(broker.port)
    quiet, busy = example("state.quiet"), example("state")
    with Collector(broker.port, f"{PREFIX}/state") as live:
        sink.retained("state", quiet)
        sink.retained("state", busy)
        assert live.wait_for(
            lambda m: any(
                without_delivery(json.loads(x.payload)) == without_delivery(busy) for x in m
            ),
            10,
        )
    with Collector(broker.port, f"{PREFIX}/state") as late:
        assert late.wait_for(lambda m: len(m) >= 1, 5)
        assert without_delivery(json.loads(late.messages[0].payload)) == without_delivery(busy)
    with pytest.raises(ValueError, match="not a retained topic"):
        sink.retained("event", busy)  # type: ignore[arg-type]


def test_retained_payloads_are_published_again_after_the_broker_lost_them(
    broker: Mosquitto, make_sink: SinkFactory
) -> None:
    sink = make_sink(broker.port)
    publish_all_retained(sink)
    sink.wait_connected(10)
    broker.kill()  # no persistence: the restarted broker has forgotten every retained message
    broker.start()
    assert wait_until(lambda: sink.counters()["reconnects"] >= 1)
    sink.wait_connected(10)
    assert_late_subscriber_sees_retained(broker.port)


# -- last will, outages, restarts ------------------------------------------------------

AGENT_SCRIPT = """
import sys, time
from sensor_agent.sinks.mqtt import MqttSettings, MqttSink
sink = MqttSink(MqttSettings(host="127.0.0.1", port=int(sys.argv[1]), agent_id="victim",
                             outbox_path=sys.argv[2], keepalive=5))
sink.wait_connected(10)
print("connected", flush=True)
time.sleep(60)
"""


def test_last_will_offline_when_the_agent_process_dies_abruptly(
    broker: Mosquitto, tmp_path: Path
) -> None:
    status = "lan_guard/victim/status"
    with Collector(broker.port, status) as seen:
        agent = subprocess.Popen(
            [sys.executable, "-c", AGENT_SCRIPT, str(broker.port), str(tmp_path / "o.sqlite")],
            cwd=REPO,
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        try:
            assert agent.stdout is not None
            assert agent.stdout.readline() == b"connected\n"
            assert seen.wait_for(lambda m: [x.payload for x in m] == [b"online"], 5)
            agent.send_signal(signal.SIGKILL)
            agent.wait(10)
        finally:
            agent.kill()
            agent.wait()
            assert agent.stdout is not None
            agent.stdout.close()
        assert seen.wait_for(lambda m: [x.payload for x in m] == [b"online", b"offline"], 10)
    with Collector(broker.port, status) as late:
        assert late.wait_for(lambda m: len(m) >= 1, 5)
        assert (late.messages[0].payload, late.messages[0].retain) == (b"offline", True)


def persistent_collector(port: int) -> Collector:
    """A subscriber whose session (subscription + queued QoS 1 messages) the broker keeps."""
    return Collector(port, f"{PREFIX}/event", client_id="test-collector", clean_session=False)


def test_broker_down_at_start_is_not_fatal_and_events_wait_in_the_outbox(
    tmp_path: Path, make_sink: SinkFactory
) -> None:
    with Mosquitto(persistence=True) as broker:
        with persistent_collector(broker.port):
            pass  # registers the subscription; the broker saves it on a clean stop
        broker.stop()
        sink = make_sink(broker.port)
        events = [new_event(n) for n in range(20)]
        for event in events:
            sink.event(event)
        time.sleep(0.3)
        assert sink.counters()["pending"] == 20
        assert not sink.connected
        assert sink.last_error is not None
        assert f"cannot connect to MQTT broker 127.0.0.1:{broker.port}" in sink.last_error
        with pytest.raises(MqttConnectionError, match="Connection refused"):
            sink.wait_connected(0.2)
        broker.start()
        with persistent_collector(broker.port) as seen:
            assert seen.wait_for(count_events(20), 10)
            assert first_occurrences(event_ids(seen.messages)) == [e["id"] for e in events]
        assert wait_until(lambda: sink.counters()["pending"] == 0)
        assert sink.last_error is None


def test_full_outbox_drops_the_oldest_and_counts_them(
    tmp_path: Path, make_sink: SinkFactory
) -> None:
    with Mosquitto(persistence=True) as broker:
        with persistent_collector(broker.port):
            pass
        broker.stop()
        sink = make_sink(broker.port, outbox_max=10)
        events = [new_event(n) for n in range(25)]
        for event in events:
            sink.event(event)
        assert sink.counters()["dropped"] == 15
        assert sink.counters()["pending"] == 10
        broker.start()
        with persistent_collector(broker.port) as seen:
            assert seen.wait_for(count_events(10), 10)
            time.sleep(0.2)
            assert event_ids(seen.messages) == [e["id"] for e in events[15:]]


def test_pending_events_are_sent_after_an_agent_restart(
    tmp_path: Path, make_sink: SinkFactory
) -> None:
    with Mosquitto(persistence=True) as broker:
        with persistent_collector(broker.port):
            pass
        broker.stop()
        first = make_sink(broker.port)
        events = [new_event(n) for n in range(30)]
        for event in events:
            first.event(event)
        first.close()  # broker still down: everything stays in the outbox file
        broker.start()
        with persistent_collector(broker.port) as seen:
            second = make_sink(broker.port)  # same outbox_path
            assert seen.wait_for(count_events(30), 10)
            assert first_occurrences(event_ids(seen.messages)) == [e["id"] for e in events]
        assert wait_until(lambda: second.counters()["pending"] == 0)


def test_500_events_while_the_broker_goes_away_twice_arrive_exactly_once_in_order(
    make_sink: SinkFactory,
) -> None:
    """Outage 1: a clean broker stop mid-stream, with events in flight. Outage 2: SIGKILL.

    Before the SIGKILL the test lets the subscriber catch up: a broker killed with SIGKILL
    loses messages it has already acknowledged to the agent but not yet written to the
    subscriber (nothing on the agent's side can prevent that), so that part checks the
    agent's reaction to an abrupt TCP loss, and the stream goes on while the broker is down.
    """
    events = [new_event(n) for n in range(500)]
    sent = [e["id"] for e in events]
    with Mosquitto(persistence=True) as broker, persistent_collector(broker.port) as seen:
        sink = make_sink(broker.port)
        for n, event in enumerate(events):
            if n == 150:
                broker.stop()
            elif n in (250, 420):
                broker.start()
            elif n == 350:
                assert seen.wait_for(count_events(350), 20)
                broker.kill()
            sink.event(event)
            if n % 10 == 0:
                time.sleep(0.01)  # a stream, not one burst
        assert seen.wait_for(count_events(500), 30), sink.counters()
        time.sleep(0.3)  # let late duplicates arrive, if any
        ids = event_ids(seen.messages)
    assert first_occurrences(ids) == sent  # every event, in order, after de-duplication
    assert set(ids) == set(sent)
    assert wait_until(lambda: sink.counters()["pending"] == 0)
    counters = sink.counters()
    assert counters["pending"] == 0
    assert counters["dropped"] == 0
    assert counters["reconnects"] >= 2
    assert counters["acknowledged"] >= 500


# -- TLS and authentication --------------------------------------------------------------


def client_tls(ca: Path, cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    context.load_cert_chain(str(cert), str(key))
    return context


def test_tls_with_client_certificate_and_password(tmp_path: Path, make_sink: SinkFactory) -> None:
    pki = make_pki(tmp_path / "pki")
    users = {"agent": "agent-secret", "ha": "ha-secret"}
    tls = BrokerTls.from_pki(pki, require_client_cert=True)
    with Mosquitto(users=users, tls=tls) as broker:
        context = client_tls(pki.ca_file, pki.client_cert, pki.client_key)
        with Collector(
            broker.port, f"{PREFIX}/#", username="ha", password="ha-secret", tls=context
        ) as seen:
            sink = make_sink(
                broker.port,
                username="agent",
                password="agent-secret",
                tls=TlsSettings(str(pki.ca_file), str(pki.client_cert), str(pki.client_key)),
            )
            events = [new_event(n) for n in range(10)]
            for event in events:
                sink.event(event)
            assert seen.wait_for(count_events(10), 10)
        assert event_ids(seen.messages) == [e["id"] for e in events]


def test_host_name_check_can_be_relaxed_but_the_ca_is_always_checked(
    tmp_path: Path, make_sink: SinkFactory
) -> None:
    pki = make_pki(tmp_path / "pki", server_names=["broker.example"])  # not 127.0.0.1
    with Mosquitto(tls=BrokerTls.from_pki(pki)) as broker:
        strict = make_sink(broker.port, tls=TlsSettings(str(pki.ca_file)))
        with pytest.raises(MqttConnectionError, match="certificate verify failed"):
            strict.wait_connected(5)
        strict.close()
        relaxed = make_sink(
            broker.port,
            tls=TlsSettings(str(pki.ca_file), insecure=True),
            outbox_path=str(tmp_path / "other.sqlite"),
        )
        relaxed.wait_connected(10)


def test_a_broker_certificate_from_another_ca_is_refused_clearly(
    tmp_path: Path, make_sink: SinkFactory
) -> None:
    ours, theirs = make_pki(tmp_path / "ours"), make_pki(tmp_path / "theirs")
    with Mosquitto(tls=BrokerTls.from_pki(theirs)) as broker:
        sink = make_sink(broker.port, tls=TlsSettings(str(ours.ca_file)))
        sink.event(new_event())
        with pytest.raises(MqttConnectionError, match="certificate verify failed"):
            sink.wait_connected(10)
        assert sink.counters()["pending"] == 1  # kept for when the set-up is fixed


def test_wrong_password_gives_a_clear_error_quickly_and_keeps_events(
    make_sink: SinkFactory,
) -> None:
    with Mosquitto(users={"agent": "right"}) as broker:
        sink = make_sink(broker.port, username="agent", password="wrong")
        sink.event(new_event())
        started = time.monotonic()
        with pytest.raises(MqttConnectionError, match="refused the connection: Not authorized"):
            sink.wait_connected(10)
        assert time.monotonic() - started < 3  # the refusal is reported, not waited out
        assert sink.counters()["pending"] == 1
        anonymous = make_sink(broker.port, outbox_path=str(make_sink.tmp_path / "anon.sqlite"))
        with pytest.raises(MqttConnectionError, match="Not authorized"):
            anonymous.wait_connected(10)


def test_invalid_settings_are_refused_with_the_key_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"port: 0.*agent_id: 'a/b'.*topic_prefix: 'x/#'"):
        MqttSettings(host="h", port=0, agent_id="a/b", topic_prefix="x/#")
    with pytest.raises(ValueError, match="password: set without a username"):
        MqttSettings(host="h", password="p")
    with pytest.raises(ValueError, match="shared_key: use at least 16 characters"):
        MqttSettings(host="h", shared_key="short")
    missing = TlsSettings(ca_file=str(tmp_path / "missing-ca.pem"))
    with pytest.raises(ValueError, match="invalid MQTT TLS settings"):
        MqttSink(
            MqttSettings(host="h", tls=missing, outbox_path=str(tmp_path / "o.sqlite")),
        )


def test_a_locked_outbox_is_reported_at_start(broker: Mosquitto, make_sink: SinkFactory) -> None:
    from sensor_agent.outbox import OutboxError

    make_sink(broker.port)
    with pytest.raises(OutboxError, match="locked by another process"):
        make_sink(broker.port)  # same outbox_path: a second agent would send duplicates


# -- commands --------------------------------------------------------------------------


def simple_handler(raw: bytes) -> dict[str, Any]:
    """Answers ok for any command, fails for action 'explode' (a handler bug)."""
    command = json.loads(raw)  # malformed JSON raises: the sink must turn that into a result
    if command.get("action") == "explode":
        raise RuntimeError("boom")
    if command.get("action") == "garbage":
        return {"nonsense": True}
    return {"id": command["id"], "ok": True, "error": None}


def send_commands(
    port: int, sink: MqttSink, payloads: list[bytes], expect: int | None = None
) -> list[dict[str, Any]]:
    sink.wait_connected(10)
    with Collector(port, f"{PREFIX}/command/result") as results:
        for payload in payloads:
            paho_publish.single(
                f"{PREFIX}/command", payload, qos=1, hostname="127.0.0.1", port=port
            )
        wanted = len(payloads) if expect is None else expect
        assert results.wait_for(lambda m: len(m) >= wanted, 10)
    answers = [json.loads(m.payload) for m in results.messages]
    for answer in answers:
        validate("command_result", answer)
    return answers


def test_commands_get_results_even_when_malformed_or_the_handler_fails(
    broker: Mosquitto, make_sink: SinkFactory
) -> None:
    sink = make_sink(broker.port, handler=simple_handler)
    answers = send_commands(
        broker.port,
        sink,
        [
            json.dumps({"id": "c1", "action": "quarantine", "mac": "b8:27:eb:4c:21:9a"}).encode(),
            b"{this is not json",
            json.dumps({"id": "c3", "action": "explode"}).encode(),
            json.dumps({"id": "c4", "action": "garbage"}).encode(),
            b"x" * 70_000,
        ],
    )
    assert answers[0] == {"id": "c1", "ok": True, "error": None}
    assert answers[1]["id"] == "" and answers[1]["ok"] is False
    assert "internal error: JSONDecodeError" in answers[1]["error"]
    assert answers[2] == {"id": "c3", "ok": False, "error": "internal error: RuntimeError: boom"}
    assert answers[3] == {"id": "c4", "ok": False, "error": "internal error: malformed result"}
    assert answers[4] == {"id": "", "ok": False, "error": "command larger than 65536 bytes"}
    sink.event(new_event())  # the sink is still fine afterwards
    with Collector(broker.port, f"{PREFIX}/event") as seen:
        sink.event(new_event())
        assert seen.wait_for(count_events(1), 10)


def test_without_a_handler_commands_are_answered_with_a_refusal(
    broker: Mosquitto, make_sink: SinkFactory
) -> None:
    sink = make_sink(broker.port)
    [answer] = send_commands(
        broker.port, sink, [json.dumps({"id": "c9", "action": "release"}).encode()]
    )
    assert answer["id"] == "c9" and answer["ok"] is False
    assert "accepts no commands" in answer["error"]


class RecordingEnforcer:
    """Stands in for nftables (tested by the enforcer's own tests): remembers quarantines."""

    kind = "nftables"

    def __init__(self) -> None:
        from sensor_agent.enforcer import QuarantinedHost

        self._host = QuarantinedHost
        self.quarantined: dict[str, Any] = {}

    def quarantine(self, mac: str, ip: str | None, command_id: str) -> None:
        self.quarantined[mac] = self._host(mac=mac, ip=ip, since=time.time(), command_id=command_id)

    def release(self, mac: str) -> bool:
        return self.quarantined.pop(mac, None) is not None

    def hosts(self) -> list[Any]:
        return list(self.quarantined.values())

    def close(self) -> None:
        self.quarantined.clear()


def test_signed_commands_through_the_real_command_handler(
    broker: Mosquitto, make_sink: SinkFactory
) -> None:
    from sensor_agent.commands import CommandHandler

    key = KEY.encode()
    enforcer = RecordingEnforcer()
    holder: list[MqttSink] = []
    handler = CommandHandler(
        enforcer=enforcer,  # type: ignore[arg-type]
        agent_id=AGENT,
        key=key,
        on_change=lambda payload: holder[0].retained("quarantine", payload),
    )
    sink = make_sink(broker.port, handler=handler, shared_key=KEY)
    holder.append(sink)
    mac = "b8:27:eb:4c:21:9a"
    good = signing.sign(
        {"id": "q1", "action": "quarantine", "mac": mac, "ip": "192.0.2.7"},
        key,
        time.time(),
        agent_id=AGENT,
        topic="command",
    )
    forged = {**good, "id": "q2", "sig": "0" * 64}
    with Collector(broker.port, f"{PREFIX}/quarantine") as quarantine:
        answers = send_commands(
            broker.port,
            sink,
            [json.dumps(good).encode(), json.dumps(good).encode(), json.dumps(forged).encode()],
        )
        assert quarantine.wait_for(lambda m: len(m) >= 1, 10)
    by_order = [(a["id"], a["ok"], a["error"]) for a in answers]
    assert by_order[0] == ("q1", True, None)
    assert by_order[1][:2] == ("q1", False) and "replayed" in str(by_order[1][2])
    assert by_order[2][:2] == ("q2", False) and "bad signature" in str(by_order[2][2])
    for answer in answers:  # results are signed by the sink, for their topic
        signing.verify(answer, key, time.time(), agent_id=AGENT, topic="command/result")
    state = json.loads(quarantine.messages[0].payload)
    validate("quarantine", state)
    assert [h["mac"] for h in state["hosts"]] == [mac]
    assert list(enforcer.quarantined) == [mac]


# -- replay: events a subscriber missed, published again -------------------------------


def replay_command(after_seq: int, command_id: str, agent_id: str = AGENT) -> bytes:
    body = {"id": command_id, "action": "replay", "after_seq": after_seq, "ts": time.time()}
    signed = signing.sign(body, KEY.encode(), time.time(), agent_id=agent_id, topic="command")
    return json.dumps(signed).encode()


def test_a_subscriber_that_missed_events_gets_them_again_by_replay(
    broker: Mosquitto, make_sink: SinkFactory, tmp_path: Path
) -> None:
    """The broker took the events while nobody listened: QoS 1 alone loses them. The
    subscriber asks for what follows the last seq it has; the agent publishes them again, in
    order, signed afresh; the state tells it what there is."""
    from sensor_agent.commands import CommandHandler
    from sensor_agent.enforcer import NoEnforcer
    from sensor_agent.outbox import Outbox
    from sensor_agent.redelivery import Redelivery

    outbox = Outbox(tmp_path / "store.sqlite")
    handler = CommandHandler(
        NoEnforcer(), agent_id=AGENT, key=KEY.encode(), replay=Redelivery(outbox, batch=15)
    )
    sink = MqttSink(
        make_sink.settings(broker.port, shared_key=KEY), command_handler=handler, outbox=outbox
    )
    make_sink.sinks.append(sink)
    events = [new_event(n) for n in range(20)]
    for event in events:
        sink.event(event)
    sink.retained("state", without_delivery(example("state")))
    assert wait_until(lambda: sink.counters()["pending"] == 0)  # all taken, nobody listened
    assert outbox.synced_seq == 20  # on disk before they were published
    with Collector(broker.port, f"{PREFIX}/#") as seen:
        assert seen.wait_for(lambda m: any(x.topic == f"{PREFIX}/state" for x in m), 5)
        state = json.loads(on_topic(seen, f"{PREFIX}/state")[0].payload)
        validate("state", state)
        assert (state["epoch"], state["last_seq"], state["oldest_seq"]) == (outbox.epoch, 20, 1)
        asked = time.time()
        answers = send_commands(
            broker.port,
            sink,
            [
                replay_command(3, "r1"),  # 4..18 (the batch is 15)
                replay_command(3, "r2", agent_id="another-agent"),  # misdirected
                replay_command(18, "r3"),  # the rest
            ],
        )
        assert seen.wait_for(count_events(17), 10)
        time.sleep(0.2)  # nothing more comes
        replayed = [json.loads(m.payload) for m in on_topic(seen, f"{PREFIX}/event")]
    by_id = {answer["id"]: answer for answer in answers}
    assert by_id["r1"]["replay"] == {
        "epoch": outbox.epoch,
        "after_seq": 3,
        "count": 15,
        "first_seq": 4,
        "through_seq": 18,
        "last_seq": 20,
        "gap": None,
    }
    assert (
        by_id["r2"]["ok"] is False and "not signed with this key for agent" in by_id["r2"]["error"]
    )
    assert (by_id["r3"]["replay"]["first_seq"], by_id["r3"]["replay"]["count"]) == (19, 2)
    assert [e["seq"] for e in replayed] == list(range(4, 21))
    assert [e["id"] for e in replayed] == [e["id"] for e in events[3:]]
    verifier = signing.Verifier(KEY.encode(), agent_id=AGENT, topic="event")
    for event in replayed:
        verifier.verify(event, time.time())
        assert event["ts"] >= asked  # signed afresh: passes the freshness check
    assert wait_until(lambda: sink.counters()["pending"] == 0)


def test_a_replay_of_events_already_gone_reports_the_gap(
    broker: Mosquitto, make_sink: SinkFactory, tmp_path: Path
) -> None:
    from sensor_agent.commands import CommandHandler
    from sensor_agent.enforcer import NoEnforcer
    from sensor_agent.outbox import Outbox
    from sensor_agent.redelivery import Redelivery

    outbox = Outbox(tmp_path / "store.sqlite", keep_rows=4)
    handler = CommandHandler(
        NoEnforcer(), agent_id=AGENT, key=KEY.encode(), replay=Redelivery(outbox)
    )
    sink = MqttSink(
        make_sink.settings(broker.port, shared_key=KEY), command_handler=handler, outbox=outbox
    )
    make_sink.sinks.append(sink)
    for n in range(10):
        sink.event(new_event(n))
    assert wait_until(lambda: sink.counters()["pending"] == 0 and sink.counters()["kept"] == 4)
    [answer] = send_commands(broker.port, sink, [replay_command(2, "r1")])
    assert answer["replay"]["gap"] == {"first_seq": 3, "last_seq": 6}
    assert (answer["replay"]["first_seq"], answer["replay"]["count"]) == (7, 4)


def test_events_stored_while_the_broker_is_away_go_to_disk_within_a_second(
    make_sink: SinkFactory, tmp_path: Path
) -> None:
    """A power cut during an outage must not lose them (nor give their seqs away again)."""
    from sensor_agent.outbox import Outbox
    from tests.broker import free_port

    outbox = Outbox(tmp_path / "store.sqlite")
    sink = MqttSink(make_sink.settings(free_port()), outbox=outbox)  # nobody listens there
    make_sink.sinks.append(sink)
    for n in range(5):
        sink.event(new_event(n))
    assert wait_until(lambda: outbox.synced_seq == 5, timeout=5)
    assert sink.counters()["pending"] == 5
