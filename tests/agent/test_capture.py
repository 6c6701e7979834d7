"""Live capture helpers, and the live loop on the loopback interface (root; traffic to
127.0.0.1 only)."""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from dataclasses import replace
from ipaddress import IPv4Network
from pathlib import Path

import pytest

from sensor_agent import parse
from sensor_agent.capture import (
    BPF_RET_K,
    PACKET_OUTGOING,
    SKF_AD_PKTTYPE,
    CaptureOpenError,
    LiveCapture,
    arp_request,
    capture_program,
    compile_expression,
    default_gateway,
    interface_addresses,
    interface_subnet,
    kernel_arp_lookup,
    read_block,
)
from sensor_agent.config import AgentConfig, CaptureConfig, DecoyConfig
from sensor_agent.formats import ip_bytes, mac_bytes
from sensor_agent.live import LiveAgent
from tests.agent.craft import RecordingSink, base_config
from tests.contract import validate_from_pipeline

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="packet capture needs root (CAP_NET_RAW)")


def test_arp_probe_frame_is_a_valid_request() -> None:
    frame = arp_request(
        mac_bytes("02:00:00:0a:00:0a"), ip_bytes("198.18.10.10"), ip_bytes("198.18.10.66")
    )
    arp = parse.parse_arp(frame)
    assert arp is not None
    assert arp.op == parse.ARP_REQUEST
    assert arp.target_ip == ip_bytes("198.18.10.66")
    assert frame[:6] == b"\xff" * 6


def test_default_gateway_from_the_routing_table(tmp_path: Path) -> None:
    table = tmp_path / "route"
    table.write_text(
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\n"
        "eth0\t000A12C6\t00000000\t0001\t0\t0\t0\t00FFFFFF\n"
        "eth0\t00000000\t010A12C6\t0003\t0\t0\t100\t00000000\n"
    )
    assert default_gateway("eth0", table) == ip_bytes("198.18.10.1")
    assert default_gateway("wlan0", table) is None
    assert default_gateway("eth0", tmp_path / "missing") is None


def test_kernel_arp_lookup(tmp_path: Path) -> None:
    table = tmp_path / "arp"
    table.write_text(
        "IP address       HW type     Flags       HW address            Mask     Device\n"
        "198.18.10.66     0x1         0x2         00:1b:21:42:00:42     *        eth0\n"
        "198.18.10.67     0x1         0x0         00:00:00:00:00:00     *        eth0\n"
    )
    assert kernel_arp_lookup("198.18.10.66", table) == mac_bytes("00:1b:21:42:00:42")
    assert kernel_arp_lookup("198.18.10.67", table) is None
    assert kernel_arp_lookup("198.18.10.68", table) is None


def test_loopback_addresses() -> None:
    ip, mac = interface_addresses("lo")
    assert ip == ip_bytes("127.0.0.1")
    assert mac == bytes(6)
    assert interface_addresses("lgc-missing0") == (None, None)
    assert interface_subnet("lo") == IPv4Network("127.0.0.0/8")
    assert interface_subnet("lgc-missing0") is None


def test_kernel_program_drops_outgoing_frames_first_and_caps_every_accept() -> None:
    compiled = [
        (0x28, 0, 0, 12),  # ldh [12]
        (0x15, 0, 1, 0x0806),  # jeq #arp, accept, else reject
        (BPF_RET_K, 0, 0, 262144),
        (BPF_RET_K, 0, 0, 0),
    ]
    program = capture_program(compiled, snaplen=512)
    guard, body = program[:3], program[3:]
    assert guard[0][3] == SKF_AD_PKTTYPE  # load the packet type ...
    assert guard[1][3] == PACKET_OUTGOING and guard[1][1:3] == (0, 1)  # ... outgoing:
    assert guard[2] == (BPF_RET_K, 0, 0, 0)  # dropped
    assert body[:2] == compiled[:2]  # relative jumps: the body is unchanged ...
    assert body[2] == (BPF_RET_K, 0, 0, 512)  # ... but accepts only snaplen bytes
    assert body[3] == (BPF_RET_K, 0, 0, 0)  # and rejects stay rejects
    assert capture_program([], snaplen=128)[3:] == [(BPF_RET_K, 0, 0, 128)]  # no expression


def test_expression_compiles_to_classic_bpf_for_the_program() -> None:
    compiled = compile_expression("udp and port 5353", "lo")
    assert compiled and compiled[-1][0] == BPF_RET_K
    accepts = [k for code, _, _, k in capture_program(compiled, 96) if code == BPF_RET_K and k]
    assert accepts and max(accepts) == 96
    assert compile_expression("", "lo") == []


