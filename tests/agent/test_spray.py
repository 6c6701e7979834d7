"""Sprays of forged addresses: reported with the sender's own MAC, and unable to blind the
spoofing and scan detectors or to steer what the agent protects.

The attacks of "an ARP spray blinds the spoofing detector and turns it against the router":
10,000 forged ARP claims at 4,000 a second (below the flood thresholds), then a spoof of the
gateway; and a slow 5-port SYN scan with 4,200 forged sources between each two probes
(16,800 in all, at 2,100 a second).
"""

from __future__ import annotations

import json
import time
import uuid
from random import Random
from typing import Any

import pytest

from sensor_agent.commands import CommandHandler, ProtectedHosts
from sensor_agent.detectors.spray import SprayConfig, SprayDetector
from sensor_agent.enforcer import NoEnforcer
from sensor_agent.formats import ip_bytes, mac_bytes, mac_str
from sensor_agent.pipeline import Pipeline
from tests.agent.craft import (
    ATTACKER_IP,
    ATTACKER_MAC,
    GW_IP,
    GW_MAC,
    HOST_IP,
    HOST_MAC,
    T0,
    RecordingSink,
    arp_claims,
    arp_reply,
    forged_syns,
    make_pipeline,
    tcp,
)
from tests.contract import validate_from_pipeline

ATTACKER = mac_bytes(ATTACKER_MAC)
SCANNER_MAC = "00:1b:21:42:00:55"
SCANNER_IP = "198.18.10.55"
PROBED_PORTS = (21, 22, 23, 25, 110)


def culprits(sink: RecordingSink, kind: str) -> set[str]:
    return {e["source"]["mac"] for e in sink.events if e["kind"] == kind}


def valid(sink: RecordingSink) -> None:
    for event in sink.events:
        validate_from_pipeline("event", event)
    for topic, payload in sink.payloads:
        validate_from_pipeline(topic, payload)


# --- the detector ---------------------------------------------------------------------------


def test_one_sender_with_many_addresses_is_a_spray() -> None:
    det = SprayDetector("arp_spray", SprayConfig(min_addresses=64, window_s=10))
    found = [
        det.on_address(T0 + i * 0.01, ATTACKER, bytes([10, 0, 0, i]) + bytes(6), forged=True)
        for i in range(64)
    ]
    assert found[:63] == [None] * 63
    detection = found[63]
    assert detection is not None
    assert (detection.kind, detection.level, detection.mac) == ("arp_spray", 2, ATTACKER)
    assert detection.ip is None  # the sprayed addresses are not the sender's own
    evidence = detection.evidence()
    assert evidence["address_count"] == 64 and evidence["forged"] == 64
    assert evidence["addresses"][:2] == ["10.0.0.0", "10.0.0.1"]
    assert len(evidence["addresses"]) == 64


def test_a_host_using_its_own_address_or_a_few_is_no_spray() -> None:
    det = SprayDetector("source_spray")
    own = ip_bytes(HOST_IP)
    mac = mac_bytes(HOST_MAC)
    assert all(det.on_address(T0 + i, mac, own) is None for i in range(1000))
    aliases = [bytes([198, 18, 10, 100 + i]) for i in range(8)]
    assert all(det.on_address(T0 + i, mac, aliases[i % 8]) is None for i in range(1000))


def test_addresses_spread_beyond_the_window_are_no_spray() -> None:
    det = SprayDetector("source_spray", SprayConfig(min_addresses=64, window_s=10))
    assert all(
        det.on_address(T0 + i, ATTACKER, bytes([10, 0, i >> 8, i & 255])) is None
        for i in range(300)
    )  # one address a second


def test_addresses_per_sender_are_capped() -> None:
    det = SprayDetector("source_spray", SprayConfig(max_addresses=100))
    for i in range(5000):
        det.on_address(T0 + i * 0.001, ATTACKER, i.to_bytes(4, "big"))
    state = det.sources.get(ATTACKER)
    assert state is not None and len(state.addresses) == 100 and state.packets == 5000


# --- ARP: 10,000 forged claims, then a spoof of the gateway -----------------------------------


def handler_for(pipeline: Pipeline) -> CommandHandler:
    """The agent's command handler as ``run`` wires it (gateway MAC and owners from the
    pipeline), without an enforcer: an accepted quarantine ends in "no enforcer"."""

    def gateway_mac() -> str | None:
        mac = pipeline.gateway_mac()
        return mac_str(mac) if mac else None

    def host_mac(ip: str) -> str | None:
        mac = pipeline.hosts.established_mac_of(ip_bytes(ip))
        return mac_str(mac) if mac else None

    return CommandHandler(
        NoEnforcer(),
        agent_id="test-agent",
        protected=ProtectedHosts.build(gateway_ip=GW_IP),
        gateway_mac=gateway_mac,
        host_mac=host_mac,
    )


