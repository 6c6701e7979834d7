"""Record how real tools look to the real agent, for the second classifier corpus.

Builds a namespace lab (prefix ``lgl``, 198.18.40.0/24, blackholed in the root namespace while it
exists): a gateway, the monitoring node running ``lan-guard-agent run`` and ``tcpdump``, eight idle
household hosts that answer ARP, and one host per tool. For every profile below it runs the real
tool (bounded by a timeout, naming only the lab's subnet), then keeps two things:

* ``probes``: what the tool's host sent that the agent looks at, as the node's capture saw it,
  reduced to (seconds since the tool's first frame, what): an ARP request for host N of the /24
  (``a``), a SYN to node port P (``s``), the ACK completing a handshake (``k``), application
  data to a port (``d``: port, bytes, first 64 bytes in hex, all of it sent by lab tools to the
  lab's own decoys). The capture itself is deleted.
* ``agent_events``: what the agent published about it (kind, level, counts, the sample).

``benchmarks/classifier_homes.py`` replays these probe schedules through the agent's own pipeline
for the devices of generated homes, and ``tests/ha/test_learning_homes.py`` checks that replaying a
schedule gives the events the agent published in the lab.

Nothing is recorded of anything outside the lab. Root only; writes
``benchmarks/data/classifier_lab_shapes.json``.
Usage: python benchmarks/classifier_lab_record.py [--only NAME ...]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

REPO: Final = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from sensor_agent.parse import ARP_REQUEST, ETH_ARP, TCP_ACK, TCP_SYN, parse_arp, parse_tcp  # noqa: E402
from sensor_agent.replay import read_blocks  # noqa: E402
from tests.netlab import Host, Lab, require_tools, wait_for  # noqa: E402

PREFIX, SUBNET = "lgl", "198.18.40.0/24"
NET: Final = "198.18.40"
GATEWAY, NODE = f"{NET}.1", f"{NET}.2"
LIVE_HOSTS: Final = (10, 11, 12, 13, 20, 21, 30, 31)  # idle household hosts that answer
OUT: Final = REPO / "benchmarks" / "data" / "classifier_lab_shapes.json"
AGENT: Final = Path(sys.prefix) / "bin" / "lan-guard-agent"
SAMPLE_BYTES: Final = 64  # the agent's detectors.session.sample_bytes
DECOY_PORTS: Final = (554, 445, 9100, 80, 515, 139)


@dataclass(frozen=True)
class Profile:
    """One tool run: ``command`` is a shell line run in the tool's own namespace."""

    name: str
    role: str  # "benign" or "malicious": what it stands for in a home
    what: str
    command: str
    timeout: float = 120.0


