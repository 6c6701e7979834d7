"""Sprays of forged addresses on a real (namespace) LAN, against the real agent.

Lab prefix ``lgsp``, subnet 198.19.66.0/24 (one learning bridge): ``gw`` .1 (the node's
default route), ``node`` .2 (``lan-guard-agent run``), ``attacker`` .66, ``scanner`` .55,
``sprayer`` .77. The forged frames come from ``spray_tool.py`` (a fixed count, paced below
the flood thresholds); the slow scan is real ``nmap``. Without the spray-resistant tables
both tests fail: the spray raised nothing, and the scan was pushed out between its probes.
Every forged address lies in 198.18.0.0/15 outside the lab's /24, and the node blackholes
that range, so nothing, not even a reply, leaves the lab.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab.agentlab import AgentRun, Network, assert_culprit, is_from, settle
from tests.netlab import Host, Lab, require_tools

PREFIX, SUBNET = "lgsp", "198.19.66.0/24"
TOOL = [sys.executable, str(Path(__file__).with_name("spray_tool.py"))]
SCANNED_PORTS = (21, 22, 23, 25, 110)


@pytest.fixture(scope="module")
def lan() -> Iterator[tuple[Network, dict[str, Host]]]:
    reason = require_tools("nmap")
    if reason is not None:
        pytest.skip(reason)
    with Lab(PREFIX, SUBNET) as lab:
        gw = lab.host("gw", "198.19.66.1")
        node = lab.host("node", "198.19.66.2", gateway="198.19.66.1")
        node.run(["ip", "route", "add", "blackhole", "198.18.0.0/15"], check=True)
        hosts = {
            name: lab.host(name, f"198.19.66.{last}")
            for name, last in (("attacker", 66), ("scanner", 55), ("sprayer", 77))
        }
        yield Network(lab=lab, gateway=gw, node=node, uplink_root_ip=""), hosts


@pytest.fixture
def agent(lan: tuple[Network, dict[str, Host]], tmp_path: Path) -> Iterator[AgentRun]:
    run = AgentRun.start(lan[0], tmp_path)
    try:
        yield run
    finally:
        run.stop()  # it must have stayed up, and every event be valid


def tool(host: Host, *args: object, timeout: float) -> None:
    done = host.run([*TOOL, *map(str, args)], timeout=timeout)
    assert done.returncode == 0, done.stderr


def test_an_arp_claim_spray_then_a_gateway_spoof(
    lan: tuple[Network, dict[str, Host]], agent: AgentRun
) -> None:
    network, hosts = lan
    gw, attacker = network.gateway, hosts["attacker"]
    tool(gw, "claim", "eth0", gw.ip, 3, 0.6, timeout=10)  # the router, heard first
    ping = attacker.run(["ping", "-c", "1", "-W", "1", network.node.ip], timeout=5)
    assert ping.returncode == 0  # the attacker's own ARP: the inventory learns its address
    tool(attacker, "arp-claims", "eth0", 10_000, 2500, timeout=30)  # 4 s of forged claims
    tool(attacker, "claim", "eth0", gw.ip, 3, 0.3, timeout=10)  # arpspoof: "I am the router"
    tool(gw, "claim", "eth0", gw.ip, 3, 0.3, timeout=10)  # the router answers on

    spray = agent.wait_kind("arp_spray", attacker)
    assert_culprit(spray, kind="arp_spray", level=2, culprit=attacker)
    claims = spray["evidence"]["address_count"]
    assert claims >= 64 and spray["evidence"]["forged"] >= claims - 1  # all but its own
    spoof = agent.wait_kind("arp_spoof", attacker)
    assert_culprit(spoof, kind="arp_spoof", level=3, culprit=attacker)
    assert spoof["evidence"]["old_mac"] == gw.mac and spoof["evidence"]["ip"] == gw.ip
    settle(1.5)
    assert not [e for e in agent.events() if is_from(gw)(e)], agent.events()


def test_a_slow_nmap_scan_hidden_in_a_spray_of_forged_sources(
    lan: tuple[Network, dict[str, Host]], agent: AgentRun
) -> None:
    network, hosts = lan
    node, scanner, sprayer = network.node, hosts["scanner"], hosts["sprayer"]
    ping = sprayer.run(["ping", "-c", "1", "-W", "1", node.ip], timeout=5)
    assert ping.returncode == 0  # the sprayer's own address, before it forges others
    # 36,000 SYNs from forged source IPs at 2,400 a second (15 s), 7 of 8 from forged MACs
    # too, around a scan of 5 ports paced 3 s apart: 6,300 forged sources between two
    # probes, more than any per-source table holds (4,096).
    args = ["syn-spray", "eth0", node.ip, node.mac, 8080, 36_000, 2400, 8]
    spray = sprayer.spawn([*TOOL, *map(str, args)])
    ports = ",".join(map(str, SCANNED_PORTS))
    scan = scanner.run(
        f"nmap -sS -Pn -n --max-retries 0 --scan-delay 3s -p {ports} {node.ip}", timeout=60
    )
    assert scan.returncode == 0, scan.stderr
    assert spray.wait(timeout=40) == 0

    found = agent.wait_kind("syn_scan", scanner, timeout=15)
    assert_culprit(found, kind="syn_scan", level=2, culprit=scanner)
    assert set(found["evidence"]["ports"]) <= set(SCANNED_PORTS)
    forged = agent.wait_kind("source_spray", sprayer)
    assert_culprit(forged, kind="source_spray", level=2, culprit=sprayer)
    assert forged["evidence"]["address_count"] >= 64
    assert {e["source"]["mac"] for e in agent.events() if e["kind"] == "syn_scan"} == {scanner.mac}
