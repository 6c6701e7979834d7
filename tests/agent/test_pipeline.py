"""The pipeline as a whole: counters, retained payloads, robustness against junk."""

from __future__ import annotations

import logging
from random import Random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sensor_agent.detectors.flood import FloodConfig
from sensor_agent.pipeline import info_payload
from tests.agent.craft import (
    ATTACKER_IP,
    ATTACKER_MAC,
    GW_IP,
    GW_MAC,
    HOST_IP,
    HOST_MAC,
    T0,
    RecordingSink,
    arp_reply,
    arp_request,
    base_config,
    dhcp_request,
    forged_mac,
    make_pipeline,
    mdns_answer,
    nbns_registration,
    tcp,
    udp_frame,
)
from tests.contract import validate, validate_from_pipeline


def every_payload_valid(sink: RecordingSink) -> None:
    for event in sink.events:
        validate_from_pipeline("event", event)
    for topic, payload in sink.payloads:
        validate_from_pipeline(topic, payload)


def scan(pipeline_feed: object) -> None:
    assert callable(pipeline_feed)
    for i in range(1, 40):
        pipeline_feed(T0 + i * 0.01, arp_request(ATTACKER_MAC, ATTACKER_IP, f"198.18.10.{i}"))


def test_counters_and_state_payload() -> None:
    pipeline, sink = make_pipeline()
    scan(pipeline.feed)
    pipeline.feed(T0 + 1, b"\x00" * 10)  # too short for Ethernet
    pipeline.feed(T0 + 1, tcp()[:30])  # IPv4 header cut
    pipeline.feed(T0 + 1, arp_request(ATTACKER_MAC, ATTACKER_IP, "198.18.10.1")[:20])
    pipeline.finish()
    counters = pipeline.counters()
    assert counters["frames"] == 42
    assert counters["parse_errors"] == 3
    assert counters["events"] == len(sink.events) >= 1
    state = sink.last("state")
    validate_from_pipeline("state", state)
    assert state["level"] == 1
    assert state["incidents"][0]["source"]["mac"] == ATTACKER_MAC
    assert state["incidents"][0]["kinds"] == ["arp_scan"]
    validate("hosts", sink.last("hosts"))


def test_state_is_refreshed_on_ticks() -> None:
    pipeline, sink = make_pipeline()
    pipeline.tick(T0)
    pipeline.tick(T0 + 10)
    pipeline.tick(T0 + 31)
    states = [p for t, p in sink.payloads if t == "state"]
    assert len(states) == 2  # at start, then every 30 s when nothing changes
    for state in states:
        validate_from_pipeline("state", state)
        assert state["level"] == 0 and state["incidents"] == []


def test_extra_counters_such_as_the_outbox_are_reported() -> None:
    pipeline, sink = make_pipeline()
    pipeline.extra_counters["outbox_dropped"] = lambda: 7
    pipeline.finish(T0)
    assert sink.last("state")["counters"]["outbox_dropped"] == 7


def test_a_failing_sink_does_not_stop_the_others() -> None:
    class Broken:
        def event(self, event: object) -> None:
            raise OSError("disk full")

        def retained(self, topic: object, payload: object) -> None:
            raise OSError("disk full")

        def close(self) -> None:
            return None

    pipeline, sink = make_pipeline()
    pipeline.sinks.insert(0, Broken())
    scan(pipeline.feed)
    pipeline.finish()
    assert sink.events
    assert pipeline.counters()["sink_errors"] >= 1


def test_info_payload_validates() -> None:
    info = info_payload(
        base_config(),
        version="0.1.0",
        interface="eth0",
        decoy_ports=[554, 445],
        decoy_errors=[(80, "Address already in use")],
        capabilities=["detect", "decoys", "detect"],
        started_at=T0,
    )
    validate("info", info)
    assert info["capabilities"] == ["detect", "decoys"]
    assert info["node"] == {"ip": "198.18.10.10", "mac": "02:00:00:0a:00:0a"}


