"""Level 2: stealth TCP scans and UDP scans of the node, and who is behind forged sources."""

from __future__ import annotations

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from sensor_agent.detectors.port_scan import Flows, PortProbeDetector, technique
from sensor_agent.formats import ip_bytes, mac_bytes
from tests.agent.craft import (
    ATTACKER_IP,
    ATTACKER_MAC,
    GW_IP,
    GW_MAC,
    HOST_IP,
    HOST_MAC,
    NODE_IP,
    NODE_MAC,
    T0,
    arp_request,
    make_pipeline,
    tcp,
)
from tests.contract import validate_from_pipeline

MAC = mac_bytes(ATTACKER_MAC)
IP4 = ip_bytes(ATTACKER_IP)


def udp_to_node(
    dport: int, *, sport: int = 40000, mac: str = ATTACKER_MAC, ip: str = ATTACKER_IP
) -> bytes:
    return bytes(
        Ether(src=mac, dst=NODE_MAC)
        / IP(src=ip, dst=NODE_IP)
        / UDP(sport=sport, dport=dport)
        / Raw(b"")
    )


def test_techniques_named_as_nmap_names_its_scans() -> None:
    assert technique(0x01, 0) == "fin"  # -sF
    assert technique(0x00, 0) == "null"  # -sN
    assert technique(0x29, 0) == "xmas"  # -sX: FIN PSH URG
    assert technique(0x10, 0) == "ack"  # -sA and -sW
    assert technique(0x11, 0) == "maimon"  # -sM: FIN ACK
    assert technique(0x08, 0) == "odd"
    assert technique(0x02, 0) is None  # a SYN is the SYN-scan detector's
    assert technique(0x04, 0) is None and technique(0x14, 0) is None  # resets answer
    assert technique(0x18, 100) is None  # data in a conversation


def test_detector_counts_distinct_ports_per_source() -> None:
    det = PortProbeDetector("stealth_scan", "tcp")
    assert det.on_probe(T0, MAC, IP4, 22, "fin") is None
    assert det.on_probe(T0 + 0.1, MAC, IP4, 22, "fin") is None
    assert det.on_probe(T0 + 0.2, MAC, IP4, 80, "xmas") is None
    found = det.on_probe(T0 + 0.3, MAC, IP4, 443, "fin")
    assert found is not None and (found.kind, found.level) == ("stealth_scan", 2)
    evidence = found.evidence()
    assert evidence["ports"] == [22, 80, 443]
    assert evidence["techniques"] == ["fin", "xmas"]
    assert evidence["protocol"] == "tcp" and evidence["packets"] == 4
    assert found.source_ips == (IP4,)


def test_flows_are_bounded() -> None:
    flows = Flows(max_flows=2)
    for port in (1, 2, 3):
        flows.begin(T0, IP4, 40000, port)
    assert len(flows) == 2 and flows.table.evictions == 1
    assert not flows.seen(T0, IP4, 40000, 1) and flows.seen(T0, IP4, 40000, 3)


def test_a_syn_spray_never_pushes_out_a_conversation_going_on() -> None:
    """Forged SYNs (one each) churn the newcomers; the broker's ACKs of a conversation it
    keeps up with the node stay in a conversation and never count as probes."""
    flows = Flows(max_flows=64)
    broker = bytes([198, 18, 10, 2])
    for dport in (40001, 40002, 40003):
        flows.begin(T0, broker, 1883, dport)  # the SYN/ACKs answering the node's connections
        assert flows.seen(T0 + 1, broker, 1883, dport)  # an ACK: the conversation goes on
    for i in range(10_000):
        flows.begin(T0 + 2, bytes([10]) + i.to_bytes(3, "big"), 1024 + i % 60_000, 80)
    assert all(flows.seen(T0 + 3, broker, 1883, dport) for dport in (40001, 40002, 40003))


def test_fin_null_and_xmas_scans_through_the_pipeline() -> None:
    for flags, name in (("F", "fin"), ("", "null"), ("FPU", "xmas")):
        pipeline, sink = make_pipeline()
        for port in (22, 80, 443, 445):
            pipeline.feed(T0 + port / 1000, tcp(dport=port, flags=flags))
        pipeline.finish()
        assert set(sink.kinds()) == {("stealth_scan", 2)}, (name, sink.events)
        event = sink.events[0]
        validate_from_pipeline("event", event)
        assert event["evidence"]["techniques"] == [name]
        assert event["source"]["mac"] == ATTACKER_MAC and event["source"]["ip"] == ATTACKER_IP


