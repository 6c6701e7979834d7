"""Sinks: where events and retained state go (stdout, JSON lines, MQTT with a durable outbox).

Every sink takes plain JSON-ready dicts that follow ``schema/``; the pipeline never knows
which sinks are attached.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, Protocol

RetainedTopic = Literal["info", "state", "hosts", "quarantine"]


class Sink(Protocol):
    """One destination of the agent's output."""

    def event(self, event: Mapping[str, Any]) -> None:
        """Deliver one event (``schema/event.schema.json``). Must not lose it silently."""

    def retained(self, topic: RetainedTopic, payload: Mapping[str, Any]) -> None:
        """Replace the retained payload of ``topic`` (info, state, hosts, quarantine)."""

    def close(self) -> None:
        """Flush and release resources; called once at shutdown."""