def quarantine(mac: str, ip: str | None = None) -> bytes:
    body = {"id": uuid.uuid4().hex, "action": "quarantine", "mac": mac, "ip": ip}
    return json.dumps({**body, "ts": time.time()}).encode()


def lan_then(pipeline: Pipeline, start: float) -> None:
    """The gateway and a host, each heard a few times (seconds apart) before the attack."""
    for i in range(3):
        pipeline.feed(start + i, arp_reply(GW_MAC, GW_IP))
        pipeline.feed(start + i + 0.5, arp_reply(HOST_MAC, HOST_IP))


@pytest.mark.parametrize("pinned", [False, True], ids=["heard", "pinned"])
def test_an_arp_claim_spray_neither_blinds_nor_turns_the_agent_against_the_router(
    pinned: bool,
) -> None:
    extra: dict[str, Any] = {"gateway_mac": mac_bytes(GW_MAC)} if pinned else {}
    pipeline, sink = make_pipeline(**extra)
    lan_then(pipeline, T0)
    stamps, frames = arp_claims(10_000, Random(1), start=T0 + 5, rate=4000.0)
    pipeline.feed_many(stamps, frames)
    after = stamps[-1]
    for i in range(5):  # arpspoof: the attacker and the real gateway both keep answering
        pipeline.feed(after + 1 + 2 * i, arp_reply(ATTACKER_MAC, GW_IP))
        pipeline.feed(after + 2 + 2 * i, arp_reply(GW_MAC, GW_IP))
    pipeline.finish()
    valid(sink)

    assert culprits(sink, "arp_spray") == {ATTACKER_MAC}
    spray = next(e for e in sink.events if e["kind"] == "arp_spray")
    assert spray["level"] == 2
    assert spray["evidence"]["address_count"] >= 64 and spray["evidence"]["forged"] >= 64
    spoofs = [e for e in sink.events if e["kind"] == "arp_spoof"]
    assert {e["source"]["mac"] for e in spoofs} == {ATTACKER_MAC}  # never the real gateway
    assert spoofs[0]["level"] == 3 and spoofs[0]["evidence"]["old_mac"] == GW_MAC
    assert GW_MAC not in {e["source"]["mac"] for e in sink.events}
    assert pipeline.gateway_mac() == mac_bytes(GW_MAC)  # protected: the router, not the spoofer
    assert len(pipeline.arp_spoof.bindings) == 2  # claims for other MACs bind nothing

    handler = handler_for(pipeline)
    assert handler(quarantine(GW_MAC))["error"] == f"refused: {GW_MAC} is the gateway"
    assert "no enforcer" in handler(quarantine(ATTACKER_MAC))["error"]  # the spoofer is not
    # the host heard before the spray still owns its address
    assert handler(quarantine(ATTACKER_MAC, HOST_IP))["error"].startswith(f"refused: {HOST_IP}")


def test_claims_with_forged_ethernet_sources_push_out_only_each_other() -> None:
    """Every forged claim from a made-up MAC of its own: no sender to blame for the spray, but
    the gateway, the hosts heard before and their bindings stay, and a spoof is still seen."""
    pipeline, sink = make_pipeline()
    lan_then(pipeline, T0)
    stamps, frames = arp_claims(10_000, Random(2), sender=None, start=T0 + 5, rate=4000.0)
    pipeline.feed_many(stamps, frames)
    after = stamps[-1]
    pipeline.feed(after + 1, arp_reply(ATTACKER_MAC, HOST_IP))  # a spoof of the host
    pipeline.feed(after + 2, arp_reply(HOST_MAC, HOST_IP))
    pipeline.feed(after + 3, arp_reply(ATTACKER_MAC, GW_IP))
    pipeline.feed(after + 4, arp_reply(GW_MAC, GW_IP))
    pipeline.finish()
    valid(sink)
    assert sink.kinds() == [("arp_spoof", 2), ("arp_spoof", 3)]
    assert culprits(sink, "arp_spoof") == {ATTACKER_MAC}
    assert pipeline.gateway_mac() == mac_bytes(GW_MAC)
    assert pipeline.hosts.established_mac_of(ip_bytes(HOST_IP)) == mac_bytes(HOST_MAC)
    assert len(pipeline.hosts.hosts) <= pipeline.config.hosts.max_hosts
    assert pipeline.counters()["evictions"] >= 10_000 - pipeline.config.hosts.max_hosts


def test_claims_for_other_macs_write_no_binding_and_no_host() -> None:
    pipeline, _ = make_pipeline()
    stamps, frames = arp_claims(100, Random(3), start=T0)
    pipeline.feed_many(stamps, frames)
    pipeline.tick(stamps[-1] + 1.5)
    assert len(pipeline.arp_spoof.bindings) == 0
    assert [h.mac for h in pipeline.hosts.hosts.values()] == [ATTACKER]  # the sender only


# --- a slow SYN scan hidden among forged sources ----------------------------------------------


