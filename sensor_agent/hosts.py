"""Inventory of the hosts seen on the LAN: the culprit's identity and the "host left" signal.

MAC -> IP (ARP, DHCP, mDNS) and IPv6 addresses (Neighbour Discovery), vendor (netaddr's
offline OUI database), hostname (DHCP option 12, mDNS, NetBIOS), first/last seen. Frames
update ``last_seen`` once per second in bulk (the pipeline's per-second counts), never per
frame. A host silent for ``left_after_s`` is
marked not present; before that, in live mode, a silent culprit can be probed with at most
``probe_count`` ARP requests, so a quiet but present host is not declared gone.

Discovery protocols a host sweeps the LAN with (mDNS, SSDP, WS-Discovery, NetBIOS, SNMP,
ECHONET Lite) are context, not alarms: they tell a media server or a controller from a
scanner, so they are listed per host and in the evidence of its events.

The inventory is a :class:`BoundedTable`: a host that sent more than one frame is
established, and a spray of forged source MACs (each heard once) pushes out only other
newcomers. Only established hosts answer :meth:`HostInventory.established_mac_of`, the lookup
that protects an IP's owner from a quarantine.
"""

from __future__ import annotations

from collections.abc import Callable, Container
from dataclasses import dataclass
from typing import Any

from netaddr import OUI
from netaddr.core import NotRegisteredError

from .bounded import BoundedTable
from .contract import SCHEMA_VERSION
from .formats import addr_str, ip_str, iso_utc, mac_str

Prober = Callable[[bytes, bytes], None]
"""(mac, ip) -> send one ARP request for ``ip`` (live mode only)."""


@dataclass(frozen=True, slots=True)
class HostsConfig:
    # 300 s: hosts normally send something (ARP, mDNS, DHCP renewal) every few minutes; the
    # optional ARP probe catches the quiet ones before they are declared gone.
    left_after_s: float = 300.0
    # 4096 hosts: far beyond a home LAN; newcomers heard once are dropped first, then the
    # least recently seen.
    max_hosts: int = 4096
    # Up to 3 ARP requests, 1 s apart, to a silent culprit before declaring it gone.
    probe_count: int = 3
    probe_interval_s: float = 1.0
    # At most 512 hosts in one retained ``hosts`` message (the rest flagged ``truncated``).
    max_payload_hosts: int = 512
    # IPv6 addresses kept per host: a link-local, a stable and a temporary global or two.
    max_ipv6: int = 4


DISCOVERY_PROTOCOLS = ("mdns", "ssdp", "wsd", "netbios", "snmp", "echonet")


class Host:
    __slots__ = (
        "discovery",
        "first_seen",
        "frames",
        "hostname",
        "ip",
        "ipv6",
        "last_seen",
        "mac",
        "present",
        "probes",
    )

    def __init__(self, mac: bytes, now: float) -> None:
        self.mac = mac
        self.ip: bytes | None = None
        self.ipv6: list[bytes] = []  # most recently learned first
        self.discovery = 0  # bit i: DISCOVERY_PROTOCOLS[i] seen from this host
        self.hostname: str | None = None
        self.first_seen = now
        self.last_seen = now
        self.present = True
        self.probes = 0
        self.frames = 0  # counted once a second; two or more: established in the inventory

    @property
    def last(self) -> float:
        return self.last_seen


class Vendors:
    """OUI -> organisation, cached; locally administered MACs have no vendor."""

    def __init__(self, max_cached: int = 4096) -> None:
        self._cache: dict[bytes, str | None] = {}
        self._max = max_cached
        self(b"\x00\x00\x00\x00\x00\x00")  # loads netaddr's index now, not mid-capture
        self._cache.clear()

    def __call__(self, mac: bytes) -> str | None:
        prefix = mac[:3]
        try:
            return self._cache[prefix]
        except KeyError:
            pass
        vendor = None
        if not mac[0] & 0x02:
            try:
                vendor = str(OUI(int.from_bytes(prefix, "big")).registration().org)[:255]
            except (NotRegisteredError, IndexError, ValueError):
                vendor = None
        if len(self._cache) >= self._max:
            self._cache.clear()
        self._cache[prefix] = vendor
        return vendor


