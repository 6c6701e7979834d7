"""Quarantine enforcement: an nftables table of the agent's own, or none at all.

Where the agent sits decides the table's family:

* ``inet`` (default): the agent runs on the Linux router/gateway that routes between the
  home's subnets (main LAN, IoT/guest VLAN, WAN). Its ``forward`` hook sees every packet
  the router passes on, its ``input`` hook every packet sent to the router itself.
* ``bridge``: the agent runs on a Linux box whose software bridge is in the path (e.g. a
  bridge between a LAN segment and the uplink). The bridge family's hooks see bridged
  frames, which an ``inet`` table never does (unless br_netfilter is loaded).

A quarantined host is matched by MAC (``set quarantined_mac``) and by IP
(``set quarantined_ip``): its traffic is dropped in both directions, except the allowed
services (default DNS udp/tcp 53 and DHCP udp 67) to the node itself and to the
configured gateway, so it keeps an address and a resolver and the owner can still find
it. Adding or removing a host is one atomic ``nft -f -`` transaction that touches set
elements only, O(1) whatever the number of hosts.

The table is re-created at start (removing a stale one left by a crashed run) and
deleted by ``close()``, which also runs at interpreter exit and on SIGTERM/SIGHUP (turned
into a normal exit unless the application handles those signals itself). The pure ``*_script``
functions make the nft input; ``NftablesEnforcer`` runs it and keeps the listing that
is published on the retained ``quarantine`` topic.
"""

from __future__ import annotations

import atexit
import ipaddress
import json
import logging
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any, Literal, NoReturn, Protocol, cast

from sensor_agent.formats import iso_utc

_LOGGER = logging.getLogger(__name__)

EnforcerKind = Literal["nftables", "none"]
Family = Literal["inet", "bridge"]

DEFAULT_TABLE = "lan_guard"
DEFAULT_ALLOWED_SERVICES: tuple[str, ...] = ("udp/53", "tcp/53", "udp/67")
_BROADCAST = "255.255.255.255"
_MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_TABLE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,31}$")
_SERVICE_RE = re.compile(r"^(tcp|udp)/(\d{1,5})$")
# An nft call that hangs (a stuck netlink socket) must not hang the command handler.
_NFT_TIMEOUT_S = 10.0


class EnforcerError(Exception):
    """A quarantine could not be applied or lifted; the message says why, for the result."""


@dataclass(frozen=True)
class Service:
    """A service a quarantined host may still reach, e.g. ``udp/53``."""

    proto: Literal["tcp", "udp"]
    port: int

    @classmethod
    def parse(cls, text: str) -> Service:
        """``"udp/53"`` -> ``Service("udp", 53)``; ``ValueError`` with the reason otherwise."""
        match = _SERVICE_RE.match(text.strip().lower())
        if match is None or not 0 < int(match.group(2)) <= 65535:
            raise ValueError(f"allowed service {text!r} is not 'tcp/PORT' or 'udp/PORT'")
        proto: Literal["tcp", "udp"] = "tcp" if match.group(1) == "tcp" else "udp"
        return cls(proto, int(match.group(2)))

    def __str__(self) -> str:
        return f"{self.proto}/{self.port}"


@dataclass(frozen=True)
class QuarantinedHost:
    """One host in quarantine, as listed on the retained ``quarantine`` topic."""

    mac: str
    ip: str | None
    since: float
    command_id: str

    def as_payload(self) -> dict[str, Any]:
        return {
            "mac": self.mac,
            "ip": self.ip,
            "since": iso_utc(self.since),
            "command_id": self.command_id,
        }


class Enforcer(Protocol):
    """What the command handler needs from an enforcer."""

    @property
    def kind(self) -> EnforcerKind: ...

    def quarantine(self, mac: str, ip: str | None, command_id: str) -> None:
        """Cut ``mac``/``ip`` off; raise ``EnforcerError`` with the reason on failure."""

    def release(self, mac: str) -> bool:
        """Lift the quarantine of ``mac``; False when it was not quarantined."""

    def hosts(self) -> list[QuarantinedHost]:
        """Hosts currently quarantined, oldest first."""

    def close(self) -> None:
        """Lift every quarantine and remove what the enforcer installed."""


def quarantine_payload(agent_id: str, enforcer: Enforcer, now: float) -> dict[str, Any]:
    """The retained ``quarantine`` payload (schema/quarantine.schema.json)."""
    return {
        "schema": 1,
        "agent_id": agent_id,
        "enforcer": enforcer.kind,
        "hosts": [host.as_payload() for host in enforcer.hosts()],
        "updated_at": iso_utc(now),
    }