def test_batches_and_single_frames_give_the_same_result() -> None:
    frames = [arp_request(ATTACKER_MAC, ATTACKER_IP, f"198.18.10.{i}") for i in range(1, 40)]
    stamps = [T0 + i * 0.01 for i in range(1, 40)]
    one, one_sink = make_pipeline()
    for ts, frame in zip(stamps, frames, strict=True):
        one.feed(ts, frame)
    many, many_sink = make_pipeline()
    many.feed_many(stamps, frames)
    assert one.counters() == many.counters()
    assert one_sink.kinds() == many_sink.kinds()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=120), max_size=20))
def test_arbitrary_frames_never_raise(frames: list[bytes]) -> None:
    pipeline, sink = make_pipeline()
    pipeline.feed_many([T0 + i for i in range(len(frames))], frames)
    pipeline.finish()
    assert pipeline.frames == len(frames)
    assert pipeline.handler_errors == 0
    every_payload_valid(sink)


REAL_FRAMES = [
    arp_request(ATTACKER_MAC, ATTACKER_IP, "198.18.10.1"),
    arp_reply(GW_MAC, GW_IP),
    arp_reply(ATTACKER_MAC, GW_IP),
    arp_request(ATTACKER_MAC, ATTACKER_IP, "198.18.10.2", vlan=7),
    tcp(dport=445),
    tcp(dport=445, flags="A"),
    tcp(dport=445, flags="PA", data=b"\x00\x00\x00\x2f\xffSMB" + bytes(40)),
    dhcp_request(HOST_MAC, "kids-laptop", HOST_IP),
    mdns_answer(HOST_MAC, HOST_IP, "kids-laptop"),
    nbns_registration(HOST_MAC, HOST_IP, "KIDS"),
    udp_frame(HOST_MAC, HOST_IP, 5353, b"\x00\x00\x84\x00" + bytes(8)),
]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.sampled_from(REAL_FRAMES),
            st.integers(min_value=0, max_value=200),  # cut after this many bytes
            st.binary(max_size=8),  # then this junk
            st.sampled_from([0.0, 0.001, 0.5, 1.5, 400.0]),  # after this gap
            st.booleans(),  # with a forged source MAC
        ),
        max_size=60,
    ),
    st.randoms(use_true_random=False),
)
def test_truncated_and_forged_real_frames_give_only_valid_payloads(
    cuts: list[tuple[bytes, int, bytes, float, bool]], rng: Random
) -> None:
    pipeline, sink = make_pipeline(
        flood=FloodConfig(source_fps=5, total_fps=20), max_sources_per_second=8
    )
    ts, stamps, frames = T0, [], []
    for frame, cut, junk, gap, forge in cuts:
        data = bytearray(frame[:cut] + junk)
        if forge and len(data) >= 12:
            data[6:12] = forged_mac(rng)
        ts += gap
        stamps.append(ts)
        frames.append(bytes(data))
    pipeline.feed_many(stamps, frames)
    pipeline.finish()
    assert pipeline.frames == len(frames) and pipeline.handler_errors == 0
    every_payload_valid(sink)


def test_a_burst_of_frames_shorter_than_ethernet_is_counted_and_changes_nothing() -> None:
    pipeline, sink = make_pipeline()
    short = [bytes(n % 14) for n in range(10_000)]  # 0-13 bytes: no Ethernet header
    pipeline.feed_many([T0 + i * 0.0001 for i in range(10_000)], short)
    scan(pipeline.feed)  # and the pipeline goes on
    pipeline.finish()
    assert pipeline.counters()["parse_errors"] == 10_000
    assert pipeline.counters()["hosts"] == 1  # the scanner: no host made of a cut address
    assert {e["kind"] for e in sink.events} == {"arp_scan"}
    every_payload_valid(sink)


def test_short_frames_of_any_kind_are_parse_errors() -> None:
    pipeline, _ = make_pipeline()
    tagged_ipv4 = bytes(12) + b"\x81\x00\x00\x07\x08\x00" + bytes(10)
    for frame in (b"", bytes(12), bytes(13), tagged_ipv4, bytes(12) + b"\x81\x00"):
        pipeline.feed(T0, frame)
    assert pipeline.counters()["parse_errors"] == 5
    pipeline.feed(T0, bytes(12) + b"\x86\xdd" + bytes(40))  # IPv6 is looked at: too short
    assert pipeline.counters()["parse_errors"] == 6
    ipv6 = bytes(12) + b"\x86\xdd\x60" + bytes(5) + b"\x3b\x40" + bytes(32)  # no next header
    pipeline.feed(T0, ipv6)
    assert pipeline.counters()["parse_errors"] == 6


