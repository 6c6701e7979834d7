"""Contract tests: the schema files, their examples, and payloads the agent's code builds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from sensor_agent.outbox import Outbox
from sensor_agent.signing import SignatureError, verify
from sensor_agent.sinks.mqtt import error_result, state_with_delivery
from tests.contract import SCHEMA_DIR, errors, validate

EXAMPLES = SCHEMA_DIR / "examples"
VALID = sorted(EXAMPLES.glob("*.json"))
INVALID = sorted((EXAMPLES / "invalid").glob("*.json"))
SCHEMAS = sorted(p.name.removesuffix(".schema.json") for p in SCHEMA_DIR.glob("*.schema.json"))
PAYLOAD_SCHEMAS = [name for name in SCHEMAS if name != "common"]
EXAMPLE_KEY = b"example-shared-key-0123"


def schema_of(path: Path) -> str:
    return path.name.split(".")[0]


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", SCHEMAS)
def test_schema_files_are_valid_draft_2020_12(name: str) -> None:
    Draft202012Validator.check_schema(load(SCHEMA_DIR / f"{name}.schema.json"))


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.name)
def test_valid_example_validates(path: Path) -> None:
    validate(schema_of(path), load(path))


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.name)
def test_invalid_example_is_refused(path: Path) -> None:
    assert errors(schema_of(path), load(path)), f"{path.name} should break its schema"


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.name)
def test_invalid_example_differs_from_a_valid_one_only_where_its_name_says(path: Path) -> None:
    """Each invalid example breaks exactly one rule, so it tests that rule and nothing else."""
    assert len(errors(schema_of(path), load(path))) == 1


def test_every_payload_schema_and_event_kind_has_an_example() -> None:
    assert {schema_of(p) for p in VALID} == set(PAYLOAD_SCHEMAS)
    kinds = load(SCHEMA_DIR / "common.schema.json")["$defs"]["kind"]["enum"]
    assert {load(p)["kind"] for p in VALID if schema_of(p) == "event"} == set(kinds)
    assert {schema_of(p) for p in INVALID} >= {"event", "command", "state"}


@pytest.mark.parametrize(
    ("name", "topic"),
    [("event.syn_scan.signed.json", "event"), ("command.quarantine.json", "command")],
)
def test_signed_examples_verify_with_the_documented_key(name: str, topic: str) -> None:
    payload = load(EXAMPLES / name)
    assert verify(payload, EXAMPLE_KEY, payload["ts"], agent_id="pi-livingroom", topic=topic) == 2
    with pytest.raises(SignatureError, match="bad signature"):  # bound to agent and topic
        verify(payload, EXAMPLE_KEY, payload["ts"], agent_id="pi-garage", topic=topic)


def test_timestamps_must_be_dates_even_without_a_format_checker() -> None:
    event = load(EXAMPLES / "event.arp_scan.json")
    for good in (
        "2026-11-25T21:00:03Z",
        "2026-11-25T21:00:03.123456Z",
        "2026-11-25T21:00:03+00:00",
    ):
        event["detected_at"] = good
        assert not errors("event", event), good
    for bad in (
        "2026-11-25 21:00:03Z",
        "2026-11-25T21:00:03",
        "1795640408",
        "2026-11-25T25:00:00Z",
    ):
        event["detected_at"] = bad
        assert errors("event", event), bad


@pytest.mark.parametrize("schema", ["event", "info", "state", "hosts", "quarantine"])
def test_sig_without_ts_is_refused_everywhere(schema: str) -> None:
    example = next(p for p in VALID if schema_of(p) == schema)
    payload = load(example)
    payload.pop("ts", None)
    payload["sig"] = "0" * 64
    assert any("'ts' is a dependency of 'sig'" in e for e in errors(schema, payload))


@pytest.mark.parametrize(
    ("command_id", "error"),
    [("", "command is not JSON"), ("x" * 64, "e" * 2000), ("ha-1", "refused")],
)
def test_the_sinks_error_results_follow_the_schema(command_id: str, error: str) -> None:
    validate("command_result", error_result(command_id, error))


# -- what the agent's own code emits ------------------------------------------------------


class Recorder:
    """Every event and retained payload the pipeline hands over, as the MQTT sink would
    publish them: events through a real event store (which gives them seq and epoch), the
    state with the store's delivery fields."""

    def __init__(self, store: Path) -> None:
        self.outbox = Outbox(store)
        self.events: list[dict[str, Any]] = []
        self.retained_payloads: list[tuple[str, dict[str, Any]]] = []

    def event(self, event: Any) -> None:
        self.outbox.append(event)
        for entry in self.outbox.after(0, 10):
            self.events.append(json.loads(json.dumps(entry.payload)))  # as it would travel
            self.outbox.acknowledge(entry.seq)

    def retained(self, topic: str, payload: Any) -> None:
        if topic == "state":
            payload = state_with_delivery(payload, self.outbox)
        self.retained_payloads.append((topic, json.loads(json.dumps(payload))))

    def close(self) -> None:
        self.outbox.close()