class NoEnforcer:
    """For agents that cannot enforce: every quarantine/release fails with the reason."""

    kind: EnforcerKind = "none"

    def __init__(self, reason: str = "this agent has no enforcer (enforcer: none)") -> None:
        self.reason = reason

    def quarantine(self, mac: str, ip: str | None, command_id: str) -> None:
        raise EnforcerError(self.reason)

    def release(self, mac: str) -> bool:
        raise EnforcerError(self.reason)

    def hosts(self) -> list[QuarantinedHost]:
        return []

    def close(self) -> None:
        """Nothing was installed."""


# ---------------------------------------------------------------- nft input (pure)


def _check_table(family: str, table: str) -> None:
    if family not in ("inet", "bridge"):
        raise ValueError(f"enforcer family {family!r} is not 'inet' or 'bridge'")
    if not _TABLE_RE.match(table):
        raise ValueError(f"nftables table name {table!r} is not a plain identifier")


def _check_mac(mac: str) -> None:
    if not _MAC_RE.match(mac):
        raise ValueError(f"{mac!r} is not a lower-case colon-separated MAC")


def _check_ipv4(ip: str) -> None:
    ipaddress.IPv4Address(ip)  # ValueError with the reason when not an address


def ruleset_script(
    family: Family,
    table: str,
    gateway: str | None,
    services: Sequence[Service],
) -> str:
    """nft input that (re)creates the whole table atomically, empty sets included.

    ``table X`` + ``delete table X`` first: creating then deleting makes the delete never
    fail, so a stale table from a crashed run is replaced in the same transaction.
    """
    _check_table(family, table)
    if gateway is not None:
        _check_ipv4(gateway)
    # To the node itself (input hook) the services are allowed on any local address: on
    # a router the node *is* the gateway. Forwarded, only to the gateway or as broadcast
    # (DHCP discover), so a quarantined host cannot use an outside resolver as a tunnel.
    forward_dst = [gateway, _BROADCAST] if gateway else [_BROADCAST]
    dst_set = "{ " + ", ".join(forward_dst) + " }"
    to_local = [f"meta l4proto {s.proto} th dport {s.port} accept" for s in services]
    to_forward = [
        f"ip daddr {dst_set} meta l4proto {s.proto} th dport {s.port} accept" for s in services
    ]
    # Answers from the gateway (bridge: forwarded to the host; router: sent by the node
    # itself through output, which this table does not hook).
    answers = (
        [f"ip saddr {gateway} meta l4proto {s.proto} th sport {s.port} accept" for s in services]
        if gateway
        else []
    )
    # On a bridge, ARP is bridged too: without it the host cannot even find the gateway.
    arp = ["ether type arp accept"] if family == "bridge" else []

    def chain(name: str, rules: Iterable[str]) -> str:
        body = "".join(f"\t\t{rule}\n" for rule in rules)
        return f"\tchain {name} {{\n{body}\t}}\n"

    def base(name: str, hook: str, rules: Iterable[str]) -> str:
        hook_line = f"type filter hook {hook} priority filter - 10; policy accept;"
        return chain(name, [hook_line, *rules])

    return (
        f"table {family} {table}\n"
        f"delete table {family} {table}\n"
        f"table {family} {table} {{\n"
        "\tset quarantined_mac { type ether_addr; }\n"
        "\tset quarantined_ip { type ipv4_addr; }\n"
        + chain("from_quarantined_local", [*arp, *to_local, "counter drop"])
        + chain("from_quarantined", [*arp, *to_forward, "counter drop"])
        + chain("to_quarantined", [*arp, *answers, "counter drop"])
        + base(
            "input",
            "input",
            [
                "ether saddr @quarantined_mac jump from_quarantined_local",
                "ip saddr @quarantined_ip jump from_quarantined_local",
            ],
        )
        + base(
            "forward",
            "forward",
            [
                "ether saddr @quarantined_mac jump from_quarantined",
                "ip saddr @quarantined_ip jump from_quarantined",
                "ether daddr @quarantined_mac jump to_quarantined",
                "ip daddr @quarantined_ip jump to_quarantined",
            ],
        )
        + "}\n"
    )


def delete_table_script(family: Family, table: str) -> str:
    """nft input that removes the table, and succeeds when it is already gone."""
    _check_table(family, table)
    return f"table {family} {table}\ndelete table {family} {table}\n"


def elements_script(
    verb: Literal["add", "delete"],
    family: Family,
    table: str,
    macs: Sequence[str] = (),
    ips: Sequence[str] = (),
) -> str:
    """nft input adding or deleting set elements, all in one transaction."""
    _check_table(family, table)
    lines = []
    for mac in macs:
        _check_mac(mac)
        lines.append(f"{verb} element {family} {table} quarantined_mac {{ {mac} }}\n")
    for ip in ips:
        _check_ipv4(ip)
        lines.append(f"{verb} element {family} {table} quarantined_ip {{ {ip} }}\n")
    return "".join(lines)


