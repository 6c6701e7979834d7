"""Events as JSON lines on stdout: the agent works with no broker and no other software."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from typing import Any, TextIO

from . import RetainedTopic

log = logging.getLogger(__name__)


class StdoutSink:
    """One event per line, flushed at once (so ``| jq`` or a log collector sees it live).

    Retained payloads (state, hosts, info) are not printed: they are snapshots for MQTT.
    When the reader goes away (``| head``), that is logged once and printing stops; the
    other sinks (JSON-lines file, MQTT) keep every event.
    """

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.broken = False

    def event(self, event: Mapping[str, Any]) -> None:
        if self.broken:
            return
        try:
            self.out.write(json.dumps(event, ensure_ascii=False, separators=(",", ":")) + "\n")
            self.out.flush()
        except BrokenPipeError:
            self.broken = True
            log.warning("stdout was closed by its reader: events are no longer printed")

    def retained(self, topic: RetainedTopic, payload: Mapping[str, Any]) -> None:
        return None

    def close(self) -> None:
        if not self.broken:
            try:
                self.out.flush()
            except BrokenPipeError:
                self.broken = True