class HostInventory:
    def __init__(
        self, config: HostsConfig | None = None, ignore: frozenset[bytes] = frozenset()
    ) -> None:
        self.config = config or HostsConfig()
        self.ignore = ignore  # the monitoring node itself: not a host of the LAN to watch
        # No expiry: a host stays (not present) until pushed out by others. No memory of
        # evicted hosts: a spray never pushes out the established ones, the ones that matter.
        self.hosts: BoundedTable[Host] = BoundedTable(
            self.config.max_hosts, float("inf"), on_evict=self._evicted, remember=False
        )
        self.by_ip: dict[bytes, bytes] = {}
        self.by_ip6: dict[bytes, bytes] = {}
        self.vendor = Vendors()
        self.changed = False  # a host appeared, left or changed identity since the last payload

    @property
    def evictions(self) -> int:
        return self.hosts.evictions

    def _host(self, mac: bytes, now: float) -> Host | None:
        host = self.hosts.get(mac)
        if host is None:
            if len(mac) != 6 or mac[0] & 0x01 or mac in self.ignore:  # multicast: nobody's
                return None
            host = Host(mac, now)
            self.hosts.put(mac, host)
            self.changed = True
        return host

    def _evicted(self, mac: bytes, host: Host) -> None:
        if host.ip is not None and self.by_ip.get(host.ip) == mac:
            del self.by_ip[host.ip]
        for ip6 in host.ipv6:
            if self.by_ip6.get(ip6) == mac:
                del self.by_ip6[ip6]

    def seen_many(self, counts: dict[bytes, int], now: float) -> None:
        """Every source MAC that sent frames in the second ending at ``now``."""
        hosts = self.hosts
        for mac, frames in counts.items():
            host = hosts.get(mac)
            if host is None:
                host = self._host(mac, now)
                if host is None:
                    continue
            host.frames += frames
            if host.frames > 1:  # more than one frame: established, and refreshed
                hosts.touch(mac)
            host.last_seen = now
            if not host.present:
                host.present = True
                self.changed = True
            host.probes = 0

    def learn_ip(self, mac: bytes, ip: bytes, now: float) -> None:
        if ip == b"\x00\x00\x00\x00" or ip[0] >= 224 or ip == b"\xff\xff\xff\xff":
            return
        host = self._host(mac, now)
        if host is None or host.ip == ip:
            return
        if host.ip is not None and self.by_ip.get(host.ip) == mac:
            del self.by_ip[host.ip]
        host.ip = ip
        self.by_ip[ip] = mac
        self.changed = True

    def learn_ip6(self, mac: bytes, ip: bytes, now: float) -> None:
        """An IPv6 unicast address ``mac`` uses (from Neighbour Discovery or its packets)."""
        if len(ip) != 16 or ip[0] == 0xFF or ip == b"\x00" * 16:
            return
        host = self._host(mac, now)
        if host is None:
            return
        if host.ipv6 and host.ipv6[0] == ip:
            return
        if ip in host.ipv6:
            host.ipv6.remove(ip)
        else:
            self.changed = True
        host.ipv6.insert(0, ip)
        for old in host.ipv6[self.config.max_ipv6 :]:
            if self.by_ip6.get(old) == mac:
                del self.by_ip6[old]
        del host.ipv6[self.config.max_ipv6 :]
        previous = self.by_ip6.get(ip)
        other = self.hosts.get(previous) if previous is not None and previous != mac else None
        if other is not None and ip in other.ipv6:
            other.ipv6.remove(ip)
        self.by_ip6[ip] = mac

    def learn_discovery(self, mac: bytes, protocol: str, now: float) -> None:
        """``mac`` sent a discovery query of ``protocol`` (one of DISCOVERY_PROTOCOLS)."""
        host = self._host(mac, now)
        bit = 1 << DISCOVERY_PROTOCOLS.index(protocol)
        if host is not None and not host.discovery & bit:
            host.discovery |= bit
            self.changed = True

    def discovery_of(self, mac: bytes) -> list[str]:
        host = self.hosts.get(mac)
        if host is None:
            return []
        return [name for i, name in enumerate(DISCOVERY_PROTOCOLS) if host.discovery >> i & 1]

    def learn_name(self, mac: bytes, name: str, now: float) -> None:
        host = self._host(mac, now)
        if host is not None and host.hostname != name:
            host.hostname = name
            self.changed = True

    def mac_of(self, ip: bytes) -> bytes | None:
        """The MAC of the host last heard with ``ip`` (IPv4 or IPv6; attribution of what
        ``ip`` did)."""
        return self.by_ip.get(ip) if len(ip) == 4 else self.by_ip6.get(ip)

    def ip_of(self, mac: bytes) -> bytes | None:
        """The IPv4 address ``mac`` was last heard using (ARP, DHCP, mDNS, NetBIOS)."""
        host = self.hosts.get(mac)
        return None if host is None else host.ip

    def established_mac_of(self, ip: bytes) -> bytes | None:
        """The same, only for a host that sent more than one frame: what protects ``ip``'s
        owner must not rest on a binding one forged frame could have written."""
        mac = self.by_ip.get(ip)
        return mac if mac is not None and self.hosts.is_established(mac) else None

    def knows(self, ip: bytes, mac: bytes) -> bool:
        """Whether ``mac`` is an established host whose address (IPv4 or IPv6) is ``ip``."""
        return self.mac_of(ip) == mac and self.hosts.is_established(mac)

    def identity(self, mac: bytes, ip: bytes | None = None) -> dict[str, Any]:
        """The ``source`` object of an event: what is known about ``mac``. An IPv6 ``ip`` goes
        in ``ipv6`` (first), beside the host's IPv4 address and its other IPv6 addresses."""
        host = self.hosts.get(mac)
        ipv6 = list(host.ipv6) if host is not None else []
        if ip is not None and len(ip) == 16:
            ipv6 = [ip, *(a for a in ipv6 if a != ip)][: self.config.max_ipv6]
            ip = None
        if ip is None and host is not None:
            ip = host.ip
        source: dict[str, Any] = {
            "mac": mac_str(mac),
            "ip": ip_str(ip) if ip is not None else None,
            "vendor": self.vendor(mac),
            "hostname": host.hostname if host is not None else None,
        }
        if ipv6:
            source["ipv6"] = [addr_str(a) for a in ipv6]
        return source

    def tick(
        self, now: float, culprits: Container[bytes], probe: Prober | None = None
    ) -> list[tuple[Host, float]]:
        """Hosts that just left, with how long they had been silent."""
        cfg = self.config
        horizon = now - cfg.left_after_s
        left: list[tuple[Host, float]] = []
        for host in self.hosts.values():
            if not host.present or host.last_seen > horizon:
                continue
            if probe is not None and host.ip is not None and host.mac in culprits:
                due = horizon - host.probes * cfg.probe_interval_s
                if host.probes < cfg.probe_count:
                    if host.last_seen <= due:
                        probe(host.mac, host.ip)
                        host.probes += 1
                    continue
                if host.last_seen > due:  # wait one interval after the last probe
                    continue
            host.present = False
            self.changed = True
            left.append((host, now - host.last_seen))
        return left

    def payload(self, agent_id: str, now: float) -> dict[str, Any]:
        """The retained ``hosts`` payload (``schema/hosts.schema.json``)."""
        ordered = sorted(self.hosts.values(), key=lambda h: h.last_seen, reverse=True)
        shown = ordered[: self.config.max_payload_hosts]
        self.changed = False
        payload: dict[str, Any] = {
            "schema": SCHEMA_VERSION,
            "agent_id": agent_id,
            "hosts": [self._entry(h) for h in shown],
            "updated_at": iso_utc(now),
        }
        if len(ordered) > len(shown):
            payload["truncated"] = True
        return payload

    def _entry(self, h: Host) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "mac": mac_str(h.mac),
            "ip": ip_str(h.ip) if h.ip is not None else None,
            "vendor": self.vendor(h.mac),
            "hostname": h.hostname,
            "first_seen": iso_utc(h.first_seen),
            "last_seen": iso_utc(h.last_seen),
            "present": h.present,
        }
        if h.ipv6:
            entry["ipv6"] = [addr_str(a) for a in h.ipv6]
        if h.discovery:
            entry["discovery"] = self.discovery_of(h.mac)
        return entry
