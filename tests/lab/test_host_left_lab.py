"""A culprit that leaves the LAN: the live agent's ``host_left`` after its bounded ARP probe.

Lab ``lgp`` (198.18.12.0/24, one learning bridge): the gateway, the monitoring node running
``lan-guard-agent run`` (publishing to mosquitto in the root namespace through an uplink),
and two culprits that each ``arp-scan`` the lab's subnet (level 1, so each has an incident):

* ``gone`` then has its link pulled: after ``hosts.left_after_s`` of silence the agent sends
  its ARP probes (exactly ``probe_count``), hears nothing, and reports ``host_left``; the
  retained hosts payload marks it ``present: false``;
* ``stays`` keeps its link but falls silent too: its kernel answers the probe, so it is
  never declared gone.

Bounded: arp-scan by retries and timeout, every wait by a deadline; traffic only in the lab.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from sensor_agent.hosts import HostsConfig
from tests.broker import Collector, Mosquitto, free_port
from tests.contract import validate, validate_from_pipeline
from tests.lab.agentlab import AgentRun, Network, assert_culprit
from tests.netlab import Host, Lab, require_tools, wait_for

PREFIX, SUBNET = "lgp", "198.18.12.0/24"
GATEWAY_IP, NODE_IP = "198.18.12.1", "198.18.12.2"
UPLINK_ROOT_IP, UPLINK_NODE_IP = "198.18.12.253", "198.18.12.254"
AGENT_ID = "lab-host-left"
LEFT_AFTER_S = 3.0
PROBES = HostsConfig().probe_count
PROBE_INTERVAL_S = HostsConfig().probe_interval_s
# From the link going down: the silence, the probes, the one-second bucket that set
# last_seen, the one-second tick, and scheduling slack on a 2-core CI machine.
HOST_LEFT_WITHIN_S = LEFT_AFTER_S + PROBES * PROBE_INTERVAL_S + 2.0 + 3.0
HOSTS_MIN_INTERVAL_S = (
    10.0  # the pipeline's hosts_min_interval_s: retained hosts at most this often
)


@dataclass
class HostLeftLab:
    network: Network
    broker_port: int
    workdir: Path


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[HostLeftLab]:
    reason = require_tools("arp-scan", "tcpdump", "mosquitto")
    if reason is not None:
        pytest.skip(reason)
    with Lab(PREFIX, SUBNET) as built:
        gateway = built.host("gw", GATEWAY_IP)
        node = built.host("node", NODE_IP, gateway=GATEWAY_IP)
        uplink = built.uplink_to_root(UPLINK_ROOT_IP, UPLINK_NODE_IP, node)
        network = Network(lab=built, gateway=gateway, node=node, uplink_root_ip=uplink.root_ip)
        port = free_port()
        with Mosquitto(port=port, extra_config=f"listener {port} {uplink.root_ip}\n"):
            yield HostLeftLab(network, port, tmp_path)


def hosts_entry(payload: dict[str, Any], host: Host) -> dict[str, Any] | None:
    return next((h for h in payload["hosts"] if h["mac"] == host.mac), None)


def unix(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def test_a_culprit_that_unplugs_is_reported_gone_after_the_probe(lab: HostLeftLab) -> None:
    network = lab.network
    config = lab.workdir / "agent.toml"
    config.write_text(
        f'agent_id = "{AGENT_ID}"\nstdout = false\n'
        f"[hosts]\nleft_after_s = {LEFT_AFTER_S}\nprobe = true\n"
        f'[mqtt]\nhost = "{network.uplink_root_ip}"\nport = {lab.broker_port}\n'
        f'outbox_path = "{lab.workdir / "outbox.sqlite"}"\n'
    )
    hosts_topic = f"lan_guard/{AGENT_ID}/hosts"
    with Collector(lab.broker_port, hosts_topic) as hosts_seen:
        agent = AgentRun.start(network, lab.workdir, ["--config", str(config)])
        try:
            gone = network.lab.host("gone", "198.18.12.66", mac="00:1b:21:42:00:66")
            stays = network.lab.host("stays", "198.18.12.67", mac="00:1b:21:42:00:67")
            # What the node says on the wire (its ARP probes among it), seen from the gateway.
            arp_log = lab.workdir / "arp.log"
            capture = f"tcpdump -i eth0 -n -l -U arp and ether src {network.node.mac}"
            dump = network.gateway.spawn(capture, log=arp_log)
            time.sleep(0.5)  # tcpdump is listening
            for culprit in (gone, stays):
                scan = culprit.run(f"arp-scan -I eth0 --retry=1 --timeout=200 {SUBNET}", timeout=30)
                assert scan.returncode == 0, scan.stderr
                scanned = agent.wait_kind("arp_scan", culprit)
                assert_culprit(scanned, kind="arp_scan", level=1, culprit=culprit)

            gone.link_down()
            down_at = time.time()
            left = agent.wait_kind("host_left", gone, timeout=HOST_LEFT_WITHIN_S + 2)
            validate_from_pipeline("event", left)
            assert left["level"] == 0
            assert left["source"]["mac"] == gone.mac and left["source"]["ip"] == gone.ip
            after_s = unix(left["detected_at"]) - down_at
            assert after_s <= HOST_LEFT_WITHIN_S, f"host_left {after_s:.1f} s after the unplug"
            # never before the silence and every probe's interval have passed
            assert left["evidence"]["silent_s"] >= LEFT_AFTER_S + PROBES * PROBE_INTERVAL_S - 0.1
            incident = agent.wait_kind("arp_scan", gone)["incident_id"]
            assert left["incident_id"] == incident  # closes the culprit's own episode

            def gone_absent_stays_present() -> bool:
                for body in reversed(hosts_seen.payloads(hosts_topic)):
                    payload = json.loads(body)
                    entry = hosts_entry(payload, gone)
                    if entry is not None and not entry["present"]:
                        kept = hosts_entry(payload, stays)
                        return kept is not None and kept["present"]
                return False

            assert wait_for(gone_absent_stays_present, timeout=HOSTS_MIN_INTERVAL_S + 3), [
                json.loads(b) for b in hosts_seen.payloads(hosts_topic)
            ][-1:]
            network.lab.stop(dump)
        finally:
            agent.stop()
    payload = json.loads(hosts_seen.payloads(hosts_topic)[-1])
    validate("hosts", payload)
    entry = hosts_entry(payload, gone)
    assert entry is not None and entry["ip"] == gone.ip and entry["present"] is False
    # The probe is bounded: exactly probe_count requests for the one that left ...
    requests = arp_log.read_text(errors="replace")
    assert requests.count(f"who-has {gone.ip} tell {network.node.ip}") == PROBES, requests
    # ... and the one that stayed answered it: still present, never reported gone.
    assert f"who-has {stays.ip} tell {network.node.ip}" in requests
    kinds_of_stays = {e["kind"] for e in agent.events() if e["source"]["mac"] == stays.mac}
    assert "host_left" not in kinds_of_stays
