"""Hostile MQTT input: refused within the bounds, counted, never raised, never stored.

The bounds one by one (pure ``intake``), each reproduced attack through a loaded entry,
and a fuzz test that drives arbitrary payloads into every topic of a loaded entry.
"""

from __future__ import annotations

import copy
import json
import logging
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.lan_guard import intake
from custom_components.lan_guard.const import CONF_SIGNING_KEY, BadPayload
from custom_components.lan_guard.coordinator import LanGuardCoordinator
from custom_components.lan_guard.diagnostics import async_get_config_entry_diagnostics
from custom_components.lan_guard.intake import Decoded, PayloadRefused, Refused, decode, loads
from custom_components.lan_guard.payloads import validate
from custom_components.lan_guard.signing import signing_key
from sensor_agent import signing as agent_signing
from tests.contract import errors

from .conftest import (
    AGENT,
    EXAMPLE_KEY,
    EXAMPLES,
    example,
    iso,
    make_entry,
    make_event,
    make_state,
    publish,
    setup_entry,
    unload,
)

pytestmark = pytest.mark.usefixtures("mqtt_mock")
KEY = signing_key(EXAMPLE_KEY)
THREAT = "binary_sensor.lan_guard_pi_livingroom_threat"
# After every date in schema/examples.
LATER = datetime(2026, 11, 26, tzinfo=UTC)


def nested(depth: int) -> Any:
    """A value ``depth`` containers deep (alternating arrays and objects)."""
    value: Any = 0
    for level in range(depth):
        value = [value] if level % 2 else {"a": value}
    return value


def refusal(raw: bytes | str, max_bytes: int = intake.MAX_RETAINED_BYTES) -> BadPayload | None:
    try:
        loads(raw, max_bytes)
    except PayloadRefused as err:
        return err.reason
    return None


# --------------------------------------------------------------------- the bounds


@pytest.mark.parametrize(
    "path",
    [p for p in sorted(EXAMPLES.glob("*.json")) if p.name.split(".")[0] in intake.TIMESTAMPS]
    + [p for p in sorted(EXAMPLES.glob("command_result.*.json"))],
    ids=lambda p: p.name,
)
def test_every_contract_example_is_well_within_the_bounds(path: Any) -> None:
    name = path.name.split(".")[0]
    raw = path.read_bytes()
    decoded = decode(name, raw, LATER)
    assert isinstance(decoded, Decoded), decoded
    assert decoded.payload == validate(name, json.loads(raw))
    assert decoded.sent == json.loads(raw)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"a": 1}', None),
        ('{"a": 1}', None),
        (b"\xff\xfe", BadPayload.NOT_JSON),
        (b"not json", BadPayload.NOT_JSON),
        (b"", BadPayload.NOT_JSON),
        (b'{"a": NaN}', BadPayload.NOT_JSON),
        (b'{"a": Infinity}', BadPayload.NOT_JSON),
        (b'{"a": -Infinity}', BadPayload.NOT_JSON),
        # The reproduced crash: a RecursionError out of the decoder.
        (b"[" * 10_000 + b"]" * 10_000, BadPayload.TOO_DEEP),
        (b'{"a":' * 10_000 + b"1" + b"}" * 10_000, BadPayload.TOO_DEEP),
        (json.dumps(nested(intake.MAX_DEPTH)), None),
        (json.dumps(nested(intake.MAX_DEPTH + 1)), BadPayload.TOO_DEEP),
        # Brackets inside strings are text, escaped quotes or not.
        (json.dumps({"a": "[" * 100, "b": '\\"[{' * 30, "c": "]]"}), None),
        (json.dumps(["x" * intake.MAX_STRING]), None),
        (json.dumps(["x" * (intake.MAX_STRING + 1)]), BadPayload.TOO_LONG),
        (json.dumps({"k" * (intake.MAX_STRING + 1): 1}), BadPayload.TOO_LONG),
        (json.dumps(["あ" * (intake.MAX_STRING + 1)]), BadPayload.TOO_LONG),
        (json.dumps(list(range(intake.MAX_ITEMS))), None),
        (json.dumps(list(range(intake.MAX_ITEMS + 1))), BadPayload.TOO_MANY),
        (json.dumps({str(i): i for i in range(intake.MAX_ITEMS + 1)}), BadPayload.TOO_MANY),
        (json.dumps([2**53, -(2**53), 9.0e15, -9.0e15, 1e-300]), None),
        (json.dumps([2**53 + 1]), BadPayload.BAD_NUMBER),
        (json.dumps([-(2**53) - 1]), BadPayload.BAD_NUMBER),
        (b"[1e400]", BadPayload.BAD_NUMBER),
        (b"[-1e400]", BadPayload.BAD_NUMBER),
        (b"[9.1e15]", BadPayload.BAD_NUMBER),
        (b"[1" + b"0" * 4000 + b"]", BadPayload.BAD_NUMBER),  # 10**4000
        (b"[1" + b"0" * 5000 + b"]", BadPayload.BAD_NUMBER),  # beyond Python's int parser
        (b'["\\ud800"]', BadPayload.NOT_JSON),  # half a surrogate pair
        (b'["\\ud83d\\ude00"]', None),  # a whole one
        (b'"' + b"x" * (intake.MAX_RETAINED_BYTES - 1) + b'"', BadPayload.TOO_LARGE),
    ],
    ids=lambda value: value[:40] if isinstance(value, bytes | str) else str(value),
)
def test_the_bounds(raw: bytes | str, reason: BadPayload | None) -> None:
    assert refusal(raw) is reason


