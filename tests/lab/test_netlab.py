"""The namespace lab helper itself: hosts talk, nothing escapes, nothing is left behind."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.netlab import Lab, LabError, namespaces_with_prefix, require_root, require_tools

PREFIX = "lg2"
SUBNET = "198.18.2.0/24"
REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(require_root() is not None, reason=str(require_root()))


def _root(cmd: str) -> str:
    return subprocess.run(cmd, shell=True, capture_output=True, text=True, check=True).stdout


def _routes_of_subnet() -> list[str]:
    return [line for line in _root("ip route show").splitlines() if "198.18.2." in line]


def test_hosts_on_a_switch_reach_each_other_with_their_macs() -> None:
    with Lab(PREFIX, SUBNET) as lab:
        a = lab.host("a", "198.18.2.10")
        b = lab.host("b", "198.18.2.11", mac="00:1B:2C:3D:4E:5F")
        ping = a.run(f"ping -c 2 -i 0.2 -W 1 {b.ip}", timeout=10)
        assert ping.returncode == 0, ping.stdout + ping.stderr
        neigh = a.run(f"ip neigh show {b.ip}", timeout=5).stdout
        assert "00:1b:2c:3d:4e:5f" in neigh
        assert b.mac == "00:1b:2c:3d:4e:5f"
        assert a.mac == Lab.mac_for("198.18.2.10") == "02:00:c6:12:02:0a"
        # The command ran inside the namespace: it sees eth0 with the lab address.
        addr = json.loads(a.run("ip -j addr show eth0", timeout=5).stdout)
        assert addr[0]["address"] == a.mac
        assert addr[0]["addr_info"][0]["local"] == "198.18.2.10"
        # ...and a shell's later commands too (`sh -c 'a; b'`, not only the first one).
        both = a.run("ip -br addr show eth0; ip -br addr show eth0", timeout=5).stdout
        assert both.count("198.18.2.10") == 2


def test_teardown_removes_namespaces_links_route_and_processes() -> None:
    with Lab(PREFIX, SUBNET) as lab:
        a = lab.host("a", "198.18.2.10")
        lab.host("b", "198.18.2.11")
        lab.uplink_to_root("198.18.2.253", "198.18.2.254", a)
        sleeper = a.spawn("sleep 300")
        assert namespaces_with_prefix(PREFIX) == ["lg2-a", "lg2-b", "lg2-sw"]
        assert any(line.startswith("blackhole 198.18.2.0/24") for line in _routes_of_subnet())
    assert namespaces_with_prefix(PREFIX) == []
    assert _routes_of_subnet() == []
    assert f"{PREFIX}-up0" not in _root("ip -br link")
    assert sleeper.poll() is not None


def test_stop_ends_what_a_command_moved_to_a_process_group_of_its_own() -> None:
    # `timeout` puts its command in a new group: stopping only the spawned shell's group left
    # `timeout 10 atk6-parasite6` running into the next test.
    with Lab(PREFIX, SUBNET) as lab:
        a = lab.host("a", "198.18.2.10")
        timed = a.spawn("timeout 60 sleep 50; true")
        time.sleep(0.3)
        sleeping = _root(f"pgrep -s {timed.pid} -x sleep").split()
        assert sleeping, "sleep runs in the spawned command's session"
        lab.stop(timed)
        left = _root(f"ps -o stat=,comm= -s {timed.pid} || true").splitlines()
        assert [line for line in left if not line.startswith("Z")] == []  # zombies are dead


def test_teardown_happens_after_an_exception_too() -> None:
    with pytest.raises(RuntimeError, match="boom"), Lab(PREFIX, SUBNET) as lab:
        lab.host("a", "198.18.2.10").spawn("sleep 300")
        raise RuntimeError("boom")
    assert namespaces_with_prefix(PREFIX) == []
    assert _routes_of_subnet() == []


def test_leftovers_of_a_killed_run_are_removed_at_start() -> None:
    _root(f"ip netns add {PREFIX}-stale")
    _root(f"ip route replace blackhole {SUBNET}")
    with Lab(PREFIX, SUBNET):
        assert f"{PREFIX}-stale" not in namespaces_with_prefix(PREFIX)
    assert namespaces_with_prefix(PREFIX) == []


def test_addresses_outside_the_subnet_are_refused() -> None:
    with Lab(PREFIX, SUBNET) as lab:
        with pytest.raises(ValueError, match="outside the lab subnet"):
            lab.host("a", "192.168.1.10")
        a = lab.host("a", "198.18.2.10")
        with pytest.raises(ValueError, match="outside the lab subnet"):
            lab.uplink_to_root("127.0.0.1", "198.18.2.254", a)
        with pytest.raises(ValueError, match="already exists"):
            lab.host("a", "198.18.2.12")
    with pytest.raises(LabError, match="inside `with Lab"):
        Lab(PREFIX, SUBNET).host("a", "198.18.2.10")


def test_escapes_go_nowhere() -> None:
    with Lab(PREFIX, SUBNET) as lab:
        a = lab.host("a", "198.18.2.10")
        # The root namespace blackholes the lab subnet while the lab exists: no route to it.
        escaped = subprocess.run(
            ["ip", "route", "get", "198.18.2.77"], capture_output=True, check=False
        )
        assert escaped.returncode != 0
        assert "blackhole 198.18.2.0/24" in _root("ip route show type blackhole")
        # A lab host has a route to its subnet only.
        out = a.run("ip route get 192.0.2.1", timeout=5)
        assert out.returncode != 0
        assert "unreachable" in out.stderr.lower()


def test_run_is_bounded_by_its_timeout_and_check_raises() -> None:
    with Lab(PREFIX, SUBNET) as lab:
        a = lab.host("a", "198.18.2.10")
        started = time.monotonic()
        with pytest.raises(subprocess.TimeoutExpired):
            a.run("sleep 30; sleep 30", timeout=0.5)
        assert time.monotonic() - started < 5
        assert _root(f"ip netns pids {a.ns}").split() == []  # the whole group died
        with pytest.raises(subprocess.CalledProcessError):
            a.run("exit 3", timeout=5, check=True)
        assert a.run(["sh", "-c", "echo $((6*7))"], timeout=5).stdout.strip() == "42"


def test_router_forwards_between_two_switches() -> None:
    with Lab(PREFIX, SUBNET) as lab:
        lan, wan = lab.switch("lan"), lab.switch("wan")
        router = lab.router("gw", [(lan, "198.18.2.1/25"), (wan, "198.18.2.129/25")])
        inside = lab.host("in", "198.18.2.10/25", switch=lan, gateway="198.18.2.1")
        outside = lab.host("out", "198.18.2.140/25", switch=wan, gateway="198.18.2.129")
        assert router.ip == "198.18.2.1"
        assert router.links.keys() == {"eth0", "eth1"}
        ping = inside.run(f"ping -c 2 -i 0.2 -W 1 {outside.ip}", timeout=10)
        assert ping.returncode == 0, ping.stdout + ping.stderr
        assert "ttl=63" in ping.stdout  # one hop through the router


def test_uplink_reaches_a_server_in_the_root_namespace() -> None:
    reason = require_tools("nc")
    if reason:
        pytest.skip(reason)
    with Lab(PREFIX, SUBNET) as lab:
        a = lab.host("a", "198.18.2.10")
        uplink = lab.uplink_to_root("198.18.2.253", "198.18.2.254", a)
        received: list[bytes] = []
        with socket.create_server((uplink.root_ip, 0)) as server:
            server.settimeout(10)
            port = server.getsockname()[1]

            def accept_one() -> None:
                conn, peer = server.accept()
                with conn:
                    received.append(conn.recv(100))
                    received.append(peer[0].encode())

            thread = threading.Thread(target=accept_one)
            thread.start()
            sent = a.run(f"echo hello | nc -N -w 3 {uplink.root_ip} {port}", timeout=10)
            thread.join(timeout=10)
        assert sent.returncode == 0, sent.stderr
        assert received == [b"hello\n", b"198.18.2.254"]


def test_hub_switch_floods_unicast_to_every_port() -> None:
    reason = require_tools("tcpdump")
    if reason:
        pytest.skip(reason)
    with Lab(PREFIX, SUBNET) as lab:
        lab.switch("sw", hub=True)
        a, b = lab.host("a", "198.18.2.10"), lab.host("b", "198.18.2.11")
        sensor = lab.host("sensor", "198.18.2.12")
        assert a.run(f"ping -c 1 -W 1 {b.ip}", timeout=5).returncode == 0  # learn + ARP
        dump = sensor.spawn(
            f"timeout 5 tcpdump -i eth0 -n -l -c 2 'icmp and host {a.ip} and host {b.ip}'",
            stdout=subprocess.PIPE,
        )
        time.sleep(0.8)
        a.run(f"ping -c 3 -i 0.2 -W 1 {b.ip}", timeout=5)
        out, _ = dump.communicate(timeout=10)
        assert out.count(b"ICMP echo") == 2


def test_a_second_lab_of_the_same_prefix_waits_for_the_first() -> None:
    with Lab(PREFIX, SUBNET):
        with pytest.raises(LabError, match="already open in this process"):
            Lab(PREFIX, SUBNET).__enter__()
        # Another process must wait for the lock instead of tearing this lab down.
        code = (
            "from tests.netlab import Lab\n"
            f"with Lab({PREFIX!r}, {SUBNET!r}, lock_timeout=0.5):\n    pass\n"
        )
        other = subprocess.run(
            [sys.executable, "-c", code],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert other.returncode != 0
        assert "kept the 'lg2' lab" in other.stderr
        assert namespaces_with_prefix(PREFIX) == []  # untouched: still none of its own made
        assert _routes_of_subnet()  # the first lab's blackhole route is still there


def test_ipv6_subnet_hosts_talk_and_the_subnet_is_blackholed_in_the_root() -> None:
    def routes6() -> list[str]:
        return [line for line in _root("ip -6 route show").splitlines() if "fd4c:6700:2" in line]

    with pytest.raises(ValueError, match="unique local"):
        Lab(PREFIX, SUBNET, subnet6="2001:db8::/64")
    with Lab(PREFIX, SUBNET, subnet6="fd4c:6700:2::/64") as lab:
        a = lab.host("a", "198.18.2.10")
        b = lab.host("b", "198.18.2.11")
        assert (a.ip6, b.ip6) == ("fd4c:6700:2::a", "fd4c:6700:2::b")
        ping = a.run(f"ping -6 -c 1 -W 2 {b.ip6}", timeout=10)
        assert ping.returncode == 0, ping.stdout + ping.stderr
        assert any(line.startswith("blackhole fd4c:6700:2::/64") for line in routes6())
    assert routes6() == []
