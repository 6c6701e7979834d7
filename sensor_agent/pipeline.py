"""The pipeline: frames (bytes + timestamp) -> detectors -> incidents -> sinks.

Live capture and replay call the very same :meth:`Pipeline.feed_many`; decoy listeners call
:meth:`Pipeline.observe_session`; :meth:`Pipeline.tick` does expiry and the retained
payloads. Time only ever comes from the caller (frame timestamps, or the clock of the live
loop), so tests drive it with an injected clock.

The per-frame path is written for speed: one dict update per frame (frames per source per
second, which feeds both the flood detector and the hosts' ``last_seen``), an ethertype
dispatch on slices, and a method call only for the rare frames a detector wants: ARP, IPv4
to the node, UDP to the hostname, discovery and ECHONET Lite ports, IPv6 (Neighbour
Discovery, traffic to the node). No objects, no logging for benign frames.

Hostile frames are data: one shorter than an Ethernet header, or shorter than the headers
its ethertype promises, is a parse error; an exception while handling any one frame (a bug,
or input nobody foresaw) is counted in ``handler_errors``, logged once per kind, and the
frames after it are handled as usual.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Network
from typing import Any

from . import echonet
from .bounded import BoundedTable
from .contract import SCHEMA_VERSION
from .detectors import Detection
from .detectors.arp_scan import ArpScanConfig, ArpScanDetector
from .detectors.arp_spoof import ArpSpoofConfig, ArpSpoofDetector
from .detectors.cache_exhaustion import CacheExhaustionConfig, CacheExhaustionDetector
from .detectors.dhcp import DhcpConfig, DhcpStarvationDetector, RogueDhcpDetector
from .detectors.echonet import MULTICAST, EchonetConfig, EchonetDetector
from .detectors.flood import FloodConfig, FloodDetector
from .detectors.ipv6 import Ipv6Config, Ipv6SweepDetector, NdpSpoofDetector, RogueRaDetector
from .detectors.port_scan import (
    IN_CONVERSATION,
    Flows,
    PortProbeConfig,
    PortProbeDetector,
    technique,
)
from .detectors.session import SessionConfig, SessionDetector
from .detectors.slow_sweep import SlowSweepConfig, SlowSweepDetector
from .detectors.spray import SprayConfig, SprayDetector
from .detectors.syn_scan import SynScanConfig, SynScanDetector
from .formats import addr_bytes, addr_str, ip_str, iso_utc, mac_str
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
    Tcp,
    Udp,
    parse_arp,
    parse_dhcp,
    parse_dhcp_server,
    parse_mdns,
    parse_nbns,
    parse_tcp,
    parse_udp,
)
from .parse6 import (
    ETH_IPV6,
    ICMP6_ECHO_REQUEST,
    ICMP6_NEIGHBOR_ADVERT,
    ICMP6_NEIGHBOR_SOLICIT,
    ICMP6_ROUTER_ADVERT,
    PROTO_ICMP6,
    UNSPECIFIED,
    Ip6,
    is_multicast,
    parse_icmp6,
    parse_ipv6,
    parse_tcp6,
    parse_udp6,
)
from .sinks import RetainedTopic, Sink

log = logging.getLogger(__name__)

DEFAULT_DECOY_PORTS = (554, 445, 9100, 80, 515, 139)
_NEVER = b"\xff" * 5  # longer than any 4-byte slice: matches no frame
# Discovery queries (context, not alarms): SSDP M-SEARCH, WS-Discovery Probe, SNMP requests;
# mDNS and NetBIOS queries go through the hostname ports.
UDP_SSDP = 1900
UDP_WSD = 3702
UDP_SNMP = 161
UDP_DISCOVERY_PORTS = frozenset((UDP_SSDP, UDP_WSD, UDP_SNMP))
# UDP destination ports worth a look, as the 2 bytes at offset 36 (IPv4 header without options)
_UDP_PORTS = UDP_HOSTNAME_PORTS | UDP_DISCOVERY_PORTS | {echonet.PORT}
_UDP_PORT_BYTES = frozenset(p.to_bytes(2, "big") for p in _UDP_PORTS)
# UDP ports of the node that are not probes: its DHCP client, NTP, mDNS, DHCPv6 client,
# ECHONET Lite (the decoy node: reported by the ECHONET detector).
NODE_UDP_PORTS = frozenset((68, 123, 546, UDP_MDNS, echonet.PORT))
_NO_IP = b"\x00\x00\x00\x00"
_IP6_TCP_UDP = frozenset((b"\x06", b"\x11"))
_NDP = frozenset((ICMP6_NEIGHBOR_SOLICIT, ICMP6_NEIGHBOR_ADVERT, ICMP6_ROUTER_ADVERT))
# Kinds whose culprit the sending MAC's own address names (forged source addresses).
_SCAN_KINDS = frozenset(("syn_scan", "stealth_scan", "udp_scan"))


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    agent_id: str = "lan_guard"
    node_ip: bytes | None = None  # the monitoring node: SYN scans and sessions target it
    node_mac: bytes | None = None
    node_ip6: tuple[bytes, ...] = ()  # the node's IPv6 addresses: scans and sessions target them
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
    stealth_scan: PortProbeConfig = field(default_factory=PortProbeConfig)
    udp_scan: PortProbeConfig = field(default_factory=PortProbeConfig)
    slow_sweep: SlowSweepConfig = field(default_factory=SlowSweepConfig)
    ipv6: Ipv6Config = field(default_factory=Ipv6Config)
    dhcp: DhcpConfig = field(default_factory=DhcpConfig)
    cache_exhaustion: CacheExhaustionConfig = field(default_factory=CacheExhaustionConfig)
    echonet: EchonetConfig = field(default_factory=EchonetConfig)
    # The node's ephemeral ports (Linux's default ip_local_port_range): answers to its own
    # queries (DNS, NTP) land there, so UDP to them is never a probe.
    ephemeral_ports: tuple[int, int] = (32768, 60999)
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
        self.stealth_scan = PortProbeDetector("stealth_scan", "tcp", config.stealth_scan)
        self.udp_scan = PortProbeDetector("udp_scan", "udp", config.udp_scan)
        self.flows = Flows()
        self.slow_sweep = SlowSweepDetector(
            config.slow_sweep,
            {
                "arp_scan": config.arp_scan.min_targets,
                "syn_scan": config.syn_scan.min_ports,
                "stealth_scan": config.stealth_scan.min_ports,
                "udp_scan": config.udp_scan.min_ports,
            },
        )
        self.ipv6_sweep = Ipv6SweepDetector(config.ipv6)
        self.rogue_ra = RogueRaDetector(config.ipv6)
        self.dhcp_starvation = DhcpStarvationDetector(config.dhcp)
        self.rogue_dhcp = RogueDhcpDetector(config.dhcp)
        self.cache_exhaustion = CacheExhaustionDetector(config.cache_exhaustion)
        self.echonet = EchonetDetector(
            (echonet.NODE_PROFILE, echonet.AIR_CONDITIONER), config.echonet
        )
        self.node_ip6 = frozenset(config.node_ip6)
        self.hosts = HostInventory(
            config.hosts, ignore=frozenset([config.node_mac] if config.node_mac else [])
        )
        # A binding of a host the inventory knows is never pushed out by a spray of claims.
        self.arp_spoof = ArpSpoofDetector(
            config.arp_spoof, config.gateway_ip, config.gateway_mac, keep=self.hosts.knows
        )
        self.ndp_spoof = NdpSpoofDetector(config.ipv6, keep=self.hosts.knows)
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
                elif frame[12] == 0x86 and frame[13] == 0xDD:
                    self._ipv6(ts, frame)
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
        elif ethertype == ETH_IPV6:
            self._ipv6(ts, frame)

    def _to_node(self, ts: float, frame: bytes) -> None:
        """An IPv4 packet to the node."""
        src = frame[6:12]
        if src != self.gateway_mac():  # the router forwards from any address of the Internet
            spray = self.source_spray.on_address(ts, src, frame[26:30])
            if spray is not None:
                self._detected(spray, ts)
        proto = frame[23]
        if proto == PROTO_TCP:
            tcp = parse_tcp(frame)
            if tcp is None:
                self.parse_errors += 1
                return
            self._tcp_to_node(ts, frame, tcp)
        elif proto == PROTO_UDP:
            udp = parse_udp(frame)
            if udp is None:
                self.parse_errors += 1
                return
            self._udp_to_node(ts, frame, udp)

    def _tcp_to_node(self, ts: float, frame: bytes, tcp: Tcp) -> None:
        """A TCP segment to one of the node's addresses (IPv4 or IPv6)."""
        src = frame[6:12]
        flags = tcp.flags
        det: Detection | None = None
        syn_ack = flags & (TCP_SYN | TCP_ACK)
        if syn_ack == TCP_SYN:
            self.flows.begin(ts, tcp.src_ip, tcp.sport, tcp.dport)
            det = self.syn_scan.on_syn(ts, src, tcp.src_ip, tcp.dport)
            self._port_probe(ts, src, tcp.src_ip, "syn_scan", tcp.dport, fast=det is not None)
        elif syn_ack == TCP_SYN | TCP_ACK:  # the answer to a connection the node opened
            self.flows.begin(ts, tcp.src_ip, tcp.sport, tcp.dport)
        elif tcp.payload_len > 0 and flags & TCP_ACK:
            if tcp.dport in self.frame_session_ports:
                data = frame[tcp.payload_offset : tcp.payload_offset + tcp.payload_len]
                det = self.session.on_data(
                    ts, src, tcp.src_ip, tcp.dport, nbytes=tcp.payload_len, data=data
                )
        else:
            if flags & (TCP_SYN | TCP_ACK | TCP_FIN | TCP_RST) == TCP_ACK:
                state = self.syn_scan.sources.get(src)  # the final ACK of a handshake it started
                if state is not None and tcp.dport in state.ports:
                    det = self.syn_scan.on_handshake(ts, src, tcp.src_ip, tcp.dport)
            name = technique(flags, tcp.payload_len)
            if name is not None and (
                name not in IN_CONVERSATION
                or not self.flows.seen(ts, tcp.src_ip, tcp.sport, tcp.dport)
            ):
                probe = self.stealth_scan.on_probe(ts, src, tcp.src_ip, tcp.dport, name)
                if probe is not None:
                    self._detected(probe, ts)
                self._port_probe(
                    ts, src, tcp.src_ip, "stealth_scan", tcp.dport, fast=probe is not None
                )
        if det is not None:
            self._detected(det, ts)

    def _udp_to_node(self, ts: float, frame: bytes, udp: Udp) -> None:
        """A UDP datagram to one of the node's addresses (IPv4 or IPv6)."""
        dport = udp.dport
        if dport in _UDP_PORTS or udp.sport == echonet.PORT:
            self._udp_datagram(ts, frame, udp, to_node=True)
        low, high = self.config.ephemeral_ports
        if dport in NODE_UDP_PORTS or low <= dport <= high:
            return
        src = frame[6:12]
        det = self.udp_scan.on_probe(ts, src, udp.src_ip, dport, "udp")
        if det is not None:
            self._detected(det, ts)
        self._port_probe(ts, src, udp.src_ip, "udp_scan", dport, fast=det is not None)

    def _port_probe(
        self, ts: float, src: bytes, ip: bytes, kind: str, port: int, *, fast: bool
    ) -> None:
        det = self.slow_sweep.on_port(ts, src, ip, kind, port, fast=fast)
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
        if arp.sender_ip != _NO_IP and self.arp_spoof.mac_of(arp.sender_ip) != arp.sender_mac:
            spray = self.arp_spray.on_address(
                ts, src, arp.sender_ip + arp.sender_mac, forged=not own
            )
            if spray is not None:
                self._detected(spray, ts)
        # A claim counts towards cache exhaustion when it is made for another MAC, or by a
        # MAC that already held another address: a host's own single address never does.
        previous = self.hosts.ip_of(arp.sender_mac)
        claim_counts = arp.sender_ip != _NO_IP and (
            not own or (previous is not None and previous != arp.sender_ip)
        )
        spoof = self.arp_spoof.on_arp(ts, src, arp.sender_mac, arp.sender_ip)
        if spoof is not None:
            self._detected(spoof, ts)
        elif own:
            self.hosts.learn_ip(arp.sender_mac, arp.sender_ip, ts)
        if claim_counts:
            claim = self.cache_exhaustion.on_claim(ts, src, arp.sender_ip)
            if claim is not None:
                self._detected(claim, ts)
        if arp.op == ARP_REQUEST:
            target = arp.target_ip
            det = self.arp_scan.on_request(ts, src, arp.sender_ip, target)
            if det is not None:
                self._detected(det, ts)
            # Slow sweeps ask for addresses nobody holds (the router asks for whatever its
            # routed traffic needs: not counted).
            if (
                target not in (arp.sender_ip, _NO_IP)
                and self.hosts.mac_of(target) is None
                and self.arp_spoof.mac_of(target) is None
                and src != self.gateway_mac()
            ):
                sender = arp.sender_ip if arp.sender_ip != _NO_IP else None
                slow = self.slow_sweep.on_dark_arp(ts, src, sender, target, fast=det is not None)
                if slow is not None:
                    self._detected(slow, ts)

    def _ipv6(self, ts: float, frame: bytes) -> None:
        # Most IPv6 frames are TCP/UDP between other hosts: skipped on two slices (a header
        # chain with extension headers is parsed in full).
        next_header = frame[20:21]
        if next_header in _IP6_TCP_UDP and frame[38:54] not in self.node_ip6:
            if next_header == b"\x06" or frame[56:58] not in _UDP_PORT_BYTES:
                return
            if frame in self._recent_udp:  # a repeated announcement, handled whole before
                return
        ip = parse_ipv6(frame)
        if ip is None:
            self.parse_errors += 1
            return
        nh = ip.next_header
        if nh == PROTO_ICMP6:
            self._icmp6(ts, frame, ip)
        elif ip.dst in self.node_ip6:
            if nh == PROTO_TCP:
                tcp = parse_tcp6(frame, ip)
                if tcp is None:
                    self.parse_errors += 1
                else:
                    self._tcp_to_node(ts, frame, tcp)
            elif nh == PROTO_UDP:
                udp = parse_udp6(frame, ip)
                if udp is None:
                    self.parse_errors += 1
                else:
                    self._udp_to_node(ts, frame, udp)
        elif nh == PROTO_UDP:
            udp = parse_udp6(frame, ip)
            if udp is not None and (udp.dport in _UDP_PORTS or udp.sport == echonet.PORT):
                self._udp_datagram(ts, frame, udp, to_node=False)

    def _icmp6(self, ts: float, frame: bytes, ip: Ip6) -> None:
        icmp = parse_icmp6(frame, ip)
        if icmp is None:
            self.parse_errors += 1
            return
        src = frame[6:12]
        kind = icmp.type
        if kind == ICMP6_ECHO_REQUEST:
            sweep = self.ipv6_sweep.on_target(ts, src, ip.src, ip.dst, is_multicast(ip.dst))
            if sweep is not None:
                self._detected(sweep, ts)
            return
        # Neighbour Discovery is only valid from the link itself (hop limit 255, RFC 4861):
        # anything else was routed or forged from afar and is ignored, as hosts ignore it.
        if ip.hop_limit != 255 or kind not in _NDP:
            return
        lladdr = icmp.lladdr or src
        if kind == ICMP6_NEIGHBOR_SOLICIT:
            if ip.src == UNSPECIFIED:  # duplicate address detection: claims nothing
                return
            self._ndp_claim(ts, src, lladdr, ip.src)
            # Address resolution goes to the target's solicited-node group; a unicast
            # solicitation confirms a neighbour already known (a router keeping its cache
            # fresh): only the former sweeps.
            target = icmp.target
            if target is not None and target != ip.src and is_multicast(ip.dst):
                sweep = self.ipv6_sweep.on_target(ts, src, ip.src, target)
                if sweep is not None:
                    self._detected(sweep, ts)
        elif kind == ICMP6_NEIGHBOR_ADVERT:
            if icmp.target is not None:
                self._ndp_claim(ts, src, lladdr, icmp.target)
        else:
            gateway_mac = self.gateway_mac()
            rogue = self.rogue_ra.on_advert(
                ts,
                src,
                ip.src,
                icmp.router_lifetime,
                prefixes=icmp.prefixes,
                gateway_mac=gateway_mac,
            )
            if rogue is not None:
                self._detected(rogue, ts)
            else:
                self._ndp_claim(ts, src, lladdr, ip.src)

    def _ndp_claim(self, ts: float, src: bytes, claimed_mac: bytes, ip: bytes) -> None:
        """``src`` says IPv6 address ``ip`` is at ``claimed_mac``."""
        if is_multicast(ip) or ip == UNSPECIFIED:
            return
        host = self.hosts.hosts.get(claimed_mac)
        claim_counts = claimed_mac != src or (
            host is not None and bool(host.ipv6) and ip not in host.ipv6
        )
        router = self.rogue_ra.router_mac(self.gateway_mac())
        spoof = self.ndp_spoof.on_claim(ts, src, claimed_mac, ip, router)
        if spoof is not None:
            self._detected(spoof, ts)
        elif claimed_mac == src:  # a claim on behalf of another MAC: never learnt (as ARP)
            self.hosts.learn_ip6(claimed_mac, ip, ts)
        if claim_counts:
            claim = self.cache_exhaustion.on_claim(ts, src, ip)
            if claim is not None:
                self._detected(claim, ts)

    def _udp(self, ts: float, frame: bytes) -> None:
        if frame in self._recent_udp:  # a repeated announcement, handled whole before
            return
        udp = parse_udp(frame)
        if udp is None:
            self.parse_errors += 1
            return
        self._udp_datagram(ts, frame, udp, to_node=False)

    def _udp_datagram(self, ts: float, frame: bytes, udp: Udp, *, to_node: bool) -> None:
        """UDP to the hostname, discovery, DHCP or ECHONET Lite ports (IPv4 or IPv6)."""
        payload = frame[udp.payload_offset : udp.payload_offset + udp.payload_len]
        src = frame[6:12]
        if echonet.PORT in (udp.dport, udp.sport):
            self._echonet(ts, src, udp, payload, to_node)  # every request counts: no dedup
            return
        # Announcements repeat byte for byte (mDNS, NetBIOS): a repeat teaches nothing new.
        recent = self._recent_udp
        if frame in recent:
            return
        if len(recent) >= 1024:
            recent.clear()
        recent.add(frame)
        # Discovery queries are sweeps of the LAN (to a group or broadcast); the same ports
        # probed on the node itself are a scan's, not context.
        hosts = self.hosts
        sweep = not to_node
        dport = udp.dport
        if dport in UDP_DHCP_PORTS:
            self._dhcp(ts, src, udp, payload)
        elif dport == UDP_MDNS:
            if sweep and len(payload) >= 12 and not payload[2] & 0x80:
                hosts.learn_discovery(src, "mdns", ts)
            for name, ip in parse_mdns(payload):
                owner = src if ip == udp.src_ip else hosts.mac_of(ip)
                if owner is not None:
                    hosts.learn_name(owner, name, ts)
                    hosts.learn_ip(owner, ip, ts)
        elif dport == UDP_NBNS:
            nb_name = parse_nbns(payload)
            if nb_name:
                hosts.learn_name(src, nb_name, ts)
                if len(udp.src_ip) == 4:
                    hosts.learn_ip(src, udp.src_ip, ts)
            elif sweep and len(payload) >= 12 and not payload[2] & 0xF8:  # a name query
                hosts.learn_discovery(src, "netbios", ts)
        elif not sweep:
            return
        elif dport == UDP_SSDP:
            if payload.startswith(b"M-SEARCH"):
                hosts.learn_discovery(src, "ssdp", ts)
        elif dport == UDP_WSD:
            if b"Probe" in payload[:1024]:
                hosts.learn_discovery(src, "wsd", ts)
        elif dport == UDP_SNMP and len(payload) > 2 and payload[0] == 0x30:
            hosts.learn_discovery(src, "snmp", ts)

    def _dhcp(self, ts: float, src: bytes, udp: Udp, payload: bytes) -> None:
        hosts = self.hosts
        dhcp = parse_dhcp(payload)
        if dhcp is None:
            return
        if dhcp.op == 1:  # from the client: its name and the address it asks for
            if dhcp.message_type in (1, 3) and payload[24:28] == _NO_IP:  # not via a relay
                # known: a host heard more than once (one forged frame per MAC, sent ahead
                # of the requests, makes no pool-draining MAC a known one)
                known = hosts.hosts.is_established(dhcp.client_mac)
                det = self.dhcp_starvation.on_request(ts, src, dhcp.client_mac, known)
                if det is not None:
                    self._detected(det, ts)
            if dhcp.hostname:
                hosts.learn_name(dhcp.client_mac, dhcp.hostname, ts)
            ip = dhcp.requested_ip or dhcp.client_ip
            hosts.learn_ip(dhcp.client_mac, ip, ts)
            return
        reply = parse_dhcp_server(payload)
        if reply is not None:
            gateway = self.config.gateway_ip
            rogue = self.rogue_dhcp.on_reply(
                ts, src, udp.src_ip, reply, gateway_ip=gateway, gateway_mac=self.gateway_mac()
            )
            if rogue is not None:
                self._detected(rogue, ts)
                return
        if dhcp.message_type == 5:  # ACK from the server: the address is the client's
            hosts.learn_ip(dhcp.client_mac, dhcp.your_ip, ts)

    def _echonet(self, ts: float, src: bytes, udp: Udp, payload: bytes, to_node: bool) -> None:
        frame = echonet.parse(payload)
        if frame is None or frame.esv not in echonet.REQUESTS:
            return
        multicast = udp.dst_ip[0] >= 224 if len(udp.dst_ip) == 4 else is_multicast(udp.dst_ip)
        if multicast and frame.esv in (echonet.ESV_GET, echonet.ESV_INF_REQ):
            self.hosts.learn_discovery(src, "echonet", ts)
        dst = MULTICAST if multicast else udp.dst_ip
        det = self.echonet.on_request(ts, src, udp.src_ip, dst, frame, to_node=to_node)
        if det is not None:
            self._detected(det, ts)

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
        ip_raw = addr_bytes(ip)
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
        event = self.incidents.on_detection(self._attribute(det), now)
        if event is not None:
            self._publish(event)

    def _attribute(self, det: Detection) -> Detection:
        """The culprit behind forged source addresses, and the discovery context.

        Scans are attributed by the sending MAC: when their source addresses are not the ones
        that MAC uses (learned from ARP, DHCP, Neighbour Discovery), the culprit's address is
        the MAC's own and the others are listed as forged (``nmap -D`` decoys). A scan sent
        through the gateway's MAC was routed (or forged behind it): the gateway is not the
        culprit, and the evidence says so (``via_gateway``).
        """
        context = self.hosts.discovery_of(det.mac)
        ips = det.source_ips if det.kind in _SCAN_KINDS else ()
        if not ips and not context:
            return det
        ip = det.ip
        forged: list[bytes] = []
        via_gateway = bool(ips) and det.mac == self.gateway_mac()
        host = self.hosts.hosts.get(det.mac)
        if ips and not via_gateway and host is not None:
            # per family: an address is forged when the MAC is known to use others of its
            # family (an IPv6 scan by a host known only by its IPv4 address forges nothing)
            own4 = [host.ip] if host.ip is not None else []
            own6 = host.ipv6

            def forges(address: bytes) -> bool:
                own = own4 if len(address) == 4 else own6
                return bool(own) and address not in own

            forged = [a for a in ips if forges(a)]
            if forged and (ip is None or forges(ip)):
                family = own6 if ip is not None and len(ip) == 16 else own4
                ip = family[0] if family else ip
        base = det.evidence

        def evidence() -> dict[str, Any]:
            found = base()
            if forged:
                found["forged_ips"] = [addr_str(a) for a in forged]
            if via_gateway:
                found["via_gateway"] = True
                found["source_ips"] = [addr_str(a) for a in ips]
            if context:
                found["discovery"] = context
            return found

        return dataclasses.replace(det, ip=ip, evidence=evidence)

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
            self.stealth_scan,
            self.udp_scan,
            self.slow_sweep,
            self.ipv6_sweep,
            self.ndp_spoof,
            self.rogue_ra,
            self.dhcp_starvation,
            self.rogue_dhcp,
            self.cache_exhaustion,
            self.echonet,
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
            self.stealth_scan.sources,
            self.udp_scan.sources,
            self.flows.table,
            *self.slow_sweep.tables.values(),
            self.ipv6_sweep.sources,
            self.ndp_spoof.bindings,
            self.ndp_spoof.claims,
            self.rogue_ra.adverts,
            self.dhcp_starvation.senders,
            self.rogue_dhcp.servers,
            self.cache_exhaustion.sources,
            self.echonet.control,
            self.echonet.sweeps,
            self.echonet.new_controllers,
            self.echonet.pairs,
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
