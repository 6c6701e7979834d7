"""Contract payloads as an agent or a site's Home Assistant sends them, for PSOC tests."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from psoc import signatures

KEY = b"site-key-for-tests-0123456789"
EPOCH = "3f9c2e71a4b85d06c1e7f2a9b3d4e5f6"  # an agent's event store (events with a seq)


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event(
    agent_id: str = "pi-a",
    *,
    at: float,
    level: int = 1,
    kind: str = "arp_scan",
    incident_id: str | None = None,
    mac: str = "b8:27:eb:4c:21:9a",
    ip: str | None = "192.0.2.23",
    seq: int | None = None,
    epoch: str = EPOCH,
    hostname: str | None = "kids-laptop",
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "schema": 1,
        "id": uuid.uuid4().hex,
        "incident_id": incident_id or uuid.uuid4().hex,
        "agent_id": agent_id,
        "kind": kind,
        "level": level,
        "source": {"mac": mac, "ip": ip, "vendor": "Raspberry Pi Foundation", "hostname": hostname},
        "first_seen": iso(at - 2),
        "last_seen": iso(at),
        "detected_at": iso(at),
        "evidence": {"target_count": 12, "ports": [445, 139]},
    }
    if seq is not None:  # numbered by the agent's event store, which names itself
        payload["seq"] = seq
        payload["epoch"] = epoch
    return payload


def state(agent_id: str = "pi-a", *, at: float, level: int = 0, **extra: Any) -> dict[str, Any]:
    return {
        "schema": 1,
        "agent_id": agent_id,
        "level": level,
        "incidents": [],
        "counters": {
            "frames": 1,
            "events": 0,
            "parse_errors": 0,
            "kernel_drops": 0,
            "outbox_dropped": 0,
        },
        "updated_at": iso(at),
        **extra,
    }


def signed(payload: dict[str, Any], sub: str, now: float, key: bytes = KEY) -> bytes:
    agent = str(payload.get("agent_id", "pi-a"))
    return json.dumps(signatures.sign(payload, key, agent, sub, now)).encode()
