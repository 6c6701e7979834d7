"""ECHONET Lite: the codec and the decoy node answering like a real device."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sensor_agent import echonet
from sensor_agent.echonet import (
    AIR_CONDITIONER,
    NODE_PROFILE,
    DecoyNode,
    build,
    parse,
    property_map,
)

CONTROLLER = b"\x05\xff\x01"


def test_parse_and_build_round_trip() -> None:
    data = build(0x1234, CONTROLLER, AIR_CONDITIONER, echonet.ESV_SETC, [(0x80, b"\x30")])
    frame = parse(data)
    assert frame is not None
    assert (frame.tid, frame.seoj, frame.deoj, frame.esv) == (
        0x1234,
        CONTROLLER,
        AIR_CONDITIONER,
        0x61,
    )
    assert frame.properties == ((0x80, b"\x30"),)
    setget = build(1, CONTROLLER, AIR_CONDITIONER, 0x6E, [(0xB3, b"\x18")], gets=[(0x80, b"")])
    parsed = parse(setget)
    assert parsed is not None and parsed.gets == ((0x80, b""),) and parsed.epcs == {0x80, 0xB3}


def test_parse_refuses_what_is_not_echonet_lite() -> None:
    assert parse(b"") is None
    assert parse(b"\x10\x82" + bytes(10)) is None  # arbitrary message format
    good = build(1, CONTROLLER, NODE_PROFILE, echonet.ESV_GET, [(0xD6, b"")])
    assert parse(good[:-1]) is None  # truncated property list
    assert parse(good[:11] + b"\x05\x80\x01") is None  # OPC larger than what follows


@given(st.binary(max_size=300))
def test_parse_never_raises(data: bytes) -> None:
    parse(data)
    parse(b"\x10\x81" + data)


def test_property_map_forms() -> None:
    assert property_map([0x80, 0xB0]) == b"\x02\x80\xb0"
    big = property_map(range(0x80, 0x90))
    assert big[0] == 16 and len(big) == 17
    assert big[1] == 0x01  # 0x80: byte 0, bit 0


def test_decoy_answers_discovery_like_a_device() -> None:
    node = DecoyNode()
    request = build(7, CONTROLLER, b"\x0e\xf0\x00", echonet.ESV_GET, [(0xD6, b"")])
    [reply] = node.handle(request)
    frame = parse(reply.data)
    assert frame is not None and frame.esv == echonet.ESV_GET_RES and frame.tid == 7
    assert frame.seoj == NODE_PROFILE and frame.deoj == CONTROLLER
    assert frame.properties == ((0xD6, b"\x01" + AIR_CONDITIONER),)
    announcement = parse(node.announcement())
    assert announcement is not None and announcement.esv == echonet.ESV_INF


def test_decoy_appliance_can_be_read_and_set_like_a_real_one() -> None:
    node = DecoyNode()
    maps = build(1, CONTROLLER, AIR_CONDITIONER, echonet.ESV_GET, [(0x9E, b""), (0x9F, b"")])
    frame = parse(node.handle(maps)[0].data)
    assert frame is not None and frame.esv == echonet.ESV_GET_RES
    settable = dict(frame.properties)[0x9E]
    assert settable[0] == 4 and 0x80 in settable[1:]
    on = build(2, CONTROLLER, AIR_CONDITIONER, echonet.ESV_SETC, [(0x80, b"\x30")])
    frame = parse(node.handle(on)[0].data)
    assert frame is not None and frame.esv == echonet.ESV_SET_RES
    assert frame.properties == ((0x80, b""),)
    assert node.objects[AIR_CONDITIONER][0x80] == b"\x30"
    bad = build(3, CONTROLLER, AIR_CONDITIONER, echonet.ESV_SETC, [(0x80, b"\x99")])
    frame = parse(node.handle(bad)[0].data)
    assert frame is not None and frame.esv == echonet.ESV_SETC_SNA
    assert (
        node.handle(build(4, CONTROLLER, AIR_CONDITIONER, echonet.ESV_SETI, [(0xB3, b"\x1a")]))
        == []
    )
    unknown = build(5, CONTROLLER, b"\x02\x7d\x01", echonet.ESV_GET, [(0x80, b"")])
    assert node.handle(unknown) == []  # a storage battery it does not have: ignored
    missing = build(6, CONTROLLER, AIR_CONDITIONER, echonet.ESV_GET, [(0xF0, b"")])
    frame = parse(node.handle(missing)[0].data)
    assert frame is not None and frame.esv == echonet.ESV_GET_SNA


def test_decoy_ignores_answers_and_oversized_sets() -> None:
    node = DecoyNode()
    answer = build(1, CONTROLLER, AIR_CONDITIONER, echonet.ESV_GET_RES, [(0x80, b"\x30")])
    assert node.handle(answer) == []
    huge = build(2, CONTROLLER, AIR_CONDITIONER, echonet.ESV_SETC, [(0xB3, b"x" * 200)])
    frame = parse(node.handle(huge)[0].data)
    assert frame is not None and frame.esv == echonet.ESV_SETC_SNA
    assert node.objects[AIR_CONDITIONER][0xB3] == b"\x19"
