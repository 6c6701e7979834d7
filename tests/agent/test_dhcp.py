"""DHCP: pool starvation and rogue servers; ordinary renewals and the real server are quiet."""

from __future__ import annotations

from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from sensor_agent.formats import mac_bytes
from sensor_agent.parse import parse_dhcp_server
from tests.agent.craft import (
    ATTACKER_IP,
    ATTACKER_MAC,
    BROADCAST,
    GW_IP,
    GW_MAC,
    HOST_MAC,
    T0,
    arp_request,
    dhcp_request,
    make_pipeline,
)
from tests.contract import validate_from_pipeline


def discover(ether_src: str, client_mac: str, giaddr: str = "0.0.0.0") -> bytes:
    return bytes(
        Ether(src=ether_src, dst=BROADCAST)
        / IP(src="0.0.0.0", dst="255.255.255.255")
        / UDP(sport=68, dport=67)
        / BOOTP(chaddr=mac_bytes(client_mac), giaddr=giaddr, xid=7)
        / DHCP(options=[("message-type", "discover"), "end"])
    )


def offer(server_mac: str, server_ip: str, router: str, dns: str, kind: str = "offer") -> bytes:
    return bytes(
        Ether(src=server_mac, dst=BROADCAST)
        / IP(src=server_ip, dst="255.255.255.255")
        / UDP(sport=67, dport=68)
        / BOOTP(op=2, chaddr=mac_bytes(HOST_MAC), yiaddr="198.18.10.150", xid=7)
        / DHCP(
            options=[
                ("message-type", kind),
                ("server_id", server_ip),
                ("router", router),
                ("name_server", dns),
                "end",
            ]
        )
    )


def test_server_reply_parser_reads_router_and_dns() -> None:
    frame = offer(GW_MAC, GW_IP, GW_IP, "198.18.10.53")
    reply = parse_dhcp_server(frame[42:])
    assert reply is not None
    assert reply.message_type == 2
    assert reply.routers == (bytes([198, 18, 10, 1]),)
    assert reply.dns == (bytes([198, 18, 10, 53]),)
    assert parse_dhcp_server(frame[42:100]) is None
    assert parse_dhcp_server(b"\x02" + bytes(300)) is None


def test_starvation_from_one_sender_names_it() -> None:
    pipeline, sink = make_pipeline()
    pipeline.feed(T0, arp_request(ATTACKER_MAC, ATTACKER_IP, GW_IP))
    for i in range(6):
        pipeline.feed(T0 + 1 + i * 0.01, discover(ATTACKER_MAC, f"02:aa:00:00:00:{i:02x}"))
    assert sink.kinds() == [("dhcp_starvation", 2)]
    event = sink.events[0]
    validate_from_pipeline("event", event)
    assert event["source"]["mac"] == ATTACKER_MAC and event["source"]["ip"] == ATTACKER_IP
    assert event["evidence"]["scope"] == "source"
    assert event["evidence"]["client_count"] == 4


def test_starvation_from_random_macs_is_reported_lan_wide() -> None:
    pipeline, sink = make_pipeline()
    for i in range(40):
        mac = f"02:bb:00:00:{i // 256:02x}:{i % 256:02x}"
        pipeline.feed(T0 + i * 0.01, discover(mac, mac))
    assert sink.kinds()[0] == ("dhcp_starvation", 2)
    assert sink.events[0]["evidence"]["scope"] == "total"
    assert sink.events[0]["evidence"]["client_count"] == 32


def test_renewals_of_known_clients_and_relayed_requests_raise_nothing() -> None:
    pipeline, sink = make_pipeline()
    macs = [f"02:cc:00:00:00:{i:02x}" for i in range(40)]
    for second in (0, 1):  # every device of the house is known (it talked before)
        for mac in macs:
            pipeline.feed(T0 + second, arp_request(mac, "198.18.10.200", GW_IP))
    for i, mac in enumerate(macs):
        pipeline.feed(T0 + 2 + i * 0.1, dhcp_request(mac, f"dev{i}", f"198.18.10.{100 + i}"))
    for i in range(10):  # a relay agent forwards other segments' clients (giaddr set)
        pipeline.feed(T0 + 10, discover(GW_MAC, f"02:dd:00:00:00:{i:02x}", giaddr=GW_IP))
    assert [e for e in sink.events if e["kind"] == "dhcp_starvation"] == []


def test_one_forged_frame_per_mac_ahead_of_the_requests_hides_no_starvation() -> None:
    pipeline, sink = make_pipeline()
    macs = [f"02:bb:00:00:00:{i:02x}" for i in range(40)]
    for mac in macs:  # each made-up MAC heard once: in the inventory, but not established
        pipeline.feed(T0, arp_request(mac, "198.18.10.200", GW_IP))
    for i, mac in enumerate(macs):
        pipeline.feed(T0 + 2 + i * 0.01, discover(mac, mac))
    assert ("dhcp_starvation", 2) in sink.kinds()


def test_rogue_server_offering_another_router_is_level_3_the_real_one_nothing() -> None:
    pipeline, sink = make_pipeline(gateway_mac=mac_bytes(GW_MAC))
    pipeline.feed(T0, offer(GW_MAC, GW_IP, GW_IP, GW_IP))
    pipeline.feed(T0, offer(GW_MAC, GW_IP, GW_IP, GW_IP, kind="ack"))
    assert sink.events == []
    pipeline.feed(T0 + 1, offer(ATTACKER_MAC, ATTACKER_IP, ATTACKER_IP, ATTACKER_IP))
    assert sink.kinds() == [("rogue_dhcp", 3)]
    event = sink.events[0]
    validate_from_pipeline("event", event)
    assert event["source"]["ip"] == ATTACKER_IP
    evidence = event["evidence"]
    assert evidence["routers"] == [ATTACKER_IP] and evidence["old_mac"] == GW_MAC
    assert evidence["offered_ip"] == "198.18.10.150"


def test_second_server_handing_out_the_same_router_and_dns_is_level_2() -> None:
    pipeline, sink = make_pipeline(gateway_mac=mac_bytes(GW_MAC))
    pipeline.feed(T0, offer(GW_MAC, GW_IP, GW_IP, GW_IP))
    pipeline.feed(T0 + 1, offer(ATTACKER_MAC, ATTACKER_IP, GW_IP, GW_IP))
    assert sink.kinds() == [("rogue_dhcp", 2)]
