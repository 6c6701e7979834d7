"""ECHONET Lite detection: the decoy driven (level 3), object sweeps, Sets by new controllers."""

from __future__ import annotations

from dataclasses import replace

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from sensor_agent import echonet
from sensor_agent.detectors.echonet import EchonetConfig, EchonetDetector
from sensor_agent.echonet import AIR_CONDITIONER, NODE_PROFILE, build
from sensor_agent.formats import ip_bytes, mac_bytes
from tests.agent.craft import (
    ATTACKER_IP,
    ATTACKER_MAC,
    HOST_IP,
    HOST_MAC,
    NODE_IP,
    NODE_MAC,
    T0,
    make_pipeline,
)
from tests.contract import validate_from_pipeline

CONTROLLER = b"\x05\xff\x01"
APPLIANCE_IP = "198.18.10.40"
APPLIANCE_MAC = "02:00:00:00:00:40"


def el(mac: str, ip: str, dst_ip: str, data: bytes, dst_mac: str = NODE_MAC) -> bytes:
    return bytes(
        Ether(src=mac, dst=dst_mac)
        / IP(src=ip, dst=dst_ip)
        / UDP(sport=3610, dport=3610)
        / Raw(data)
    )


def get(deoj: bytes, *epcs: int) -> bytes:
    return build(1, CONTROLLER, deoj, echonet.ESV_GET, [(epc, b"") for epc in epcs])


def setc(deoj: bytes, epc: int, value: bytes) -> bytes:
    return build(2, CONTROLLER, deoj, echonet.ESV_SETC, [(epc, value)])


def test_discovery_of_the_decoy_is_context_not_an_alarm() -> None:
    pipeline, sink = make_pipeline()
    pipeline.feed(
        T0, el(HOST_MAC, HOST_IP, "224.0.23.0", get(b"\x0e\xf0\x00", 0xD6), "01:00:5e:00:17:00")
    )
    pipeline.feed(
        T0 + 0.1, el(HOST_MAC, HOST_IP, NODE_IP, get(NODE_PROFILE, 0x9D, 0x9E, 0x9F, 0x8A))
    )
    pipeline.feed(T0 + 0.2, el(HOST_MAC, HOST_IP, NODE_IP, get(AIR_CONDITIONER, 0x9F, 0x80, 0x83)))
    pipeline.finish()
    assert [e for e in sink.events if e["kind"] != "host_left"] == []
    hosts = {h["mac"]: h for h in sink.last("hosts")["hosts"]}
    assert hosts[HOST_MAC]["discovery"] == ["echonet"]


def test_a_set_to_the_decoy_is_level_3() -> None:
    pipeline, sink = make_pipeline()
    pipeline.feed(T0, el(ATTACKER_MAC, ATTACKER_IP, NODE_IP, setc(AIR_CONDITIONER, 0x80, b"\x30")))
    assert sink.kinds() == [("echonet_control", 3)]
    event = sink.events[0]
    validate_from_pipeline("event", event)
    assert event["source"]["ip"] == ATTACKER_IP
    evidence = event["evidence"]
    assert evidence["services"] == ["SetC"] and evidence["epcs"] == [0x80]
    assert evidence["decoy"] is True and evidence["objects"] == ["node/013001"]


def test_reading_the_decoys_working_state_is_level_3() -> None:
    pipeline, sink = make_pipeline()
    pipeline.feed(T0, el(ATTACKER_MAC, ATTACKER_IP, NODE_IP, get(AIR_CONDITIONER, 0xB3, 0xBB)))
    assert sink.kinds() == [("echonet_control", 3)]


def test_a_sweep_of_objects_is_level_2() -> None:
    pipeline, sink = make_pipeline()
    classes = (b"\x02\x7d\x01", b"\x02\x6b\x01", b"\x02\x88\x01", b"\x02\x79\x01")
    for i, deoj in enumerate(classes):  # battery, water heater, smart meter, solar...
        pipeline.feed(T0 + i * 0.1, el(ATTACKER_MAC, ATTACKER_IP, NODE_IP, get(deoj, 0x9F)))
    assert sink.kinds() == [("echonet_sweep", 2)]
    validate_from_pipeline("event", sink.events[0])
    assert sink.events[0]["evidence"]["target_count"] == 4


def test_a_set_from_a_new_controller_after_learning_is_level_2() -> None:
    config = replace(EchonetConfig(), learn_s=60.0)
    pipeline, sink = make_pipeline(echonet=config)
    # the household's controller drives the appliance during the learning period and after
    to_appliance = APPLIANCE_IP
    for i in range(5):
        frame = el(
            HOST_MAC, HOST_IP, to_appliance, setc(AIR_CONDITIONER, 0xB3, b"\x19"), APPLIANCE_MAC
        )
        pipeline.feed(T0 + i * 30, frame)
    multicast = el(
        HOST_MAC, HOST_IP, "224.0.23.0", setc(b"\x01\x30\x00", 0x80, b"\x31"), "01:00:5e:00:17:00"
    )
    pipeline.feed(T0 + 10, multicast)
    pipeline.feed(T0 + 200, multicast)
    assert sink.events == []
    # a host never seen setting it does
    frame = el(
        ATTACKER_MAC, ATTACKER_IP, to_appliance, setc(AIR_CONDITIONER, 0x80, b"\x30"), APPLIANCE_MAC
    )
    pipeline.feed(T0 + 300, frame)
    assert sink.kinds() == [("echonet_control", 2)]
    event = sink.events[0]
    validate_from_pipeline("event", event)
    assert event["evidence"]["decoy"] is False
    assert event["evidence"]["objects"] == [f"{APPLIANCE_IP}/013001"]
    attacker_multicast = el(
        ATTACKER_MAC,
        ATTACKER_IP,
        "224.0.23.0",
        setc(b"\x02\x7d\x00", 0xDA, b"\x42"),
        "01:00:5e:00:17:00",
    )
    pipeline.feed(T0 + 301, attacker_multicast)
    assert len(sink.events) == 1  # the same kind and level: an update, held back


def test_a_spray_of_forged_sets_never_unlearns_the_households_controller() -> None:
    det = EchonetDetector(
        (NODE_PROFILE, AIR_CONDITIONER), EchonetConfig(learn_s=60.0, max_pairs=64)
    )
    frame = echonet.parse(setc(AIR_CONDITIONER, 0xB3, b"\x19"))
    assert frame is not None
    hems, appliance = mac_bytes(HOST_MAC), ip_bytes(APPLIANCE_IP)
    for day in range(2):  # its schedule, during the learning period
        seen = det.on_request(
            T0 + day * 20, hems, ip_bytes(HOST_IP), appliance, frame, to_node=False
        )
        assert seen is None
    for i in range(5000):  # one Set each from made-up controllers
        mac = bytes([2, 0, 0]) + i.to_bytes(3, "big")
        det.on_request(T0 + 50, mac, bytes([10, 0, 0, 0]), appliance, frame, to_node=False)
    assert det.pairs.evictions > 0
    assert (
        det.on_request(T0 + 100, hems, ip_bytes(HOST_IP), appliance, frame, to_node=False) is None
    )
