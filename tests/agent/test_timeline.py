"""The demo's timeline names every kind of the contract and says what each one saw."""

from __future__ import annotations

import json
from pathlib import Path

from sensor_agent.timeline import KIND_TITLE, render, what

SCHEMA = Path(__file__).resolve().parents[2] / "schema"


def test_every_kind_of_the_contract_has_a_title_and_a_sentence() -> None:
    kinds = json.loads((SCHEMA / "common.schema.json").read_text())["$defs"]["kind"]["enum"]
    assert set(KIND_TITLE) == set(kinds)
    for path in sorted((SCHEMA / "examples").glob("event.*.json")):
        event = json.loads(path.read_text())
        assert what(event), path.name
        assert KIND_TITLE[event["kind"]] in "\n".join(render([event]))


def test_a_spray_says_how_many_addresses_and_how_many_forged() -> None:
    event = json.loads((SCHEMA / "examples" / "event.arp_spray.json").read_text())
    assert what(event) == "claimed 64 addresses in 0.7 s (64 for other MACs)"