def set_elements(listing: Any, set_name: str) -> set[str]:
    """Elements of ``set_name`` in the output of ``nft -j list table``."""
    found: set[str] = set()
    for item in listing.get("nftables", []):
        nft_set = item.get("set")
        if isinstance(nft_set, dict) and nft_set.get("name") == set_name:
            found.update(str(element) for element in nft_set.get("elem", []))
    return found


# ---------------------------------------------------------------- the shell


class NftablesEnforcer:
    """Quarantine with an nftables table of the agent's own (see the module doc)."""

    kind: EnforcerKind = "nftables"

    def __init__(
        self,
        *,
        family: Family = "inet",
        table: str = DEFAULT_TABLE,
        gateway: str | None = None,
        allowed_services: Iterable[str | Service] = DEFAULT_ALLOWED_SERVICES,
        nft: Sequence[str] = ("nft",),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.family: Family = family
        self.table = table
        self.gateway = gateway
        self.services = [
            s if isinstance(s, Service) else Service.parse(s) for s in allowed_services
        ]
        self._nft = list(nft)
        self._clock = clock
        self._hosts: dict[str, QuarantinedHost] = {}
        # Commands arrive on the MQTT thread; exit cleanup may run on another.
        self._lock = threading.Lock()
        self._started = False
        ruleset_script(family, table, gateway, self.services)  # ValueError on bad config now

    def _run(self, args: Sequence[str], script: str | None = None) -> str:
        """Run nft; its complaint becomes an ``EnforcerError`` (never a crash)."""
        try:
            done = subprocess.run(
                [*self._nft, *args],
                input=script,
                capture_output=True,
                text=True,
                timeout=_NFT_TIMEOUT_S,
                check=False,
            )
        except FileNotFoundError as err:
            raise EnforcerError(f"nftables: cannot run {self._nft[0]!r}: {err.strerror}") from err
        except subprocess.TimeoutExpired as err:
            raise EnforcerError(f"nftables: nft did not answer in {_NFT_TIMEOUT_S:g} s") from err
        if done.returncode != 0:
            detail = " ".join(done.stderr.split()) or f"exit status {done.returncode}"
            raise EnforcerError(f"nftables: {detail}"[:400])
        return done.stdout

    def _apply(self, script: str) -> None:
        if script:
            self._run(["-f", "-"], script)

    def start(self) -> None:
        """Install the (empty) table, replacing a stale one; removed again at exit."""
        with self._lock:
            self._apply(ruleset_script(self.family, self.table, self.gateway, self.services))
            self._hosts.clear()
            if not self._started:
                atexit.register(self.close)
                _exit_on_termination_signals()
            self._started = True
        _LOGGER.info("nftables enforcer ready: table %s %s", self.family, self.table)

    def quarantine(self, mac: str, ip: str | None, command_id: str) -> None:
        with self._lock:
            if not self._started:
                raise EnforcerError("nftables enforcer is not started")
            old = self._hosts.get(mac)
            stale_ips = []
            if (
                old is not None
                and old.ip is not None
                and old.ip != ip
                and not any(h.ip == old.ip for m, h in self._hosts.items() if m != mac)
            ):
                stale_ips.append(old.ip)
            script = elements_script(
                "add", self.family, self.table, [mac], [ip] if ip else []
            ) + elements_script("delete", self.family, self.table, ips=stale_ips)
            self._apply(script)
            if old is None or old.ip != ip:
                self._hosts[mac] = QuarantinedHost(mac, ip, self._clock(), command_id)

    def release(self, mac: str) -> bool:
        with self._lock:
            if not self._started:
                raise EnforcerError("nftables enforcer is not started")
            old = self._hosts.get(mac)
            if old is None:
                return False
            shared = any(h.ip == old.ip for m, h in self._hosts.items() if m != mac)
            ips = [old.ip] if old.ip is not None and not shared else []
            self._apply(elements_script("delete", self.family, self.table, [mac], ips))
            del self._hosts[mac]
            return True

    def hosts(self) -> list[QuarantinedHost]:
        with self._lock:
            return sorted(self._hosts.values(), key=lambda h: h.since)

    def installed(self) -> tuple[set[str], set[str]]:
        """(MACs, IPs) in the kernel's sets right now, read back with ``nft -j``."""
        listing = json.loads(self._run(["-j", "list", "table", self.family, self.table]))
        return set_elements(listing, "quarantined_mac"), set_elements(listing, "quarantined_ip")

    def close(self) -> None:
        """Delete the table (lifting every quarantine). Safe to call more than once."""
        with self._lock:
            if not self._started:
                return
            try:
                self._apply(delete_table_script(self.family, self.table))
            except EnforcerError as err:
                _LOGGER.error("could not remove nftables table %s: %s", self.table, err)
                return
            self._hosts.clear()
            self._started = False
        atexit.unregister(self.close)
        _LOGGER.info("nftables enforcer closed: table %s %s removed", self.family, self.table)


def _raise_system_exit(signum: int, frame: FrameType | None) -> NoReturn:
    raise SystemExit(128 + signum)


def _exit_on_termination_signals() -> None:
    """Make SIGTERM/SIGHUP exit through ``atexit`` (and ``finally`` blocks), so ``close()`` runs.

    Their default action kills the process outright, which would leave the quarantine in
    force with nobody to lift it. A handler the application installed itself is kept (it is
    then responsible for exiting normally). SIGKILL cannot be caught: the next start cleans.
    """
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be installed from the main thread
    for signum in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(signum) is signal.SIG_DFL:
            signal.signal(signum, _raise_system_exit)


@dataclass(frozen=True)
class EnforcerSettings:
    """The agent's enforcement configuration (the ``enforcer*``/``gateway*``/allow keys).

    ``kind`` defaults to ``none``: only an agent on the router or on a bridge in the path
    can enforce, and it must be asked to (it needs root and changes the firewall).
    """

    kind: EnforcerKind = "none"
    family: Family = "inet"
    gateway_ip: str | None = None
    gateway_mac: str | None = None
    allowlist: tuple[str, ...] = ()  # MACs and IPv4 addresses never quarantined
    allowed_services: tuple[str, ...] = DEFAULT_ALLOWED_SERVICES

    def __post_init__(self) -> None:
        problems = []
        if self.kind not in ("nftables", "none"):
            problems.append(f"enforcer.backend: {self.kind!r} is not 'nftables' or 'none'")
        if self.family not in ("inet", "bridge"):
            problems.append(f"enforcer.family: {self.family!r} is not 'inet' or 'bridge'")
        if self.gateway_ip is not None:
            try:
                _check_ipv4(self.gateway_ip)
            except ValueError:
                problems.append(f"network.gateway_ip: {self.gateway_ip!r} is not an IPv4 address")
        if self.gateway_mac is not None and not _MAC_RE.match(self.gateway_mac):
            problems.append(
                f"network.gateway_mac: {self.gateway_mac!r} is not like aa:bb:cc:dd:ee:ff"
            )
        for entry in self.allowlist:
            if not _MAC_RE.match(entry.strip().lower().replace("-", ":")):
                try:
                    _check_ipv4(entry.strip())
                except ValueError:
                    problems.append(f"enforcer.allowlist: {entry!r} is not a MAC or IPv4 address")
        for service in self.allowed_services:
            try:
                Service.parse(service)
            except ValueError as err:
                problems.append(f"enforcer.allowed_services: {err}")
        if problems:
            raise ValueError("invalid enforcer settings: " + "; ".join(problems))

    @classmethod
    def from_config(cls, raw: Mapping[str, Any]) -> EnforcerSettings:
        """From the agent's validated config tree: ``[enforcer]`` plus ``[network]`` gateway.

        ``enforcer.backend`` ("nftables" | "none"); the older ``enforcer.enabled = true``
        means "nftables". Raises ``ValueError`` naming the key.
        """
        section = raw.get("enforcer") or {}
        network = raw.get("network") or {}
        backend = section.get("backend") or ("nftables" if section.get("enabled") else "none")
        return cls(  # __post_init__ refuses values outside the Literals
            kind=cast(EnforcerKind, backend),
            family=cast(Family, section.get("family") or "inet"),
            gateway_ip=network.get("gateway_ip") or None,
            gateway_mac=network.get("gateway_mac") or None,
            allowlist=tuple(section.get("allowlist") or ()),
            allowed_services=tuple(section.get("allowed_services") or DEFAULT_ALLOWED_SERVICES),
        )


def build_enforcer(
    kind: str,
    *,
    family: Family = "inet",
    gateway: str | None = None,
    allowed_services: Iterable[str] = DEFAULT_ALLOWED_SERVICES,
    nft: Sequence[str] = ("nft",),
) -> Enforcer:
    """The configured enforcer, started; a ``NoEnforcer`` carrying the reason if nft fails.

    The agent keeps detecting when it cannot enforce (no root, no nftables): commands
    are then answered with that reason instead of the agent refusing to run.
    """
    if kind == "none":
        return NoEnforcer()
    if kind != "nftables":
        raise ValueError(f"enforcer {kind!r} is not 'nftables' or 'none'")
    enforcer = NftablesEnforcer(
        family=family, gateway=gateway, allowed_services=allowed_services, nft=nft
    )
    try:
        enforcer.start()
    except EnforcerError as err:
        _LOGGER.error("enforcer disabled: %s", err)
        return NoEnforcer(f"nftables enforcer failed to start: {err}")
    return enforcer
