"""The second corpus (benchmarks/classifier_homes.py): homes replayed through the real agent."""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import datetime

import pytest

from benchmarks.classifier_homes import (
    OUIS,
    SHAPES_PATH,
    Device,
    _Builder,
    _owner,
    arp_reply,
    arp_request,
    dhcp_request,
    generate_home,
    load_shapes,
    replay_profile,
    tcp_frame,
)
from sensor_agent.hosts import Vendors
from sensor_agent.parse import parse_arp, parse_dhcp, parse_tcp, parse_udp
from tests.contract import validate_from_pipeline

MALICIOUS = {
    "iot_bot",
    "turned_bot",
    "ransomware",
    "smb_worm",
    "compromised_box",
    "slow_recon",
    "gateway_spoof",
}


def test_the_shapes_were_recorded_from_real_tools_in_the_lab() -> None:
    raw = json.loads(SHAPES_PATH.read_text())
    assert raw["lab"]["subnet"] == "198.18.40.0/24"  # the recording's own lab, nothing else
    assert raw["tools"]["nmap"].startswith("Nmap version")
    shapes = load_shapes()
    for name in ("ha_nmap_tracker", "netalertx", "vuln_scanner", "nvr_rtsp", "telnet_bot"):
        assert shapes[name].probes, name
        assert shapes[name].agent_events, name
    assert "--min-rate 10 --host-timeout 5s" in shapes["ha_nmap_tracker"].command
    assert {shape.role for shape in shapes.values()} == {"benign", "malicious", "any"}
    for shape in shapes.values():
        times = [probe.t for probe in shape.probes]
        assert times == sorted(times)
        assert {probe.op for probe in shape.probes} <= {"a", "s", "k", "d"}


@pytest.mark.parametrize("name", sorted(load_shapes()))
def test_a_replayed_schedule_gives_the_events_the_agent_published_in_the_lab(name: str) -> None:
    """The agent's own pipeline, fed the recorded probes, publishes what the live agent did:
    the same kinds and levels in the same order, the same ports and samples, and the same
    number of addresses (within one: the live agent's updates went out on its clock)."""
    shape = load_shapes()[name]
    replayed = replay_profile(shape)
    recorded = shape.agent_events
    assert [(e["kind"], e["level"]) for e in replayed] == [
        (e["kind"], e["level"]) for e in recorded
    ]
    for got, want in zip(replayed, recorded, strict=True):
        evidence = got["evidence"]
        assert len(evidence.get("ports") or ()) == want["ports"]
        assert evidence.get("sample") == want["sample"]
        if want["target_count"] is not None:
            assert abs(evidence["target_count"] - want["target_count"]) <= 1
        validate_from_pipeline("event", got)  # as detected: the event store adds seq, epoch


def test_frames_are_what_the_agent_parses() -> None:
    mac, ip = bytes.fromhex("0c75d2000001"), bytes([192, 168, 1, 20])
    node = (bytes.fromhex("b827eb000002"), bytes([192, 168, 1, 250]))
    arp = parse_arp(arp_request(mac, ip, bytes([192, 168, 1, 7])))
    assert arp is not None
    assert (arp.op, arp.sender_mac, arp.sender_ip, arp.target_ip[3]) == (1, mac, ip, 7)
    spoof = parse_arp(arp_reply(mac, bytes([192, 168, 1, 1]), node[0], node[1]))
    assert spoof is not None
    assert (spoof.op, spoof.sender_mac, spoof.sender_ip[3]) == (2, mac, 1)
    syn = parse_tcp(tcp_frame((mac, ip), node, 445, 0x02))
    assert syn is not None
    assert (syn.dport, syn.flags, syn.payload_len, syn.dst_ip) == (445, 0x02, 0, node[1])
    data = tcp_frame((mac, ip), node, 445, 0x18, payload=b"\x00\x00\x00\x2f\xffSMB", nbytes=1400)
    segment = parse_tcp(data)
    assert segment is not None
    assert segment.payload_len == 1400  # what was sent, beyond what was captured
    assert data[segment.payload_offset :] == b"\x00\x00\x00\x2f\xffSMB"
    frame = dhcp_request(mac, ip, "IPCamera")
    udp = parse_udp(frame)
    assert udp is not None
    dhcp = parse_dhcp(frame[udp.payload_offset :])
    assert dhcp is not None
    assert (dhcp.client_mac, dhcp.requested_ip, dhcp.hostname) == (mac, ip, "IPCamera")


