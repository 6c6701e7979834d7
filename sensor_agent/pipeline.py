"""The pipeline: frames (bytes + timestamp) -> detectors -> incidents -> sinks.

Live capture and replay call the very same :meth:`Pipeline.feed_many`; decoy listeners call
:meth:`Pipeline.observe_session`; :meth:`Pipeline.tick` does expiry and the retained
payloads. Time only ever comes from the caller (frame timestamps, or the clock of the live
loop), so tests drive it with an injected clock.

The per-frame path is written for speed: one dict update per frame (frames per source per
second, which feeds both the flood detector and the hosts' ``last_seen``), an ethertype
dispatch on slices, and a method call only for the rare frames a detector wants: ARP, IPv4
to the node, UDP to the hostname ports. No objects, no logging for benign frames.

Hostile frames are data: one shorter than an Ethernet header, or shorter than the headers
its ethertype promises, is a parse error; an exception while handling any one frame (a bug,
or input nobody foresaw) is counted in ``handler_errors``, logged once per kind, and the
frames after it are handled as usual.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Network
from typing import Any

from .bounded import BoundedTable
from .contract import SCHEMA_VERSION
from .detectors import Detection
from .detectors.arp_scan import ArpScanConfig, ArpScanDetector
from .detectors.arp_spoof import ArpSpoofConfig, ArpSpoofDetector
from .detectors.flood import FloodConfig, FloodDetector
from .detectors.session import SessionConfig, SessionDetector
from .detectors.spray import SprayConfig, SprayDetector
from .detectors.syn_scan import SynScanConfig, SynScanDetector
from .formats import ip_bytes, ip_str, iso_utc, mac_str
from .hosts import HostInventory, HostsConfig, Prober
from .incidents import IncidentConfig, IncidentTracker
from .parse import (
    ARP_REQUEST,
    ETH_ARP,
    ETH_HEADER,
    ETH_IPV4,
    PROTO_TCP,
    PROTO_UDP,
    TCP_ACK,
    TCP_FIN,
    TCP_RST,
    TCP_SYN,
    UDP_DHCP_PORTS,
    UDP_HOSTNAME_PORTS,
    UDP_MDNS,
    UDP_NBNS,
    parse_arp,
    parse_dhcp,
    parse_mdns,
    parse_nbns,
    parse_tcp,
    parse_udp,
)
from .sinks import RetainedTopic, Sink

log = logging.getLogger(__name__)

DEFAULT_DECOY_PORTS = (554, 445, 9100, 80, 515, 139)
_NEVER = b"\xff" * 5  # longer than any 4-byte slice: matches no frame
NO_IP = b"\x00\x00\x00\x00"
# UDP destination ports worth a look, as the 2 bytes at offset 36 (IPv4 header without options)
_UDP_PORT_BYTES = frozenset(p.to_bytes(2, "big") for p in UDP_HOSTNAME_PORTS)


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    agent_id: str = "lan_guard"
    node_ip: bytes | None = None  # the monitoring node: SYN scans and sessions target it
    node_mac: bytes | None = None
    gateway_ip: bytes | None = None  # spoofing this IP is level 3
    gateway_mac: bytes | None = None  # pins the gateway's binding (else the first one heard)
    # The LAN the node is on (from the interface, or configured): quarantines outside it, and
    # its network and broadcast addresses, are refused.
    subnet: IPv4Network | None = None
    decoy_ports: tuple[int, ...] = DEFAULT_DECOY_PORTS
    arp_scan: ArpScanConfig = field(default_factory=ArpScanConfig)
    syn_scan: SynScanConfig = field(default_factory=SynScanConfig)
    session: SessionConfig = field(default_factory=SessionConfig)
    flood: FloodConfig = field(default_factory=FloodConfig)
    arp_spoof: ArpSpoofConfig = field(default_factory=ArpSpoofConfig)
    arp_spray: SprayConfig = field(default_factory=SprayConfig)
    source_spray: SprayConfig = field(default_factory=SprayConfig)
    incidents: IncidentConfig = field(default_factory=IncidentConfig)
    hosts: HostsConfig = field(default_factory=HostsConfig)
    # Retained state: at most once a second when something changed, else every 30 s.
    state_interval_s: float = 30.0
    # Retained hosts: at most every 10 s when the inventory changed, else every 300 s.
    hosts_min_interval_s: float = 10.0
    hosts_interval_s: float = 300.0
    # Detector state expiry runs every 5 s (cheap: only the front of each table is looked at).
    expire_interval_s: float = 5.0
    # Sources counted per one-second bucket: 65,536 (a LAN has a few hundred). Beyond, frames
    # of new sources are counted only in the total (``untracked_frames``): memory stays bounded
    # under a random-MAC flood, which the total flood threshold still reports.
    max_sources_per_second: int = 65_536


class Pipeline:
    def __init__(
        self,
        config: PipelineConfig,
        sinks: Sequence[Sink] = (),
        prober: Prober | None = None,
        id_factory: Callable[[], str] | None = None,
    ) -> None:
        self.config = config
        self.sinks = list(sinks)
        self.prober = prober
        self.arp_scan = ArpScanDetector(config.arp_scan)
        self.syn_scan = SynScanDetector(config.syn_scan)
        self.session = SessionDetector(config.session)
        self.flood = FloodDetector(config.flood)
        self.hosts = HostInventory(
            config.hosts, ignore=frozenset([config.node_mac] if config.node_mac else [])
        )
        # A binding of a host the inventory knows is never pushed out by a spray of claims.
        self.arp_spoof = ArpSpoofDetector(
            config.arp_spoof, config.gateway_ip, config.gateway_mac, keep=self.hosts.knows
        )
        self.arp_spray = SprayDetector("arp_spray", config.arp_spray)
        self.source_spray = SprayDetector("source_spray", config.source_spray)
        extra = {"id_factory": id_factory} if id_factory is not None else {}
        self.incidents = IncidentTracker(
            config.agent_id, self.hosts.identity, config.incidents, **extra
        )
        # Ports where a data segment in a frame means level 3. In live mode the ports whose
        # decoy listener is up are removed: the listener reports those itself, with the sample.
        self.frame_session_ports = frozenset(config.decoy_ports)
        self._frames_closed = 0  # frames of closed one-second buckets
        self.events = 0
        self.parse_errors = 0
        self.kernel_drops = 0
        self.unattributed_sessions = 0
        self.untracked_frames = 0
        self.sink_errors = 0
        self.handler_errors = 0
        self.leaderless_floods = 0
        self._errors_logged: set[tuple[str, str]] = set()
        self.events_by_kind: Counter[str] = Counter()
        self.extra_counters: dict[str, Callable[[], int]] = {}  # e.g. outbox_dropped (MQTT)
        self.first_ts: float | None = None
        self.last_ts = 0.0
        # the one-second bucket of frames per source
        self._counts: dict[bytes, int] = {}
        self._total = 0
        self._sec_start = float("-inf")
        self._sec_end = float("-inf")
        self._next_expire = float("-inf")
        self._last_state = float("-inf")
        self._last_hosts = float("-inf")
        self._state_dirty = True
        self._recent_udp: set[bytes] = set()  # cleared every hosts payload and when full

    # --- frames ---------------------------------------------------------------------------

    @property
    def frames(self) -> int:
        """Frames fed so far."""
        return self._frames_closed + self._total

    def feed(self, ts: float, frame: bytes) -> None:
        """One captured frame (Ethernet, as read from the wire) at unix time ``ts``."""
        self.feed_many((ts,), (frame,))

    def feed_many(self, timestamps: Iterable[float], frames: Iterable[bytes]) -> None:
        """Frames (with their timestamps, in time order). Never raises on frame contents: bad
        ones are counted as parse errors, an exception while handling one as a handler error.
        Two parallel sequences rather than (ts, frame) pairs: a capture reader fills them
        without building a tuple per frame."""
        counts = self._counts
        count_of = counts.get
        node_ip = self.config.node_ip or _NEVER
        node_last = node_ip[3] if len(node_ip) == 4 else -1
        source_fps = self.config.flood.source_fps
        total_fps = self.config.flood.total_fps
        udp_ports = _UDP_PORT_BYTES
        max_sources = self.config.max_sources_per_second
        sec_end = self._sec_end
        total = self._total
        ts = self.last_ts
        for ts, frame in zip(timestamps, frames, strict=True):
            if ts >= sec_end:
                self._total = total
                self.tick(ts)
                sec_end = self._sec_end
                total = 0
            total += 1
            src = frame[6:12]
            try:  # free in CPython 3.11 until something raises
                n = count_of(src, 0) + 1
                counts[src] = n
                # A source's first frame in a second is checked for length (once, not per
                # frame): a cut address never becomes a source. A short frame after a whole
                # one of the same source counts for that source, and is a parse error below.
                if n == 1:
                    if len(frame) < ETH_HEADER:  # not even Ethernet: no source to count
                        del counts[src]
                        self.parse_errors += 1
                        continue
                    if len(counts) > max_sources:  # a spray of random source MACs
                        del counts[src]
                        self.untracked_frames += 1
                elif n == source_fps:
                    self._flood(ts, src, n, "source")
                if total == total_fps:
                    self._total_flood(ts, total)
                # Dispatch on the ethertype's two bytes as ints (no slice object per frame).
                # The same dispatch, for 802.1Q-tagged frames, is _dispatch().
                if frame[12] == 0x08:
                    low = frame[13]
                    if low == 0x00:  # IPv4: only traffic to the node and hostname announcements
                        if frame[33] == node_last and frame[30:34] == node_ip:
                            self._to_node(ts, frame)
                        elif frame[23] == PROTO_UDP and frame[36:38] in udp_ports:
                            self._udp(ts, frame)
                    elif low == 0x06:
                        self._arp(ts, frame)
                elif frame[12] == 0x81 and frame[13] == 0x00:
                    self._dispatch(ts, frame[:12] + frame[16:])
            except IndexError:  # shorter than the headers its ethertype promises
                self.parse_errors += 1
            except Exception as exc:  # one frame never stops the others
                self.failed(exc, "a frame")
        self._total = total
        self.last_ts = ts

    def failed(self, exc: Exception, what: str) -> None:
        """An exception while handling ``what`` (a frame, a tick, a decoy connection): counted
        in ``handler_errors`` and logged with its traceback once per place and type."""
        self.handler_errors += 1
        kind = (what, type(exc).__name__)
        if kind not in self._errors_logged:
            self._errors_logged.add(kind)
            log.error(
                "%s raised %s while handling %s; the agent goes on (counted in handler_errors,"
                " logged once)",
                type(exc).__name__,
                exc,
                what,
                exc_info=exc,
            )

    def _dispatch(self, ts: float, frame: bytes) -> None:
        """The per-frame dispatch of :meth:`feed_many`, for an untagged 802.1Q frame."""
        ethertype = frame[12:14]
        if len(frame) < 14 or (ethertype == ETH_IPV4 and len(frame) < 34):
            self.parse_errors += 1
        elif ethertype == ETH_IPV4:
            if frame[30:34] == self.config.node_ip:
                self._to_node(ts, frame)
            elif frame[23] == PROTO_UDP and frame[36:38] in _UDP_PORT_BYTES:
                self._udp(ts, frame)
        elif ethertype == ETH_ARP:
            self._arp(ts, frame)

    def _to_node(self, ts: float, frame: bytes) -> None:
        src = frame[6:12]
        if src != self.gateway_mac():  # the router forwards from any address of the Internet
            spray = self.source_spray.on_address(ts, src, frame[26:30])
            if spray is not None:
                self._detected(spray, ts)
        if frame[23] != PROTO_TCP:
            return
        tcp = parse_tcp(frame)
        if tcp is None:
            self.parse_errors += 1
            return
        flags = tcp.flags
        det: Detection | None = None
        if flags & (TCP_SYN | TCP_ACK) == TCP_SYN:
            det = self.syn_scan.on_syn(ts, src, tcp.src_ip, tcp.dport)
        elif tcp.payload_len > 0:
            if tcp.dport in self.frame_session_ports:
                data = frame[tcp.payload_offset : tcp.payload_offset + tcp.payload_len]
                det = self.session.on_data(
                    ts, src, tcp.src_ip, tcp.dport, nbytes=tcp.payload_len, data=data
                )
        elif flags & (TCP_SYN | TCP_ACK | TCP_FIN | TCP_RST) == TCP_ACK:
            state = self.syn_scan.sources.get(src)  # the final ACK of a handshake it started
            if state is not None and tcp.dport in state.ports:
                det = self.syn_scan.on_handshake(ts, src, tcp.src_ip, tcp.dport)
        if det is not None:
            self._detected(det, ts)

    def _arp(self, ts: float, frame: bytes) -> None:
        arp = parse_arp(frame)
        if arp is None:
            self.parse_errors += 1
            return
        src = frame[6:12]
        own = src == arp.sender_mac  # else a claim on behalf of another MAC: never learnt
        # A claim of a binding already held (a host refreshing its own) is no sign of a spray.
        if arp.sender_ip != NO_IP and self.arp_spoof.mac_of(arp.sender_ip) != arp.sender_mac:
            spray = self.arp_spray.on_address(
                ts, src, arp.sender_ip + arp.sender_mac, forged=not own
            )
            if spray is not None:
                self._detected(spray, ts)
        spoof = self.arp_spoof.on_arp(ts, src, arp.sender_mac, arp.sender_ip)
        if spoof is not None:
            self._detected(spoof, ts)
        elif own:
            self.hosts.learn_ip(arp.sender_mac, arp.sender_ip, ts)
        if arp.op == ARP_REQUEST:
            det = self.arp_scan.on_request(ts, src, arp.sender_ip, arp.target_ip)
            if det is not None:
                self._detected(det, ts)

    def _udp(self, ts: float, frame: bytes) -> None:
        # Announcements repeat byte for byte (mDNS, NetBIOS): a repeat teaches nothing new.
        recent = self._recent_udp
        if frame in recent:
            return
        if len(recent) >= 1024:
            recent.clear()
        recent.add(frame)
        udp = parse_udp(frame)
        if udp is None:
            self.parse_errors += 1
            return
        payload = frame[udp.payload_offset : udp.payload_offset + udp.payload_len]
        src = frame[6:12]
        hosts = self.hosts
        if udp.dport in UDP_DHCP_PORTS:
            dhcp = parse_dhcp(payload)
            if dhcp is None:
                return
            if dhcp.op == 1:  # from the client: its name and the address it asks for
                if dhcp.hostname:
                    hosts.learn_name(dhcp.client_mac, dhcp.hostname, ts)
                ip = dhcp.requested_ip or dhcp.client_ip
                hosts.learn_ip(dhcp.client_mac, ip, ts)
            elif dhcp.message_type == 5:  # ACK from the server: the address is the client's
                hosts.learn_ip(dhcp.client_mac, dhcp.your_ip, ts)
        elif udp.dport == UDP_MDNS:
            for name, ip in parse_mdns(payload):
                owner = src if ip == udp.src_ip else hosts.mac_of(ip)
                if owner is not None:
                    hosts.learn_name(owner, name, ts)
                    hosts.learn_ip(owner, ip, ts)
        elif udp.dport == UDP_NBNS:
            nb_name = parse_nbns(payload)
            if nb_name:
                hosts.learn_name(src, nb_name, ts)
                hosts.learn_ip(src, udp.src_ip, ts)

    def _total_flood(self, ts: float, total: int) -> None:
        """The LAN as a whole reached the total threshold: reported as the flood of the source
        that sent the most, when one stands out (at least 1 % of the frames). When none does
        (every frame from another forged MAC) naming one would accuse whoever happened to send
        a frame in that second: the second is counted in ``leaderless_floods`` instead."""
        counts = self._counts
        leader = max(counts, key=counts.__getitem__) if counts else None
        if leader is None or counts[leader] * 100 < total:
            self.leaderless_floods += 1
            return
        self._flood(ts, leader, total, "total")

    def _flood(self, ts: float, mac: bytes, count: int, scope: str) -> None:
        self._detected(self.flood.over(ts, mac, count, self._sec_start, scope), ts)

    # --- decoy listeners ------------------------------------------------------------------

    def observe_session(
        self,
        ts: float,
        ip: str,
        port: int,
        *,
        nbytes: int,
        data: bytes = b"",
        mac: bytes | None = None,
    ) -> None:
        """A decoy listener on ``port`` got a connection from ``ip``: ``nbytes`` of application
        data (``data``: the first of them) make a level-3 session, none a completed handshake
        (level 2 evidence: a connect scan). The peer's MAC comes from the hosts inventory."""
        ip_raw = ip_bytes(ip)
        mac = mac or self.hosts.mac_of(ip_raw)
        if mac is None:
            self.unattributed_sessions += 1
            log.warning("decoy port %d: connection from %s whose MAC is unknown", port, ip)
            return
        if nbytes > 0:
            det: Detection | None = self.session.on_data(
                ts, mac, ip_raw, port, nbytes=nbytes, data=data
            )
        else:
            det = self.syn_scan.on_handshake(ts, mac, ip_raw, port)
        if det is not None:
            self._detected(det, ts)

    def set_live_decoys(self, ports: Iterable[int]) -> None:
        """Ports whose decoy listener is up: their sessions are reported by the listener."""
        self.frame_session_ports = frozenset(self.config.decoy_ports) - frozenset(ports)

    # --- events and periodic work -----------------------------------------------------------

    def _detected(self, det: Detection, now: float) -> None:
        event = self.incidents.on_detection(det, now)
        if event is not None:
            self._publish(event)

    def _publish(self, event: dict[str, Any]) -> None:
        self.events += 1
        self.events_by_kind[event["kind"]] += 1
        self._state_dirty = True
        for sink in self.sinks:
            try:
                sink.event(event)
            except Exception:
                self.sink_errors += 1
                log.exception("sink %s failed to take event %s", type(sink).__name__, event["id"])

    def _retained(self, topic: RetainedTopic, payload: dict[str, Any]) -> None:
        for sink in self.sinks:
            try:
                sink.retained(topic, payload)
            except Exception:
                self.sink_errors += 1
                log.exception("sink %s failed to take retained %s", type(sink).__name__, topic)

    def _close_bucket(self) -> None:
        self._frames_closed += self._total
        counts = self._counts
        if counts:
            self.hosts.seen_many(counts, self._sec_end)
            for det in self.flood.second_done(counts, self._total):
                self._detected(det, self._sec_end)
            counts.clear()
        self._total = 0

    def tick(self, now: float) -> None:
        """Time has come to ``now``: close the frame bucket, expire state, send held-back
        updates, detect hosts that left, refresh retained payloads when due. Never raises (an
        exception is counted and logged, as for a frame)."""
        try:
            self._tick(now)
        except Exception as exc:
            self.failed(exc, "a tick")

    def _tick(self, now: float) -> None:
        if self.first_ts is None:
            self.first_ts = now
        if now >= self._sec_end:
            self._close_bucket()
            self._sec_start = float(int(now))
            self._sec_end = self._sec_start + 1.0
        cfg = self.config
        if now >= self._next_expire:
            self._next_expire = now + cfg.expire_interval_s
            for detector in self._detectors():
                detector.expire(now)
        for event in self.incidents.tick(now):
            self._publish(event)
        for host, silent_s in self.hosts.tick(now, self.incidents, self.prober):
            left = self.incidents.host_left_event(host.mac, host.ip, now, silent_s)
            if left is not None:
                self._publish(left)
        if (self._state_dirty and now - self._last_state >= 1.0) or (
            now - self._last_state >= cfg.state_interval_s
        ):
            self.publish_state(now)
        since_hosts = now - self._last_hosts
        if (self.hosts.changed and since_hosts >= cfg.hosts_min_interval_s) or (
            since_hosts >= cfg.hosts_interval_s
        ):
            self.publish_hosts(now)

    def finish(self, now: float | None = None) -> None:
        """End of input (replay): close the bucket, send every held-back update, final state."""
        now = self.last_ts if now is None else now
        self._close_bucket()
        for event in self.incidents.flush(now):
            self._publish(event)
        self.publish_state(now)
        self.publish_hosts(now)

    # --- payloads -----------------------------------------------------------------------------

    def _detectors(self) -> tuple[Any, ...]:
        return (
            self.arp_scan,
            self.syn_scan,
            self.session,
            self.flood,
            self.arp_spoof,
            self.arp_spray,
            self.source_spray,
        )

    def _tables(self) -> list[BoundedTable[Any]]:
        return [
            self.arp_scan.sources,
            self.syn_scan.sources,
            self.syn_scan.by_ip,
            self.session.sources,
            self.flood.sources,
            self.arp_spoof.bindings,
            self.arp_spoof.claims,
            self.arp_spray.sources,
            self.source_spray.sources,
            self.hosts.hosts,
        ]

    def counters(self) -> dict[str, int]:
        counters = {
            "frames": self.frames,
            "events": self.events,
            "parse_errors": self.parse_errors,
            "kernel_drops": self.kernel_drops,
            "outbox_dropped": 0,
            "evictions": sum(t.evictions for t in self._tables()) + self.incidents.evictions,
            "unattributed_sessions": self.unattributed_sessions,
            "untracked_frames": self.untracked_frames,
            "sink_errors": self.sink_errors,
            "handler_errors": self.handler_errors,
            "leaderless_floods": self.leaderless_floods,
            "hosts": len(self.hosts.hosts),
        }
        for name, read in self.extra_counters.items():
            counters[name] = read()
        return counters

    def state_payload(self, now: float) -> dict[str, Any]:
        return {
            "schema": SCHEMA_VERSION,
            "agent_id": self.config.agent_id,
            "level": self.incidents.level(),
            "incidents": self.incidents.state_items(),
            "counters": self.counters(),
            "updated_at": iso_utc(now),
        }

    def gateway_mac(self) -> bytes | None:
        """The gateway's MAC: configured, else the binding the ARP-spoofing detector holds for
        the gateway's IP: the first claim the gateway's IP made for itself, pinned (no spray
        pushes it out, and no claim on behalf of another MAC writes it)."""
        if self.config.gateway_mac is not None or self.config.gateway_ip is None:
            return self.config.gateway_mac
        return self.arp_spoof.mac_of(self.config.gateway_ip)

    def publish_state(self, now: float) -> None:
        self._last_state = now
        self._state_dirty = False
        self._retained("state", self.state_payload(now))

    def publish_hosts(self, now: float) -> None:
        self._last_hosts = now
        self._recent_udp.clear()  # re-learn from announcements (a host may have been evicted)
        self._retained("hosts", self.hosts.payload(self.config.agent_id, now))


def info_payload(
    config: PipelineConfig,
    *,
    version: str,
    interface: str,
    decoy_ports: Sequence[int],
    decoy_errors: Sequence[tuple[int, str]],
    capabilities: Sequence[str],
    started_at: float,
    gateway_mac: bytes | None = None,
) -> dict[str, Any]:
    """The retained ``info`` payload (``schema/info.schema.json``); ``gateway_mac`` as
    resolved at start (default: the configured one)."""
    gateway_mac = gateway_mac or config.gateway_mac
    return {
        "schema": SCHEMA_VERSION,
        "agent_id": config.agent_id,
        "version": version,
        "interface": interface,
        "node": {
            "ip": ip_str(config.node_ip) if config.node_ip else None,
            "mac": mac_str(config.node_mac) if config.node_mac else None,
        },
        "gateway": ip_str(config.gateway_ip) if config.gateway_ip else None,
        "gateway_mac": mac_str(gateway_mac) if gateway_mac else None,
        "decoy_ports": list(decoy_ports),
        "decoy_errors": [{"port": port, "error": error} for port, error in decoy_errors],
        "capabilities": list(dict.fromkeys(capabilities)),
        "started_at": iso_utc(started_at),
    }
