"""Contract tests: the integration's voluptuous schemas agree with ``schema/*.json``.

Every example of helper agent-mqtt (``schema/examples``), and hundreds of payloads derived from
them by breaking one thing at a time, are judged by ``tests.contract`` (jsonschema) and by the
integration; both must give the same answer.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import voluptuous as vol

from custom_components.lan_guard import payloads
from tests.contract import SITE_DIR, errors, site_errors

from .conftest import EXAMPLES

VALID = sorted(EXAMPLES.glob("*.json"))
INVALID = sorted((EXAMPLES / "invalid").glob("*.json"))
# Values of every JSON type, to put where they do not belong.
ODD_VALUES: list[Any] = [None, True, False, 0, -1, 1.5, 3.0, "", "x", [], {}, [1], {"a": 1}]


def schema_of(path: Path) -> str:
    return path.name.split(".")[0]


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def integration_accepts(name: str, payload: Any) -> bool:
    try:
        payloads.validate(name, payload)
    except vol.Invalid:
        return False
    return True


def mutations(payload: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[str, Any]]:
    """Copies of ``payload`` with one thing changed: a key removed or added, a value replaced."""
    if isinstance(payload, dict):
        yield f"{path}+extra", {**payload, "unexpected": 1}
        for key, value in payload.items():
            without = {k: v for k, v in payload.items() if k != key}
            yield f"{(*path, key)}-removed", without
            for odd in ODD_VALUES:
                yield f"{(*path, key)}={odd!r}", {**payload, key: odd}
            for label, changed in mutations(value, (*path, key)):
                yield label, {**payload, key: changed}
    elif isinstance(payload, list) and payload:
        yield f"{path}+duplicate", [*payload, copy.deepcopy(payload[0])]
        yield f"{path}=[]", []
        for label, changed in mutations(payload[0], (*path, 0)):
            yield label, [changed, *payload[1:]]
    elif isinstance(payload, str):
        yield f"{path}=upper", payload.upper()
        yield f"{path}=long", payload * 300
        yield f"{path}=spaces", f" {payload} "
    elif isinstance(payload, bool):
        yield f"{path}=not", not payload
    elif isinstance(payload, int | float):
        for number in (-1, 0, 1, 2, 3, 4, 65535, 65536, 1e300):
            yield f"{path}={number}", number


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.name)
def test_every_valid_example_is_accepted_by_both(path: Path) -> None:
    payload = load(path)
    assert errors(schema_of(path), payload) == []
    payloads.validate(schema_of(path), payload)


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.name)
def test_every_invalid_example_is_refused_by_both(path: Path) -> None:
    payload = load(path)
    assert errors(schema_of(path), payload)
    with pytest.raises(vol.Invalid):
        payloads.validate(schema_of(path), payload)


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.name)
def test_one_change_at_a_time_both_agree(path: Path) -> None:
    name = schema_of(path)
    disagreements = []
    count = 0
    for label, mutated in mutations(load(path)):
        count += 1
        by_contract = not errors(name, mutated)
        if by_contract != integration_accepts(name, mutated):
            disagreements.append(f"{label}: contract {'accepts' if by_contract else 'refuses'}")
    assert count > 0
    assert disagreements == []


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("2026-11-25T21:00:03Z", True),
        ("2026-11-25T21:00:03.123456789Z", True),
        ("2026-11-25T21:00:03+00:00", True),
        ("2026-11-25T21:00:03-00:00", True),
        ("2026-11-25T23:59:60Z", True),
        ("2026-02-31T21:00:03Z", True),  # the contract checks the form, not the calendar
        ("2026-11-25t21:00:03Z", False),
        ("2026-11-25 21:00:03Z", False),
        ("2026-11-25T21:00:03", False),
        ("2026-11-25T21:00:03+09:00", False),
        ("2026-13-25T21:00:03Z", False),
        ("2026-11-25T24:00:00Z", False),
        ("\uff12026-11-25T21:00:03Z", False),  # a full-width digit
    ],
)
def test_timestamps_agree(value: str, valid: bool) -> None:
    event = load(EXAMPLES / "event.arp_scan.json")
    event["detected_at"] = value
    assert (not errors("event", event)) is valid
    assert integration_accepts("event", event) is valid


@pytest.mark.parametrize(
    ("value", "valid"),
    [("b8:27:eb:00:00:01", True), (None, True), ("B8:27:EB:00:00:01", False), ("gateway", False)],
)
def test_gateway_mac_is_optional_a_mac_or_null(value: str | None, valid: bool) -> None:
    info = load(EXAMPLES / "info.json")
    info.pop("gateway_mac", None)
    assert not errors("info", info)  # older agents omit it
    assert integration_accepts("info", info)
    info["gateway_mac"] = value
    assert (not errors("info", info)) is valid
    assert integration_accepts("info", info) is valid


def test_integers_are_whole_numbers_but_never_booleans() -> None:
    event = load(EXAMPLES / "event.syn_scan.json")
    for value, valid in ((2, True), (2.0, True), (2.5, False), (True, False), ("2", False)):
        event["level"] = value
        assert (not errors("event", event)) is valid, value
        assert integration_accepts("event", event) is valid, value
    event["level"] = 2.0
    assert payloads.validate("event", event)["level"] == 2
    assert type(payloads.validate("event", event)["level"]) is int


def test_a_trailing_newline_is_refused_though_pythons_re_lets_it_through() -> None:
    """Known difference, on purpose: JSON Schema patterns are ECMA 262, where ``$`` is the end
    of the string; Python's ``re.search`` (used by jsonschema) also matches before a final
    newline. The integration follows the standard and refuses ``"pi\\n"`` as an agent id."""
    info = load(EXAMPLES / "info.json")
    info["agent_id"] = "pi-livingroom\n"
    assert errors("info", info) == []
    assert not integration_accepts("info", info)


def test_parse_timestamp_clamps_what_the_contract_lets_through() -> None:
    assert payloads.parse_timestamp("2026-02-31T23:59:60.5Z").isoformat() == (
        "2026-02-28T23:59:59.500000+00:00"
    )
    with pytest.raises(ValueError):
        payloads.parse_timestamp("yesterday")


def test_describe_names_the_field() -> None:
    event = load(EXAMPLES / "event.syn_scan.json")
    event["source"]["mac"] = "B8:27:EB:4C:21:9A"
    with pytest.raises(vol.Invalid) as err:
        payloads.validate("event", event)
    assert payloads.describe(err.value) == "has the wrong format at 'source.mac'"
    assert payloads.describe(vol.Invalid("broken")) == "broken"


def test_limits_that_no_example_reaches() -> None:
    event = load(EXAMPLES / "event.arp_scan.json")
    event["evidence"]["targets"] = [f"192.168.1.{i}" for i in range(65)]
    assert errors("event", event)
    assert not integration_accepts("event", event)
    event = load(EXAMPLES / "event.arp_scan.json")
    event["evidence"]["rate"] = float("inf")  # only possible from Python, never from JSON
    assert not integration_accepts("event", event)


@pytest.mark.parametrize(
    ("value", "valid"),
    [(1, True), (2**53 - 1, True), (42.0, True), (0, False), (2**53, False), (True, False)],
)
def test_seq_limits_agree(value: Any, valid: bool) -> None:
    event = load(EXAMPLES / "event.syn_scan.json")
    event["seq"] = value
    assert (not errors("event", event)) is valid
    assert integration_accepts("event", event) is valid
    command = load(EXAMPLES / "command.replay.json")
    command["through_seq"] = value
    assert (not errors("command", command)) is valid
    assert integration_accepts("command", command) is valid


def test_a_replay_names_no_host_and_a_host_command_no_seq() -> None:
    replay = load(EXAMPLES / "command.replay.json")
    quarantine = load(EXAMPLES / "command.quarantine.json")
    for mixed in (
        {**replay, "mac": quarantine["mac"]},
        {**replay, "ip": None},
        {**quarantine, "after_seq": 1},
        {**quarantine, "through_seq": 2},
        {k: v for k, v in replay.items() if k != "action"},
    ):
        assert errors("command", mixed)
        assert not integration_accepts("command", mixed)


def test_agents_before_0_2_are_accepted_only_by_the_legacy_schemas() -> None:
    """Without seq, epoch, last_seq and oldest_seq (the integration's legacy option)."""
    event = {k: v for k, v in load(EXAMPLES / "event.syn_scan.json").items()}
    state = load(EXAMPLES / "state.json")
    del event["seq"], event["epoch"], state["epoch"], state["last_seq"], state["oldest_seq"]
    for name, payload in (("event", event), ("state", state)):
        assert errors(name, payload)
        assert not integration_accepts(name, payload)
        payloads.validate(name, payload, legacy=True)
    with pytest.raises(vol.Invalid):  # the rest of the contract still holds
        payloads.validate("event", {**event, "level": 9}, legacy=True)


# The site channel's payloads the integration reads (from the owner's provider).
SITE_IN = {"request": "site_request", "provider_label": "site_provider_label"}
SITE_VALID = sorted(p for p in (SITE_DIR / "examples").glob("*.json") if schema_of(p) in SITE_IN)
SITE_INVALID = sorted(
    p for p in (SITE_DIR / "examples" / "invalid").glob("*.json") if schema_of(p) in SITE_IN
)


@pytest.mark.parametrize("path", SITE_VALID, ids=lambda p: p.name)
def test_the_providers_payloads_both_agree_one_change_at_a_time(path: Path) -> None:
    name = schema_of(path)
    payload = load(path)
    assert site_errors(name, payload) == []
    payloads.validate(SITE_IN[name], payload)
    disagreements = [
        label
        for label, mutated in mutations(payload)
        if (not site_errors(name, mutated)) != integration_accepts(SITE_IN[name], mutated)
    ]
    assert disagreements == []


@pytest.mark.parametrize("path", SITE_INVALID, ids=lambda p: p.name)
def test_the_providers_invalid_examples_are_refused_by_both(path: Path) -> None:
    payload = load(path)
    assert site_errors(schema_of(path), payload)
    assert not integration_accepts(SITE_IN[schema_of(path)], payload)
