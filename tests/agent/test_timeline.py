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


def test_a_stealth_scan_names_its_probes_and_forged_sources_and_its_level() -> None:
    event = json.loads((SCHEMA / "examples" / "event.stealth_scan.json").read_text())
    assert what(event) == (
        "sent FIN probes to 6 ports of the node (22, 80, 139, 443, 445, 554); "
        "forged sources 192.168.1.201, 192.168.1.202"
    )
    assert "level 2, scan of the monitoring node" in "\n".join(render([event]))


def test_kinds_outside_the_precursor_ladder_get_no_level_sentence() -> None:
    """A DHCP starvation is level 2 by severity, not a scan of the node."""
    event = json.loads((SCHEMA / "examples" / "event.dhcp_starvation.json").read_text())
    lines = render([event])
    assert what(event) == "asked DHCP for 32 client MACs in 0.3 s (total)"
    assert not any("->" in line for line in lines)