def test_sizes_per_topic() -> None:
    event = make_event()
    event["evidence"].update({f"pad{i}": "x" * 1000 for i in range(15)})
    padded = json.dumps(event)
    assert len(padded) < intake.MAX_LIVE_BYTES
    assert isinstance(decode("event", padded, datetime.now(UTC)), Decoded)
    event["evidence"]["pad15"] = "x" * 1000
    too_big = json.dumps(event)
    assert len(too_big) > intake.MAX_LIVE_BYTES
    refused = decode("event", too_big, datetime.now(UTC))
    assert refused == Refused(BadPayload.TOO_LARGE, f"{len(too_big)} bytes (limit 16 KiB)")
    hosts = example("hosts")
    hosts["hosts"] = [
        {**hosts["hosts"][0], "mac": f"b8:27:eb:00:{i // 256:02x}:{i % 256:02x}"}
        for i in range(intake.MAX_ITEMS)
    ]
    raw = json.dumps(hosts).encode()
    assert intake.MAX_LIVE_BYTES < len(raw) < intake.MAX_RETAINED_BYTES
    assert isinstance(decode("hosts", raw, LATER), Decoded)


@pytest.mark.parametrize(
    ("name", "make", "valid"),
    [
        ("event", lambda at: make_event(detected_at=at), True),
        ("event", lambda at: {**make_event(), "first_seen": iso(at)}, True),
        ("state", lambda at: make_state([{"incident_id": "a" * 32, "level": 2}], at), True),
        ("info", lambda at: {**example("info"), "started_at": iso(at)}, True),
    ],
)
def test_dates_at_most_the_allowed_skew_ahead(name: str, make: Any, valid: bool) -> None:
    now = datetime.now(UTC)
    assert isinstance(decode(name, json.dumps(make(now + timedelta(seconds=299))), now), Decoded)
    assert isinstance(decode(name, json.dumps(make(now - timedelta(days=400))), now), Decoded)
    ahead = decode(name, json.dumps(make(now + timedelta(seconds=301))), now)
    assert isinstance(ahead, Refused)
    assert ahead.reason is BadPayload.FUTURE
    assert "301 s ahead" in ahead.detail


def test_a_date_inside_a_list_counts_too() -> None:
    hosts = example("hosts")
    hosts["hosts"][2]["last_seen"] = "9999-12-31T23:59:59Z"
    refused = decode("hosts", json.dumps(hosts), LATER)
    assert isinstance(refused, Refused)
    assert refused.reason is BadPayload.FUTURE
    assert refused.detail.startswith("hosts.last_seen is ")


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from([*sorted(intake.TIMESTAMPS), "command_result"]),
    raw=st.binary(max_size=300)
    | st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
        ),
        max_leaves=30,
    ).map(lambda value: json.dumps(value).encode()),
)
def test_decode_never_raises(name: str, raw: bytes) -> None:
    assert isinstance(decode(name, raw, datetime.now(UTC)), Decoded | Refused)


