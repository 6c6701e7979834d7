"""Detection depth against real tools: stealth and UDP scans, decoy sources, masscan, paced ARP
sweeps, IPv6 (nmap -6, ping to all nodes, THC alive6 / fake_router6 / parasite6), the decoy
ECHONET Lite node driven by a real client (pychonet), DHCP starvation, a rogue dnsmasq, and a
benign household that raises nothing.

Lab ``lgd``: 198.18.30.0/24 and fd4c:6700:30::/64 (both blackholed in the root namespace), one
hub (the node sees other hosts' unicast, as on a router or a mirror port). ``gw`` is the LAN's
router: IPv6 router advertisements (dnsmasq) for the whole module, DHCP when a test needs it.
Every tool is bounded (ports, counts, retries, ``timeout``) and names only lab addresses.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab.agentlab import AgentRun, Network, assert_culprit, is_from, settle
from tests.netlab import Host, Lab, require_tools, wait_for

PREFIX = "lgd"
SUBNET = "198.18.30.0/24"
SUBNET6 = "fd4c:6700:30::/64"
GW, NODE = "198.18.30.1", "198.18.30.2"
REPO = Path(__file__).resolve().parents[2]
PORTS = "22,80,139,443,445,554,3389"
UDP_PORTS = "53,69,111,137,161,500,1900"


def _need(*tools: str) -> None:
    reason = require_tools(*tools)
    if reason is not None:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    reason = require_tools("dnsmasq")
    if reason is not None:
        pytest.skip(reason)
    workdir = tmp_path_factory.mktemp("lgd")
    with Lab(PREFIX, SUBNET, subnet6=SUBNET6) as lab:
        lab.switch("sw", hub=True)
        gateway = lab.host("gw", GW)
        node = lab.host("node", NODE, gateway=GW)
        gateway.spawn(  # the real router's IPv6 advertisements, every 4 to 10 s
            [
                "dnsmasq",
                "--no-daemon",
                "--conf-file=/dev/null",
                "--port=0",
                "--interface=eth0",
                "--bind-interfaces",
                "--enable-ra",
                "--ra-param=eth0,4,600",
                f"--dhcp-range={SUBNET6.split('/', maxsplit=1)[0]},ra-only,64,10m",
                f"--pid-file={workdir / 'ra.pid'}",
            ],
            log=workdir / "ra.log",
        )
        # the node and the router know each other (ARP, Neighbour Discovery) before any test
        assert node.run(f"ping -c 1 -W 2 {GW}; ping -6 -c 1 -W 2 {gateway.ip6}", timeout=10)
        yield Network(lab=lab, gateway=gateway, node=node, uplink_root_ip="")


@pytest.fixture
def agent(network: Network, tmp_path: Path) -> Iterator[AgentRun]:
    config = tmp_path / "agent.toml"
    # promiscuous: on the hub the node sees the household's unicast (ECHONET Lite, DHCP);
    # a short ECHONET learning period so the household's controller is learned in the test
    config.write_text("[capture]\npromiscuous = true\n[detectors.echonet]\nlearn_s = 2\n")
    run = AgentRun.start(network, tmp_path, ["-c", str(config)])
    settle(1.0)  # the router's next advertisement tells the agent who routes IPv6
    try:
        yield run
    finally:
        run.stop()


def _host(network: Network, name: str, last_octet: int) -> Host:
    """A host of the LAN the agent has heard (its ARP): a culprit with a known address."""
    host = network.lab.host(name, f"198.18.30.{last_octet}")
    host.run(f"ping -c 1 -W 1 {GW}", timeout=5)
    return host


def _python(host: Host, script: str, *args: str, timeout: float = 30) -> str:
    done = host.run([sys.executable, "-c", script, *args], timeout=timeout)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.parametrize(
    "case",
    [
        ("-sF", "stealth_scan", "fin", 20),
        ("-sN", "stealth_scan", "null", 21),
        ("-sX", "stealth_scan", "xmas", 22),
        ("-sA", "stealth_scan", "ack", 23),
        ("-sU", "udp_scan", "udp", 24),
    ],
    ids=lambda case: case[0],
)
def test_stealth_and_udp_scans_of_the_node_are_level_2(
    network: Network, agent: AgentRun, case: tuple[str, str, str, int]
) -> None:
    _need("nmap")
    flag, kind, technique, octet = case
    scanner = _host(network, f"n{flag[-1].lower()}", octet)
    ports = UDP_PORTS if kind == "udp_scan" else PORTS
    done = scanner.run(f"nmap {flag} -n -Pn -T4 --max-retries 1 -p {ports} {NODE}", timeout=60)
    assert done.returncode == 0, done.stderr
    event = agent.wait_kind(kind, scanner)
    assert_culprit(event, kind=kind, level=2, culprit=scanner)
    assert technique in event["evidence"]["techniques"]


def test_decoy_sources_name_the_scanners_own_address(network: Network, agent: AgentRun) -> None:
    _need("nmap")
    scanner = _host(network, "decoy", 25)
    decoys = "198.18.30.201,198.18.30.202"
    done = scanner.run(
        f"nmap -sS -D {decoys},ME -n -Pn -T4 --max-retries 1 -p {PORTS} {NODE}", timeout=60
    )
    assert done.returncode == 0, done.stderr
    event = agent.wait_kind("syn_scan", scanner)
    assert_culprit(event, kind="syn_scan", level=2, culprit=scanner)
    forged = agent.wait_event(
        lambda e: is_from(scanner)(e) and "forged_ips" in e["evidence"], what="forged_ips"
    )
    assert set(forged["evidence"]["forged_ips"]) <= set(decoys.split(","))
    assert forged["source"]["ip"] == scanner.ip


def test_masscan_is_a_syn_scan(network: Network, agent: AgentRun) -> None:
    _need("masscan")
    scanner = _host(network, "mass", 26)
    done = scanner.run(
        f"masscan --interface eth0 -p{PORTS} {NODE} --rate 1000 --wait 1"
        f" --router-mac {network.node.mac}",
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    event = agent.wait_kind("syn_scan", scanner)
    assert_culprit(event, kind="syn_scan", level=2, culprit=scanner)


def test_arp_sweeps_paced_at_1_and_2_s_are_level_1_within_30_s(
    network: Network, agent: AgentRun
) -> None:
    _need("arp-scan")
    one, two = _host(network, "arp1", 27), _host(network, "arp2", 28)
    started = time.monotonic()
    # 32 and 16 dark addresses, one request per 1 s and per 2 s: both run about 32 s
    for host, interval, targets in (
        (one, 1000, "198.18.30.100-198.18.30.131"),
        (two, 2000, "198.18.30.140-198.18.30.155"),
    ):
        host.spawn(f"timeout 40 arp-scan -I eth0 --retry=1 --interval={interval} {targets}")
    for host in (one, two):
        event = agent.wait_kind("arp_scan", host, timeout=35 - (time.monotonic() - started))
        assert_culprit(event, kind="arp_scan", level=1, culprit=host)
    slow = agent.wait_kind("arp_scan", two, timeout=1)
    assert slow["evidence"].get("slow") is True  # under the 10-in-10-s window: the long horizon


def test_ipv6_sweeps_are_level_1(network: Network, agent: AgentRun) -> None:
    _need("atk6-alive6")
    pinger, alive = _host(network, "ping6", 29), _host(network, "alive6", 30)
    pinger.run("ping -6 -c 2 -i 0.2 -W 1 ff02::1%eth0", timeout=10)
    alive.run("timeout 10 atk6-alive6 eth0", timeout=15)
    for host in (pinger, alive):
        event = agent.wait_kind("ipv6_sweep", host)
        assert_culprit(event, kind="ipv6_sweep", level=1, culprit=host)
        assert event["evidence"]["multicast"] >= 1


def test_nmap_over_ipv6_is_a_level_2_scan_with_the_ipv6_identity(
    network: Network, agent: AgentRun
) -> None:
    _need("nmap")
    scanner = _host(network, "nmap6", 31)
    done = scanner.run(
        f"nmap -6 -sS -n -Pn -T4 --max-retries 1 -p {PORTS} {network.node.ip6}", timeout=60
    )
    assert done.returncode == 0, done.stderr
    event = agent.wait_kind("syn_scan", scanner)
    assert_culprit(event, kind="syn_scan", level=2, culprit=scanner)
    assert scanner.ip6 in event["source"]["ipv6"]


def test_fake_router6_is_a_rogue_router_and_parasite6_spoofs_the_router(
    network: Network, agent: AgentRun
) -> None:
    _need("atk6-fake_router6", "atk6-parasite6")
    lab, node, gateway = network.lab, network.node, network.gateway
    rogue, parasite = _host(network, "fake6", 32), _host(network, "para6", 33)
    router = rogue.spawn("timeout 10 atk6-fake_router6 eth0 fd4c:bad::/64")
    event = agent.wait_kind("rogue_ra", rogue)
    lab.stop(router)
    assert_culprit(event, kind="rogue_ra", level=3, culprit=rogue)
    assert event["evidence"]["old_mac"] == gateway.mac
    spoofer = parasite.spawn("timeout 10 atk6-parasite6 -l eth0")
    settle(1.0)
    # the node asks for the router again: parasite6 answers with its own MAC
    for _ in range(3):
        node.run(f"ip -6 neigh flush dev eth0; ping -6 -c 1 -W 1 {gateway.ip6}", timeout=5)
    spoof = agent.wait_event(  # (it spoofs every host that asks: the router's answer counts)
        lambda e: e["kind"] == "ndp_spoof" and is_from(parasite)(e) and e["level"] == 3,
        what="ndp_spoof of the router",
    )
    lab.stop(spoofer)
    assert_culprit(spoof, kind="ndp_spoof", level=3, culprit=parasite)
    assert spoof["evidence"]["old_mac"] == gateway.mac and spoof["evidence"]["is_gateway"]
    node.run(f"ip -6 neigh flush dev eth0; ping -6 -c 1 -W 1 {gateway.ip6}", timeout=5)


def test_echonet_lite_discovery_then_set_of_the_decoy_is_level_3(
    network: Network, agent: AgentRun
) -> None:
    client = _host(network, "enl", 34)
    done = client.run(
        [sys.executable, "-m", "tests.lab.echonet_client", client.ip, NODE], timeout=40
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert NODE in done.stdout  # the decoy answered discovery like a device
    event = agent.wait_kind("echonet_control", client)
    assert_culprit(event, kind="echonet_control", level=3, culprit=client)
    assert event["evidence"]["decoy"] is True
    assert event["evidence"]["services"] == ["SetC"]
    assert "echonet" in event["evidence"]["discovery"]  # it discovered the LAN first


_STARVE = """
import random, sys
from scapy.all import BOOTP, DHCP, IP, UDP, Ether, sendp
mac, count = sys.argv[1], int(sys.argv[2])
rnd = random.Random(7)
frames = [
    Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / IP(src="0.0.0.0", dst="255.255.255.255")
    / UDP(sport=68, dport=67)
    / BOOTP(chaddr=bytes([2, *(rnd.randrange(256) for _ in range(5))]), xid=rnd.randrange(1 << 32))
    / DHCP(options=[("message-type", "discover"), "end"])
    for _ in range(count)
]
sendp(frames, iface="eth0", inter=0.005, verbose=False)
"""


def _dnsmasq(
    host: Host, workdir: Path, name: str, first: str, last: str
) -> subprocess.Popen[bytes]:
    """A real DHCP server on ``host`` offering itself as router and DNS server."""
    return host.spawn(
        [
            "dnsmasq",
            "--no-daemon",
            "--conf-file=/dev/null",
            "--port=0",
            "--interface=eth0",
            "--bind-interfaces",
            "--no-ping",
            f"--dhcp-range={first},{last},255.255.255.0,5m",
            f"--dhcp-option=3,{host.ip}",
            f"--dhcp-option=6,{host.ip}",
            f"--dhcp-leasefile={workdir / f'{name}.leases'}",
            f"--pid-file={workdir / f'{name}.pid'}",
        ],
        log=workdir / f"{name}.log",
    )


def _lease(client: Host, workdir: Path) -> None:
    """One real DHCP exchange of ``client`` (dhclient, bounded; the lease changes nothing)."""
    leases = workdir / "dhclient.leases"
    dhclient = client.spawn(
        f"dhclient -1 -d -sf /bin/true -lf {leases} -pf {workdir / 'dhclient.pid'} eth0",
        log=workdir / "dhclient.log",
    )
    try:
        wait_for(lambda: leases.exists() and "fixed-address" in leases.read_text(), 15)
    finally:
        client.lab.stop(dhclient)


def test_dhcp_starvation_names_the_sender(network: Network, agent: AgentRun) -> None:
    attacker = _host(network, "starve", 35)
    _python(attacker, _STARVE, attacker.mac, "40")
    event = agent.wait_kind("dhcp_starvation", attacker)
    assert_culprit(event, kind="dhcp_starvation", level=2, culprit=attacker)
    assert event["evidence"]["client_count"] >= 4


def test_rogue_dnsmasq_offering_itself_as_router_is_level_3(
    network: Network, agent: AgentRun, tmp_path: Path
) -> None:
    _need("dnsmasq", "dhclient")
    lab = network.lab
    real = _dnsmasq(network.gateway, tmp_path, "real", "198.18.30.100", "198.18.30.119")
    rogue_host = _host(network, "rogue", 36)
    rogue = _dnsmasq(rogue_host, tmp_path, "rogue", "198.18.30.120", "198.18.30.139")
    client = network.lab.host("dhcpc", "198.18.30.37")
    try:
        _lease(client, tmp_path)
        event = agent.wait_kind("rogue_dhcp", rogue_host)
    finally:
        lab.stop(rogue)
        lab.stop(real)
    assert_culprit(event, kind="rogue_dhcp", level=3, culprit=rogue_host)
    assert event["evidence"]["routers"] == [rogue_host.ip]
    assert event["evidence"]["old_mac"] == network.gateway.mac
    assert not [e for e in agent.events() if is_from(network.gateway)(e)]


_APPLIANCE = """
import socket, struct, time
from sensor_agent.echonet import DecoyNode, MULTICAST_GROUP, PORT
ip = __import__("sys").argv[1]
node = DecoyNode(b"appliance")
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind((ip, PORT))
sock.settimeout(0.2)
deadline = time.monotonic() + 25
while time.monotonic() < deadline:
    try:
        data, peer = sock.recvfrom(1500)
    except TimeoutError:
        continue
    for reply in node.handle(data):
        sock.sendto(reply.data, (MULTICAST_GROUP if reply.multicast else peer[0], PORT))
