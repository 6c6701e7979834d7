"""The PSOC's one place for signing and checking payloads with a site's key.

Every signed payload is checked here and every payload the PSOC signs is signed here, so the
move to signature format 2 (the HMAC also covers the agent id and the sub-topic the payload
is meant for, never the topic prefix, which bridges rewrite) is a change of this module only.
Until ``sensor_agent.signing`` has it, payloads are bound to their agent by the ``agent_id``
they carry, which the caller compares with the topic's.
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
    del agent_id, sub  # bound by format 2 (see module doc)
    return signing.sign(payload, key, now)


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
    del sub
    claimed = payload.get("agent_id")
    if claimed is not None and claimed != agent_id:
        raise SignatureError(f"payload names agent {claimed!r} on agent {agent_id!r}'s topic")
    signing.verify(payload, key, now, MAX_SKEW_S if fresh else float("inf"))
