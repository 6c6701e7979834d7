"""The nftables enforcer against real packets in network namespaces (root only).

Two places an agent can enforce, one lab (prefix ``lg4``, subnet 198.18.4.0/24):

* routed (``inet`` table on the router): a home router between its main LAN
  (``lan`` 198.18.4.0/26, router .1) and an IoT subnet (``iot`` 198.18.4.64/26, router .65);
  ``infected`` .10 on the LAN, ``appliance`` .70 on the IoT subnet. The router answers
  DNS (udp/tcp 53) and has one more service (tcp 8080, standing for its web admin).
* bridged (``bridge`` table on the switch ``seg``, 198.18.4.128/25): ``gw`` .129 is the
  segment's gateway with the same services, ``infected2`` .140 and ``appliance2`` .150.

Every probe is bounded: ``ping -c 2 -W 1`` and 1 s socket timeouts.
"""

from __future__ import annotations

import atexit
import select
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sensor_agent.enforcer import NftablesEnforcer
from tests.netlab import Host, Lab, require_tools

PREFIX = "lg4"
SUBNET = "198.18.4.0/24"

pytestmark = pytest.mark.skipif(
    require_tools("nft", "ping") is not None, reason=str(require_tools("nft", "ping"))
)

# Answers udp/53, tcp/53 and tcp/8080 on ADDRESS; gives up by itself after 300 s.
SERVICES = textwrap.dedent(
    """
    import selectors, socket, sys, time
    address = sys.argv[1]
    sel = selectors.DefaultSelector()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind((address, 53))
    sel.register(udp, selectors.EVENT_READ)
    for port in (53, 8080):
        tcp = socket.socket()
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tcp.bind((address, port))
        tcp.listen(8)
        sel.register(tcp, selectors.EVENT_READ)
    print("ready", flush=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        for key, _ in sel.select(timeout=1):
            sock = key.fileobj
            if sock.type == socket.SOCK_DGRAM:
                data, peer = sock.recvfrom(512)
                sock.sendto(b"answer:" + data, peer)
            else:
                conn, _ = sock.accept()
                conn.close()
    """
)

# One bounded probe: "udp HOST PORT" or "tcp HOST PORT"; exit 0 when answered.
PROBE = textwrap.dedent(
    """
    import socket, sys
    kind, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    try:
        if kind == "udp":
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(1)
            s.sendto(b"q", (host, port))
            sys.exit(0 if s.recvfrom(512)[0] == b"answer:q" else 1)
        socket.create_connection((host, port), timeout=1).close()
    except OSError:
        sys.exit(1)
    """
)


@dataclass
class Net:
    lab: Lab
    router: Host
    infected: Host
    appliance: Host
    seg_ns: str
    gw: Host
    infected2: Host
    appliance2: Host
    scripts: Path


def _start_services(host: Host, address: str, scripts: Path) -> None:
    proc = host.spawn(
        [sys.executable, str(scripts / "services.py"), address], stdout=subprocess.PIPE
    )
    assert proc.stdout is not None
    readable, _, _ = select.select([proc.stdout], [], [], 10)
    assert readable, "service script did not start within 10 s"
    assert proc.stdout.readline().strip() == b"ready", "service script did not start"


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    scripts = tmp_path_factory.mktemp("lg4")
    (scripts / "services.py").write_text(SERVICES)
    (scripts / "probe.py").write_text(PROBE)
    with Lab(PREFIX, SUBNET) as lab:
        lan, iot = lab.switch("lan"), lab.switch("iot")
        router = lab.router("router", [(lan, "198.18.4.1/26"), (iot, "198.18.4.65/26")])
        infected = lab.host("infected", "198.18.4.10/26", switch=lan, gateway="198.18.4.1")
        appliance = lab.host("appliance", "198.18.4.70/26", switch=iot, gateway="198.18.4.65")
        _start_services(router, "198.18.4.1", scripts)

        seg = lab.switch("seg")
        gw = lab.host("gw", "198.18.4.129/25", switch=seg)
        infected2 = lab.host("infected2", "198.18.4.140/25", switch=seg, gateway="198.18.4.129")
        appliance2 = lab.host("appliance2", "198.18.4.150/25", switch=seg, gateway="198.18.4.129")
        _start_services(gw, "198.18.4.129", scripts)
        yield Net(lab, router, infected, appliance, seg.ns, gw, infected2, appliance2, scripts)


def pings(src: Host, dst: str) -> bool:
    return src.run(f"ping -c 2 -i 0.2 -W 1 {dst}", timeout=10).returncode == 0


def answered(net: Net, src: Host, kind: str, dst: str, port: int) -> bool:
    probe = [sys.executable, str(net.scripts / "probe.py"), kind, dst, str(port)]
    return src.run(probe, timeout=10).returncode == 0


def nft_tables(ns: str) -> str:
    return subprocess.run(
        ["ip", "netns", "exec", ns, "nft", "list", "tables"],
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    ).stdout


