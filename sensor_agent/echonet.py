"""ECHONET Lite (UDP 3610, multicast 224.0.23.0): the frame codec and the decoy node's model.

ECHONET Lite is how Japanese smart-home appliances (air conditioners, water heaters, storage
batteries, smart meters) are read and driven on the LAN, with no authentication at all: any
host that sends a Set to an appliance's object changes it. The agent parses every frame it
sees (:func:`parse`) for its detectors, and the node runs a decoy node (:class:`DecoyNode`): a
node profile plus one air conditioner, answering discovery and requests like a real device,
so that whoever drives it is caught (nobody legitimate does: the owner never added it).

Pure: bytes in, bytes out. The socket that carries them is
:class:`sensor_agent.decoys.EchonetDecoy`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

PORT = 3610
MULTICAST_GROUP = "224.0.23.0"
EHD = b"\x10\x81"  # ECHONET Lite, specified message format (the only one with properties)

ESV_SETI = 0x60
ESV_SETC = 0x61
ESV_GET = 0x62
ESV_INF_REQ = 0x63
ESV_SETGET = 0x6E
ESV_SET_RES = 0x71
ESV_GET_RES = 0x72
ESV_INF = 0x73
ESV_SETGET_RES = 0x7E
ESV_SETI_SNA = 0x50
ESV_SETC_SNA = 0x51
ESV_GET_SNA = 0x52
ESV_SETGET_SNA = 0x5E
SETS = frozenset((ESV_SETI, ESV_SETC, ESV_SETGET))
REQUESTS = frozenset((ESV_SETI, ESV_SETC, ESV_GET, ESV_INF_REQ, ESV_SETGET))
_SETGET_FORMS = frozenset((ESV_SETGET, ESV_SETGET_RES, ESV_SETGET_SNA))

NODE_PROFILE = b"\x0e\xf0\x01"
AIR_CONDITIONER = b"\x01\x30\x01"
# What a controller reads to discover a node and describe its objects: operating status,
# version, identification, manufacturer, instance and class lists, property maps.
DESCRIPTIVE_EPCS = frozenset(
    {0x80, 0x81, 0x82, 0x83, 0x88, 0x8A, 0x8C, 0x8D, 0x8E, 0x9D, 0x9E, 0x9F}
    | {0xD3, 0xD4, 0xD5, 0xD6, 0xD7}
)
PROPERTY_MAPS = frozenset((0x9D, 0x9E, 0x9F))
_MAX_PROPERTIES = 64

Property = tuple[int, bytes]
"""(EPC, EDT): a property code and its data (empty in a request to read it)."""


class Frame(NamedTuple):
    tid: int
    seoj: bytes
    deoj: bytes
    esv: int
    properties: tuple[Property, ...]  # for SetGet: the properties to set
    gets: tuple[Property, ...]  # for SetGet: the properties to read; else empty

    @property
    def epcs(self) -> frozenset[int]:
        return frozenset(epc for epc, _ in self.properties + self.gets)


def _properties(data: bytes, pos: int) -> tuple[tuple[Property, ...], int] | None:
    if pos >= len(data):
        return None
    count = data[pos]
    pos += 1
    found: list[Property] = []
    for _ in range(count):
        if pos + 2 > len(data):
            return None
        epc, size = data[pos], data[pos + 1]
        value = data[pos + 2 : pos + 2 + size]
        if len(value) < size:
            return None
        if len(found) < _MAX_PROPERTIES:
            found.append((epc, value))
        pos += 2 + size
    return tuple(found), pos


def parse(data: bytes) -> Frame | None:
    """One ECHONET Lite message (a UDP payload), or ``None`` for anything else."""
    if len(data) < 12 or data[:2] != EHD:
        return None
    esv = data[10]
    first = _properties(data, 11)
    if first is None:
        return None
    properties, pos = first
    gets: tuple[Property, ...] = ()
    if esv in _SETGET_FORMS:
        second = _properties(data, pos)
        if second is None:
            return None
        gets = second[0]
    return Frame((data[2] << 8) | data[3], data[4:7], data[7:10], esv, properties, gets)


def _encode(properties: Iterable[Property]) -> bytes:
    items = list(properties)
    return bytes([len(items)]) + b"".join(bytes([epc, len(edt)]) + edt for epc, edt in items)


def build(
    tid: int,
    seoj: bytes,
    deoj: bytes,
    esv: int,
    properties: Iterable[Property],
    *,
    gets: Iterable[Property] | None = None,
) -> bytes:
    """An ECHONET Lite message (specified format)."""
    body = EHD + tid.to_bytes(2, "big") + seoj + deoj + bytes([esv]) + _encode(properties)
    return body + (_encode(gets) if gets is not None else b"")


def property_map(epcs: Iterable[int]) -> bytes:
    """A property map (EPC 0x9D-0x9F): a list below 16 properties, else the 16-byte bitmap."""
    codes = sorted(set(epcs))
    if len(codes) < 16:
        return bytes([len(codes), *codes])
    bitmap = bytearray(16)
    for epc in codes:
        bitmap[epc & 0x0F] |= 1 << ((epc >> 4) - 8)
    return bytes([len(codes)]) + bytes(bitmap)


def matches(deoj: bytes, eoj: bytes) -> bool:
    """Whether a request for ``deoj`` is for object ``eoj`` (instance 0: every instance)."""
    return deoj[:2] == eoj[:2] and deoj[2] in (0, eoj[2])


class Reply(NamedTuple):
    data: bytes
    multicast: bool  # INF answers go to the group, everything else back to the sender


class DecoyNode:
    """A plausible ECHONET Lite node: the node profile and one home air conditioner.

    It answers Get, SetC, SetI, SetGet and INF_REQ as the specification says, keeps what was
    set (values of the settable properties only, checked in size), and announces its
    instances at start like a device that has just joined the LAN.
    """

    # Daikin's manufacturer code: a common air-conditioner make in Japanese homes.
    MANUFACTURER = b"\x00\x00\x08"

    def __init__(self, identity: bytes = b"\x00" * 13) -> None:
        ident = b"\xfe" + self.MANUFACTURER + identity[:13].ljust(13, b"\x00")
        instances = b"\x01" + AIR_CONDITIONER
        self.objects: dict[bytes, dict[int, bytes]] = {
            NODE_PROFILE: {
                0x80: b"\x30",
                0x82: b"\x01\x0d\x01\x00",
                0x83: ident,
                0x8A: self.MANUFACTURER,
                0x8C: b"AN22ZRS-W\x00\x00\x00",  # product code, 12 bytes
                0xD3: b"\x00\x00\x01",
                0xD4: b"\x00\x02",
                0xD5: instances,
                0xD6: instances,
                0xD7: b"\x01\x01\x30",
            },
            AIR_CONDITIONER: {
                0x80: b"\x31",  # off
                0x81: b"\x08",  # living room
                0x82: b"\x00\x00\x4a\x00",  # appendix release J
                0x83: ident,
                0x88: b"\x42",  # no fault
                0x8A: self.MANUFACTURER,
                0xB0: b"\x41",  # automatic
                0xB3: b"\x19",  # 25 degrees
                0xBB: b"\x17",  # 23 degrees in the room
            },
        }
        # settable properties and the sizes a Set must have
        self.settable: dict[bytes, dict[int, int]] = {
            NODE_PROFILE: {},
            AIR_CONDITIONER: {0x80: 1, 0x81: 1, 0xB0: 1, 0xB3: 1},
        }
        announced = {NODE_PROFILE: (0x80, 0xD5), AIR_CONDITIONER: (0x80, 0x81, 0x88, 0xB0)}
        for eoj, props in self.objects.items():
            props[0x9D] = property_map(announced[eoj])
            props[0x9E] = property_map(self.settable[eoj])
            props[0x9F] = property_map([*props, 0x9D, 0x9E, 0x9F])

    def announcement(self, tid: int = 0) -> bytes:
        """The INF of the instance list a node sends to the group when it starts."""
        profile = self.objects[NODE_PROFILE]
        return build(tid, NODE_PROFILE, b"\x0e\xf0\x01", ESV_INF, [(0xD5, profile[0xD5])])

    def handle(self, data: bytes) -> list[Reply]:
        """The answers to one received message (none for what a device would ignore)."""
        frame = parse(data)
        if frame is None or frame.esv not in REQUESTS:
            return []
        return [
            reply
            for eoj in self.objects
            if matches(frame.deoj, eoj)
            for reply in self._answer(frame, eoj)
        ]

    def _answer(self, frame: Frame, eoj: bytes) -> list[Reply]:
        props = self.objects[eoj]
        esv = frame.esv
        if esv in (ESV_GET, ESV_INF_REQ):
            values = [(epc, props.get(epc, b"")) for epc, _ in frame.properties]
            ok = all(epc in props for epc, _ in frame.properties)
            if esv == ESV_INF_REQ:
                return (
                    [Reply(build(frame.tid, eoj, frame.seoj, ESV_INF, values), True)] if ok else []
                )
            reply_esv = ESV_GET_RES if ok else ESV_GET_SNA
            return [Reply(build(frame.tid, eoj, frame.seoj, reply_esv, values), False)]
        set_results = self._set(eoj, frame.properties)
        ok = all(done for _, done in set_results)
        # a property set is answered with no data; one refused is echoed back
        answers = [
            (epc, b"" if done else edt)
            for (epc, edt), (_, done) in zip(frame.properties, set_results, strict=True)
        ]
        if esv == ESV_SETI:
            if ok:
                return []
            return [Reply(build(frame.tid, eoj, frame.seoj, ESV_SETI_SNA, answers), False)]
        if esv == ESV_SETC:
            reply_esv = ESV_SET_RES if ok else ESV_SETC_SNA
            return [Reply(build(frame.tid, eoj, frame.seoj, reply_esv, answers), False)]
        values = [(epc, props.get(epc, b"")) for epc, _ in frame.gets]
        ok = ok and all(epc in props for epc, _ in frame.gets)
        reply_esv = ESV_SETGET_RES if ok else ESV_SETGET_SNA
        return [Reply(build(frame.tid, eoj, frame.seoj, reply_esv, answers, gets=values), False)]

    def _set(self, eoj: bytes, properties: Iterable[Property]) -> list[tuple[int, bool]]:
        settable = self.settable[eoj]
        results = []
        for epc, edt in properties:
            ok = settable.get(epc) == len(edt)
            if ok and epc == 0x80:
                ok = edt in (b"\x30", b"\x31")
            if ok:
                self.objects[eoj][epc] = edt
            results.append((epc, ok))
        return results
