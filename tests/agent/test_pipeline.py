"""The pipeline as a whole: counters, retained payloads, robustness against junk."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sensor_agent.pipeline import info_payload
from tests.agent.craft import (
    ATTACKER_IP,
    ATTACKER_MAC,
    T0,
    arp_request,
    base_config,
    make_pipeline,
    tcp,
)
from tests.contract import validate


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
    validate("state", state)
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
        validate("state", state)
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
    pipeline, _ = make_pipeline()
    pipeline.feed_many([T0 + i for i in range(len(frames))], frames)
    pipeline.finish()
    assert pipeline.frames == len(frames)


@settings(max_examples=300, deadline=None)
@given(
    st.binary(min_size=0, max_size=100),
    st.sampled_from(
        [b"\x08\x00", b"\x08\x06", b"\x81\x00\x00\x07\x08\x00", b"\x81\x00\x00\x07\x08\x06"]
    ),
)
def test_junk_behind_real_headers_never_raises(tail: bytes, ethertype: bytes) -> None:
    pipeline, _ = make_pipeline()
    header = bytes.fromhex("020000000a0a001b21420042") + ethertype
    ip_to_node = bytes.fromhex("45000028000000004006") + b"\x00\x00" + bytes((198, 18, 10, 66))
    ip_to_node += bytes((198, 18, 10, 10))
    for body in (tail, ip_to_node + tail, bytes.fromhex("000108000604") + tail):
        pipeline.feed(T0, header + body)
    pipeline.finish()


def test_random_mac_spray_is_bounded_per_second_and_still_a_total_flood() -> None:
    from sensor_agent.detectors.flood import FloodConfig

    pipeline, sink = make_pipeline(
        max_sources_per_second=10, flood=FloodConfig(source_fps=1000, total_fps=50)
    )
    for i in range(60):
        mac = bytes([2, 0, 0, 0, 1, i]).hex(":")
        pipeline.feed(T0 + i * 0.001, arp_request(mac, f"198.18.11.{i}", "198.18.10.1"))
    assert len(pipeline._counts) == 10
    pipeline.finish()
    assert pipeline.counters()["untracked_frames"] == 50
    assert set(sink.kinds()) == {("flood", 2)}  # the crossing, then the final update
    assert sink.events[0]["evidence"]["scope"] == "total"


def test_the_node_itself_is_not_in_the_hosts_inventory() -> None:
    from tests.agent.craft import NODE_IP, NODE_MAC

    pipeline, sink = make_pipeline()
    pipeline.feed(T0, arp_request(NODE_MAC, NODE_IP, "198.18.10.1"))
    pipeline.feed(T0, arp_request(ATTACKER_MAC, ATTACKER_IP, "198.18.10.1"))
    pipeline.finish()
    assert [h["mac"] for h in sink.last("hosts")["hosts"]] == [ATTACKER_MAC]


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
