"""Inventory of the hosts seen on the LAN: the culprit's identity and the "host left" signal.

MAC -> IP (ARP, DHCP, mDNS), vendor (netaddr's offline OUI database), hostname (DHCP option
12, mDNS, NetBIOS), first/last seen. Frames update ``last_seen`` once per second in bulk
(the pipeline's per-second counts), never per frame. A host silent for ``left_after_s`` is
marked not present; before that, in live mode, a silent culprit can be probed with at most
``probe_count`` ARP requests, so a quiet but present host is not declared gone.

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
from .formats import ip_str, iso_utc, mac_str

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


class Host:
    __slots__ = ("first_seen", "frames", "hostname", "ip", "last_seen", "mac", "present", "probes")

    def __init__(self, mac: bytes, now: float) -> None:
        self.mac = mac
        self.ip: bytes | None = None
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

    def learn_name(self, mac: bytes, name: str, now: float) -> None:
        host = self._host(mac, now)
        if host is not None and host.hostname != name:
            host.hostname = name
            self.changed = True

    def mac_of(self, ip: bytes) -> bytes | None:
        """The MAC of the host last heard with ``ip`` (attribution of what ``ip`` did)."""
        return self.by_ip.get(ip)

    def established_mac_of(self, ip: bytes) -> bytes | None:
        """The same, only for a host that sent more than one frame: what protects ``ip``'s
        owner must not rest on a binding one forged frame could have written."""
        mac = self.by_ip.get(ip)
        return mac if mac is not None and self.hosts.is_established(mac) else None

    def knows(self, ip: bytes, mac: bytes) -> bool:
        """Whether ``mac`` is an established host whose address is ``ip``."""
        return self.by_ip.get(ip) == mac and self.hosts.is_established(mac)

    def identity(self, mac: bytes, ip: bytes | None = None) -> dict[str, Any]:
        """The ``source`` object of an event: what is known about ``mac``."""
        host = self.hosts.get(mac)
        if ip is None and host is not None:
            ip = host.ip
        return {
            "mac": mac_str(mac),
            "ip": ip_str(ip) if ip is not None else None,
            "vendor": self.vendor(mac),
            "hostname": host.hostname if host is not None else None,
        }

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
            "hosts": [
                {
                    "mac": mac_str(h.mac),
                    "ip": ip_str(h.ip) if h.ip is not None else None,
                    "vendor": self.vendor(h.mac),
                    "hostname": h.hostname,
                    "first_seen": iso_utc(h.first_seen),
                    "last_seen": iso_utc(h.last_seen),
                    "present": h.present,
                }
                for h in shown
            ],
            "updated_at": iso_utc(now),
        }
        if len(ordered) > len(shown):
            payload["truncated"] = True
        return payload