def test_device_ouis_name_the_intended_vendors() -> None:
    vendors = Vendors()
    for role, prefixes in OUIS.items():
        for prefix in prefixes:
            vendor = vendors(bytes.fromhex(prefix.replace(":", "") + "000001"))
            assert vendor, (role, prefix)


def test_the_lab_node_and_the_home_node_swap() -> None:
    builder = _Builder(3, 1.0)
    assert builder.home_index(2) == builder.node_index
    assert builder.home_index(builder.node_index) == 2 or builder.node_index == 2
    assert builder.home_index(77) == 77 or builder.node_index in (77, 2)


def test_a_home_follows_the_contract_and_the_truth_follows_the_attacks() -> None:
    home = generate_home(2, days=0.2)  # a home where a slow reconnaissance starts at once
    assert home.frames > 5_000
    assert home.events
    times = [item.time for item in home.events]
    assert times == sorted(times)
    assert len({item.event["id"] for item in home.events}) == len(home.events)
    for item in home.events[:: max(len(home.events) // 200, 1)]:
        validate_from_pipeline("event", item.event)  # the agent's event store adds seq, epoch
    for item in home.events:
        assert (item.truth == "alarm") == (item.scenario in MALICIOUS), item.scenario
        assert (item.episode != "") == (item.truth == "alarm")
        assert item.event["agent_id"] == home.agent_id
    attacked = {item.episode for item in home.events if item.truth == "alarm"}
    assert attacked
    assert attacked <= set(home.attacks)
    assert {home.attacks[attack] for attack in attacked} == {"slow_recon"}
    assert home.hosts  # devices as the agent's inventory first listed them
    first_time, first_hosts = home.hosts[0]
    assert first_time >= home.start
    assert all(set(host) == {"mac", "first_seen"} for host in first_hosts)
    assert datetime.fromisoformat(first_hosts[0]["first_seen"].replace("Z", "+00:00"))
    assert home.tz.key == home.tz_name


def test_homes_are_reproducible_and_different() -> None:
    first = generate_home(5, days=0.05)
    again = generate_home(5, days=0.05)
    other = generate_home(6, days=0.05)
    assert [item.event for item in first.events] == [item.event for item in again.events]
    assert first.subnet != other.subnet or first.devices != other.devices


def test_owners_answer_late_rarely_or_never() -> None:
    owners = [_owner(random.Random(seed)) for seed in range(300)]
    kinds = Counter(
        "never" if o.answers_pushes == 0 else "late" if o.median_delay_s > 3 * 3600 else "prompt"
        for o in owners
    )
    assert set(kinds) == {"never", "late", "prompt"}
    assert kinds["prompt"] > kinds["late"] > kinds["never"] > 0
    assert all(0 <= o.answers_questions <= 1 and o.mistakes == 0.02 for o in owners)


def test_a_device_away_sends_nothing() -> None:
    builder = _Builder(2, 0.2)
    phone = Device("phone", bytes.fromhex("021122334455"), 40, None, joins=builder.start)
    phone.away.append((builder.start + 600, builder.start + 3600))
    builder.devices = [phone]
    sent = [t for t, _ in builder.background()]
    assert sent
    assert not [t for t in sent if builder.start + 600 <= t < builder.start + 3600]
    assert max(sent) < builder.end