# --------------------------------------------------------------------- the reproduced attacks


def no_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage()[:300] for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_payload_nested_10000_levels_is_refused_not_raised(
    hass: HomeAssistant, caplog: pytest.LogCaptureFixture
) -> None:
    entry = await setup_entry(hass)
    coordinator: LanGuardCoordinator = entry.runtime_data.coordinator
    deep = "[" * 10_000 + "]" * 10_000
    publish(hass, "state", deep)
    publish(hass, "info", f'{{"agent_id": "{AGENT}", "x": {deep}}}')
    # Events are at most 16 KiB: 5,000 levels.
    event = json.dumps(make_event())
    deep = "[" * 5_000 + "]" * 5_000
    publish(hass, "event", event.replace('"evidence": {', f'"evidence": {{"x": {deep}, ', 1))
    await hass.async_block_till_done()
    assert coordinator.bad_payloads == {BadPayload.TOO_DEEP: 3}
    assert no_errors(caplog) == []
    assert len(coordinator.history) == 0
    await unload(hass, entry)


async def test_with_a_key_an_evidence_of_1e400_is_refused_not_raised(
    hass: HomeAssistant, caplog: pytest.LogCaptureFixture
) -> None:
    entry = await setup_entry(hass, make_entry(**{CONF_SIGNING_KEY: EXAMPLE_KEY}), online=False)
    coordinator: LanGuardCoordinator = entry.runtime_data.coordinator
    signed = json.dumps(
        agent_signing.sign(make_event(), KEY, dt_now(), agent_id=AGENT, topic="event")
    )
    assert '"rate": 4.0' in signed
    publish(hass, "event", signed.replace('"rate": 4.0', '"rate": 1e400'))
    publish(hass, "event", signed.replace('"rate": 4.0', '"rate": 4.0, "x": -1e400'))
    await hass.async_block_till_done()
    assert coordinator.bad_payloads == {BadPayload.BAD_NUMBER: 2}
    assert no_errors(caplog) == []
    publish(hass, "event", signed)  # the genuine one still passes
    await hass.async_block_till_done()
    assert len(coordinator.history) == 1
    await unload(hass, entry)


