"""The live loop keeps running whatever one decoy peer or one batch of frames brings."""

from __future__ import annotations

import logging
import socket
import time

import pytest

from sensor_agent.live import LiveAgent
from tests.agent.craft import ATTACKER_MAC, RecordingSink, arp_request
from tests.agent.test_decoys import Running, agent_config, wait_for


def test_an_exception_while_handling_a_decoy_peer_is_counted_and_the_loop_goes_on(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = RecordingSink()
    agent = LiveAgent(agent_config((0,)), [sink], capture=None)
    pipeline = agent.pipeline
    real = pipeline.observe_session
    calls: list[int] = []

    def first_one_breaks(*args: object, **kwargs: object) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("a peer nobody foresaw")
        real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pipeline, "observe_session", first_one_breaks)
    pipeline.feed(time.time(), arp_request(ATTACKER_MAC, "127.0.0.1", "127.0.0.2"))
    with caplog.at_level(logging.ERROR, logger="sensor_agent.pipeline"), Running(agent):
        port = agent.decoys.ports[0]
        for _ in range(2):  # each: a handshake, then data (a report each)
            with socket.create_connection(("127.0.0.1", port), timeout=2) as peer:
                peer.sendall(b"GET / HTTP/1.0\r\n\r\n")
        wait_for(lambda: len(calls) == 4)
        wait_for(lambda: any(e["kind"] == "session" for e in sink.events))
    assert pipeline.counters()["handler_errors"] == 1
    assert [r for r in caplog.records if "ValueError" in r.getMessage()]
