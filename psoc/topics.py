"""Where things live on the PSOC's broker, and what crosses a site's bridge.

A site's broker forwards its agents' topics ``<prefix>/<agent_id>/<sub>`` to the PSOC's broker
as ``sites/<site_id>/lan_guard/<agent_id>/<sub>`` (the bridge rewrites the prefix, so the
PSOC sees ``lan_guard`` whatever prefix the site uses). Only the sub-topics listed here cross,
each in one direction; everything else stays at the site, and the ones in ``NEVER`` are
named so that nobody adds them by a wildcard: the site's training data (federated learning)
and the integration's own commands to its agents.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SITES = "sites"
REMOTE_PREFIX = "lan_guard"

OUTBOUND: tuple[str, ...] = (
    # the agent's contract (README, "MQTT contract")
    "status",
    "info",
    "state",
    "hosts",
    "quarantine",
    "event",
    "command/result",
    # the integration's side of the site channel (schema/site/*.schema.json)
    "site/consent",
    "site/evacuation",
    "site/verdict",
    "site/label",
    "site/ack",
    "site/request/result",
)
"""Sub-topics a site forwards to the PSOC (site -> PSOC)."""

INBOUND: tuple[str, ...] = (
    "command",  # only `replay` requests for missing events: the PSOC never quarantines itself
    "site/request",  # start/stop evacuation, honoured only with the customer's consent
    "site/provider_label",  # the operator's judgement, a label for the site's classifier
    "site/global_model",  # the federated global model, to the sites that trained it (retained)
)
"""Sub-topics the PSOC may publish to a site (PSOC -> site)."""

NEVER: tuple[str, ...] = ("training/#", "command (towards the PSOC)")
"""Never forwarded: the site's training data, and the integration's own agent commands."""

RETAINED: frozenset[str] = frozenset(
    {"status", "info", "state", "hosts", "quarantine", "site/consent", "site/evacuation"}
)

_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def valid_id(value: str) -> bool:
    """Site and agent ids: 1-64 of A-Z a-z 0-9 _ - (safe in topics, ACLs and file names)."""
    return bool(_ID.match(value))


def agent_topic(site_id: str, agent_id: str, sub: str) -> str:
    """``sites/<site_id>/lan_guard/<agent_id>/<sub>`` on the PSOC's broker."""
    return f"{SITES}/{site_id}/{REMOTE_PREFIX}/{agent_id}/{sub}"


def bridge_topic(site_id: str) -> str:
    """The site bridge's own notification topic (``1`` connected, ``0`` gone; retained)."""
    return f"{SITES}/{site_id}/bridge"


@dataclass(frozen=True)
class Where:
    """A topic taken apart: which site, which agent (None: the bridge), which sub-topic."""

    site_id: str
    agent_id: str | None
    sub: str


def parse(topic: str) -> Where | None:
    """Take a PSOC broker topic apart; None for anything that is not ours to read."""
    parts = topic.split("/")
    if len(parts) < 3 or parts[0] != SITES or not valid_id(parts[1]):
        return None
    if len(parts) == 3 and parts[2] == "bridge":
        return Where(parts[1], None, "bridge")
    if len(parts) < 5 or parts[2] != REMOTE_PREFIX or not valid_id(parts[3]):
        return None
    sub = "/".join(parts[4:])
    if sub not in OUTBOUND and sub not in INBOUND:
        return None
    return Where(parts[1], parts[3], sub)
