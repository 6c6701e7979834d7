"""The global model's way home: one signed, retained payload per site that trained it.

Topic ``sites/<site_id>/lan_guard/<agent_id>/site/global_model`` on the PSOC broker, which the
site's bridge carries in to ``<prefix>/<agent_id>/site/global_model``
(``schema/site/global_model.schema.json``). Signed with the site's key for that agent and
sub-topic (format 2), retained so that a Home Assistant that starts later still gets it, and
sent only to the (site, agent) pairs whose SuperNode took part in the round: a site that did not
consent has no SuperNode, sends nothing and receives nothing.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any, Protocol

from psoc.federation.rounds import Round

SUB = "site/global_model"


def payload(stored: Round, agent_id: str) -> dict[str, Any]:
    """The unsigned payload of a stored round for one agent's topic."""
    return {
        "schema": 1,
        "id": secrets.token_hex(16),
        "agent_id": agent_id,
        "version": stored.version,
        "round": stored.round,
        "run_id": stored.run_id,
        "feature_version": stored.feature_version,
        "sites": len(stored.sites),
        "privacy": stored.privacy,
        "model": stored.model,
    }


class Sender(Protocol):
    """What publishing needs of the site channel (``psoc.sitechannel.SiteChannel``)."""

    def send(
        self,
        site_id: str,
        key: bytes,
        sub: str,
        payload: dict[str, Any],
        timeout: float = 5.0,
        *,
        retain: bool = False,
    ) -> None: ...

    def close(self) -> None: ...


def publish(stored: Round, keys: Mapping[str, bytes], channel: Sender) -> list[tuple[str, str]]:
    """Send ``stored`` to every (site, agent) that trained it and whose site the PSOC knows;
    returns those it was sent to."""
    sent = []
    for site_id, agent_id in stored.sites:
        key = keys.get(site_id)
        if key is None or not agent_id:
            continue
        channel.send(site_id, key, SUB, payload(stored, agent_id), retain=True)
        sent.append((site_id, agent_id))
    return sent