def test_routed_quarantine_cuts_the_culprit_off_but_keeps_dns(net: Net) -> None:
    infected, appliance, router = net.infected, net.appliance, net.router
    assert pings(infected, appliance.ip), "lab broken: no route before any quarantine"
    assert answered(net, infected, "tcp", "198.18.4.1", 8080)

    enforcer = NftablesEnforcer(
        family="inet", gateway="198.18.4.1", nft=["ip", "netns", "exec", router.ns, "nft"]
    )
    enforcer.start()
    try:
        assert "table inet lan_guard" in nft_tables(router.ns)
        assert pings(infected, appliance.ip), "an empty quarantine must not block anyone"

        started = time.perf_counter()
        enforcer.quarantine(infected.mac, infected.ip, "lab-1")
        elapsed_ms = (time.perf_counter() - started) * 1000
        print(f"\nquarantine() until the rule is in force (nft transaction): {elapsed_ms:.1f} ms")

        assert not pings(infected, appliance.ip), "culprit still reaches the appliance"
        assert not pings(appliance, infected.ip), "the appliance still reaches the culprit"
        assert not answered(net, infected, "tcp", "198.18.4.1", 8080), "router admin reachable"
        assert answered(net, infected, "udp", "198.18.4.1", 53), "DNS (udp) must stay"
        assert answered(net, infected, "tcp", "198.18.4.1", 53), "DNS (tcp) must stay"

        assert enforcer.release(infected.mac) is True
        assert pings(infected, appliance.ip), "release did not restore the route"
        assert answered(net, infected, "tcp", "198.18.4.1", 8080)
    finally:
        enforcer.close()
    assert "lan_guard" not in nft_tables(router.ns)
    assert pings(infected, appliance.ip)


def test_routed_match_by_mac_alone_and_by_ip_alone(net: Net) -> None:
    infected, appliance, router = net.infected, net.appliance, net.router
    enforcer = NftablesEnforcer(gateway="198.18.4.1", nft=["ip", "netns", "exec", router.ns, "nft"])
    enforcer.start()
    try:
        enforcer.quarantine(infected.mac, None, "lab-mac")  # the MAC set alone
        assert not pings(infected, appliance.ip)
        enforcer.release(infected.mac)
        assert pings(infected, appliance.ip)

        # Another MAC, the culprit's IP: the IP set alone (e.g. the MAC is spoofed later).
        enforcer.quarantine("02:00:00:00:99:99", infected.ip, "lab-ip")
        assert not pings(infected, appliance.ip)
        enforcer.release("02:00:00:00:99:99")
        assert pings(infected, appliance.ip)
    finally:
        enforcer.close()


def test_restart_after_a_crash_replaces_the_stale_table(net: Net) -> None:
    infected, appliance, router = net.infected, net.appliance, net.router
    nft = ["ip", "netns", "exec", router.ns, "nft"]
    crashed = NftablesEnforcer(gateway="198.18.4.1", nft=nft)
    crashed.start()
    crashed.quarantine(infected.mac, infected.ip, "before-crash")
    assert not pings(infected, appliance.ip)
    # The process dies without close(): the table stays and keeps the culprit out...
    atexit.unregister(crashed.close)
    fresh = NftablesEnforcer(gateway="198.18.4.1", nft=nft)
    fresh.start()  # ...until the next run replaces it with an empty one.
    try:
        assert pings(infected, appliance.ip)
        assert nft_tables(router.ns).count("lan_guard") == 1
    finally:
        fresh.close()
    assert "lan_guard" not in nft_tables(router.ns)


def test_bridged_quarantine_on_the_switch_in_the_path(net: Net) -> None:
    infected, appliance, gw = net.infected2, net.appliance2, net.gw
    assert pings(infected, appliance.ip), "lab broken: segment not bridged"

    enforcer = NftablesEnforcer(
        family="bridge", gateway=gw.ip, nft=["ip", "netns", "exec", net.seg_ns, "nft"]
    )
    enforcer.start()
    try:
        enforcer.quarantine(infected.mac, infected.ip, "lab-br")
        assert not pings(infected, appliance.ip), "culprit still reaches its neighbour"
        assert not pings(appliance, infected.ip), "neighbour still reaches the culprit"
        assert not answered(net, infected, "tcp", gw.ip, 8080), "gateway admin reachable"
        # ARP resolution included: the culprit's neighbour table is flushed first.
        infected.run("ip neigh flush dev eth0", timeout=5, check=True)
        assert answered(net, infected, "udp", gw.ip, 53), "DNS (udp) to the gateway must stay"
        assert answered(net, infected, "tcp", gw.ip, 53), "DNS (tcp) to the gateway must stay"
        assert enforcer.release(infected.mac) is True
        assert pings(infected, appliance.ip)
    finally:
        enforcer.close()
    assert "lan_guard" not in nft_tables(net.seg_ns)
