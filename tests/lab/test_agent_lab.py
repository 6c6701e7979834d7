"""The agent live on a namespace LAN against real tools: each precursor level, floods, spoofing.

Every test runs a real tool (arp-scan, nmap, smbclient, nc, hping3, dhclient/dnsmasq) from its
own host in the lab and asserts what the agent on the node reported: kind, level and the
culprit's MAC and IP, each event checked against ``schema/event.schema.json``. Every tool is
bounded (count, retries, timeout) and names only 198.18.2.0/24 addresses.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from tests.contract import validate
from tests.lab.agentlab import (
    DECOY_PORTS,
    AgentRun,
    Network,
    assert_culprit,
    is_from,
    settle,
)
from tests.netlab import Host, require_tools, wait_for

LAB_SUBNET = "198.18.2.0/24"
DECOYS = ",".join(str(port) for port in DECOY_PORTS)


def _need(*tools: str) -> None:
    reason = require_tools(*tools)
    if reason is not None:
        pytest.skip(reason)


def test_arp_scan_tool_is_level_1(network: Network, agent: AgentRun) -> None:
    _need("arp-scan")
    scanner = network.lab.host("arpscan", "198.18.2.21")
    done = scanner.run(f"arp-scan -I eth0 --retry=1 --timeout=200 {LAB_SUBNET}", timeout=30)
    assert done.returncode == 0, done.stderr
    event = agent.wait_kind("arp_scan", scanner)
    assert_culprit(event, kind="arp_scan", level=1, culprit=scanner)
    assert event["evidence"]["target_count"] >= 10
    assert set(event["evidence"]["targets"]) <= {f"198.18.2.{i}" for i in range(256)}


def test_nmap_arp_ping_sweep_is_level_1(network: Network, agent: AgentRun) -> None:
    _need("nmap")
    sweeper = network.lab.host("nmapsn", "198.18.2.22", mac="b8:27:eb:12:34:56")
    done = sweeper.run(f"nmap -sn -PR -n -T5 --max-retries 0 {LAB_SUBNET}", timeout=60)
    assert done.returncode == 0, done.stderr
    assert "198.18.2.2" in done.stdout  # nmap found the node (and so really swept the LAN)
    event = agent.wait_kind("arp_scan", sweeper)
    assert_culprit(event, kind="arp_scan", level=1, culprit=sweeper)
    assert event["source"]["vendor"] is not None  # a Raspberry Pi OUI, looked up offline
    assert "raspberry" in event["source"]["vendor"].lower()


def test_nmap_syn_scan_of_the_node_is_level_2(network: Network, agent: AgentRun) -> None:
    _need("nmap")
    scanner = network.lab.host("synscan", "198.18.2.23")
    # -r: ports in numeric order (22, 23, 80, ...), so the event made at the third port always
    # holds a decoy port; in nmap's random order the first three were 22, 23, 3389 once in 84.
    done = scanner.run(
        f"nmap -sS -r -n -Pn -T4 --max-retries 1 -p {DECOYS},22,23,3389 {network.node.ip}",
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "445/tcp  open" in done.stdout  # the decoy answered
    event = agent.wait_kind("syn_scan", scanner)
    assert_culprit(event, kind="syn_scan", level=2, culprit=scanner)
    assert set(event["evidence"]["ports"]) & set(DECOY_PORTS)
    settle(1.0)
    assert not [e for e in agent.events() if is_from(scanner)(e) and e["level"] == 3]


def test_nmap_connect_scan_without_data_is_still_level_2(network: Network, agent: AgentRun) -> None:
    _need("nmap")
    scanner = network.lab.host("conscan", "198.18.2.24")
    done = scanner.run(
        f"nmap -sT -n -Pn -T4 --max-retries 1 -p {DECOYS} {network.node.ip}", timeout=60
    )
    assert done.returncode == 0, done.stderr
    event = agent.wait_kind("syn_scan", scanner)
    assert_culprit(event, kind="syn_scan", level=2, culprit=scanner)
    settle(1.5)  # handshakes completed but no data: no session event may follow
    mine = [e for e in agent.events() if is_from(scanner)(e)]
    assert max(e["level"] for e in mine) == 2, mine
    assert not [e for e in mine if e["kind"] == "session"]


def test_smbclient_session_with_data_is_level_3(network: Network, agent: AgentRun) -> None:
    _need("smbclient")
    client = network.lab.host("smb", "198.18.2.25")
    # The decoy never answers SMB: the client sends its negotiate request, then times out.
    client.run(f"smbclient -N -L //{network.node.ip} -p 445 -t 2", timeout=20)
    event = agent.wait_kind("session", client)
    assert_culprit(event, kind="session", level=3, culprit=client)
    evidence = event["evidence"]
    assert evidence["port"] == 445
    assert evidence["bytes"] > 0
    assert "SMB" in evidence["sample"]


def test_nc_sending_data_to_a_decoy_is_level_3(network: Network, agent: AgentRun) -> None:
    _need("nc")
    client = network.lab.host("nc", "198.18.2.26")
    request = "GET /admin HTTP/1.0\\r\\nHost: camera\\r\\n\\r\\n"
    client.run(f"printf '{request}' | nc -N -w 2 {network.node.ip} 80", timeout=10)
    event = agent.wait_kind("session", client)
    assert_culprit(event, kind="session", level=3, culprit=client)
    assert event["evidence"]["port"] == 80
    assert event["evidence"]["bytes"] == len("GET /admin HTTP/1.0\r\nHost: camera\r\n\r\n")
    assert event["evidence"]["sample"].startswith("GET /admin HTTP/1.0")


def test_hping3_flood_is_reported(network: Network, agent: AgentRun) -> None:
    _need("hping3")
    flooder = network.lab.host("flood", "198.18.2.27")
    # 4,000 SYNs at ~10,000/s to a port with no listener, bounded by count and by time.
    done = flooder.run(f"hping3 -q -S -p 8080 -i u100 -c 4000 {network.node.ip}", timeout=20)
    assert done.returncode == 0, done.stderr
    event = agent.wait_kind("flood", flooder)
    assert_culprit(event, kind="flood", level=2, culprit=flooder)
    assert event["evidence"]["rate"] > 1000
    assert event["evidence"]["scope"] == "source"
    assert agent.proc.poll() is None  # still up after the flood


def test_arp_spoof_of_the_gateway_is_reported(network: Network, agent: AgentRun) -> None:
    gateway, node = network.gateway, network.node
    spoofer = network.lab.host("spoof", "198.18.2.28")
    # The agent learns the gateway's real MAC, and the spoofer's own address, from normal
    # exchanges first (the spoofer is a host of the LAN, not a stranger).
    assert node.run(f"ping -c 2 -i 0.2 -W 1 {gateway.ip}", timeout=5).returncode == 0
    assert spoofer.run(f"ping -c 1 -W 1 {node.ip}", timeout=5).returncode == 0
    settle(0.5)
    # Then a bounded burst of forged replies: "198.18.2.1 is at <spoofer's MAC>" (3 frames).
    forged = spoofer.run(
        [
            sys.executable,
            "-c",
            "from scapy.all import ARP, Ether, sendp\n"
            f"frame = Ether(src='{spoofer.mac}', dst='ff:ff:ff:ff:ff:ff') / ARP(op=2,"
            f" hwsrc='{spoofer.mac}', psrc='{gateway.ip}', hwdst='ff:ff:ff:ff:ff:ff',"
            f" pdst='{gateway.ip}')\n"
            "sendp(frame, iface='eth0', count=3, inter=0.2, verbose=False)\n",
        ],
        timeout=30,
    )
    assert forged.returncode == 0, forged.stderr
    event = agent.wait_kind("arp_spoof", spoofer)
    # Level 3: claiming the gateway's address is how a machine in the middle starts.
    assert_culprit(event, kind="arp_spoof", level=3, culprit=spoofer)
    evidence = event["evidence"]
    assert evidence["ip"] == gateway.ip
    assert evidence["old_mac"] == gateway.mac
    assert evidence["new_mac"] == spoofer.mac
    assert evidence["is_gateway"] is True


def _dhcp_lease(network: Network, client: Host, workdir: Path) -> str:
    """A real DHCP exchange: dnsmasq on the gateway, dhclient on ``client``; the leased IP."""
    lab, gateway = network.lab, network.gateway
    server = gateway.spawn(
        [
            "dnsmasq",
            "--no-daemon",
            "--conf-file=/dev/null",
            "--port=0",  # DHCP only, no DNS
            "--interface=eth0",
            "--bind-interfaces",
            "--no-ping",
            "--dhcp-range=198.18.2.100,198.18.2.150,255.255.255.0,5m",
            f"--dhcp-option=3,{gateway.ip}",
            f"--dhcp-leasefile={workdir / 'dnsmasq.leases'}",
            "--pid-file",
            "--log-dhcp",
        ],
        log=workdir / "dnsmasq.log",
    )
    leases, config = workdir / "dhclient.leases", workdir / "dhclient.conf"
    config.write_text('send host-name "living-room-tv";\n')
    # -1: one try; -sf /bin/true: take the lease but change nothing on the host.
    dhclient = client.spawn(
        f"dhclient -1 -d -v -sf /bin/true -cf {config} -lf {leases}"
        f" -pf {workdir / 'dhclient.pid'} eth0",
        log=workdir / "dhclient.log",
    )
    try:
        got = wait_for(lambda: leases.exists() and "fixed-address" in leases.read_text(), 20)
        assert got, (workdir / "dhclient.log").read_text() + (workdir / "dnsmasq.log").read_text()
    finally:
        lab.stop(dhclient)
        lab.stop(server)
    return re.findall(r"fixed-address ([0-9.]+);", leases.read_text())[-1]


def test_benign_home_traffic_raises_nothing(
    network: Network, agent: AgentRun, tmp_path: Path
) -> None:
    _need("dnsmasq", "dhclient")
    gateway, node = network.gateway, network.node
    tv = network.lab.host("tv", "198.18.2.30")
    # DHCP (with the hostname option), as any appliance does when it joins the LAN.
    leased = _dhcp_lease(network, tv, tmp_path)
    assert leased.startswith("198.18.2.1")
    # mDNS: the appliance announces its name three times (a bounded burst).
    announced = tv.run(
        [
            sys.executable,
            "-c",
            "from scapy.all import DNS, DNSRR, IP, UDP, Ether, sendp\n"
            f"frame = Ether(src='{tv.mac}', dst='01:00:5e:00:00:fb') / IP(src='{tv.ip}',"
            " dst='224.0.0.251', ttl=255) / UDP(sport=5353, dport=5353) / DNS(qr=1, aa=1,"
            f" an=DNSRR(rrname='living-room-tv.local.', type='A', ttl=120, rdata='{tv.ip}'))\n"
            "sendp(frame, iface='eth0', count=3, inter=0.3, verbose=False)\n",
        ],
        timeout=30,
    )
    assert announced.returncode == 0, announced.stderr
    # ARP for the gateway and the router's own ARP for its neighbours, as on any LAN.
    for host, peer in ((tv, gateway), (gateway, tv), (gateway, node), (node, gateway)):
        host.run(f"ip neigh flush dev eth0; ping -c 2 -i 0.2 -W 1 {peer.ip}", timeout=5)
    settle(2.0)
    assert agent.events() == []
    # Control: the same agent still reports a real precursor, so the silence above means it
    # saw the benign traffic and judged it harmless, not that it saw nothing.
    intruder = network.lab.host("ctl", "198.18.2.31")
    intruder.run(f"printf 'hello' | nc -N -w 2 {node.ip} 445", timeout=10)
    assert_culprit(agent.wait_kind("session", intruder), kind="session", level=3, culprit=intruder)


def test_events_state_and_hosts_reach_a_real_broker_over_the_uplink(
    network: Network, tmp_path: Path
) -> None:
    """mosquitto runs in the root namespace on 127.0.0.1 (the subscriber's side, as HA) and on
    the uplink's root address (the agent's side); the agent in the node publishes through it."""
    _need("mosquitto", "arp-scan", "dnsmasq", "dhclient")
    from tests.broker import Collector, Mosquitto, free_port

    agent_id = "lab-node"
    port = free_port()  # free on 127.0.0.1; the broker listens on it on both addresses
    uplink_listener = f"listener {port} {network.uplink_root_ip}\n"
    with (
        Mosquitto(port=port, extra_config=uplink_listener) as broker,
        Collector(broker.port, f"lan_guard/{agent_id}/#") as seen,
    ):
        args = ["--agent-id", agent_id, "--mqtt-host", network.uplink_root_ip]
        agent = AgentRun.start(network, tmp_path, [*args, "--mqtt-port", str(port)])
        try:
            status = f"lan_guard/{agent_id}/status"
            assert seen.wait_for(lambda _: b"online" in seen.payloads(status), 15), broker.log()
            tv = network.lab.host("tv2", "198.18.2.40")
            _dhcp_lease(network, tv, tmp_path)
            scanner = network.lab.host("mqscan", "198.18.2.41")
            scanner.run(f"arp-scan -I eth0 --retry=1 --timeout=200 {LAB_SUBNET}", timeout=30)
            on_file = agent.wait_kind("arp_scan", scanner)
            topic = f"lan_guard/{agent_id}/event"
            assert seen.wait_for(lambda _: bool(seen.payloads(topic)), 15), broker.log()
        finally:
            agent.stop()  # a clean stop publishes the final state and hosts
        assert seen.wait_for(lambda _: bool(seen.payloads(f"lan_guard/{agent_id}/hosts")), 10)
        assert seen.wait_for(lambda _: b"offline" in seen.payloads(status), 10)

    events = [json.loads(p) for p in seen.payloads(topic)]
    for event in events:
        validate("event", event)
    assert [event["seq"] for event in events] == list(range(1, len(events) + 1))
    # The same event objects as in the JSON-lines file (which has them as detected, without
    # what the event store adds), in the same order, none lost.
    stored = ("seq", "epoch")
    as_detected = [{k: v for k, v in e.items() if k not in stored} for e in events]
    assert as_detected == agent.events()
    assert on_file in as_detected
    assert_culprit(on_file, kind="arp_scan", level=1, culprit=scanner)

    info = json.loads(seen.payloads(f"lan_guard/{agent_id}/info")[-1])
    validate("info", info)
    assert info["node"] == {"ip": network.node.ip, "mac": network.node.mac}
    assert info["gateway"] == network.gateway.ip
    assert sorted(info["decoy_ports"]) == sorted(DECOY_PORTS)

    state = json.loads(seen.payloads(f"lan_guard/{agent_id}/state")[-1])
    validate("state", state)
    assert state["counters"]["frames"] > 256  # at least the ARP scan's requests
    assert state["level"] == 1

    hosts = json.loads(seen.payloads(f"lan_guard/{agent_id}/hosts")[-1])
    validate("hosts", hosts)
    by_mac = {host["mac"]: host for host in hosts["hosts"]}
    assert by_mac[tv.mac]["hostname"] == "living-room-tv"  # DHCP option 12, learned passively
    assert by_mac[scanner.mac]["ip"] == scanner.ip
