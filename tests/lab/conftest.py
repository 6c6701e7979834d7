"""Fixtures of the agent lab: one namespace lab per module, a fresh agent per test.

Layout (prefix ``lg2``, subnet 198.18.2.0/24, one learning bridge):

* ``gw``   198.18.2.1 — the LAN's router (the node's default route; DHCP server when needed);
* ``node`` 198.18.2.2 — the monitoring node where ``lan-guard-agent run --interface eth0`` runs,
  plus an uplink (198.18.2.254 -> root 198.18.2.253) to reach a broker in the root namespace;
* each test adds its own culprit/benign hosts (198.18.2.20-99), so their events never mix.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab.agentlab import AgentRun, Network, build_network
from tests.netlab import Lab, require_root

LAB_PREFIX = "lg2"
LAB_SUBNET = "198.18.2.0/24"


@pytest.fixture(scope="module")
def network() -> Iterator[Network]:
    reason = require_root()
    if reason is not None:
        pytest.skip(reason)
    with Lab(LAB_PREFIX, LAB_SUBNET) as lab:
        yield build_network(lab)


@pytest.fixture
def agent(network: Network, tmp_path: Path) -> Iterator[AgentRun]:
    """The agent running on the node with its events in a JSON-lines file; stopped after."""
    run = AgentRun.start(network, tmp_path)
    try:
        yield run
    finally:
        run.stop()
