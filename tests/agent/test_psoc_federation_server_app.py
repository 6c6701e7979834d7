"""The PSOC's ServerApp credits each update to its node's registered site
(psoc/federation/server_app.py). It runs in Flower's process, so it is tested where Flower is
installed (the agent's venv), like scripts/test.sh type-checks it; the whole run is in
tests/ha/test_federation_e2e.py."""

from __future__ import annotations

import logging

import pytest
from flwr.app import ConfigRecord, Message, Metadata, RecordDict
from flwr.app.message.message import make_message

from psoc.federation.server_app import credit_sites

NODES = {11: "A", 22: "B"}


def reply(node: int, site: str, agent: str) -> Message:
    """A train reply as the SuperLink hands it to the ServerApp, from ``node``."""
    metadata = Metadata(
        run_id=1,
        message_id=f"m{node}",
        src_node_id=node,
        dst_node_id=0,
        reply_to_message_id="q",
        group_id="1",
        created_at=0.0,
        ttl=60.0,
        message_type="train",
    )
    content = RecordDict({"site": ConfigRecord({"site-id": site, "agent-id": agent})})
    return make_message(metadata, content)


def sites(replies: list[Message]) -> list[tuple[object, object]]:
    return [(r.content["site"]["site-id"], r.content["site"]["agent-id"]) for r in replies]  # type: ignore[index]


def test_the_registration_names_the_site_not_the_node(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    credited = credit_sites(NODES, 1, [reply(11, "A", "pi-a"), reply(22, "A", "pi-b")])
    assert sites(credited) == [("A", "pi-a"), ("B", "pi-b")]
    assert "node 22 of site B said it was 'A'" in caplog.text
    # An agent id that could not be a topic level earns nobody the model.
    assert sites(credit_sites(NODES, 1, [reply(11, "A", "pi/#")])) == [("A", "")]


def test_a_round_with_a_node_of_no_site_is_refused_whole(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert credit_sites(NODES, 3, [reply(11, "A", "pi-a"), reply(33, "C", "pi-c")]) == []
    assert "round 3: node 33 is no site's" in caplog.text
