"""Decoy listeners on 127.0.0.1: a port that cannot be bound is reported, the others work,
connections and data reach the pipeline (level-2 handshakes, level-3 sessions)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest

from sensor_agent.config import AgentConfig, CaptureConfig, DecoyConfig, load
from sensor_agent.formats import ip_bytes
from sensor_agent.live import LiveAgent
from tests.agent.craft import ATTACKER_MAC, T0, RecordingSink, arp_request, base_config
from tests.contract import validate, validate_from_pipeline


def agent_config(ports: tuple[int, ...], **decoys: object) -> AgentConfig:
    pipeline = replace(base_config(), node_ip=ip_bytes("127.0.0.1"), decoy_ports=ports)
    return AgentConfig(
        raw={},
        agent_id="test-agent",
        interface=None,
        log_level="INFO",
        events_jsonl=None,
        stdout=False,
        capture=CaptureConfig(),
        decoys=DecoyConfig(ports=ports, bind="127.0.0.1", **decoys),  # type: ignore[arg-type]
        probe_hosts=False,
        pipeline=pipeline,
    )


@pytest.fixture
def busy_port() -> Iterator[int]:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    yield int(holder.getsockname()[1])
    holder.close()


class Running:
    def __init__(self, agent: LiveAgent) -> None:
        self.agent = agent
        self.stop = threading.Event()
        self.thread = threading.Thread(target=agent.run, args=(self.stop, 0.1), daemon=True)

    def __enter__(self) -> Running:
        self.agent.start()
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(5)
        self.agent.close()


def wait_for(condition: object, timeout: float = 5.0) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def closed_by_peer(sock: socket.socket) -> bool:
    try:
        return sock.recv(10) == b""
    except ConnectionResetError:  # closed with our data unread: a reset, still closed
        return True


def test_unbindable_port_is_reported_and_the_others_work(busy_port: int) -> None:
    sink = RecordingSink()
    agent = LiveAgent(agent_config((busy_port, 0, 0)), [sink], capture=None)
    # the decoy's peer is 127.0.0.1: tell the inventory which MAC that is, as ARP would
    agent.pipeline.feed(time.time(), arp_request(ATTACKER_MAC, "127.0.0.1", "127.0.0.2"))
    with Running(agent):
        info = sink.last("info")
        validate("info", info)
        assert [e["port"] for e in info["decoy_errors"]] == [busy_port]
        assert "in use" in info["decoy_errors"][0]["error"]
        working = agent.decoys.ports
        assert len(working) == 2 and busy_port not in working
        assert "decoys" in info["capabilities"]
        with socket.create_connection(("127.0.0.1", working[0]), timeout=2) as client:
            client.sendall(b"\xfeSMB negotiate")
            wait_for(lambda: any(e["kind"] == "session" for e in sink.events))
    session = next(e for e in sink.events if e["kind"] == "session")
    assert session["level"] == 3
    assert session["source"]["mac"] == ATTACKER_MAC
    assert session["evidence"]["port"] == working[0]
    assert session["evidence"]["sample"] == ".SMB negotiate"
    assert session["evidence"]["bytes"] == 14
    validate_from_pipeline("event", session)


def test_connect_scan_of_the_decoys_is_level_2() -> None:
    sink = RecordingSink()
    agent = LiveAgent(agent_config((0, 0, 0)), [sink], capture=None)
    agent.pipeline.feed(time.time(), arp_request(ATTACKER_MAC, "127.0.0.1", "127.0.0.2"))
    with Running(agent):
        for port in agent.decoys.ports:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        wait_for(lambda: sink.events)
    assert sink.kinds() == [("syn_scan", 2)]
    assert sink.events[0]["evidence"]["handshakes"] == 3


def test_connections_are_bounded_in_bytes_time_and_number() -> None:
    sink = RecordingSink()
    agent = LiveAgent(
        agent_config((0,), max_bytes=10, timeout_s=0.5, max_connections=2), [sink], capture=None
    )
    agent.pipeline.feed(time.time(), arp_request(ATTACKER_MAC, "127.0.0.1", "127.0.0.2"))
    with Running(agent):
        port = agent.decoys.ports[0]
        flood = socket.create_connection(("127.0.0.1", port), timeout=2)
        flood.sendall(b"x" * 1000)
        wait_for(lambda: closed_by_peer(flood), timeout=3)  # closed by the decoy after 10 bytes
        idle = [socket.create_connection(("127.0.0.1", port), timeout=2) for _ in range(3)]
        wait_for(lambda: agent.decoys.refused >= 1)
        wait_for(lambda: agent.decoys.connections == 0, timeout=3)  # timed out
        for conn in idle:
            conn.close()
        flood.close()
    session = next(e for e in sink.events if e["kind"] == "session")
    assert session["evidence"]["bytes"] <= 10


def test_decoys_disabled_open_nothing() -> None:
    sink = RecordingSink()
    config = agent_config((0,))
    config = AgentConfig(**{**config.__dict__, "decoys": DecoyConfig(enabled=False)})
    agent = LiveAgent(config, [sink], capture=None)
    with Running(agent):
        assert agent.decoys.ports == []
        assert "decoys" not in sink.last("info")["capabilities"]
    assert T0 > 0


def test_by_default_decoys_listen_on_the_node_ip_only() -> None:
    """No ``decoys.bind``: the capture interface's address, never 0.0.0.0 (on a router that
    would put the decoys on the WAN). Here the "interface" has 127.0.0.2: 127.0.0.1 is
    another address of the host, where nothing must answer."""
    with socket.socket() as probe:  # a free port (the config asks for a real one)
        probe.bind(("127.0.0.2", 0))
        free = int(probe.getsockname()[1])
    loaded = load(None, environ={}, overrides={("decoys", "ports"): str(free)})
    assert loaded.decoys.bind is None
    config = loaded.with_network(ip_bytes("127.0.0.2"), None, None)
    assert config.decoys.bind == "127.0.0.2"
    agent = LiveAgent(config, [RecordingSink()], None)
    with Running(agent):
        assert agent.decoys.ports == [free]
        port = free
        with socket.create_connection(("127.0.0.2", port), timeout=2):
            pass
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_without_a_node_ip_no_decoy_listens_and_info_says_why() -> None:
    sink = RecordingSink()
    config = replace(agent_config((0, 0)), decoys=DecoyConfig(ports=(8081, 8082), bind=None))
    agent = LiveAgent(config, [sink], None)
    with Running(agent):
        assert agent.decoys.ports == []
    info = sink.last("info")
    validate("info", info)
    reason = "no node IPv4 address to listen on (set decoys.bind)"
    assert info["decoy_errors"] == [
        {"port": 8081, "error": reason},
        {"port": 8082, "error": reason},
    ]
    assert "decoys" not in info["capabilities"]


def test_decoys_listen_on_the_nodes_ipv6_addresses_too() -> None:
    from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6NDOptDstLLAddr, IPv6
    from scapy.layers.l2 import Ether

    sink = RecordingSink()
    agent = LiveAgent(agent_config((0,), bind6=("::1",)), [sink], capture=None)
    advert = (  # the peer's address, as Neighbour Discovery tells it
        Ether(src=ATTACKER_MAC, dst="33:33:00:00:00:01")
        / IPv6(src="::1", dst="ff02::1", hlim=255)
        / ICMPv6ND_NA(tgt="::1", O=1)
        / ICMPv6NDOptDstLLAddr(lladdr=ATTACKER_MAC)
    )
    agent.pipeline.feed(time.time(), bytes(advert))
    with Running(agent):
        port = agent.decoys.ports[0]
        with socket.create_connection(("::1", port), timeout=2) as client:
            client.sendall(b"GET / HTTP/1.0\r\n\r\n")
            wait_for(lambda: any(e["kind"] == "session" for e in sink.events))
    session = next(e for e in sink.events if e["kind"] == "session")
    validate_from_pipeline("event", session)
    assert session["source"]["mac"] == ATTACKER_MAC
    assert session["source"]["ipv6"] == ["::1"]


def test_the_decoy_echonet_node_answers_and_bounds_its_answers() -> None:
    import selectors

    from sensor_agent import echonet
    from sensor_agent.decoys import EchonetDecoy

    selector = selectors.DefaultSelector()
    decoy = EchonetDecoy("127.0.0.1", selector, max_replies_per_s=3)
    assert decoy.open(T0)
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind(("127.0.0.2", echonet.PORT))  # answers go to the sender's port 3610
    client.settimeout(2)
    try:
        request = echonet.build(5, b"\x05\xff\x01", b"\x0e\xf0\x00", echonet.ESV_GET, [(0xD6, b"")])
        for _ in range(5):
            client.sendto(request, ("127.0.0.1", echonet.PORT))
        time.sleep(0.2)
        for key, _events in selector.select(1):
            decoy.ready(key.fileobj, T0 + 0.5)  # type: ignore[arg-type]
        answer = echonet.parse(client.recvfrom(1500)[0])
        assert answer is not None and answer.esv == echonet.ESV_GET_RES
        assert answer.properties == ((0xD6, b"\x01" + echonet.AIR_CONDITIONER),)
        # the announcement at start and two answers fit the bound of 3 a second; 3 are refused
        assert (decoy.replies, decoy.refused) == (3, 3)
    finally:
        client.close()
        decoy.close()