def slow_scan_in_spray(pipeline: Pipeline, sender: str | None, seed: int) -> None:
    """The scanner probes one port of the 5 every few seconds; between two probes 4,200
    forged SYNs (2 s at 2,100 a second) push its state out of any per-source table."""
    rng = Random(seed)
    ts = T0
    for port in PROBED_PORTS:
        pipeline.feed(ts, tcp(SCANNER_MAC, SCANNER_IP, port))
        stamps, frames = forged_syns(4200, rng, sender=sender, start=ts + 0.5)
        pipeline.feed_many(stamps, frames)
        ts = stamps[-1] + 2.0


def test_a_slow_scan_is_found_among_forged_macs_and_ips() -> None:
    pipeline, sink = make_pipeline()
    slow_scan_in_spray(pipeline, sender=None, seed=4)
    pipeline.finish()
    valid(sink)
    assert culprits(sink, "syn_scan") == {SCANNER_MAC}  # and none of the forged sources
    scan = [e for e in sink.events if e["kind"] == "syn_scan"][-1]
    assert scan["source"]["ip"] == SCANNER_IP
    assert scan["evidence"]["target_count"] >= 3
    assert set(scan["evidence"]["ports"]) <= set(PROBED_PORTS)
    assert {e["kind"] for e in sink.events} == {"syn_scan"}  # no flood pinned on anyone
    assert pipeline.counters()["evictions"] > 16_800  # the spray was seen filling the tables


def test_a_slow_scan_among_forged_ips_of_one_sender_and_the_sender_is_reported() -> None:
    """``hping3 --rand-source`` from the attacker, a slow scan from another host."""
    pipeline, sink = make_pipeline()
    slow_scan_in_spray(pipeline, sender=ATTACKER_MAC, seed=5)
    pipeline.finish()
    valid(sink)
    assert culprits(sink, "syn_scan") == {SCANNER_MAC}
    assert culprits(sink, "source_spray") == {ATTACKER_MAC}
    spray = next(e for e in sink.events if e["kind"] == "source_spray")
    assert spray["evidence"]["address_count"] >= 64
    assert spray["source"]["ip"] is None  # no forged address is named as the sender's own


def test_a_scanner_that_changes_its_mac_is_found_by_its_ip() -> None:
    pipeline, sink = make_pipeline()
    for i, port in enumerate(PROBED_PORTS):
        mac = f"02:00:00:00:07:{i:02x}"
        pipeline.feed(T0 + 10 * i, tcp(mac, SCANNER_IP, port))
    pipeline.finish()
    valid(sink)
    scans = [e for e in sink.events if e["kind"] == "syn_scan"]
    assert scans and {e["source"]["ip"] for e in scans} == {SCANNER_IP}
    assert {e["source"]["mac"] for e in scans} == {"02:00:00:00:07:00"}  # one incident
    assert scans[-1]["evidence"]["target_count"] == 5


def test_the_routers_forwarded_traffic_is_no_source_spray() -> None:
    """The gateway forwards from any address of the Internet: never a source spray."""
    pipeline, sink = make_pipeline(gateway_mac=mac_bytes(GW_MAC))
    stamps, frames = forged_syns(500, Random(6), sender=GW_MAC, dport=8883)
    pipeline.feed_many(stamps, frames)
    pipeline.finish()
    assert culprits(sink, "source_spray") == set()


def test_a_hosts_binding_heard_once_survives_a_spray_when_the_inventory_knows_it() -> None:
    pipeline, sink = make_pipeline()
    pipeline.feed(T0, arp_reply(HOST_MAC, HOST_IP))  # one claim, then frames in 2 seconds
    pipeline.feed(T0 + 1.2, tcp(HOST_MAC, HOST_IP, 8123, flags="A"))
    pipeline.tick(T0 + 2.5)
    stamps, frames = arp_claims(10_000, Random(7), sender=None, start=T0 + 3)
    pipeline.feed_many(stamps, frames)
    after = stamps[-1]
    pipeline.feed(after + 1, arp_reply(ATTACKER_MAC, HOST_IP))
    pipeline.finish()
    assert sink.kinds() == [("arp_spoof", 2)]
    assert culprits(sink, "arp_spoof") == {ATTACKER_MAC}


def test_a_spray_from_the_attacker_and_its_scan_make_one_incident() -> None:
    pipeline, sink = make_pipeline()
    stamps, frames = forged_syns(200, Random(8), sender=ATTACKER_MAC, dport=445)
    pipeline.feed_many(stamps, frames)
    for i, port in enumerate((554, 9100, 139)):
        pipeline.feed(stamps[-1] + 0.1 * (i + 1), tcp(ATTACKER_MAC, ATTACKER_IP, port))
    pipeline.finish()
    valid(sink)
    assert {e["incident_id"] for e in sink.events} == {sink.events[0]["incident_id"]}
    assert {"source_spray", "syn_scan"} <= {e["kind"] for e in sink.events}