def _tpacket_v3_block(frames: list[tuple[float, bytes]]) -> bytes:
    """A block as the kernel lays it out: tpacket_block_desc, then tpacket3_hdr + frame."""
    first = 48
    body = b""
    for index, (ts, frame) in enumerate(frames):
        mac = 68  # the frame starts this far into its header (the kernel's alignment)
        size = (mac + len(frame) + 15) // 16 * 16
        step = 0 if index == len(frames) - 1 else size
        sec, nsec = int(ts), round((ts - int(ts)) * 1e9)
        header = struct.pack("IIIIIIH", step, sec, nsec, len(frame), len(frame) + 100, 1, mac)
        body += (header + b"\0" * (mac - len(header)) + frame).ljust(size, b"\0")
    desc = struct.pack("IIIII", 1, 0, 1, len(frames), first).ljust(first, b"\0")
    return b"\xee" * 16 + desc + body  # the block at offset 16 of the ring


def test_ring_block_gives_each_frame_with_its_kernel_timestamp() -> None:
    frames = [(1_795_597_200.25, b"\x01" * 60), (1_795_597_200.5, b"\x02" * 42)]
    stamps: list[float] = []
    out: list[bytes] = []
    assert read_block(_tpacket_v3_block(frames), 16, stamps, out) == 2
    assert out == [b"\x01" * 60, b"\x02" * 42]
    assert stamps == pytest.approx([1_795_597_200.25, 1_795_597_200.5], abs=1e-6)
    assert read_block(_tpacket_v3_block([]), 16, stamps, out) == 0


@needs_root
def test_missing_interface_is_a_clear_error() -> None:
    with pytest.raises(CaptureOpenError, match="lgc-missing0"):
        LiveCapture("lgc-missing0")


@needs_root
@pytest.mark.parametrize("ring", [True, False], ids=["ring", "socket"])
def test_capture_reads_raw_frames_through_a_bpf_filter(ring: bool) -> None:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    port = receiver.getsockname()[1]
    capture = LiveCapture("lo", snaplen=128, bpf_filter=f"udp and port {port}", ring=ring)
    try:
        assert capture.mode == ("ring" if ring else "socket")
        assert capture.buffer_bytes >= 4 << 20  # several MB, not scapy's 64 KiB
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            sender.sendto(b"lgc-probe" * 40, ("127.0.0.1", port))
        frames: list[bytes] = []
        deadline = time.monotonic() + 3
        while not frames and time.monotonic() < deadline:
            frames = capture.read_batch()[1]
            time.sleep(0.01)
        assert len(frames) == 1, "one copy (the kernel drops the outgoing one), filter applied"
        frame = frames[0]
        assert len(frame) == 128  # snap length
        udp = parse.parse_udp(frame)
        assert udp is not None and udp.dport == port
        assert udp.payload_len == 360  # from the header: what was sent, beyond the snap length
        assert capture.drops() >= 0
    finally:
        capture.close()
        receiver.close()


@needs_root
def test_a_full_ring_counts_every_frame_it_drops_into_the_state_counters() -> None:
    """A 1 MB ring nobody reads overflows under a burst of datagrams to 127.0.0.1; every
    datagram is then either read or counted as a kernel drop, and the drops reach the
    state payload's ``kernel_drops``."""
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    port = receiver.getsockname()[1]
    capture = LiveCapture("lo", snaplen=256, bpf_filter=f"udp and dst port {port}", buffer_mb=1)
    sent = 20_000  # ~4,000 fit in the ring
    config = AgentConfig(
        raw={},
        agent_id="test-agent",
        interface="lo",
        log_level="INFO",
        events_jsonl=None,
        stdout=False,
        capture=CaptureConfig(),
        decoys=DecoyConfig(enabled=False),
        probe_hosts=False,
        pipeline=replace(base_config(), node_ip=ip_bytes("127.0.0.1"), decoy_ports=()),
    )
    sink = RecordingSink()
    agent = LiveAgent(config, [sink], capture)
    try:
        agent.start()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            for _ in range(sent):
                sender.sendto(b"lgc-flood" * 20, ("127.0.0.1", port))
        stop = threading.Event()
        threading.Timer(1.5, stop.set).start()
        agent.run(stop, tick_s=0.2)  # reads the ring and the drop counter
    finally:
        agent.close()
        receiver.close()
    counters = sink.last("state")["counters"]
    assert counters["kernel_drops"] > 0
    assert counters["frames"] + counters["kernel_drops"] == sent
    validate_from_pipeline("state", sink.last("state"))


