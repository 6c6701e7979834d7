"""The evacuation lab: a router running the real agent (enforcer on) between two hosts.

No Home Assistant in here (``benchmarks/evacuation_latency.py`` imports it under Python 3.11).
Lab prefix ``lg5``, subnet 198.18.5.0/24 (blackholed in the root namespace while it exists)::

    infected 198.18.5.10 --[lan]-- eth0 198.18.5.1  ROUTER  198.18.5.65 eth1 --[iot]-- appliance
                                     (agent, nftables)                                 198.18.5.70
                                   up0 198.18.5.254 ==== 198.18.5.253 root: mosquitto

Mosquitto runs in the root namespace on 127.0.0.1 (for HA) and on the uplink's root end
(for the agent). Every probe is bounded (``ping -c 1 -W 1``, nmap on six ports, -T4,
--max-retries 1), and scans name only the router's lab address.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from tests.broker import Mosquitto, free_port
from tests.netlab import Host, Lab, require_tools, wait_for

PREFIX = "lg5"
SUBNET = "198.18.5.0/24"
ROUTER_LAN = "198.18.5.1"
ROUTER_IOT = "198.18.5.65"
INFECTED_IP = "198.18.5.10"
INFECTED_MAC = "02:00:00:05:00:10"
BENIGN_MAC = "02:00:00:05:00:11"
APPLIANCE_IP = "198.18.5.70"
UPLINK_ROOT = "198.18.5.253"
UPLINK_ROUTER = "198.18.5.254"
AGENT_ID = "lg5-router"
SHARED_KEY = "lg5-e2e-shared-key-0123"
SCAN_PORTS = "554,445,9100,80,515,139"  # the ports ransomware probes first (docs/architecture.md)
# The agent declares a silent host gone after this (then ARP-probes it up to 3 times, 1 s apart).
LEFT_AFTER_S = 2
AGENT = Path(sys.prefix) / "bin" / "lan-guard-agent"
TOOLS = ("nft", "nmap", "ping", "tcpdump", "mosquitto")


def skip_reason() -> str | None:
    """Why this lab cannot run here (root, tools, the agent's console script), or None."""
    reason = require_tools(*TOOLS)
    if reason is None and not AGENT.exists():
        reason = f"needs the agent's console script at {AGENT}"
    return reason


@dataclass
class EvacuationLab:
    """The running lab: hosts, the broker (``port`` on both listeners) and the agent."""

    lab: Lab
    router: Host
    infected: Host
    appliance: Host
    broker: Mosquitto
    workdir: Path
    agent: subprocess.Popen[bytes] | None = None

    @property
    def port(self) -> int:
        return self.broker.port

    def start_agent(self) -> None:
        """The real agent on the router's LAN side, enforcer on, MQTT over the uplink."""
        config = self.workdir / "agent.toml"
        config.write_text(
            f'agent_id = "{AGENT_ID}"\n'
            "stdout = false\n"
            f'events_jsonl = "{self.workdir / "events.jsonl"}"\n'
            '[network]\ninterface = "eth0"\n'
            f'[mqtt]\nhost = "{UPLINK_ROOT}"\nport = {self.port}\n'
            f'shared_key = "{SHARED_KEY}"\noutbox_path = "{self.workdir / "outbox.db"}"\n'
            '[enforcer]\nbackend = "nftables"\n'
            f"[hosts]\nleft_after_s = {LEFT_AFTER_S}\n",
            encoding="utf-8",
        )
        self.agent = self.router.spawn(
            [str(AGENT), "run", "-c", str(config)], log=self.workdir / "agent.log"
        )

    def agent_log(self) -> str:
        path = self.workdir / "agent.log"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    def pings(self, src: Host, dst: str) -> bool:
        """One bounded ping."""
        return src.run(f"ping -c 1 -W 1 {dst}", timeout=5).returncode == 0

    def pings_within(self, src: Host, dst: str, expected: bool, timeout: float) -> bool:
        """Whether ``src`` reaching ``dst`` becomes ``expected`` within ``timeout`` seconds."""
        return wait_for(lambda: self.pings(src, dst) is expected, timeout, interval=0.1)

    def quarantined_macs(self) -> str:
        """The router's quarantine table as nft lists it ('' when there is none)."""
        done = self.router.run("nft list table inet lan_guard", timeout=5)
        return done.stdout if done.returncode == 0 else ""

    def start_first_syn_watch(self) -> subprocess.Popen[bytes]:
        """tcpdump on the router: prints the epoch time of the infected host's first SYN."""
        proc = self.router.spawn(
            [
                "tcpdump", "-i", "eth0", "-n", "-tt", "-l", "-c", "1",
                f"tcp[tcpflags] & tcp-syn != 0 and src host {INFECTED_IP}",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        assert proc.stderr is not None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # "listening on eth0" once the capture is open
            line = proc.stderr.readline()
            if b"listening on" in line or not line:
                break
        return proc

    def scan(self) -> subprocess.CompletedProcess[str]:
        """A real SYN scan of the router's lab address only, bounded."""
        return self.infected.run(
            f"nmap -sS -Pn -n -T4 --max-retries 1 -p {SCAN_PORTS} {ROUTER_LAN}", timeout=30
        )

    def benign_host_at_the_culprit_address(self) -> Host:
        """A new, harmless host on the LAN with the culprit's old IP (another MAC)."""
        lan = self.lab.switches["lan"]
        return self.lab.host("benign", INFECTED_IP + "/26", mac=BENIGN_MAC, switch=lan,
                             gateway=ROUTER_LAN)  # fmt: skip


class EvacuationLabRun:
    """Context manager: builds the lab, starts mosquitto, tears everything down."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._lab: Lab | None = None
        self._broker: Mosquitto | None = None

    def __enter__(self) -> EvacuationLab:
        lab = Lab(PREFIX, SUBNET).__enter__()
        self._lab = lab
        lan, iot = lab.switch("lan"), lab.switch("iot")
        router = lab.router("router", [(lan, ROUTER_LAN + "/26"), (iot, ROUTER_IOT + "/26")])
        infected = lab.host(
            "infected", INFECTED_IP + "/26", mac=INFECTED_MAC, switch=lan, gateway=ROUTER_LAN
        )
        appliance = lab.host("appliance", APPLIANCE_IP + "/26", switch=iot, gateway=ROUTER_IOT)
        lab.uplink_to_root(UPLINK_ROOT, UPLINK_ROUTER, router)
        # One more listener, on the uplink's root end (it exists now), for the agent.
        port = free_port()
        broker = Mosquitto(port, extra_config=f"listener {port} {UPLINK_ROOT}")
        self._broker = broker.start()
        return EvacuationLab(lab, router, infected, appliance, broker, self.workdir)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._lab is not None:
                self._lab.close()  # stops the agent first: its table goes with it
        finally:
            if self._broker is not None:
                self._broker.close()
