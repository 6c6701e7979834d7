"""Replay: pcap variants and pcapng, bad files, and the demo capture's incident timeline."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from scapy.utils import wrpcapng

from sensor_agent.formats import ip_bytes, mac_bytes
from sensor_agent.pipeline import Pipeline
from sensor_agent.replay import CaptureError, read_blocks, replay
from sensor_agent.synth import BENIGN, CULPRIT, demo_frames, demo_node, write_pcap
from tests.agent.craft import ATTACKER_IP, ATTACKER_MAC, T0, RecordingSink, arp_request, base_config
from tests.contract import validate, validate_from_pipeline

FRAMES = [
    (T0 + i * 0.25, arp_request(ATTACKER_MAC, ATTACKER_IP, f"198.18.10.{i}")) for i in range(1, 20)
]


def write_variant(path: Path, endian: str, nanoseconds: bool) -> None:
    magic = 0xA1B23C4D if nanoseconds else 0xA1B2C3D4
    scale = 10**9 if nanoseconds else 10**6
    with path.open("wb") as out:
        out.write(struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, 65535, 1))
        for ts, frame in FRAMES:
            sec = int(ts)
            frac = round((ts - sec) * scale)
            out.write(struct.pack(endian + "IIII", sec, frac, len(frame), len(frame)) + frame)


def all_records(path: Path) -> list[tuple[float, bytes]]:
    return [rec for stamps, frames in read_blocks(path) for rec in zip(stamps, frames, strict=True)]


@pytest.mark.parametrize("endian", ["<", ">"], ids=["little-endian", "big-endian"])
@pytest.mark.parametrize("nanoseconds", [False, True], ids=["usec", "nsec"])
def test_pcap_byte_orders_and_resolutions(tmp_path: Path, endian: str, nanoseconds: bool) -> None:
    path = tmp_path / "capture.pcap"
    write_variant(path, endian, nanoseconds)
    records = all_records(path)
    assert [frame for _, frame in records] == [frame for _, frame in FRAMES]
    assert [ts for ts, _ in records] == pytest.approx([ts for ts, _ in FRAMES], abs=1e-6)


def test_pcapng_through_scapys_raw_reader(tmp_path: Path) -> None:
    from scapy.layers.l2 import Ether

    path = tmp_path / "capture.pcapng"
    packets = []
    for ts, frame in FRAMES:
        packet = Ether(frame)
        packet.time = ts
        packets.append(packet)
    wrpcapng(str(path), packets)
    records = all_records(path)
    assert [frame for _, frame in records] == [frame for _, frame in FRAMES]
    assert records[3][0] == pytest.approx(FRAMES[3][0], abs=1e-5)


def block(kind: int, body: bytes) -> bytes:
    """One pcapng block (little-endian): type, total length, body padded to 4, length."""
    body += bytes(-len(body) % 4)
    size = len(body) + 12
    return struct.pack("<II", kind, size) + body + struct.pack("<I", size)


SHB = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))


def idb(linktype: int = 1, tsresol: int | None = None) -> bytes:
    options = b"" if tsresol is None else struct.pack("<HHB3x", 9, 1, tsresol)
    return block(1, struct.pack("<HHI", linktype, 0, 65535) + options + bytes(4))


def epb(frame: bytes, ts_units: int, interface: int = 0) -> bytes:
    head = struct.pack(
        "<IIIII", interface, ts_units >> 32, ts_units & 0xFFFFFFFF, len(frame), len(frame)
    )
    return block(6, head + frame)


def test_pcapng_without_interface_block_is_an_error_not_an_empty_replay(tmp_path: Path) -> None:
    path = tmp_path / "no-idb.pcapng"
    path.write_bytes(SHB + b"".join(epb(f, int(ts * 1e6)) for ts, f in FRAMES))
    with pytest.raises(
        CaptureError, match=r"no packet could be replayed \(19 packets: no interface"
    ):
        replay(path, Pipeline(base_config(), []), show_progress=False)


def test_pcapng_packets_of_an_unknown_interface_are_skipped_and_reported(tmp_path: Path) -> None:
    path = tmp_path / "unknown-interface.pcapng"
    good = [epb(f, int(ts * 1e6)) for ts, f in FRAMES]
    path.write_bytes(SHB + idb() + b"".join(good) + epb(FRAMES[0][1], 0, interface=3) * 2)
    sink = RecordingSink()
    stats = replay(path, Pipeline(base_config(), [sink]), show_progress=False)
    assert stats.frames == len(FRAMES)
    assert stats.skipped == {
        "no interface block describes their interface (a pcapng without IDB)": 2
    }
    assert "warning      2 packets skipped: no interface block" in stats.summary()
    assert sink.kinds()[0] == ("arp_scan", 1)


def test_pcapng_timestamps_beyond_any_calendar_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "far-future.pcapng"
    ts, frame = FRAMES[0]
    far = 300_000_000_000  # seconds (resolution 10^0): year ~11,500
    path.write_bytes(
        SHB + idb(tsresol=0) + epb(frame, int(ts)) + epb(frame, far) + epb(frame, 1 << 63)
    )
    sink = RecordingSink()
    stats = replay(path, Pipeline(base_config(), [sink]), show_progress=False)
    assert stats.frames == 1 and stats.skipped == {"timestamp before 1970 or after 9999": 2}
    for _topic, payload in sink.payloads:
        validate_from_pipeline(_topic, payload)
    only_far = tmp_path / "only-far.pcapng"
    only_far.write_bytes(SHB + idb(tsresol=0) + epb(frame, far))
    with pytest.raises(CaptureError, match="timestamp before 1970 or after 9999"):
        replay(only_far, Pipeline(base_config(), []), show_progress=False)


def test_pcapng_of_another_link_type_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "wifi.pcapng"
    path.write_bytes(SHB + idb(linktype=105) + epb(FRAMES[0][1], 0))
    with pytest.raises(CaptureError, match="link type is not Ethernet"):
        replay(path, Pipeline(base_config(), []), show_progress=False)


def test_an_empty_pcapng_replays_nothing_without_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.pcapng"
    path.write_bytes(SHB + idb())
    assert replay(path, Pipeline(base_config(), []), show_progress=False).frames == 0


def test_truncated_file_keeps_what_was_read_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "cut.pcap"
    write_pcap(path, FRAMES)
    data = path.read_bytes()
    path.write_bytes(data[:-10])
    sink = RecordingSink()
    stats = replay(path, Pipeline(base_config(), [sink]), show_progress=False)
    assert stats.truncated
    assert stats.frames == len(FRAMES) - 1
    assert "truncated" in stats.summary()
    assert sink.kinds()[0] == ("arp_scan", 1)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "not a pcap"),
        (b"hello world, not a capture", "not a pcap"),
        (struct.pack("<IHH", 0xA1B2C3D4, 2, 4), "truncated"),
        (struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 105), "not Ethernet"),
        (
            struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
            + struct.pack("<IIII", 1, 0, 1 << 30, 1 << 30),
            "claims",
        ),
    ],
    ids=["empty", "text", "short-header", "wifi", "huge-record"],
)
def test_bad_files_are_refused_clearly(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.pcap"
    path.write_bytes(content)
    with pytest.raises(CaptureError, match=message):
        all_records(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="cannot open"):
        all_records(tmp_path / "nope.pcap")


def test_demo_capture_gives_the_ransomware_timeline(tmp_path: Path) -> None:
    path = tmp_path / "demo.pcap"
    write_pcap(path, demo_frames())
    node_ip, node_mac, gateway_ip = demo_node()
    sink = RecordingSink()
    config = base_config(node_ip=node_ip, node_mac=node_mac, gateway_ip=gateway_ip)
    stats = replay(path, Pipeline(config, [sink]), show_progress=False)
    assert stats.parse_errors == 0
    culprit = [e for e in sink.events if e["source"]["mac"] == CULPRIT.mac]
    assert culprit == sink.events, "only the culprit raises events"
    first_of_each = []
    for event in culprit:
        if event["kind"] not in [k for k, _ in first_of_each]:
            first_of_each.append((event["kind"], event["level"]))
    assert first_of_each == [("arp_scan", 1), ("syn_scan", 2), ("session", 3), ("host_left", 0)]
    assert len({e["incident_id"] for e in culprit}) == 1
    session = next(e for e in culprit if e["kind"] == "session")
    assert session["evidence"]["port"] == 445 and "SMB" in session["evidence"]["sample"]
    assert session["source"] == {
        "mac": CULPRIT.mac,
        "ip": CULPRIT.ip,
        "vendor": "Intel Corporate",
        "hostname": CULPRIT.name,
    }
    benign = {mac_bytes(h.mac) for h in BENIGN}
    assert not benign & {mac_bytes(e["source"]["mac"]) for e in sink.events}
    hosts = sink.last("hosts")
    validate("hosts", hosts)
    names = {h["mac"]: h["hostname"] for h in hosts["hosts"]}
    assert names[CULPRIT.mac] == CULPRIT.name
    assert all(names[h.mac] == h.name for h in BENIGN if h.role != "router (gateway)")
    for event in sink.events:
        validate_from_pipeline("event", event)
    validate_from_pipeline("state", sink.last("state"))
    assert ip_bytes(CULPRIT.ip) == bytes((192, 0, 2, 66))


def test_progress_bar_draws_on_its_stream() -> None:
    import io

    from sensor_agent.replay import _ProgressBar

    out = io.StringIO()
    bar = _ProgressBar(200, out)
    bar.update(100)
    bar.update(101)  # same percent: not redrawn
    bar.update(200)
    bar.close()
    text = out.getvalue()
    assert text.count("\r") == 2
    assert " 50%" in text and "100%" in text and text.endswith("\n")


def test_replay_shows_the_progress_bar_when_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "capture.pcap"
    write_pcap(path, FRAMES)
    stats = replay(path, Pipeline(base_config(), []), show_progress=True)
    assert stats.frames == len(FRAMES)
    assert "100%" in capsys.readouterr().err


class FakeTime:
    """A clock that ``sleep`` moves: pacing without waiting."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_paced_frames_come_out_when_due_at_the_chosen_speed() -> None:
    from sensor_agent.replay import paced

    stamps = [10.0, 10.5, 10.5, 12.0, 14.0]
    time_ = FakeTime()
    out = []
    for _stamps, batch_frames in paced(
        [(stamps[:3], [b"a", b"b", b"c"]), (stamps[3:], [b"d", b"e"])],
        speed=2.0,
        clock=time_.clock,
        sleep=time_.sleep,
    ):
        out.append((time_.now, batch_frames))
    # At twice the capture's pace: offsets 0, 0.25, 0.25, 1.0, 2.0 s; equal stamps together.
    assert out == [(0.0, [b"a"]), (0.25, [b"b", b"c"]), (1.0, [b"d"]), (2.0, [b"e"])]
    assert max(time_.slept) <= 0.1  # short sleeps: a stop is noticed soon


def test_paced_replay_of_a_capture_takes_its_time(tmp_path: Path) -> None:
    path = tmp_path / "slow.pcap"
    write_pcap(path, [(T0 + i * 0.1, frame) for i, (_, frame) in enumerate(FRAMES[:6])])
    sink = RecordingSink()
    stats = replay(path, Pipeline(base_config(), [sink]), show_progress=False, speed=2.0)
    assert stats.frames == 6
    assert stats.seconds >= 0.5 * 0.25  # 0.5 s of capture at twice its pace, less the slack
