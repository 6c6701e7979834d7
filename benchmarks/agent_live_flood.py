"""Live flood: the agent on a namespace LAN under a real hping3 flood, next to a baseline.

A lab (prefix ``lg2b``, 198.18.2.128/25, so it never meets the lab tests' ``lg2``) holds a
gateway, the monitoring node running ``lan-guard-agent run`` (publishing to a real mosquitto
in the root namespace through a point-to-point uplink) and a flooder. Two phases of the same
length, side by side:

* idle: nothing but the lab's own silence;
* flood: ``hping3 --flood`` SYNs at the node, stopped by a hard timeout.

In both, tcpdump on the node counts the frames on the wire (the baseline capture), and the
agent's peak RSS, CPU time and liveness are read from /proc. Printed: the time from the
flood's start to the ``flood`` event in the agent's JSON-lines file (target < 1 s), the
agent's peak RSS (target: bounded, under 120 MB), that it stayed up, and the frames the agent
saw and its kernel drops (its final ``state`` counters) against tcpdump's.

Root only (network namespaces): otherwise it says so and exits 0.
Usage: python benchmarks/agent_live_flood.py [--seconds S]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PREFIX, SUBNET = "lg2b", "198.18.2.128/25"
GATEWAY_IP, NODE_IP, FLOODER_IP = "198.18.2.129", "198.18.2.130", "198.18.2.140"
UPLINK_ROOT_IP, UPLINK_NODE_IP = "198.18.2.250", "198.18.2.251"
AGENT_ID = "bench-flood"
TARGET_EVENT_S = 1.0
TARGET_RSS_MB = 120.0


@dataclass
class Phase:
    """What one phase measured."""

    name: str
    wire_frames: int = 0
    wire_drops: int = 0
    peak_rss_mb: float = 0.0
    cpu_s: float = 0.0
    alive: bool = True
    event_after_s: float | None = None


def proc_status_kb(pid: int, key: str) -> int:
    """``VmRSS``/``VmHWM`` (kB) of a live process from /proc, 0 once it is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    found = re.search(rf"^{key}:\s+(\d+) kB", text, re.MULTILINE)
    return int(found.group(1)) if found else 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (from /proc/PID/stat)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tcpdump_counts(log: str) -> tuple[int, int]:
    """(frames captured, dropped by kernel) from tcpdump's closing statistics."""
    captured = re.search(r"(\d+) packets? captured", log)
    dropped = re.search(r"(\d+) packets? dropped by kernel", log)
    return (int(captured.group(1)) if captured else -1, int(dropped.group(1)) if dropped else -1)


def skip_reason() -> str | None:
    from tests.netlab import require_tools

    reason = require_tools("hping3", "tcpdump", "mosquitto")
    if reason is None and not (Path(sys.prefix) / "bin" / "lan-guard-agent").exists():
        reason = f"lan-guard-agent is not installed in {sys.prefix}"
    return reason


def run(seconds: float, workdir: Path) -> int:
    from tests.broker import Collector, Mosquitto, free_port
    from tests.lab.agentlab import AgentRun, Network, read_events
    from tests.netlab import Lab

    phases = [Phase("idle"), Phase("flood (hping3 --flood)")]
    with Lab(PREFIX, SUBNET) as lab:
        gateway = lab.host("gw", GATEWAY_IP)
        node = lab.host("node", NODE_IP, gateway=GATEWAY_IP)
        flooder = lab.host("flooder", FLOODER_IP)
        uplink = lab.uplink_to_root(UPLINK_ROOT_IP, UPLINK_NODE_IP, node)
        network = Network(lab=lab, gateway=gateway, node=node, uplink_root_ip=uplink.root_ip)
        port = free_port()
        listener = f"listener {port} {uplink.root_ip}\n"
        with (
            Mosquitto(port=port, extra_config=listener) as broker,
            Collector(broker.port, f"lan_guard/{AGENT_ID}/state") as seen,
        ):
            mqtt = ["--mqtt-host", uplink.root_ip, "--mqtt-port", str(port)]
            agent = AgentRun.start(network, workdir, ["--agent-id", AGENT_ID, "--no-stdout", *mqtt])
            pid = agent.proc.pid  # `ip netns exec` execs the agent: same process
            for index, phase in enumerate(phases):
                dump_log = workdir / f"tcpdump-{index}.log"
                dump = node.spawn(["tcpdump", "-i", "eth0", "-n", "-w", "/dev/null"], log=dump_log)
                time.sleep(0.5)  # tcpdump's socket is open
                cpu_before = cpu_seconds(pid)
                started = time.monotonic()
                flood = None
                if phase.name.startswith("flood"):
                    # Bounded in time by `timeout` (SIGINT, so hping3 prints its count) and by
                    # the run's own timeout; sends only to the node's lab address.
                    flood = flooder.spawn(
                        f"timeout -s INT {seconds} hping3 -q --flood -S -p 8080 {node.ip}",
                        log=workdir / "hping3.log",
                    )
                while time.monotonic() - started < seconds:
                    if phase.event_after_s is None and any(
                        e["kind"] == "flood" and e["source"]["mac"] == flooder.mac
                        for e in read_events(agent.events_path)
                    ):
                        phase.event_after_s = time.monotonic() - started
                    time.sleep(0.005)
                if flood is not None:
                    flood.wait(timeout=seconds + 10)
                phase.cpu_s = cpu_seconds(pid) - cpu_before
                phase.peak_rss_mb = proc_status_kb(pid, "VmHWM") / 1024
                phase.alive = not agent.exited()
                lab.stop(dump)
                phase.wire_frames, phase.wire_drops = tcpdump_counts(dump_log.read_text())
            time.sleep(1.5)  # the flood's last second is closed and counted
            agent.stop()  # a clean stop publishes the final counters
            seen.wait_for(lambda msgs: any(b'"frames"' in m.payload for m in msgs), 10)
            states = [json.loads(p) for p in seen.payloads(f"lan_guard/{AGENT_ID}/state")]
    counters = states[-1]["counters"] if states else {}
    hping = (workdir / "hping3.log").read_text(errors="replace")
    sent = re.search(r"(\d+) packets transmitted", hping)
    report(phases, counters, int(sent.group(1)) if sent else -1, seconds)
    flood_phase = phases[1]
    ok = (
        flood_phase.event_after_s is not None
        and flood_phase.event_after_s < TARGET_EVENT_S
        and all(p.alive for p in phases)
        and flood_phase.peak_rss_mb < TARGET_RSS_MB
    )
    return 0 if ok else 1


