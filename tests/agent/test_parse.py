"""Header parsing from bytes: the fields the detectors need, and nothing raises on junk."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Dot1Q, Ether
from scapy.packet import Raw

from sensor_agent import parse
from sensor_agent.formats import ip_bytes, mac_bytes
from tests.agent.craft import (
    ATTACKER_IP,
    ATTACKER_MAC,
    HOST_IP,
    HOST_MAC,
    NODE_IP,
    arp_reply,
    arp_request,
    dhcp_request,
    mdns_answer,
    nbns_registration,
    tcp,
)


def test_arp_request_fields() -> None:
    arp = parse.parse_arp(arp_request(ATTACKER_MAC, ATTACKER_IP, "198.18.10.7"))
    assert arp is not None
    assert arp.op == parse.ARP_REQUEST
    assert arp.sender_mac == mac_bytes(ATTACKER_MAC)
    assert arp.sender_ip == ip_bytes(ATTACKER_IP)
    assert arp.target_ip == ip_bytes("198.18.10.7")


def test_arp_reply_fields() -> None:
    arp = parse.parse_arp(arp_reply(HOST_MAC, HOST_IP))
    assert arp is not None
    assert (arp.op, arp.sender_ip) == (parse.ARP_REPLY, ip_bytes(HOST_IP))


def test_tcp_syn_fields() -> None:
    seg = parse.parse_tcp(tcp(dport=9100, flags="S", sport=51000))
    assert seg is not None
    assert (seg.sport, seg.dport) == (51000, 9100)
    assert seg.flags & parse.TCP_SYN and not seg.flags & parse.TCP_ACK
    assert seg.src_ip == ip_bytes(ATTACKER_IP)
    assert seg.dst_ip == ip_bytes(NODE_IP)
    assert seg.payload_len == 0


def test_tcp_payload_offset_and_length_come_from_the_headers() -> None:
    frame = tcp(dport=445, flags="PA", data=b"\xfeSMB hello")
    seg = parse.parse_tcp(frame)
    assert seg is not None
    assert seg.payload_len == 10
    assert frame[seg.payload_offset : seg.payload_offset + seg.payload_len] == b"\xfeSMB hello"


def test_tcp_with_ip_options_and_ethernet_padding() -> None:
    frame = bytes(
        Ether(src=ATTACKER_MAC)
        / IP(src=ATTACKER_IP, dst=NODE_IP, options=b"\x01\x01\x01\x00")
        / TCP(dport=80, flags="PA")
        / Raw(b"GET")
    )
    padded = frame + b"\x00" * 20  # the wire pads short frames; the IP length still rules
    seg = parse.parse_tcp(padded)
    assert seg is not None
    assert seg.payload_len == 3
    assert padded[seg.payload_offset : seg.payload_offset + 3] == b"GET"


def test_udp_fields() -> None:
    frame = bytes(Ether() / IP(src=HOST_IP, dst="198.18.10.255") / UDP(sport=1, dport=5353) / b"ab")
    udp = parse.parse_udp(frame)
    assert udp is not None
    assert (udp.sport, udp.dport, udp.payload_len) == (1, 5353, 2)


def test_later_ip_fragment_has_no_transport_header() -> None:
    frame = bytes(Ether() / IP(src=HOST_IP, dst=NODE_IP, frag=100, proto=6) / Raw(b"x" * 40))
    assert parse.parse_tcp(frame) is None


def test_vlan_tag_is_reported_and_removed() -> None:
    frame = bytes(
        Ether(src=ATTACKER_MAC) / Dot1Q(vlan=42) / IP(src=ATTACKER_IP, dst=NODE_IP) / TCP()
    )
    headers = parse.parse(frame)
    assert headers is not None
    assert headers.vlan == 42
    assert headers.ethertype == parse.ETH_IPV4
    assert headers.tcp is not None and headers.tcp.dst_ip == ip_bytes(NODE_IP)


def test_parse_combines_everything() -> None:
    headers = parse.parse(arp_request(ATTACKER_MAC, ATTACKER_IP, "198.18.10.3"))
    assert headers is not None
    assert headers.src == mac_bytes(ATTACKER_MAC)
    assert headers.arp is not None and headers.tcp is None and headers.udp is None
    assert parse.parse(b"\x00" * 13) is None


def test_dhcp_hostname_and_requested_address() -> None:
    frame = dhcp_request(HOST_MAC, "Annas-iPhone", HOST_IP)
    udp = parse.parse_udp(frame)
    assert udp is not None
    dhcp = parse.parse_dhcp(frame[udp.payload_offset :])
    assert dhcp is not None
    assert dhcp.hostname == "Annas-iPhone"
    assert dhcp.requested_ip == ip_bytes(HOST_IP)
    assert dhcp.client_mac == mac_bytes(HOST_MAC)
    assert dhcp.message_type == 3


def test_dhcp_with_options_cut_by_the_snap_length_keeps_what_is_there() -> None:
    frame = dhcp_request(HOST_MAC, "printer", HOST_IP)
    udp = parse.parse_udp(frame)
    assert udp is not None
    payload = frame[udp.payload_offset :]
    cut = payload[: 240 + 3 + 6]  # message type and requested address only
    dhcp = parse.parse_dhcp(cut)
    assert dhcp is not None
    assert dhcp.requested_ip == ip_bytes(HOST_IP)
    assert dhcp.hostname is None


def test_mdns_a_record_names_the_host() -> None:
    frame = mdns_answer(HOST_MAC, HOST_IP, "officejet")
    udp = parse.parse_udp(frame)
    assert udp is not None
    assert parse.parse_mdns(frame[udp.payload_offset :]) == [("officejet", ip_bytes(HOST_IP))]


def test_mdns_compressed_names_and_queries() -> None:
    # a response with a question and a compression pointer back to it
    question = b"\x07printer\x05local\x00" + b"\x00\x01\x00\x01"
    answer = (
        b"\xc0\x0c" + b"\x00\x01\x80\x01" + b"\x00\x00\x00\x78" + b"\x00\x04" + b"\xc6\x12\x0a\x21"
    )
    message = b"\x00\x00\x84\x00" + b"\x00\x01\x00\x01\x00\x00\x00\x00" + question + answer
    assert parse.parse_mdns(message) == [("printer", ip_bytes("198.18.10.33"))]
    query = b"\x00\x00\x00\x00" + b"\x00\x01\x00\x00\x00\x00\x00\x00" + question
    assert parse.parse_mdns(query) == []


def test_mdns_pointer_loop_is_bounded() -> None:
    message = b"\x00\x00\x84\x00" + b"\x00\x00\x00\x01\x00\x00\x00\x00" + b"\xc0\x0c"
    assert parse.parse_mdns(message) == []


def test_netbios_registration_names_the_sender() -> None:
    frame = nbns_registration(ATTACKER_MAC, ATTACKER_IP, "DESKTOP-K3V9Q2")
    udp = parse.parse_udp(frame)
    assert udp is not None
    assert parse.parse_nbns(frame[udp.payload_offset :]) == "DESKTOP-K3V9Q2"


def test_clean_name_keeps_printable_text_only() -> None:
    assert parse.clean_name(b"bad\x07name\x00tail") == "badname"
    assert parse.clean_name(b"\x00") is None
    assert parse.clean_name(b"x" * 300) == "x" * 63


def test_truncated_and_inconsistent_headers_are_none() -> None:
    syn = tcp()
    assert parse.parse_tcp(syn[:40]) is None  # TCP header cut
    assert parse.parse_arp(arp_request(ATTACKER_MAC, ATTACKER_IP, "198.18.10.1")[:30]) is None
    bad_version = syn[:14] + bytes([0x65]) + syn[15:]
    assert parse.parse_tcp(bad_version) is None
    short_total = syn[:16] + b"\x00\x10" + syn[18:]  # IP total length < header length
    assert parse.parse_tcp(short_total) is None
    assert parse.parse_dhcp(b"\x01" * 100) is None
    assert parse.parse_nbns(b"\x00" * 10) is None


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=600))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    parse.parse(data)
    parse.parse_arp(data)
    parse.parse_tcp(data)
    parse.parse_udp(data)
    parse.parse_dhcp(data)
    parse.parse_mdns(data)
    parse.parse_nbns(data)
    parse.untag(data)


@settings(max_examples=300, deadline=None)
@given(
    st.binary(min_size=14, max_size=120), st.sampled_from([b"\x08\x00", b"\x08\x06", b"\x81\x00"])
)
def test_arbitrary_bytes_behind_a_real_ethertype_never_raise(data: bytes, ethertype: bytes) -> None:
    frame = data[:12] + ethertype + data[14:]
    parse.parse(frame)
    parse.parse_mdns(frame[42:])
    parse.parse_dhcp(frame[42:])