def test_acks_of_conversations_are_not_probes_but_stray_acks_are() -> None:
    pipeline, sink = make_pipeline()
    # the host connected to three ports (SYN seen), then sends ACKs and FIN/ACKs in them
    for port in (22, 8080, 8443):
        pipeline.feed(T0, tcp(HOST_MAC, HOST_IP, port, flags="S", sport=50000 + port))
    # and the node's own connection to the host (its SYN/ACK seen) goes on
    pipeline.feed(T0, tcp(HOST_MAC, HOST_IP, 41000, flags="SA", sport=1883))
    for port in (22, 8080, 8443):
        pipeline.feed(T0 + 1, tcp(HOST_MAC, HOST_IP, port, flags="A", sport=50000 + port))
        pipeline.feed(T0 + 2, tcp(HOST_MAC, HOST_IP, port, flags="FA", sport=50000 + port))
    pipeline.feed(T0 + 3, tcp(HOST_MAC, HOST_IP, 41000, flags="A", sport=1883))
    assert not [e for e in sink.events if e["kind"] == "stealth_scan"]
    for port in (1, 2, 3):  # ACKs of conversations that never began: nmap -sA
        pipeline.feed(T0 + 4, tcp(dport=port, flags="A", sport=61000))
    assert ("stealth_scan", 2) in sink.kinds()
    assert sink.events[-1]["evidence"]["techniques"] == ["ack"]


def test_udp_probes_of_closed_ports_but_not_answers_to_the_node() -> None:
    pipeline, sink = make_pipeline()
    # DNS and NTP answers to the node's ephemeral ports, its DHCP client and NTP port
    for i, dport in enumerate((33000, 45000, 60000, 68, 123, 5353)):
        pipeline.feed(T0 + i, udp_to_node(dport, sport=53, mac=GW_MAC, ip=GW_IP))
    assert sink.events == []
    for port in (53, 161, 137, 500):
        pipeline.feed(T0 + 10, udp_to_node(port))
    assert sink.kinds()[0] == ("udp_scan", 2)
    evidence = sink.events[0]["evidence"]
    assert evidence["protocol"] == "udp" and evidence["techniques"] == ["udp"]
    assert set(evidence["ports"]) <= {53, 161, 137, 500}


def test_decoy_source_addresses_are_attributed_to_the_sending_mac() -> None:
    pipeline, sink = make_pipeline()
    pipeline.feed(T0, arp_request(ATTACKER_MAC, ATTACKER_IP, GW_IP))  # its own address, heard
    decoys = ("198.18.10.201", "198.18.10.202", ATTACKER_IP, "198.18.10.203")
    for port in (22, 80, 443):
        for decoy in decoys:  # nmap -D: each probe from every decoy and from the real address
            pipeline.feed(T0 + 1, tcp(ip=decoy, dport=port, flags="F"))
    event = sink.events[0]
    validate_from_pipeline("event", event)
    assert event["source"]["ip"] == ATTACKER_IP
    assert sorted(event["evidence"]["forged_ips"]) == sorted(set(decoys) - {ATTACKER_IP})


def test_decoys_last_still_name_the_real_address() -> None:
    pipeline, sink = make_pipeline()
    pipeline.feed(T0, arp_request(ATTACKER_MAC, ATTACKER_IP, GW_IP))
    for port in (22, 80, 443):
        pipeline.feed(T0 + 1, tcp(ip="198.18.10.201", dport=port, flags="F"))
    assert sink.events[0]["source"]["ip"] == ATTACKER_IP
    assert sink.events[0]["evidence"]["forged_ips"] == ["198.18.10.201"]


def test_scan_through_the_gateway_says_so() -> None:
    pipeline, sink = make_pipeline(gateway_mac=mac_bytes(GW_MAC))
    for port in (22, 80, 443):
        pipeline.feed(T0, tcp(GW_MAC, "203.0.113.9", port, flags="FPU"))
    event = sink.events[0]
    validate_from_pipeline("event", event)
    assert event["source"]["mac"] == GW_MAC
    assert event["evidence"]["via_gateway"] is True
    assert event["evidence"]["source_ips"] == ["203.0.113.9"]
    assert "forged_ips" not in event["evidence"]


def test_an_ipv6_scan_by_a_host_known_only_by_its_ipv4_forges_nothing() -> None:
    from scapy.layers.inet import TCP
    from scapy.layers.inet6 import IPv6

    from sensor_agent.formats import addr_bytes

    node6 = "fd00:db8:10::10"
    pipeline, sink = make_pipeline(node_ip6=(addr_bytes(node6),))
    pipeline.feed(T0, arp_request(ATTACKER_MAC, ATTACKER_IP, GW_IP))
    for port in (22, 80, 443):
        frame = (
            Ether(src=ATTACKER_MAC, dst=NODE_MAC)
            / IPv6(src="fd00:db8:10::66", dst=node6)
            / TCP(sport=40000, dport=port, flags="F")
        )
        pipeline.feed(T0 + 1, bytes(frame))
    event = sink.events[0]
    validate_from_pipeline("event", event)
    assert "forged_ips" not in event["evidence"]
    assert event["source"]["ip"] == ATTACKER_IP
    assert event["source"]["ipv6"] == ["fd00:db8:10::66"]