def run_pipeline(frames: Any, store: Path, **config: Any) -> Recorder:
    from sensor_agent.pipeline import Pipeline, PipelineConfig
    from sensor_agent.synth import demo_node

    node_ip, node_mac, gateway_ip = demo_node()
    recorder = Recorder(store)
    pipeline = Pipeline(
        PipelineConfig(
            agent_id="contract", node_ip=node_ip, node_mac=node_mac, gateway_ip=gateway_ip, **config
        ),
        [recorder],  # type: ignore[list-item]
    )
    records = list(frames)
    pipeline.feed_many([ts for ts, _ in records], [frame for _, frame in records])
    pipeline.finish()
    recorder.close()
    return recorder


@pytest.fixture(scope="module")
def demo_output(tmp_path_factory: pytest.TempPathFactory) -> Recorder:
    from sensor_agent.synth import demo_frames

    return run_pipeline(demo_frames(), tmp_path_factory.mktemp("store") / "outbox.sqlite")


def test_every_event_of_the_demo_follows_the_schema(demo_output: Recorder) -> None:
    assert {e["kind"] for e in demo_output.events} >= {"arp_scan", "syn_scan", "session"}
    for event in demo_output.events:
        assert not errors("event", event), (event, errors("event", event))
    assert [e["seq"] for e in demo_output.events] == list(range(1, len(demo_output.events) + 1))
    assert {e["epoch"] for e in demo_output.events} == {demo_output.outbox.epoch}


def test_every_retained_payload_of_the_demo_follows_the_schema(demo_output: Recorder) -> None:
    topics = {topic for topic, _ in demo_output.retained_payloads}
    assert topics >= {"state", "hosts"}
    for topic, payload in demo_output.retained_payloads:
        assert not errors(topic, payload), (topic, errors(topic, payload))
    *_, (_, last_state) = (item for item in demo_output.retained_payloads if item[0] == "state")
    assert last_state["last_seq"] == len(demo_output.events)
    assert last_state["oldest_seq"] == 1  # every event is kept for replay


def test_a_busy_mixed_capture_emits_only_valid_payloads(tmp_path: Path) -> None:
    from sensor_agent.synth import mixed_frames

    output = run_pipeline(mixed_frames(count=20_000), tmp_path / "outbox.sqlite")
    assert output.events
    for event in output.events:
        assert not errors("event", event), (event, errors("event", event))
    for topic, payload in output.retained_payloads:
        assert not errors(topic, payload), (topic, errors(topic, payload))


def test_the_info_payload_follows_the_schema() -> None:
    from sensor_agent.pipeline import PipelineConfig, info_payload
    from sensor_agent.synth import demo_node

    node_ip, node_mac, gateway_ip = demo_node()
    for gateway, decoy_errors in ((gateway_ip, [(139, "Address already in use")]), (None, [])):
        config = PipelineConfig(
            agent_id="contract", node_ip=node_ip, node_mac=node_mac, gateway_ip=gateway
        )
        payload = info_payload(
            config,
            version="0.1.0",
            interface="eth0",
            decoy_ports=[554, 445],
            decoy_errors=decoy_errors,
            capabilities=["detect", "decoys", "hosts", "signing"],
            started_at=1_795_640_000.0,
        )
        validate("info", json.loads(json.dumps(payload)))


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[1, 2]",
        b'{"id": "c1", "action": "quarantine"}',
        b'{"id": "c2", "action": "release", "mac": "b8:27:eb:4c:21:9a", "ts": 1}',
        b'{"id": "c3", "action": "quarantine", "mac": "b8:27:eb:4c:21:9a", "ip": null, "ts": 1}',
        b'{"id": "' + b"x" * 100 + b'", "action": "release"}',
        b'{"id": "r1", "action": "replay", "after_seq": 0, "ts": 1}',
        b'{"id": "r2", "action": "replay", "after_seq": -1, "ts": 1}',
    ],
)
def test_the_command_handlers_results_follow_the_schema(raw: bytes) -> None:
    from sensor_agent.commands import CommandHandler
    from sensor_agent.enforcer import NoEnforcer

    result = CommandHandler(enforcer=NoEnforcer(), agent_id="contract")(raw)
    validate("command_result", result)
    assert result["ok"] is False


def test_a_replay_answer_of_the_real_event_store_follows_the_schema(tmp_path: Path) -> None:
    from sensor_agent.commands import CommandHandler
    from sensor_agent.enforcer import NoEnforcer
    from sensor_agent.redelivery import Redelivery

    store = Outbox(tmp_path / "store.sqlite", keep_rows=2)
    for n in range(5):
        store.acknowledge(store.append({"n": n}))
    handler = CommandHandler(NoEnforcer(), agent_id="contract", replay=Redelivery(store))
    for after in (0, 3, 5):
        raw = json.dumps({"id": f"r{after}", "action": "replay", "after_seq": after, "ts": 1})
        result = handler(raw.encode())
        validate("command_result", result)
        assert result["ok"] is True
    store.close()