async def test_an_event_nested_300_levels_is_refused_and_the_entry_unloads(
    hass: HomeAssistant, hass_storage: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    entry = await setup_entry(hass)
    coordinator: LanGuardCoordinator = entry.runtime_data.coordinator
    too_deep = make_event()
    too_deep["evidence"]["deep"] = nested(300)
    publish(hass, "event", too_deep)
    # As deep as the bound allows (the evidence is 2 levels down): stored, saved, unloaded.
    deepest = make_event()
    deepest["evidence"]["deep"] = nested(intake.MAX_DEPTH - 2)
    publish(hass, "event", deepest)
    await hass.async_block_till_done()
    assert coordinator.bad_payloads == {BadPayload.TOO_DEEP: 1}
    assert [event.id for event in coordinator.history] == [deepest["id"]]
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.NOT_LOADED
    [record] = hass_storage[f"lan_guard.{entry.entry_id}"]["data"]["events"]
    assert record["event"]["evidence"]["deep"] == deepest["evidence"]["deep"]
    assert no_errors(caplog) == []


async def test_huge_strings_and_integers_are_never_stored(
    hass: HomeAssistant, caplog: pytest.LogCaptureFixture
) -> None:
    entry = await setup_entry(hass)
    coordinator: LanGuardCoordinator = entry.runtime_data.coordinator
    five_mb = "x" * 5_000_000
    publish(hass, "event", make_event(source={**make_event()["source"], "hostname": five_mb}))
    publish(hass, "hosts", {**example("hosts"), "note": five_mb}, retain=True)
    long_extra = make_event()
    long_extra["evidence"]["note"] = "x" * (intake.MAX_STRING + 1)
    publish(hass, "event", long_extra)
    huge = json.dumps(make_event()).replace('"packets": 12', '"packets": 1' + "0" * 4000)
    publish(hass, "event", huge)
    await hass.async_block_till_done()
    assert coordinator.bad_payloads == {
        BadPayload.TOO_LARGE: 2,
        BadPayload.TOO_LONG: 1,
        BadPayload.BAD_NUMBER: 1,
    }
    assert len(coordinator.history) == 0
    assert coordinator.hosts is None
    assert no_errors(caplog) == []
    await unload(hass, entry)


async def test_an_event_dated_9999_is_refused_and_opens_nothing(hass: HomeAssistant) -> None:
    entry = await setup_entry(hass)
    coordinator: LanGuardCoordinator = entry.runtime_data.coordinator
    far = make_event(level=3, kind="session")
    far.update(detected_at="9999-12-31T23:59:59Z", last_seen="9999-12-31T23:59:59Z")
    publish(hass, "event", far)
    await hass.async_block_till_done()
    assert coordinator.bad_payloads == {BadPayload.FUTURE: 1}
    assert coordinator.incidents == {}
    assert len(coordinator.history) == 0
    assert coordinator.last_refused[BadPayload.FUTURE].reason.startswith("last_seen is ")
    # An agent a little ahead (within the skew) is still heard, and its state still closes.
    soon = make_event(level=3, kind="session", detected_at=dt_util_now() + timedelta(seconds=200))
    publish(hass, "event", soon)
    await hass.async_block_till_done()
    assert hass.states.get(THREAT).state == "on"
    publish(hass, "state", make_state([], dt_util_now() + timedelta(seconds=250)), retain=True)
    await hass.async_block_till_done()
    assert hass.states.get(THREAT).state == "off"
    await unload(hass, entry)


def many_hosts(count: int) -> dict[str, Any]:
    hosts = example("hosts")
    template = hosts["hosts"][1]
    hosts["hosts"] = [
        {**template, "mac": f"b8:27:eb:{i >> 16:02x}:{(i >> 8) & 255:02x}:{i & 255:02x}"}
        for i in range(count)
    ]
    return hosts


async def test_100000_hosts_are_refused_and_big_payloads_decoded_off_the_loop(
    hass: HomeAssistant,
) -> None:
    entry = await setup_entry(hass)
    coordinator: LanGuardCoordinator = entry.runtime_data.coordinator
    flood = json.dumps(many_hosts(100_000)).encode()
    assert len(flood) > intake.MAX_RETAINED_BYTES
    publish(hass, "hosts", flood)
    await hass.async_block_till_done()
    assert coordinator.bad_payloads == {BadPayload.TOO_LARGE: 1}
    assert coordinator.hosts is None

    # 4,096 hosts (about 800 KiB) are fine, but decoded in a worker thread: when the MQTT
    # callback returns, the loop has not decoded them.
    big = many_hosts(intake.MAX_ITEMS)
    publish(hass, "hosts", big)
    assert coordinator.hosts is None
    await hass.async_block_till_done()
    assert coordinator.hosts is not None
    assert len(coordinator.hosts["hosts"]) == intake.MAX_ITEMS
    assert hass.states.get("sensor.lan_guard_pi_livingroom_hosts_seen").state == "4096"

    # Per topic they keep their order: a small payload waits behind a big one, and of
    # several waiting only the newest is decoded.
    small = example("hosts")
    publish(hass, "hosts", many_hosts(3000))
    publish(hass, "hosts", many_hosts(2000))
    publish(hass, "hosts", small)
    await hass.async_block_till_done()
    assert coordinator.hosts == small
    # Meanwhile events are not held up behind them.
    publish(hass, "hosts", big)
    publish(hass, "event", make_event())
    assert len(coordinator.history) == 1
    await hass.async_block_till_done()
    assert coordinator.bad_payloads == {BadPayload.TOO_LARGE: 1}
    await unload(hass, entry)


async def test_a_failing_handler_is_counted_and_logged_never_raised(
    hass: HomeAssistant, caplog: pytest.LogCaptureFixture
) -> None:
    entry = await setup_entry(hass)
    coordinator: LanGuardCoordinator = entry.runtime_data.coordinator

    def broken(_result: dict[str, Any]) -> None:
        raise KeyError("a bug")

    coordinator.async_add_result_listener(broken)
    for _ in range(2):
        publish(hass, "command/result", {"id": "x", "ok": True, "error": None})
        await hass.async_block_till_done()
    assert coordinator.bad_payloads == {BadPayload.HANDLER_ERROR: 2}
    [error] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "handler_error" in error.getMessage()
    assert error.exc_info is not None
    await unload(hass, entry)


async def test_each_reason_is_counted_in_diagnostics(hass: HomeAssistant) -> None:
    entry = await setup_entry(hass)
    publish(hass, "event", "x" * (intake.MAX_LIVE_BYTES + 1))
    publish(hass, "event", json.dumps(nested(40)))
    publish(hass, "event", json.dumps(["x" * 2000]))
    publish(hass, "event", json.dumps([0] * 5000))
    publish(hass, "event", b"[1e400]")
    publish(hass, "event", make_event(detected_at=dt_util_now() + timedelta(days=1)))
    publish(hass, "status", "online" * 20)
    await hass.async_block_till_done()
    diagnostics = await async_get_config_entry_diagnostics(hass, entry)
    refused = diagnostics["refused_payloads"]
    assert refused["counts"] == {
        "too_large": 2,
        "too_deep": 1,
        "too_long": 1,
        "too_many": 1,
        "bad_number": 1,
        "future": 1,
    }
    assert refused["last"]["too_large"]["topic"] == "status"
    assert refused["last"]["bad_number"]["reason"] == "inf beyond ±2**53"
    await unload(hass, entry)


def dt_now() -> float:
    return datetime.now(UTC).timestamp()


def dt_util_now() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------- the fuzz test

TOPICS = ["status", "info", "event", "state", "hosts", "quarantine", "command/result"]
RETAINED = ("info", "state", "hosts", "quarantine")
SCHEMA = {"command/result": "command_result"}
# Strings an attacker would try, and values that broke the landed version.
HOSTILE_TEXT = st.sampled_from(
    [
        "[Restore service](https://example.invalid/x)",
        "<img src=x onerror=alert(1)>",
        "\u202egnp.exe",
        "a\x00b\nc",
        "x" * 2000,
        "9999-12-31T23:59:59Z",
        "0000-01-01T00:00:00Z",
        AGENT,
    ]
)
LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | HOSTILE_TEXT
)
VALUES = st.recursive(
    LEAVES,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
RAW_TEXT = st.sampled_from(
    [
        b"[" * 20_000 + b"]" * 20_000,
        b'{"a":' * 300 + b"1" + b"}" * 300,
        b"[1e400]",
        b'{"level": NaN}',
        b"[1" + b"0" * 5000 + b"]",
        b'["\\ud800"]',
        b"\xff\xfe\x00",
        b"",
        b"null",
        json.dumps(many_hosts(300)).encode(),  # decoded off the loop (valid on hosts only)
    ]
)


def valid_payload(topic: str) -> dict[str, Any]:
    """A fresh valid payload of this agent for ``topic`` (what mutations start from)."""
    now = datetime.now(UTC)
    if topic == "event":
        return make_event(kind="session", level=3)
    if topic == "state":
        return make_state([{"incident_id": "a" * 32, "level": 2}], now)
    if topic == "command/result":
        return example("command_result.refused")
    payload = example(topic)
    payload["updated_at" if topic != "info" else "started_at"] = iso(now)
    return payload


def paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths(item, (*path, key))
    elif isinstance(value, list) and value:
        found += paths(value[0], (*path, 0))
    return found


def similar(value: Any) -> st.SearchStrategy[Any]:
    """Values of the same JSON type as ``value``: they often pass the contract, and so reach
    the handlers (a hostile host name, a date far ahead, a level of 3)."""
    if isinstance(value, bool):
        return st.booleans()
    if isinstance(value, int):
        return st.integers(min_value=-1, max_value=2**60) | st.sampled_from([0, 1, 2, 3, 2**53])
    if isinstance(value, float):
        return st.floats(allow_nan=False, allow_infinity=False)
    if isinstance(value, str):
        return HOSTILE_TEXT | st.text(max_size=40) | st.just(value.upper())
    return VALUES


@st.composite
def mutated(draw: st.DrawFn, topic: str) -> Any:
    """A valid payload with one value replaced (or a key added) somewhere."""
    payload = valid_payload(topic)
    path = draw(st.sampled_from(paths(payload)))
    if not path:
        return draw(VALUES)
    parent = payload
    for part in path[:-1]:
        parent = parent[part]
    if draw(st.booleans()):
        parent[path[-1]] = draw(similar(parent[path[-1]]))
    elif isinstance(parent, dict) and draw(st.booleans()):
        parent[draw(st.text(max_size=6))] = draw(VALUES)
    else:
        parent[path[-1]] = draw(VALUES)
    return payload


@st.composite
def messages(draw: st.DrawFn) -> tuple[str, bytes]:
    topic = draw(st.sampled_from([*TOPICS, "command", "future/topic"]))
    source = draw(st.sampled_from(["raw", "text", "value", "valid", "mutated", "mutated"]))
    if source == "raw":
        return topic, draw(st.binary(max_size=64))
    if source == "text":
        return topic, draw(RAW_TEXT)
    if source == "value":
        return topic, json.dumps(draw(VALUES)).encode()
    if topic == "status":
        return topic, draw(st.sampled_from([b"online", b"offline", b" online\n"]))
    payload_of = topic if topic in TOPICS else "event"
    payload = valid_payload(payload_of) if source == "valid" else draw(mutated(payload_of))
    if isinstance(payload, dict) and draw(st.booleans()):  # signed as the agent signs
        when = dt_now() + draw(st.sampled_from([0, -1e6]))
        payload = agent_signing.sign(payload, KEY, when, agent_id=AGENT, topic=topic)
    return topic, json.dumps(payload).encode()


@pytest.fixture(params=[None, EXAMPLE_KEY], ids=["unsigned", "signed"])
async def fuzz_entry(hass: HomeAssistant, request: pytest.FixtureRequest) -> Any:
    entry = await setup_entry(hass, make_entry(**{CONF_SIGNING_KEY: request.param}))
    yield entry
    # Whatever was accepted, the entry unloads cleanly and its history is saved.
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.NOT_LOADED


@settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(message=messages())
async def test_fuzz_every_topic_of_a_loaded_entry(
    hass: HomeAssistant,
    fuzz_entry: MockConfigEntry,
    caplog: pytest.LogCaptureFixture,
    message: tuple[str, bytes],
) -> None:
    topic, raw = message
    coordinator: LanGuardCoordinator = fuzz_entry.runtime_data.coordinator
    before = sum(coordinator.bad_payloads.values())
    caplog.clear()
    publish(hass, topic, raw)
    await hass.async_block_till_done()
    assert no_errors(caplog) == []
    assert fuzz_entry.state is ConfigEntryState.LOADED
    refused = sum(coordinator.bad_payloads.values()) - before
    event(f"{topic}: {'refused' if refused else 'not refused'}")  # --hypothesis-show-statistics
    assert refused in (0, 1)
    assert BadPayload.HANDLER_ERROR not in coordinator.bad_payloads
    if topic not in TOPICS or (not raw and topic in RETAINED):
        assert refused == 0  # not ours to judge: other topics, a retained message cleared
    elif refused == 0:  # accepted: then it follows the contract (jsonschema) and is ours
        if topic == "status":
            assert raw.decode("utf-8", "replace").strip() in ("online", "offline", "")
        else:
            payload = json.loads(raw)
            assert errors(SCHEMA.get(topic, topic), payload) == []
            assert topic == "command/result" or payload["agent_id"] == AGENT
            assert_within_bounds(payload)
    diagnostics = await async_get_config_entry_diagnostics(hass, fuzz_entry)
    assert sum(diagnostics["refused_payloads"]["counts"].values()) == before + refused


def assert_within_bounds(value: Any) -> None:
    stack = [copy.deepcopy(value)]
    while stack:
        node = stack.pop()
        if isinstance(node, float | int) and not isinstance(node, bool):
            assert math.isfinite(node) and abs(node) <= intake.MAX_NUMBER
        elif isinstance(node, str):
            assert len(node) <= intake.MAX_STRING
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            stack.extend(node.values())