LIVE_LIST: Final = " ".join(f"{NET}.{h}" for h in (1, 2, *LIVE_HOSTS))
PROFILES: Final[tuple[Profile, ...]] = (
    Profile(
        "ha_nmap_tracker",
        "benign",
        "Home Assistant's nmap device tracker: its default scan options, run every 120 s",
        f"nmap -n -sn -PR -T4 --min-rate 10 --host-timeout 5s --reason -v {SUBNET}",
    ),
    Profile(
        "netalertx",
        "benign",
        "NetAlertX's arp-scan plugin (its command line), every 5 minutes by default",
        f"arp-scan --ignoredups --retry=6 {SUBNET} --interface=eth0",
    ),
    Profile(
        "router_hostmap",
        "benign",
        "a router refreshing its host map: a paced ARP sweep (arp-scan at 20 requests/s)",
        f"arp-scan --retry=1 --interval=50 --interface=eth0 {SUBNET}",
    ),
    Profile(
        "fing_phone",
        "benign",
        "a phone app sweeping the LAN (Fing-like): a fast ARP sweep, three tries per address",
        f"arp-scan --retry=3 --interval=3 --interface=eth0 {SUBNET}",
    ),
    Profile(
        "streaming_burst",
        "benign",
        "a streaming box resolving the peers its discovery found: a burst of about 20 ARPs",
        f"arp-scan --retry=1 --interval=30 --interface=eth0 {NET}.10-{NET}.31",
    ),
    Profile(
        "printer_snmp",
        "benign",
        "printer software looking for printers: SNMP (udp/161) to every address of the /24",
        f"nmap -n -sU -p 161 -T4 --max-retries 1 {SUBNET}",
    ),
    Profile(
        "nvr_rtsp",
        "benign",
        "an NVR discovering cameras over RTSP: port 554/8554 on every host, OPTIONS to each",
        f"nmap -n -PR -p 554,8554 -T4 --script rtsp-methods {SUBNET}",
        180,
    ),
    Profile(
        "vuln_scanner",
        "benign",
        "a vulnerability scanner appliance's weekly run: discovery, top ports, service probes",
        f"nmap -n -sS -sV --version-light -T4 --top-ports 100 --host-timeout 60s {SUBNET}",
        300,
    ),
    Profile(
        "owner_nmap_fast",
        "benign",
        "the owner checking the node: nmap -F",
        f"nmap -n -sS -F -T4 {NODE}",
    ),
    Profile(
        "owner_nmap_top1000",
        "benign",
        "the owner checking the node: nmap's default 1000 ports",
        f"nmap -n -sS -T4 {NODE}",
    ),
    Profile(
        "owner_smb_check",
        "benign",
        "the owner checking SMB: nmap --script smb-vuln-ms17-010 (data on the SMB decoy)",
        f"nmap -n -p 139,445 --script smb-vuln-ms17-010 {NODE}",
    ),
    *(
        Profile(
            f"nmap_sweep_t{n}",
            "any",
            f"nmap -sn -T{n}: a host discovery sweep of the /24 at timing template {n}",
            f"nmap -n -sn -PR -T{n} {SUBNET}",
            420,
        )
        for n in (2, 3, 4, 5)
    ),
    Profile(
        "nmap_ports_t1",
        "any",
        "nmap -sS -T1 (15 s between probes) of 6 ports of the node; -T0 (300 s) never "
        "reaches the agent's 3 ports in 60 s and is not recorded",
        f"nmap -n -sS -T1 -p 22,80,139,443,445,3389 {NODE}",
        150,
    ),
    *(
        Profile(
            f"nmap_ports_t{n}",
            "any",
            f"nmap -sS -T{n} --top-ports 100 of the node",
            f"nmap -n -sS -T{n} --top-ports 100 {NODE}",
            180,
        )
        for n in (2, 3, 4, 5)
    ),
    Profile(
        "telnet_bot",
        "malicious",
        "a Mirai-like bot scanning the LAN for telnet: SYNs to 23 at random addresses, 100/s",
        f"hping3 -S -p 23 --rand-dest -I eth0 -i u10000 -c 800 {NET}.x",
        40,
    ),
    Profile(
        "telnet_bot_multi",
        "malicious",
        "a Mirai variant: SYNs to 23, 2323, 80, 8080 and 5555 at random addresses of the LAN",
        "for p in 23 2323 80 8080 5555; do "
        f"hping3 -S -p $p --rand-dest -I eth0 -i u20000 -c 250 {NET}.x & done; wait",
        40,
    ),
    Profile(
        "ransomware",
        "malicious",
        "ransomware exploring the LAN: an ARP sweep, its ports on every live host, then SMB",
        f"nmap -n -sn -PR -T5 {SUBNET}; "
        f"nmap -n -Pn -sS -T5 --max-retries 0 -p 554,445,9100,80,515,139 {LIVE_LIST}; "
        f"timeout 8 smbclient -N -L //{NODE} -m SMB2 -t 3",
        60,
    ),
    Profile(
        "smb_worm",
        "malicious",
        "an SMB worm: port 445 on every address of the /24 without a ping, then SMB",
        f"nmap -n -Pn -sS -T5 --max-retries 0 -p 445 {SUBNET}; "
        f"timeout 8 smbclient -N -L //{NODE} -m SMB2 -t 3",
        60,
    ),
)


def probes_of(pcap: Path, mac: str) -> list[list[Any]]:
    """The tool host's frames the agent looks at, as compact probes (see the module doc)."""
    source = bytes.fromhex(mac.replace(":", ""))
    node = bytes(int(octet) for octet in NODE.split("."))
    probes: list[list[Any]] = []
    start: float | None = None
    for timestamps, frames in read_blocks(pcap):
        for ts, frame in zip(timestamps, frames, strict=True):
            if frame[6:12] != source:
                continue
            start = ts if start is None else start
            t = round(ts - start, 4)
            if frame[12:14] == ETH_ARP:
                arp = parse_arp(frame)
                if arp and arp.op == ARP_REQUEST and arp.target_ip != arp.sender_ip:
                    probes.append([t, "a", arp.target_ip[3]])
                continue
            tcp = parse_tcp(frame)
            if tcp is None or tcp.dst_ip != node:
                continue
            if tcp.flags & (TCP_SYN | TCP_ACK) == TCP_SYN:
                probes.append([t, "s", tcp.dport])
            elif tcp.payload_len > 0:
                data = frame[tcp.payload_offset : tcp.payload_offset + SAMPLE_BYTES]
                probes.append([t, "d", tcp.dport, tcp.payload_len, data.hex()])
            elif tcp.flags & 0x17 == TCP_ACK:  # a bare ACK (no SYN, FIN, RST)
                probes.append([t, "k", tcp.dport])
    return probes


