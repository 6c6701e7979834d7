"""Hosts inventory: identity (IP, vendor, hostname), caps, host left, ARP probes."""

from __future__ import annotations

from sensor_agent.formats import ip_bytes, mac_bytes
from sensor_agent.hosts import HostInventory, HostsConfig
from tests.agent.craft import (
    ATTACKER_IP,
    ATTACKER_MAC,
    HOST_IP,
    HOST_MAC,
    T0,
    arp_request,
    dhcp_request,
    make_pipeline,
    mdns_answer,
    nbns_registration,
    tcp,
)
from tests.contract import validate

MAC = mac_bytes(HOST_MAC)


def test_identity_from_dhcp_hostname() -> None:
    pipeline, _ = make_pipeline()
    pipeline.feed(T0, dhcp_request(HOST_MAC, "Annas-iPhone", HOST_IP))
    assert pipeline.hosts.identity(MAC) == {
        "mac": HOST_MAC,
        "ip": HOST_IP,
        "vendor": "Apple, Inc.",
        "hostname": "Annas-iPhone",
    }


def test_identity_from_mdns_and_netbios() -> None:
    pipeline, _ = make_pipeline()
    pipeline.feed(T0, mdns_answer(HOST_MAC, HOST_IP, "officejet"))
    pipeline.feed(T0, nbns_registration(ATTACKER_MAC, ATTACKER_IP, "DESKTOP-K3V9Q2"))
    assert pipeline.hosts.identity(MAC)["hostname"] == "officejet"
    attacker = pipeline.hosts.identity(mac_bytes(ATTACKER_MAC))
    assert (attacker["hostname"], attacker["ip"]) == ("DESKTOP-K3V9Q2", ATTACKER_IP)
    assert attacker["vendor"] == "Intel Corporate"


def test_mdns_answer_for_another_host_names_that_host() -> None:
    pipeline, _ = make_pipeline()
    pipeline.feed(T0, arp_request(HOST_MAC, HOST_IP, "198.18.10.1"))
    frame = bytearray(mdns_answer(ATTACKER_MAC, ATTACKER_IP, "printer"))
    # the answer says printer.local is HOST_IP, sent by the attacker's MAC/IP (a proxy)
    frame[-4:] = ip_bytes(HOST_IP)
    pipeline.feed(T0 + 1, bytes(frame))
    assert pipeline.hosts.identity(MAC)["hostname"] == "printer"
    assert pipeline.hosts.identity(mac_bytes(ATTACKER_MAC))["hostname"] is None


def test_event_carries_the_culprits_name() -> None:
    pipeline, sink = make_pipeline()
    pipeline.feed(T0, dhcp_request(ATTACKER_MAC, "DESKTOP-K3V9Q2", ATTACKER_IP))
    for i, port in enumerate((554, 445, 9100)):
        pipeline.feed(T0 + 1 + i, tcp(dport=port, flags="S"))
    assert sink.events[0]["source"]["hostname"] == "DESKTOP-K3V9Q2"


def test_local_and_unknown_ouis_have_no_vendor() -> None:
    inventory = HostInventory()
    assert inventory.identity(mac_bytes("02:00:00:00:00:01"))["vendor"] is None
    assert inventory.identity(mac_bytes("3c:d9:2b:21:00:21"))["vendor"] == "Hewlett Packard"


def test_multicast_sources_are_not_hosts() -> None:
    inventory = HostInventory()
    inventory.seen_many({b"\x01\x00\x5e\x00\x00\xfb": 3, b"\xff" * 6: 1, MAC: 2}, T0)
    assert list(inventory.hosts) == [MAC]


def test_cap_drops_the_least_recently_seen_newcomer() -> None:
    inventory = HostInventory(HostsConfig(max_hosts=3))
    for i in range(5):
        inventory.seen_many({bytes([2, 0, 0, 0, 0, i]): 1}, T0 + i)
    inventory.seen_many({bytes([2, 0, 0, 0, 0, 2]): 1}, T0 + 10)  # heard again: established
    inventory.seen_many({bytes([2, 0, 0, 0, 0, 9]): 1}, T0 + 11)
    assert sorted(m[-1] for m in inventory.hosts) == [2, 4, 9]
    assert inventory.evictions == 3


def test_silent_host_leaves_and_comes_back() -> None:
    inventory = HostInventory(HostsConfig(left_after_s=300))
    inventory.seen_many({MAC: 1}, T0)
    assert inventory.tick(T0 + 299, culprits=()) == []
    left = inventory.tick(T0 + 301, culprits=())
    assert [(h.mac, round(s)) for h, s in left] == [(MAC, 301)]
    assert inventory.tick(T0 + 400, culprits=()) == []  # reported once
    inventory.seen_many({MAC: 1}, T0 + 500)
    payload = inventory.payload("test-agent", T0 + 500)
    assert payload["hosts"][0]["present"] is True
    validate("hosts", payload)


