"""The examples' intake (sensor_agent/federation/intake.py): signed, bounded, counted."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from sensor_agent import signing
from sensor_agent.federation.examples import ExampleStore
from sensor_agent.federation.intake import MAX_PAYLOAD_BYTES, Intake

KEY = b"a-site-key-of-some-length"
AGENT = "pi-hall"
NOW = 1_800_000_000.0


def signed(payload: dict[str, Any], sub: str = "training/example", **kw: Any) -> bytes:
    return json.dumps(
        signing.sign(payload, kw.get("key", KEY), kw.get("ts", NOW), agent_id=AGENT, topic=sub)
    ).encode()


def example(i: int) -> dict[str, Any]:
    return {
        "schema": 1,
        "id": f"l{i}",
        "feature_version": 3,
        "features": [1.0, 2.0],
        "label": "normal",
    }


@pytest.fixture
def intake(tmp_path: Path) -> Intake:
    return Intake(ExampleStore(tmp_path / "examples.sqlite"), KEY, AGENT, clock=lambda: NOW)


def test_a_signed_example_is_stored_and_a_signed_delete_forgets_them(intake: Intake) -> None:
    assert intake.handle("training/example", signed(example(1))) == "stored"
    assert intake.handle("training/example", signed(example(2))) == "stored"
    assert intake.status()["examples"] == 2
    delete = signed({"schema": 1, "id": "d1"}, "training/delete")
    assert intake.handle("training/delete", delete) == "deleted"
    assert intake.status() == {
        "schema": 1,
        "agent_id": AGENT,
        "examples": 0,
        "accepted": 2,
        "deleted": 2,
        "refused": 0,
    }


@pytest.mark.parametrize(
    ("sub", "raw", "why"),
    [
        ("training/example", json.dumps(example(1)).encode(), "missing signature"),
        ("training/example", signed(example(1), key=b"another-key-of-some-length"), "bad sig"),
        ("training/example", signed(example(1), "training/delete"), "bad signature"),
        ("training/delete", signed({"schema": 1, "id": "d"}, "training/example"), "bad sig"),
        ("training/example", signed(example(1), ts=NOW - 3600), "stale"),
        ("training/example", b"[" * 50 + b"]" * 50, "nested"),
        ("training/example", b"\xff not json", "codec|Expecting"),
        ("training/example", b" " * (MAX_PAYLOAD_BYTES + 1), "limit"),
        ("training/model", signed(example(1), "training/model"), "not a training topic"),
        ("training/example", signed({**example(1), "label": "maybe"}), "'label'"),
    ],
)
def test_what_is_not_a_signed_example_is_refused_and_counted(
    intake: Intake, sub: str, raw: bytes, why: str
) -> None:
    result = intake.handle(sub, raw)
    assert result.startswith("refused: ") and re.search(why, result)
    assert intake.status()["refused"] == 1 and intake.status()["examples"] == 0


def test_a_replayed_payload_is_refused(intake: Intake) -> None:
    raw = signed(example(1))
    assert intake.handle("training/example", raw) == "stored"
    assert "replayed" in intake.handle("training/example", raw)