def report(phases: list[Phase], counters: dict[str, int], sent: int, seconds: float) -> None:
    idle, flood = phases
    print(f"LAN Guard live flood benchmark: {seconds:g} s idle, then {seconds:g} s of")
    print(f"hping3 --flood SYNs at the node ({sent:,} sent), in a namespace lab.\n")
    rows = [
        ("frames on the node's wire (tcpdump)", f"{idle.wire_frames:,}", f"{flood.wire_frames:,}"),
        ("tcpdump kernel drops", f"{idle.wire_drops:,}", f"{flood.wire_drops:,}"),
        ("agent CPU time (s)", f"{idle.cpu_s:.2f}", f"{flood.cpu_s:.2f}"),
        (
            "agent peak RSS (MB, VmHWM so far)",
            f"{idle.peak_rss_mb:.1f}",
            f"{flood.peak_rss_mb:.1f}",
        ),
        ("agent still up", "yes" if idle.alive else "NO", "yes" if flood.alive else "NO"),
        (
            "flood event after flood start (s)",
            "none (right)" if idle.event_after_s is None else "UNEXPECTED",
            "none" if flood.event_after_s is None else f"{flood.event_after_s:.3f}",
        ),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'':<{width}}  {'idle':>14}  {'flood':>14}")
    for label, a, b in rows:
        print(f"{label:<{width}}  {a:>14}  {b:>14}")
    wire = idle.wire_frames + flood.wire_frames
    wire_drops = idle.wire_drops + flood.wire_drops
    print("\nThe same traffic, two captures on the node (both phases):")
    print(f"  {'':<24}  {'frames':>12}  {'kernel drops':>12}")
    print(f"  {'tcpdump (baseline)':<24}  {wire:>12,}  {wire_drops:>12,}")
    frames, drops = counters.get("frames", -1), counters.get("kernel_drops", -1)
    print(f"  {'lan-guard-agent':<24}  {frames:>12,}  {drops:>12,}")
    print(
        "  (tcpdump counts both directions; the agent only the frames it received: its"
        " kernel\n   filter leaves out the node's own replies;"
        f" events sent: {counters.get('events', -1)})"
    )
    verdicts = {
        f"flood event < {TARGET_EVENT_S:g} s": flood.event_after_s is not None
        and flood.event_after_s < TARGET_EVENT_S,
        f"peak RSS < {TARGET_RSS_MB:g} MB": flood.peak_rss_mb < TARGET_RSS_MB,
        "stayed up": idle.alive and flood.alive,
        "no event while idle": idle.event_after_s is None,
    }
    print("\ntargets: " + "; ".join(f"{k}: {'OK' if v else 'MISSED'}" for k, v in verdicts.items()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each phase")
    args = parser.parse_args()
    if not 0.5 <= args.seconds <= 30:
        parser.error("--seconds must be between 0.5 and 30 (the flood is bounded)")
    sys.path.insert(0, str(REPO))  # tests.netlab, tests.broker, tests.lab.agentlab
    if os.geteuid() != 0:
        print("agent_live_flood: skipped, needs root to build network namespaces.")
        return 0
    reason = skip_reason()
    if reason is not None:
        print(f"agent_live_flood: skipped, {reason}.")
        return 0
    workdir = Path(tempfile.mkdtemp(prefix="lan-guard-flood-"))
    try:
        return run(args.seconds, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
