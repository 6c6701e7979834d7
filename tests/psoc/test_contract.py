"""The site channel's schemas and examples, and the PSOC's reading and writing of the contract."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from psoc import sitechannel, topics
from psoc.ingest import decode as d
from psoc.topics import Where

ROOT = Path(__file__).resolve().parents[2] / "schema"
SITE = ROOT / "site"
VALID = sorted((SITE / "examples").glob("*.json"))
INVALID = sorted((SITE / "examples" / "invalid").glob("*.json"))
AGENT_EXAMPLES = sorted((ROOT / "examples").glob("*.json"))
KEY = b"example-shared-key-0123"
SUB = {
    "consent": "site/consent",
    "evacuation": "site/evacuation",
    "verdict": "site/verdict",
    "label": "site/label",
    "ack": "site/ack",
    "request": "site/request",
    "request_result": "site/request/result",
    "provider_label": "site/provider_label",
    "global_model": "site/global_model",
}


@cache
def validator(name: str) -> Draft202012Validator:
    resources = []
    for path in [*ROOT.glob("*.schema.json"), *SITE.glob("*.schema.json")]:
        contents = json.loads(path.read_text())
        resources.append((contents["$id"], Resource.from_contents(contents)))
    schema = json.loads((SITE / f"{name}.schema.json").read_text())
    return Draft202012Validator(
        schema,
        registry=Registry().with_resources(resources),
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )


def load(path: Path) -> Any:
    return json.loads(path.read_text())


def name_of(path: Path) -> str:
    return path.name.split(".")[0]


def test_every_sub_topic_has_a_schema_and_an_example() -> None:
    assert {p.name.removesuffix(".schema.json") for p in SITE.glob("*.schema.json")} == set(SUB)
    assert {name_of(p) for p in VALID} == set(SUB)
    inbound = ("request", "provider_label", "global_model")
    assert {f"site/{s}" for s in inbound} <= set(topics.INBOUND)
    assert {v for k, v in SUB.items() if k not in inbound} <= set(topics.OUTBOUND)


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.name)
def test_valid_examples_validate(path: Path) -> None:
    Draft202012Validator.check_schema(
        json.loads((SITE / f"{name_of(path)}.schema.json").read_text())
    )
    assert list(validator(name_of(path)).iter_errors(load(path))) == []


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.name)
def test_invalid_examples_break_exactly_one_rule(path: Path) -> None:
    assert len(list(validator(name_of(path)).iter_errors(load(path)))) == 1


@pytest.mark.parametrize(
    "path", [p for p in VALID if SUB[name_of(p)] in topics.OUTBOUND], ids=lambda p: p.name
)
def test_the_psoc_reads_every_valid_site_example(path: Path) -> None:
    payload = load(path)
    where = Where("home1", payload["agent_id"], SUB[name_of(path)])
    record = d.decode(where, path.read_bytes(), KEY, payload["ts"])
    assert record.site_id == "home1"


@pytest.mark.parametrize(
    "path", [p for p in INVALID if SUB[name_of(p)] in topics.OUTBOUND], ids=lambda p: p.name
)
def test_the_psoc_refuses_every_invalid_site_example(path: Path) -> None:
    payload = load(path)
    where = Where("home1", payload["agent_id"], SUB[name_of(path)])
    with pytest.raises(d.Rejected):
        d.decode(where, path.read_bytes(), KEY, payload["ts"])
    with pytest.raises(d.Rejected):  # without the key's check too (the content is wrong)
        d.decode(where, path.read_bytes(), None, payload["ts"])


def test_a_payload_for_another_agent_is_refused() -> None:
    payload = load(SITE / "examples" / "verdict.json")
    with pytest.raises(d.Rejected, match=r"bad_signature|wrong_agent"):
        d.decode(
            Where("home1", "pi-kitchen", "site/verdict"),
            json.dumps(payload).encode(),
            KEY,
            payload["ts"],
        )


def test_what_the_psoc_sends_follows_the_schema() -> None:
    from psoc import signatures

    request = sitechannel.request_payload(
        "pi-a",
        "start_evacuation",
        incident_id="a" * 32,
        culprit={"mac": "02:00:00:00:00:01", "ip": None},
        reason="scan",
        operator="alice",
    )
    label = sitechannel.label_payload("pi-a", "b" * 32, "normal", "alice")
    for name, payload, sub in (
        ("request", request, "site/request"),
        ("provider_label", label, "site/provider_label"),
    ):
        signed = signatures.sign(payload, KEY, "pi-a", sub, 1_800_000_000.0)
        assert list(validator(name).iter_errors(signed)) == []
    with pytest.raises(ValueError):
        sitechannel.request_payload(
            "pi-a", "quarantine", incident_id="a" * 32, culprit=None, reason="", operator="x"
        )


@pytest.mark.parametrize(
    "path",
    [p for p in AGENT_EXAMPLES if not p.name.startswith(("command.", "status."))],
    ids=lambda p: p.name,
)
def test_the_psoc_reads_every_agent_example(path: Path) -> None:
    payload = load(path)
    sub = {"command_result": "command/result"}.get(name_of(path), name_of(path))
    now = payload.get("ts", 1_795_640_000.0)
    d.decode(Where("home1", "pi-livingroom", sub), path.read_bytes(), None, now)


@pytest.mark.parametrize(
    "name",
    [
        "event.id_not_32_hex",
        "event.level_above_3",
        "event.mac_upper_case",
        "event.timestamp_not_utc",
        "event.unknown_kind",
        "event.missing_incident_id",
        "event.timestamp_month_13",
        "state.negative_counter",
    ],
)
def test_the_psoc_refuses_broken_agent_examples(name: str) -> None:
    path = ROOT / "examples" / "invalid" / f"{name}.json"
    sub = name.split(".", maxsplit=1)[0]
    with pytest.raises(d.Rejected):
        d.decode(Where("home1", "pi-livingroom", sub), path.read_bytes(), None, 1_795_640_000.0)


@pytest.mark.parametrize(
    "raw",
    [
        b"[]",
        b"nan",
        b'{"a": NaN}',
        b"1" * 5000,
        b"[" * 10_000 + b"]" * 10_000,
        b"\xff\xfe",
        b"{" * 300_000,
    ],
)
def test_hostile_bytes_are_refused_not_raised(raw: bytes) -> None:
    with pytest.raises(d.Rejected):
        d.decode(Where("home1", "pi-a", "event"), raw, None, 1_795_640_000.0)