def test_frames_of_7_to_13_bytes_never_name_a_source() -> None:
    """A source MAC cut short (``frame[6:12]`` of a short frame) must not become a culprit:
    2,000 such frames in a second were a flood "from" ``10``."""
    pipeline, sink = make_pipeline()
    frames = [bytes([0] * 6 + [0x10] * (1 + i % 7)) for i in range(2000)]
    pipeline.feed_many([T0 + i * 0.0001 for i in range(2000)], frames)
    pipeline.finish()
    assert sink.events == [] and pipeline.counters()["parse_errors"] == 2000
    every_payload_valid(sink)


def test_an_exception_in_one_frame_is_counted_logged_once_and_the_rest_go_on(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline, sink = make_pipeline()
    real = pipeline.arp_scan.on_request
    calls = 0

    def sometimes_broken(*args: object, **kwargs: object) -> object:
        nonlocal calls
        calls += 1
        if calls % 2:
            raise ZeroDivisionError("a bug")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pipeline.arp_scan, "on_request", sometimes_broken)
    with caplog.at_level(logging.ERROR, logger="sensor_agent.pipeline"):
        for i in range(1, 60):
            pipeline.feed(T0 + i * 0.01, arp_request(ATTACKER_MAC, ATTACKER_IP, f"198.18.10.{i}"))
        pipeline.finish()
    assert pipeline.counters()["handler_errors"] == 30
    assert sink.last("state")["counters"]["handler_errors"] == 30
    assert len(caplog.records) == 1 and "ZeroDivisionError" in caplog.records[0].getMessage()
    assert {e["kind"] for e in sink.events} == {"arp_scan"}  # the other frames did their work


def test_an_exception_in_a_tick_is_counted_and_the_frames_go_on(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline, sink = make_pipeline()

    def broken(now: float, culprits: object, probe: object = None) -> list[object]:
        raise RuntimeError("hosts broke")

    monkeypatch.setattr(pipeline.hosts, "tick", broken)
    with caplog.at_level(logging.ERROR, logger="sensor_agent.pipeline"):
        scan(pipeline.feed)
        pipeline.tick(T0 + 5)
        pipeline.tick(T0 + 6)
    assert pipeline.handler_errors == 3  # the first frame's tick, and the two above
    assert len(caplog.records) == 1
    assert {e["kind"] for e in sink.events} == {"arp_scan"}


def test_a_flood_of_forged_macs_accuses_nobody_and_is_counted() -> None:
    """5,000 frames in a second, each from another made-up MAC: the total threshold is
    crossed but no source stands out; naming the first sender of the second would accuse
    whoever it was."""
    pipeline, sink = make_pipeline()
    rng = Random(1)
    template = bytearray(udp_frame(HOST_MAC, HOST_IP, 9999))
    frames = []
    for _ in range(5000):
        template[6:12] = forged_mac(rng)
        frames.append(bytes(template))
    pipeline.feed(T0, arp_reply(GW_MAC, GW_IP))  # the first sender of the second
    pipeline.feed_many([T0 + 0.1 + i * 0.0001 for i in range(5000)], frames)
    pipeline.finish()
    assert [e for e in sink.events if e["kind"] == "flood"] == []
    assert pipeline.counters()["leaderless_floods"] == 1
    every_payload_valid(sink)


def test_timestamps_beyond_any_date_are_shown_clamped_not_raised() -> None:
    pipeline, sink = make_pipeline()
    for ts in (1e13, 3e11):  # year ~318,000 and ~11,400
        pipeline.feed(ts, arp_request(ATTACKER_MAC, ATTACKER_IP, "198.18.10.1"))
    pipeline.finish()
    assert pipeline.handler_errors == 0
    every_payload_valid(sink)
    assert sink.last("state")["updated_at"] == "9999-12-31T23:59:59.998Z"