@needs_root
def test_live_loop_on_loopback_sees_a_syn_scan_of_the_node() -> None:
    """Capture on lo with the node at 127.0.0.1: SYNs to closed local ports are a level-2
    scan; other processes' loopback traffic may add events, so only ours is asserted."""
    ports = []
    for _ in range(4):  # free ports with nothing listening
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            ports.append(probe.getsockname()[1])
    pipeline = replace(
        base_config(), node_ip=ip_bytes("127.0.0.1"), node_mac=bytes(6), decoy_ports=()
    )
    config = AgentConfig(
        raw={},
        agent_id="test-agent",
        interface="lo",
        log_level="INFO",
        events_jsonl=None,
        stdout=False,
        capture=CaptureConfig(),
        decoys=DecoyConfig(enabled=False),
        probe_hosts=False,
        pipeline=pipeline,
    )
    filter_ = "tcp[tcpflags] & tcp-syn != 0 and dst port (" + " or ".join(map(str, ports)) + ")"
    sink = RecordingSink()
    agent = LiveAgent(config, [sink], LiveCapture("lo", bpf_filter=filter_))
    stop = threading.Event()
    thread = threading.Thread(target=agent.run, args=(stop, 0.1), daemon=True)
    agent.start()
    thread.start()
    try:
        for port in ports:
            with socket.socket() as client:
                client.settimeout(1)
                with pytest.raises(OSError):
                    client.connect(("127.0.0.1", port))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any(e["kind"] == "syn_scan" for e in sink.events):
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(5)
        agent.close()
    scans = [e for e in sink.events if e["kind"] == "syn_scan"]
    assert scans, f"no syn_scan among {sink.kinds()}"
    assert set(ports) <= set(scans[-1]["evidence"]["ports"])
    assert scans[0]["source"]["ip"] == "127.0.0.1"
    validate_from_pipeline("event", scans[0])
    validate_from_pipeline("state", sink.last("state"))
    assert sink.last("state")["counters"]["frames"] >= len(ports)


PROBE_SCRIPT = """
import sys, time
from sensor_agent import parse
from sensor_agent.capture import ArpProber, LiveCapture, interface_addresses
from sensor_agent.formats import ip_bytes
ip, mac = interface_addresses("eth0")
capture = LiveCapture("eth0", bpf_filter="arp")
prober = ArpProber("eth0", mac, ip)
target = ip_bytes(sys.argv[1])
prober(b"", target)
deadline = time.monotonic() + 3
while time.monotonic() < deadline:
    for frame in capture.read_batch()[1]:
        arp = parse.parse_arp(frame)
        if arp and arp.op == parse.ARP_REPLY and arp.sender_ip == target:
            print(arp.sender_mac.hex(":"))
            sys.exit(0)
    time.sleep(0.02)
print("no reply")
sys.exit(1)
"""


@needs_root
def test_arp_probe_of_a_silent_culprit_is_answered_in_a_namespace_lab() -> None:
    """The live probe (one ARP request) on a lab LAN of our own (prefix lgp, 198.18.14.0/24)."""
    import sys

    from tests.netlab import Lab, require_tools

    if reason := require_tools("ip"):
        pytest.skip(reason)
    with Lab("lgp", "198.18.14.0/24") as lab:
        node = lab.host("node", "198.18.14.10/24")
        culprit = lab.host("culprit", "198.18.14.66/24", mac="02:00:00:0e:00:66")
        done = node.run([sys.executable, "-c", PROBE_SCRIPT, culprit.ip], timeout=20)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "02:00:00:0e:00:66"


def test_the_dhcp_discovery_is_a_valid_broadcast_discover_of_the_node() -> None:
    from scapy.layers.dhcp import BOOTP, DHCP
    from scapy.layers.inet import IP
    from scapy.layers.l2 import Ether

    from sensor_agent.capture import dhcp_discover

    node_mac = bytes.fromhex("020000000a0a")
    frame = Ether(dhcp_discover(node_mac, 0x1234))
    assert frame.dst == "ff:ff:ff:ff:ff:ff" and frame.src == "02:00:00:00:0a:0a"
    ip = frame[IP]
    checksum = ip.chksum
    del ip.chksum
    assert IP(bytes(ip))[IP].chksum == checksum  # what scapy would compute
    assert (ip.src, ip.dst) == ("0.0.0.0", "255.255.255.255")
    bootp = frame[BOOTP]
    assert bootp.xid == 0x1234 and bootp.flags == 0x8000 and bootp.chaddr[:6] == node_mac
    assert ("message-type", 1) in frame[DHCP].options
