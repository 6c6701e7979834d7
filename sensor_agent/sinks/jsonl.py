"""Events appended to a local JSON-lines file: the agent's own event log (``--events-jsonl``)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import RetainedTopic


class JsonlSink:
    """Appends every event as one line, written through at once so a crash loses nothing.

    The same event objects as on MQTT (unsigned: signing happens at publish time).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("a", encoding="utf-8", buffering=1)

    def event(self, event: Mapping[str, Any]) -> None:
        self._file.write(json.dumps(event, ensure_ascii=False, separators=(",", ":")) + "\n")
        self._file.flush()

    def retained(self, topic: RetainedTopic, payload: Mapping[str, Any]) -> None:
        return None

    def close(self) -> None:
        if not self._file.closed:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
