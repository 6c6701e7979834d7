"""Floods: frames per second from one source, or in total."""

from __future__ import annotations

from dataclasses import replace

from sensor_agent.detectors.flood import FloodConfig
from tests.agent.craft import ATTACKER_IP, ATTACKER_MAC, HOST_MAC, T0, make_pipeline, udp_frame
from tests.contract import validate_from_pipeline


def test_one_source_above_the_threshold_is_reported_at_once() -> None:
    pipeline, sink = make_pipeline(flood=FloodConfig(source_fps=100, total_fps=100_000))
    frame = udp_frame(ATTACKER_MAC, ATTACKER_IP, 9)
    for i in range(99):
        pipeline.feed(T0 + i * 0.001, frame)
    assert sink.events == []
    pipeline.feed(T0 + 0.1, frame)
    assert sink.kinds() == [("flood", 2)]
    event = sink.events[0]
    assert event["evidence"]["scope"] == "source"
    assert event["source"]["mac"] == ATTACKER_MAC
    validate_from_pipeline("event", event)


def test_below_the_threshold_in_every_second_is_quiet() -> None:
    pipeline, sink = make_pipeline(flood=FloodConfig(source_fps=100, total_fps=100_000))
    frame = udp_frame(ATTACKER_MAC, ATTACKER_IP, 9)
    for i in range(1000):  # 90 frames/s for 11 s
        pipeline.feed(T0 + i / 90, frame)
    pipeline.finish()
    assert sink.events == []


def test_total_flood_names_the_top_talker() -> None:
    pipeline, sink = make_pipeline(flood=FloodConfig(source_fps=10_000, total_fps=200))
    for i in range(300):
        mac = ATTACKER_MAC if i % 3 else HOST_MAC
        pipeline.feed(T0 + i * 0.001, udp_frame(mac, ATTACKER_IP, 9))
    assert sink.kinds() == [("flood", 2)]
    assert sink.events[0]["evidence"]["scope"] == "total"
    assert sink.events[0]["source"]["mac"] == ATTACKER_MAC


def test_sustained_flood_updates_carry_the_full_second_rate() -> None:
    config = replace(FloodConfig(), source_fps=100, total_fps=1_000_000)
    pipeline, sink = make_pipeline(flood=config)
    frame = udp_frame(ATTACKER_MAC, ATTACKER_IP, 9)
    for i in range(5000):  # 500 frames/s for 10 s
        pipeline.feed(T0 + i / 500, frame)
    pipeline.finish(T0 + 100)
    assert {e["kind"] for e in sink.events} == {"flood"}
    assert len({e["incident_id"] for e in sink.events}) == 1
    assert sink.events[-1]["evidence"]["packets"] >= 4000
    assert sink.events[-1]["evidence"]["rate"] >= 499
