"""stdout and JSON-lines sinks: one event per line, the same objects, nothing retained."""

from __future__ import annotations

import io
import json
from pathlib import Path

from sensor_agent.sinks.jsonl import JsonlSink
from sensor_agent.sinks.stdout import StdoutSink

EVENT = {"id": "a" * 32, "kind": "session", "evidence": {"sample": "héllo"}}


def test_stdout_sink_writes_json_lines_and_ignores_retained() -> None:
    out = io.StringIO()
    sink = StdoutSink(out)
    sink.event(EVENT)
    sink.retained("state", {"level": 0})
    sink.event(EVENT)
    sink.close()
    lines = out.getvalue().splitlines()
    assert [json.loads(line) for line in lines] == [EVENT, EVENT]


def test_jsonl_sink_appends_and_creates_the_directory(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "events.jsonl"
    first = JsonlSink(path)
    first.event(EVENT)
    first.retained("hosts", {"hosts": []})
    assert json.loads(path.read_text(encoding="utf-8")) == EVENT  # written through at once
    first.close()
    first.close()  # idempotent
    second = JsonlSink(path)
    second.event({**EVENT, "id": "b" * 32})
    second.close()
    ids = [json.loads(line)["id"] for line in path.read_text(encoding="utf-8").splitlines()]
    assert ids == ["a" * 32, "b" * 32]


def test_stdout_sink_stops_printing_once_the_reader_is_gone() -> None:
    class ClosedPipe(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError

    sink = StdoutSink(ClosedPipe())
    sink.event(EVENT)
    sink.event(EVENT)  # no second error
    sink.close()
    assert sink.broken
