"""Events as JSON lines on stdout: the agent works with no broker and no other software."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import Any, TextIO

from . import RetainedTopic


class StdoutSink:
    """One event per line, flushed at once (so ``| jq`` or a log collector sees it live).

    Retained payloads (state, hosts, info) are not printed: they are snapshots for MQTT.
    """

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout

    def event(self, event: Mapping[str, Any]) -> None:
        self.out.write(json.dumps(event, ensure_ascii=False, separators=(",", ":")) + "\n")
        self.out.flush()

    def retained(self, topic: RetainedTopic, payload: Mapping[str, Any]) -> None:
        return None

    def close(self) -> None:
        self.out.flush()
