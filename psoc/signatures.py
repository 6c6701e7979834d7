"""The PSOC's one place for signing and checking payloads with a site's key.

Every signed payload is checked here and every payload the PSOC signs is signed here, with
the agent's own implementation (``sensor_agent.signing``), in signature format 2: the HMAC
covers the agent id and the sub-topic the payload is meant for, never the topic prefix, which
bridges rewrite (the PSOC sees ``sites/<site_id>/lan_guard/<agent_id>/<sub>``, the site
``<prefix>/<agent_id>/<sub>``; both sign and check ``<agent_id>`` and ``<sub>``). The site
channel's payloads (``site/request``, ``site/consent``, ...) live under the same agent's
topics and are signed the same way, with their whole sub-topic (``site/request``): a request
for one agent, or a label passed off as a request, fails. Format 1, which bound neither, is
never accepted here: a site's agents and integration must be at 0.2 or later before they are
bridged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sensor_agent import signing

SignatureError = signing.SignatureError
MAX_SKEW_S = signing.MAX_SKEW_S


def sign(
    payload: Mapping[str, Any], key: bytes, agent_id: str, sub: str, now: float
) -> dict[str, Any]:
    """``payload`` signed for ``<prefix>/<agent_id>/<sub>`` at ``now``."""
    return signing.sign(payload, key, now, agent_id=agent_id, topic=sub)


def verify(
    payload: Mapping[str, Any],
    key: bytes,
    agent_id: str,
    sub: str,
    now: float,
    *,
    fresh: bool,
) -> None:
    """Raise ``SignatureError`` unless ``payload`` is signed with ``key`` for this topic.

    ``fresh=False`` skips the freshness window: events and retained facts are idempotent
    (de-duplicated by id, newer-wins by time), and a backlog delayed by a worker's restart
    must still be stored; commands and requests are always checked with it.
    """
    claimed = payload.get("agent_id")
    if claimed is not None and claimed != agent_id:
        raise SignatureError(f"payload names agent {claimed!r} on agent {agent_id!r}'s topic")
    signing.verify(
        payload,
        key,
        now,
        agent_id=agent_id,
        topic=sub,
        max_skew_s=MAX_SKEW_S if fresh else float("inf"),
    )
