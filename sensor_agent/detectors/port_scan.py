"""Level 2: stealth TCP scans and UDP scans of the monitoring node.

Scanners that avoid SYNs send segments no TCP conversation contains (FIN, NULL, XMAS: a
closed port answers RST, an open one keeps silent) or segments of a conversation that never
began (ACK and window scans map firewalls; Maimon's FIN/ACK). UDP scans send datagrams to the
ports they test. The node offers nothing, so one source probing several of its ports is
scanning, as for SYNs: the same per-source window, the evidence says which techniques and
protocol. ``stealth_scan`` and ``udp_scan`` are two instances of one detector.

What is not a probe, and why:

* ACK and FIN/ACK segments of a conversation the agent saw begin (a SYN to the node, or the
  SYN/ACK answering the node's own connection): :class:`Flows` remembers those. Conversations
  older than the agent count as probes of one port each, far below the threshold.
* RST segments (answers, never questions), segments carrying data (a conversation).
* UDP to the node's ephemeral ports (the answers to its own DNS, NTP and MQTT-SN queries land
  there) and to the few ports the node itself listens on (DHCP client, NTP, mDNS, ECHONET).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from ..bounded import BoundedTable
from ..parse import TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN
from . import LEVEL_SYN_SCAN, Detection

TCP_PSH: Final = 0x08
TCP_URG: Final = 0x20
_FLAGS: Final = TCP_FIN | TCP_SYN | TCP_RST | TCP_PSH | TCP_ACK | TCP_URG
TECHNIQUES: Final = {
    0: "null",
    TCP_FIN: "fin",
    TCP_FIN | TCP_PSH | TCP_URG: "xmas",
    TCP_ACK: "ack",  # also nmap's window scan (-sW): the same segment
    TCP_FIN | TCP_ACK: "maimon",
}
# Segments that only make sense inside a conversation (a probe only when none was seen).
IN_CONVERSATION: Final = frozenset(("ack", "maimon"))
MAX_SOURCE_IPS: Final = 16


def technique(flags: int, payload_len: int) -> str | None:
    """The scan technique a TCP segment to the node is, or ``None`` for an ordinary one."""
    if flags & (TCP_SYN | TCP_RST) or (payload_len and flags & TCP_ACK):
        return None
    name = TECHNIQUES.get(flags & _FLAGS)
    if name is None:  # any other flag soup without SYN/RST (e.g. PSH alone) probes too
        return "odd"
    return name


class _Flow:
    __slots__ = ("last",)

    def __init__(self, now: float) -> None:
        self.last = now


class Flows:
    """Conversations with the node seen to begin: (peer address, peer port, node port).

    A :class:`BoundedTable`: a conversation seen again (a segment inside it, a retransmitted
    SYN) is established, so a spray of forged SYNs pushes out only other newcomers, never
    the conversations going on (whose ACKs would otherwise count as probes). Losing one only
    makes its later ACKs count as probes of one port: a source still needs ``min_ports``.
    """

    def __init__(self, max_flows: int = 4096) -> None:
        # No expiry (a long conversation may idle for hours), no memory of evicted ones.
        self.table: BoundedTable[_Flow] = BoundedTable(max_flows, float("inf"), remember=False)

    def begin(self, now: float, ip: bytes, sport: int, dport: int) -> None:
        """A conversation with the node begins (or its SYN is sent again)."""
        key = _key(ip, sport, dport)
        if not self.inside(now, key):
            self.table.put(key, _Flow(now))

    def inside(self, now: float, key: bytes) -> bool:
        """Whether the conversation ``key`` (:func:`_key`) was seen to begin; it is refreshed."""
        flow = self.table.get(key)
        if flow is None:
            return False
        flow.last = now
        self.table.touch(key)
        return True

    def seen(self, now: float, ip: bytes, sport: int, dport: int) -> bool:
        """Whether a segment from ``ip``:``sport`` to node port ``dport`` is in a conversation
        seen to begin (which it then refreshes)."""
        return self.inside(now, _key(ip, sport, dport))

    def __len__(self) -> int:
        return len(self.table)


def _key(ip: bytes, sport: int, dport: int) -> bytes:
    return ip + sport.to_bytes(2, "big") + dport.to_bytes(2, "big")


@dataclass(frozen=True, slots=True)
class PortProbeConfig:
    # 3 distinct ports, as for SYN scans: the node offers nothing; nmap probes 1000.
    min_ports: int = 3
    # 60 s window: paced scans are also caught by the long-horizon detector (slow_sweep).
    window_s: float = 60.0
    max_sources: int = 4096
    max_ports: int = 1024


class _Source:
    __slots__ = ("first", "ip", "ips", "last", "ports", "probes", "reported", "techniques")

    def __init__(self, now: float, ip: bytes) -> None:
        self.first = now
        self.last = now
        self.ip = ip
        self.ips: dict[bytes, None] = {}
        self.probes = 0
        self.reported = False
        self.ports: dict[int, float] = {}
        self.techniques: dict[str, int] = {}


class PortProbeDetector:
    """Distinct node ports probed by one source (MAC) within a window, for one ``kind``."""

    def __init__(self, kind: str, protocol: str, config: PortProbeConfig | None = None) -> None:
        self.kind = kind
        self.protocol = protocol
        self.config = config or PortProbeConfig()
        self.sources: BoundedTable[_Source] = BoundedTable(
            self.config.max_sources, self.config.window_s
        )

    def on_probe(self, now: float, mac: bytes, ip: bytes, port: int, name: str) -> Detection | None:
        """A probe (technique ``name``) from ``mac``/``ip`` to ``port`` of the node."""
        cfg = self.config
        state = self.sources.current(mac, now, cfg.window_s, lambda: _Source(now, ip))
        state.last = now
        state.ip = ip
        if ip not in state.ips and len(state.ips) < MAX_SOURCE_IPS:
            state.ips[ip] = None
        state.probes += 1
        if name in state.techniques or len(state.techniques) < 8:
            state.techniques[name] = state.techniques.get(name, 0) + 1
        ports = state.ports
        is_new = port not in ports
        if is_new and len(ports) >= cfg.max_ports:
            return None
        ports[port] = now
        if state.reported:
            return self._detection(mac, state) if is_new else None
        if len(ports) < cfg.min_ports:
            return None
        horizon = now - cfg.window_s
        for old in [p for p, seen in ports.items() if seen < horizon]:
            del ports[old]
        if len(ports) < cfg.min_ports:
            return None
        state.reported = True
        state.first = min(ports.values())
        return self._detection(mac, state)

    def _detection(self, mac: bytes, state: _Source) -> Detection:
        protocol = self.protocol

        def evidence() -> dict[str, Any]:
            duration = max(state.last - state.first, 0.0)
            return {
                "protocol": protocol,
                "techniques": sorted(state.techniques),
                "ports": sorted(state.ports)[:256],
                "target_count": len(state.ports),
                "packets": state.probes,
                "window_s": round(duration, 3),
                "rate": round(state.probes / duration, 1) if duration > 0 else 0.0,
            }

        return Detection(
            self.kind,
            LEVEL_SYN_SCAN,
            mac,
            state.ip,
            state.first,
            state.last,
            evidence,
            tuple(state.ips),
        )

    def expire(self, now: float) -> None:
        self.sources.expire(now)