"""

_MDNS_SSDP = """
import sys
from scapy.all import DNS, DNSQR, DNSRR, IP, UDP, Ether, Raw, sendp
mac, ip = sys.argv[1], sys.argv[2]
answer = Ether(src=mac, dst="01:00:5e:00:00:fb") / IP(src=ip, dst="224.0.0.251", ttl=255) / UDP(
    sport=5353, dport=5353) / DNS(qr=1, aa=1, an=DNSRR(rrname="media-server.local.", rdata=ip))
query = Ether(src=mac, dst="01:00:5e:00:00:fb") / IP(src=ip, dst="224.0.0.251", ttl=255) / UDP(
    sport=5353, dport=5353) / DNS(qd=DNSQR(qname="_googlecast._tcp.local.", qtype="PTR"))
search = (b"M-SEARCH * HTTP/1.1\\r\\nHOST: 239.255.255.250:1900\\r\\n"
          b"MAN: \\"ssdp:discover\\"\\r\\nMX: 1\\r\\nST: ssdp:all\\r\\n\\r\\n")
ssdp = Ether(src=mac, dst="01:00:5e:7f:ff:fa") / IP(src=ip, dst="239.255.255.250") / UDP(
    sport=50000, dport=1900) / Raw(search)
sendp([answer, query, ssdp] * 2, iface="eth0", inter=0.2, verbose=False)
"""


def test_a_benign_household_raises_nothing(
    network: Network, agent: AgentRun, tmp_path: Path
) -> None:
    _need("dnsmasq", "dhclient")
    lab, gateway = network.lab, network.gateway
    # DHCP from the real router, as every device joining the LAN
    server = _dnsmasq(gateway, tmp_path, "home", "198.18.30.160", "198.18.30.179")
    tv = lab.host("tv", "198.18.30.40")
    try:
        _lease(tv, tmp_path)
    finally:
        lab.stop(server)
    # a media server announces itself and discovers the LAN (mDNS, SSDP)
    media = _host(network, "media", 41)
    _python(media, _MDNS_SSDP, media.mac, media.ip)
    # an ECHONET Lite controller drives its air conditioner, as every day (unicast, the
    # controller knows its address); the agent learns the pair within its learning period
    appliance = _host(network, "aircon", 42)
    hems = _host(network, "hems", 43)
    responder = appliance.spawn([sys.executable, "-c", _APPLIANCE, appliance.ip])
    settle(0.5)
    for _ in range(2):
        done = hems.run(
            [
                sys.executable,
                "-m",
                "tests.lab.echonet_client",
                hems.ip,
                appliance.ip,
                "--no-discover",
            ],
            timeout=40,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        settle(1.5)  # the second run is past the learning period: a known controller
    lab.stop(responder)
    settle(2.0)  # the router kept advertising IPv6 meanwhile
    raised = [(e["kind"], e["source"], e["evidence"]) for e in agent.events()]
    assert raised == []
    # Control: the same agent still reports a real precursor, so the silence above means it
    # saw the household and judged it harmless
    intruder = _host(network, "ctl", 44)
    intruder.run(f"nmap -sF -n -Pn -T4 --max-retries 1 -p {PORTS} {NODE}", timeout=60)
    assert_culprit(
        agent.wait_kind("stealth_scan", intruder), kind="stealth_scan", level=2, culprit=intruder
    )


def test_on_a_switch_the_nodes_dhcp_discovery_finds_a_rogue_server(tmp_path: Path) -> None:
    """A learning switch, not the hub: the client exchange of a rogue server never reaches
    the node; the agent's own discovery (broadcast flag) makes it answer where it hears."""
    _need("dnsmasq")
    with Lab("lgds", "198.18.32.0/24") as lab:
        gateway = lab.host("gw", "198.18.32.1")
        node = lab.host("node", "198.18.32.2", gateway="198.18.32.1")
        rogue = lab.host("rogue", "198.18.32.66")
        for host in (node, rogue):
            host.run(f"ping -c 1 -W 2 {gateway.ip}", timeout=5)
        _dnsmasq(gateway, tmp_path, "real", "198.18.32.100", "198.18.32.119")
        _dnsmasq(rogue, tmp_path, "rogue", "198.18.32.120", "198.18.32.139")
        config = tmp_path / "agent.toml"
        config.write_text("[detectors.dhcp]\nprobe_interval_s = 10\n")
        network = Network(lab=lab, gateway=gateway, node=node, uplink_root_ip="")
        agent = AgentRun.start(network, tmp_path, ["-c", str(config)])
        try:
            event = agent.wait_kind("rogue_dhcp", rogue, timeout=15)  # first probe after 5 s
            assert_culprit(event, kind="rogue_dhcp", level=3, culprit=rogue)
            assert event["evidence"]["routers"] == [rogue.ip]
            assert not [e for e in agent.events() if is_from(gateway)(e)]
        finally:
            agent.stop()