def test_silent_culprit_is_probed_at_most_three_times_first() -> None:
    inventory = HostInventory(HostsConfig(left_after_s=300, probe_count=3, probe_interval_s=1))
    inventory.seen_many({MAC: 1}, T0)
    inventory.learn_ip(MAC, ip_bytes(HOST_IP), T0)
    probes: list[tuple[bytes, bytes]] = []
    left = []
    for second in range(300, 310):
        left += inventory.tick(
            T0 + second, culprits={MAC}, probe=lambda m, i: probes.append((m, i))
        )
    assert probes == [(MAC, ip_bytes(HOST_IP))] * 3
    assert len(left) == 1


def test_probed_culprit_that_answers_stays() -> None:
    inventory = HostInventory(HostsConfig(left_after_s=300))
    inventory.seen_many({MAC: 1}, T0)
    inventory.learn_ip(MAC, ip_bytes(HOST_IP), T0)
    probes: list[bytes] = []
    assert inventory.tick(T0 + 300, culprits={MAC}, probe=lambda m, i: probes.append(i)) == []
    inventory.seen_many({MAC: 1}, T0 + 300.5)  # the ARP reply
    for second in range(301, 320):
        assert (
            inventory.tick(T0 + second, culprits={MAC}, probe=lambda m, i: probes.append(i)) == []
        )
    assert len(probes) == 1


def test_culprit_leaving_gives_a_host_left_event_benign_host_does_not() -> None:
    pipeline, sink = make_pipeline()
    pipeline.feed(T0, arp_request(HOST_MAC, HOST_IP, "198.18.10.1"))
    for i, port in enumerate((554, 445, 9100)):
        pipeline.feed(T0 + i, tcp(dport=port, flags="S"))
    pipeline.tick(T0 + 400)
    assert sink.kinds() == [("syn_scan", 2), ("host_left", 0)]
    left = sink.events[-1]
    assert left["source"]["mac"] == ATTACKER_MAC
    assert left["incident_id"] == sink.events[0]["incident_id"]
    hosts = sink.last("hosts")
    validate("hosts", hosts)
    assert {h["mac"]: h["present"] for h in hosts["hosts"]} == {
        HOST_MAC: False,
        ATTACKER_MAC: False,
    }


def test_hosts_payload_is_truncated_past_its_limit() -> None:
    inventory = HostInventory(HostsConfig(max_payload_hosts=2))
    inventory.seen_many({bytes([2, 0, 0, 0, 0, i]): 1 for i in range(5)}, T0)
    payload = inventory.payload("test-agent", T0)
    assert len(payload["hosts"]) == 2 and payload["truncated"] is True
    validate("hosts", payload)


def test_only_a_host_that_sent_more_than_one_frame_protects_its_address() -> None:
    inventory = HostInventory()
    once, twice = bytes([2, 0, 0, 0, 0, 1]), bytes([2, 0, 0, 0, 0, 2])
    inventory.learn_ip(once, bytes([198, 18, 10, 1]), T0)
    inventory.learn_ip(twice, bytes([198, 18, 10, 2]), T0)
    inventory.seen_many({once: 1, twice: 2}, T0 + 1)
    assert inventory.mac_of(bytes([198, 18, 10, 1])) == once  # attribution: any binding
    assert inventory.established_mac_of(bytes([198, 18, 10, 1])) is None  # protection: not
    assert inventory.established_mac_of(bytes([198, 18, 10, 2])) == twice
    assert inventory.knows(bytes([198, 18, 10, 2]), twice)
    inventory.seen_many({once: 1}, T0 + 2)  # a frame in another second
    assert inventory.established_mac_of(bytes([198, 18, 10, 1])) == once


def test_a_spray_of_forged_macs_keeps_the_established_hosts_and_their_addresses() -> None:
    inventory = HostInventory(HostsConfig(max_hosts=64))
    real = bytes([2, 0, 0, 0, 0, 1])
    inventory.learn_ip(real, bytes([198, 18, 10, 1]), T0)
    inventory.seen_many({real: 3}, T0 + 1)
    for second in range(10):
        spray = {bytes([2, 1]) + (second * 1000 + i).to_bytes(4, "big"): 1 for i in range(1000)}
        inventory.seen_many(spray, T0 + 2 + second)
    assert inventory.established_mac_of(bytes([198, 18, 10, 1])) == real
    assert len(inventory.hosts) == 64 and inventory.evictions == 10_000 - 63