def summary(event: dict[str, Any]) -> dict[str, Any]:
    """What the replay check compares of one agent event."""
    evidence = event["evidence"]
    return {
        "kind": event["kind"],
        "level": event["level"],
        "target_count": evidence.get("target_count"),
        "packets": evidence.get("packets"),
        "ports": len(evidence.get("ports") or ()),
        "rate": evidence.get("rate"),
        "window_s": evidence.get("window_s"),
        "sample": evidence.get("sample"),
    }


def record(lab: Lab, node: Host, tool: Host, profile: Profile, workdir: Path) -> dict[str, Any]:
    """Run one profile with a fresh agent and capture on the node; its probes and events."""
    events_path, log = workdir / f"{profile.name}.jsonl", workdir / f"{profile.name}.log"
    pcap = workdir / f"{profile.name}.pcap"
    capture_filter = f"ether src {tool.mac} and (arp or (tcp and dst host {NODE}))"
    dump_log = workdir / f"{profile.name}.tcpdump.log"
    dump = node.spawn(
        ["tcpdump", "-i", "eth0", "-n", "-U", "-w", str(pcap), capture_filter], log=dump_log
    )
    agent = node.spawn(
        [str(AGENT), "run", "--interface", "eth0", "--events-jsonl", str(events_path)], log=log
    )
    ready = wait_for(lambda: "watching " in log.read_text(errors="replace"), timeout=30)
    listening = wait_for(lambda: "listening on" in dump_log.read_text(errors="replace"), 10)
    if not (ready and listening):
        raise SystemExit(f"agent or tcpdump did not start: {log.read_text()[-2000:]}")
    began = time.monotonic()
    try:
        done = tool.run(profile.command, timeout=profile.timeout)
        status = f"exit {done.returncode}"
    except subprocess.TimeoutExpired:
        status = f"stopped after {profile.timeout:g} s"
    took = time.monotonic() - began
    time.sleep(1.0)
    lab.stop(agent, timeout=10.0)  # the agent sends its held-back updates when it stops
    lab.stop(dump, timeout=5.0)
    events = [json.loads(line) for line in events_path.read_text().splitlines() if line.strip()]
    mine = [summary(e) for e in events if e["source"]["mac"] == tool.mac]
    probes = probes_of(pcap, tool.mac)
    pcap.unlink()
    kinds = ", ".join(f"{e['kind']}/{e['level']}" for e in mine)
    print(
        f"{profile.name:<20} {status:<22} {took:6.1f} s  {len(probes):5d} probes  "
        f"{len(mine):3d} events: {kinds}",
        flush=True,
    )
    return {
        "role": profile.role,
        "what": profile.what,
        "command": profile.command,
        "tool_host": int(tool.ip.rsplit(".", 1)[1]),
        "duration_s": round(took, 2),
        "probes": probes,
        "agent_events": mine,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else "")
    parser.add_argument("--only", nargs="+", help="record just these profiles (merged in)")
    args = parser.parse_args(argv)
    reason = require_tools("nmap", "arp-scan", "hping3", "tcpdump", "smbclient")
    if reason is not None:
        print(f"skipped: {reason}")
        return
    if not AGENT.exists():
        raise SystemExit(f"{AGENT} not found: run scripts/setup.sh first")
    wanted = [p for p in PROFILES if not args.only or p.name in args.only]
    shapes: dict[str, Any] = json.loads(OUT.read_text()) if OUT.exists() and args.only else {}
    profiles: dict[str, Any] = shapes.get("profiles", {})
    workdir = Path(tempfile.mkdtemp(prefix="lan-guard-shapes-"))
    try:
        with Lab(PREFIX, SUBNET) as lab:
            lab.host("gw", GATEWAY)
            node = lab.host("node", NODE, gateway=GATEWAY)
            for host in LIVE_HOSTS:
                lab.host(f"h{host}", f"{NET}.{host}", gateway=GATEWAY)
            for index, profile in enumerate(wanted):
                tool = lab.host(f"t{index}", f"{NET}.{100 + index}", gateway=GATEWAY)
                profiles[profile.name] = record(lab, node, tool, profile, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    shapes = {
        "format": 1,
        "recorded_at": datetime.now(UTC).date().isoformat(),
        "lab": {"subnet": SUBNET, "node": 2, "gateway": 1, "live": [1, 2, *LIVE_HOSTS]},
        "tools": {
            "nmap": _version(["nmap", "--version"]),
            "arp-scan": _version(["arp-scan", "--version"]),
            "hping3": _version(["hping3", "--version"]),
        },
        "decoy_ports": list(DECOY_PORTS),
        "profiles": dict(sorted(profiles.items())),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(shapes, indent=None, separators=(",", ":")) + "\n")
    print(f"wrote {OUT.relative_to(REPO)} ({OUT.stat().st_size:,} bytes)")


def _version(argv: list[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    return (
        (done.stdout or done.stderr).strip().splitlines()[0] if done.stdout or done.stderr else ""
    )


if __name__ == "__main__":
    main()
