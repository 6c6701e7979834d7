"""Network-namespace labs: hosts on a software switch, all their traffic kept on this machine.

Used by the lab tests and the live benchmarks (no pytest dependency). A lab owns a name
``prefix`` (e.g. ``lg2``) and an IPv4 ``subnet`` (e.g. ``198.18.2.0/24``); every namespace it
creates is named ``<prefix>-<name>`` and every address it assigns lies in the subnet, so two labs
with different prefixes and subnets never collide, even when run at the same time.

Safety habits built in (see the team's network rule):

* every command runs wholly inside its namespace (``ip netns exec NS sh -c '...'``);
* while the lab exists the root namespace routes the subnet into a blackhole, so a command that
  escapes by mistake sends nothing anywhere; the same for the lab's IPv6 subnet (a unique
  local /64, e.g. ``fd4c:6700:30::/64``) when it has one;
* lab namespaces get no route out: only the subnet (plus an optional default route to a lab
  host and the /32 of a root uplink);
* labs of one prefix take turns: entering waits for an exclusive lock on
  ``/run/lock/netlab-<prefix>.lock``, so two test runs on one machine never tear down each
  other's namespaces;
* every ``run`` has a timeout; spawned processes and anything else still alive in the
  namespaces are killed at teardown, which also deletes every namespace, link and the route,
  even after an exception. Leftovers of the same prefix (a run killed hard) are removed first.

Example::

    with Lab("lg2", "198.18.2.0/24") as lab:
        node = lab.host("node", "198.18.2.10")
        scanner = lab.host("scanner", "198.18.2.66", mac="02:00:00:00:00:66")
        agent = node.spawn("lan-guard-agent run --interface eth0", log=tmp / "agent.log")
        scanner.run("arp-scan -I eth0 198.18.2.0/24", timeout=30)

A host's switch-facing interface is always ``eth0`` (further links: ``eth1``, ``eth2``...).
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

Command = str | Sequence[str]
"""A shell string (run with ``sh -c`` inside the namespace) or an argv list (exec'd directly)."""

_IP_TIMEOUT_S = 15.0
_STOP_GRACE_S = 3.0
_LOCK_DIR = Path("/run/lock")
_open_prefixes: set[str] = set()  # labs open in this process (a nested one would deadlock)


class LabError(RuntimeError):
    """A lab could not be built (an ``ip`` command failed), with the command and its stderr."""


def require_root() -> str | None:
    """Why a namespace lab cannot run here (use as a skip reason), or ``None`` when it can."""
    if os.geteuid() != 0:
        return "needs root to create network namespaces (run as root; CI does)"
    if shutil.which("ip") is None:
        return "needs iproute2 (`ip`) for network namespaces"
    if not Path("/proc/self/ns/net").exists():
        return "this kernel has no network namespace support"
    probe = subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, timeout=_IP_TIMEOUT_S, check=False
    )
    if probe.returncode != 0:
        return f"`ip netns` does not work here: {probe.stderr.strip()}"
    return None


def require_tools(*names: str) -> str | None:
    """Why a lab test cannot run (root missing or tools not installed), or ``None``."""
    reason = require_root()
    if reason is not None:
        return reason
    missing = [name for name in names if shutil.which(name) is None]
    if missing:
        return f"needs {', '.join(missing)} installed (scripts/setup.sh installs them)"
    return None


def _ip(*args: str) -> str:
    """Run one ``ip`` command in the root namespace (it names its target with ``-n NS``)."""
    cmd = ["ip", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=_IP_TIMEOUT_S, check=False)
    if done.returncode != 0:
        raise LabError(f"{' '.join(cmd)} failed: {done.stderr.strip()}")
    return done.stdout


def _session_groups(session: int) -> set[int]:
    """The process groups of the living processes of ``session``."""
    groups = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # pid (comm) state ppid pgrp session ...: comm may hold spaces and parentheses
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if fields[0] != "Z" and int(fields[3]) == session:
            groups.add(int(fields[2]))
    return groups


def _kill_group(proc: subprocess.Popen[Any], grace_s: float) -> None:
    """SIGTERM every process group of the process's session, then SIGKILL what is left after
    ``grace_s``. Spawned commands start in a session of their own, and a tool such as
    ``timeout`` moves its command to a group of its own: killing the first group alone left
    ``timeout 10 atk6-parasite6`` spoofing the router into the next test."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, _STOP_GRACE_S)):
        groups = _session_groups(proc.pid)
        if proc.poll() is None:
            groups.add(proc.pid)
        if not groups:
            return
        for group in groups:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, sig)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if proc.poll() is not None and not _session_groups(proc.pid):
                return
            time.sleep(0.02)


def namespaces_with_prefix(prefix: str) -> list[str]:
    """Namespaces named ``<prefix>-...`` that exist now (e.g. leftovers of a killed run)."""
    out = _ip("-j", "netns", "list").strip()
    names = [entry["name"] for entry in json.loads(out)] if out else []
    return sorted(name for name in names if name.startswith(f"{prefix}-"))


def _kill_namespace_processes(ns: str) -> None:
    """SIGKILL whatever still runs in ``ns`` (daemons such as dhclient that left our group)."""
    argv = ["ip", "netns", "pids", ns]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=_IP_TIMEOUT_S, check=False)
    pids = done.stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


def remove_leftovers(prefix: str, subnet: str, subnet6: str | None = None) -> None:
    """Delete every namespace and root link of ``prefix`` and the subnets' blackhole routes."""
    for ns in namespaces_with_prefix(prefix):
        _kill_namespace_processes(ns)
        with contextlib.suppress(LabError):
            _ip("netns", "del", ns)
    links = json.loads(_ip("-j", "link", "show") or "[]")
    for link in links:
        name = link.get("ifname", "")
        if name.startswith(f"{prefix}-"):
            with contextlib.suppress(LabError):
                _ip("link", "del", name)
    with contextlib.suppress(LabError):
        _ip("route", "del", "blackhole", subnet)
    if subnet6 is not None:
        with contextlib.suppress(LabError):
            _ip("-6", "route", "del", "blackhole", subnet6)


def _lock_prefix(prefix: str, timeout: float) -> int:
    """Wait for the machine-wide lock of ``prefix``; returns the descriptor that holds it."""
    lock_dir = _LOCK_DIR if _LOCK_DIR.is_dir() else Path("/tmp")
    fd = os.open(lock_dir / f"netlab-{prefix}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                raise LabError(
                    f"another process kept the {prefix!r} lab for more than {timeout} s"
                ) from None
            time.sleep(0.2)


@dataclass
class Switch:
    """A Linux bridge ``br0`` inside its own namespace (never in the root namespace)."""

    lab: Lab
    name: str
    ns: str
    ports: int = 0

    def next_port(self, host_name: str) -> str:
        self.ports += 1
        return f"p{self.ports}-{host_name}"[:15]


@dataclass
class Host:
    """One namespace with a veth to a switch (``eth0``); more links via :meth:`add_link`."""

    lab: Lab
    name: str
    ns: str
    ip: str
    """The address on ``eth0`` (without the prefix length)."""
    mac: str
    """The MAC of ``eth0``, lower-case colon form."""
    links: dict[str, Switch] = field(default_factory=dict)
    ip6: str | None = None
    """The unique local IPv6 address on ``eth0`` in a lab with an IPv6 subnet."""

    @property
    def iface(self) -> str:
        """The switch-facing interface the host was created with (``eth0``)."""
        return "eth0"

    def add_link(self, switch: Switch, ip: str, *, mac: str | None = None) -> str:
        """Connect one more veth to ``switch`` with address ``ip``; returns its name (``ethN``)."""
        ifname = f"eth{len(self.links)}"
        address, length = self.lab.address(ip)
        mac = (mac or self.lab.mac_for(address)).lower()
        port = switch.next_port(self.name)
        _ip(
            "-n",
            switch.ns,
            "link",
            "add",
            port,
            "type",
            "veth",
            "peer",
            "name",
            ifname,
            "netns",
            self.ns,
        )
        _ip("-n", self.ns, "link", "set", ifname, "address", mac)
        _ip("-n", self.ns, "addr", "add", f"{address}/{length}", "dev", ifname)
        _ip("-n", self.ns, "link", "set", ifname, "up")
        _ip("-n", switch.ns, "link", "set", port, "master", "br0", "up")
        self.links[ifname] = switch
        return ifname

    def run(
        self, cmd: Command, timeout: float = 30.0, *, check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        """Run ``cmd`` wholly inside the namespace and wait at most ``timeout`` seconds.

        On timeout the whole process group is killed and ``subprocess.TimeoutExpired`` raised;
        with ``check`` a non-zero exit raises ``subprocess.CalledProcessError``.
        """
        argv = self._argv(cmd)
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc, grace_s=0.5)
            out, err = proc.communicate()
            raise subprocess.TimeoutExpired(argv, timeout, out, err) from None
        done = subprocess.CompletedProcess(argv, proc.returncode, out, err)
        if check:
            done.check_returncode()
        return done

    def spawn(
        self,
        cmd: Command,
        *,
        log: Path | None = None,
        stdout: int | IO[Any] | None = None,
        stderr: int | IO[Any] | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start ``cmd`` in the background inside the namespace; killed at teardown.

        Output goes to ``log`` (stdout and stderr, appended) or to the given ``stdout`` /
        ``stderr`` (e.g. ``subprocess.PIPE``), else is discarded. Stop it early with
        :meth:`Lab.stop`.
        """
        log_file = log.open("ab") if log is not None else None
        try:
            proc = subprocess.Popen(
                self._argv(cmd),
                stdin=subprocess.DEVNULL,
                stdout=log_file or (subprocess.DEVNULL if stdout is None else stdout),
                stderr=log_file or (subprocess.DEVNULL if stderr is None else stderr),
                start_new_session=True,
            )
        finally:
            if log_file is not None:
                log_file.close()  # the child holds its own descriptor
        self.lab.processes.append(proc)
        return proc

    def link_down(self, ifname: str = "eth0") -> None:
        """Pull the cable: the host falls silent on the switch (e.g. "the culprit left")."""
        _ip("-n", self.ns, "link", "set", ifname, "down")

    def link_up(self, ifname: str = "eth0") -> None:
        """Plug the cable back in."""
        _ip("-n", self.ns, "link", "set", ifname, "up")

    def sysctl(self, key: str, value: str | int) -> None:
        """Set a (per-namespace) ``net.*`` sysctl inside the host."""
        self.run(["sysctl", "-qw", f"{key}={value}"], timeout=_IP_TIMEOUT_S, check=True)

    def _argv(self, cmd: Command) -> list[str]:
        prefix = ["ip", "netns", "exec", self.ns]
        return [*prefix, "sh", "-c", cmd] if isinstance(cmd, str) else [*prefix, *cmd]


@dataclass
class Uplink:
    """A point-to-point veth between the root namespace and a host (e.g. to reach a broker)."""

    root_ifname: str
    root_ip: str
    host_ifname: str
    host_ip: str


class Lab:
    """A set of namespaces named ``<prefix>-*`` in ``subnet``; a context manager that cleans up.

    Entering removes leftovers of ``prefix`` and installs ``blackhole subnet`` in the root
    namespace; leaving kills every process the lab started (and anything else alive in its
    namespaces), deletes the namespaces (their veths go with them) and the route.
    """

    def __init__(
        self,
        prefix: str,
        subnet: str,
        *,
        ipv6: bool = False,
        subnet6: str | None = None,
        lock_timeout: float = 600.0,
    ) -> None:
        """``subnet6``: a unique local /64 (fc00::/7) for the hosts' IPv6 addresses; implies
        ``ipv6`` (IPv6 left on in every namespace)."""
        if not prefix.isalnum() or len(prefix) > 6:
            raise ValueError(f"lab prefix must be 1-6 letters/digits, got {prefix!r}")
        self.prefix = prefix
        self.subnet = ipaddress.IPv4Network(subnet)
        self.subnet6 = ipaddress.IPv6Network(subnet6) if subnet6 is not None else None
        if self.subnet6 is not None and (
            self.subnet6.prefixlen != 64
            or not ipaddress.IPv6Network("fc00::/7").supernet_of(self.subnet6)
        ):
            raise ValueError(f"the lab's IPv6 subnet must be a unique local /64, got {subnet6!r}")
        self.ipv6 = ipv6 or self.subnet6 is not None
        self.lock_timeout = lock_timeout
        self._lock_fd: int | None = None
        self.processes: list[subprocess.Popen[bytes]] = []
        self.namespaces: list[str] = []
        self.hosts: dict[str, Host] = {}
        self.switches: dict[str, Switch] = {}
        self.uplinks: list[Uplink] = []
        self._entered = False

    # -- context manager -------------------------------------------------------------------
    def __enter__(self) -> Self:
        if self.prefix in _open_prefixes:
            raise LabError(f"a lab with prefix {self.prefix!r} is already open in this process")
        self._lock_fd = _lock_prefix(self.prefix, self.lock_timeout)
        _open_prefixes.add(self.prefix)
        try:
            remove_leftovers(self.prefix, str(self.subnet), self._subnet6())
            _ip("route", "replace", "blackhole", str(self.subnet))
            if self.subnet6 is not None:
                _ip("-6", "route", "replace", "blackhole", str(self.subnet6))
        except BaseException:
            self.close()
            raise
        self._entered = True
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Tear everything down (idempotent; also what leaving the ``with`` block does)."""
        for proc in self.processes:
            _kill_group(proc, grace_s=_STOP_GRACE_S)
        self.processes.clear()
        remove_leftovers(self.prefix, str(self.subnet), self._subnet6())
        self.namespaces.clear()
        self.hosts.clear()
        self.switches.clear()
        self.uplinks.clear()
        self._entered = False
        if self._lock_fd is not None:
            _open_prefixes.discard(self.prefix)
            os.close(self._lock_fd)  # releases the lock
            self._lock_fd = None

    def _subnet6(self) -> str | None:
        return str(self.subnet6) if self.subnet6 is not None else None

    # -- addressing --------------------------------------------------------------------------
    def address6(self, ip: str) -> str:
        """The IPv6 address of the host with IPv4 ``ip``: its last octet in the lab's /64."""
        if self.subnet6 is None:
            raise ValueError("this lab has no IPv6 subnet")
        return str(self.subnet6[int(ip.rsplit(".", 1)[1])])

    def address(self, ip: str) -> tuple[str, int]:
        """``(address, prefix length)`` for ``ip`` (``a.b.c.d`` or ``a.b.c.d/len``) in the subnet.

        Raises ``ValueError`` for an address outside the lab's subnet (the network rule).
        """
        iface = ipaddress.IPv4Interface(ip if "/" in ip else f"{ip}/{self.subnet.prefixlen}")
        if iface.ip not in self.subnet:
            raise ValueError(f"{iface.ip} is outside the lab subnet {self.subnet}")
        return str(iface.ip), iface.network.prefixlen

    @staticmethod
    def mac_for(ip: str) -> str:
        """A readable, locally administered MAC derived from the address: ``02:00:a:b:c:d``."""
        return "02:00:" + ":".join(f"{int(octet):02x}" for octet in ip.split("."))

    # -- building ------------------------------------------------------------------------------
    def _namespace(self, name: str) -> str:
        if not self._entered:
            raise LabError("use the lab inside `with Lab(...) as lab:`")
        ns = f"{self.prefix}-{name}"
        if ns in self.namespaces:
            raise ValueError(f"{name!r} already exists in this lab")
        _ip("netns", "add", ns)
        self.namespaces.append(ns)
        _ip("-n", ns, "link", "set", "lo", "up")
        if not self.ipv6:  # no router solicitations, MLD or DAD noise on the wire
            for key in ("all", "default"):
                sysctl = f"net.ipv6.conf.{key}.disable_ipv6=1"
                argv = ["ip", "netns", "exec", ns, "sysctl", "-qw", sysctl]
                subprocess.run(argv, check=True, timeout=_IP_TIMEOUT_S)
        return ns

    def switch(self, name: str = "sw", *, hub: bool = False) -> Switch:
        """A bridge in namespace ``<prefix>-<name>``.

        ``hub=True`` makes it forward every frame to every port (no MAC learning), like a
        mirror port: a sensor then also sees unicast frames between other hosts.
        """
        ns = self._namespace(name)
        _ip("-n", ns, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
        if hub:
            _ip("-n", ns, "link", "set", "br0", "type", "bridge", "ageing_time", "0")
        _ip("-n", ns, "link", "set", "br0", "up")
        switch = Switch(lab=self, name=name, ns=ns)
        self.switches[name] = switch
        return switch

    def default_switch(self) -> Switch:
        """The lab's first switch (created as ``sw`` on first use)."""
        if not self.switches:
            return self.switch()
        return next(iter(self.switches.values()))

    def host(
        self,
        name: str,
        ip: str,
        *,
        mac: str | None = None,
        switch: Switch | None = None,
        gateway: str | None = None,
    ) -> Host:
        """A namespace ``<prefix>-<name>`` whose ``eth0`` (``ip``, ``mac``) is on ``switch``.

        ``gateway`` (a lab address) becomes its default route; without it the host reaches only
        the subnet.
        """
        address, _ = self.address(ip)
        ns = self._namespace(name)
        host = Host(lab=self, name=name, ns=ns, ip=address, mac="")
        host.add_link(switch or self.default_switch(), ip, mac=mac)
        host.mac = (mac or self.mac_for(address)).lower()
        if self.subnet6 is not None:
            host.ip6 = self.address6(address)
            _ip("-n", ns, "addr", "add", f"{host.ip6}/64", "dev", "eth0", "nodad")
        if gateway is not None:
            gw, _ = self.address(gateway)
            _ip("-n", ns, "route", "add", "default", "via", gw)
        self.hosts[name] = host
        return host

    def router(self, name: str, links: Sequence[tuple[Switch, str]]) -> Host:
        """A host with one link per ``(switch, ip)`` and IPv4 forwarding on (a LAN's gateway).

        The first link is its ``eth0`` (``Host.ip``/``Host.mac``), the others ``eth1``...
        """
        if not links:
            raise ValueError("a router needs at least one link")
        first_switch, first_ip = links[0]
        router = self.host(name, first_ip, switch=first_switch)
        for switch, ip in links[1:]:
            router.add_link(switch, ip)
        router.sysctl("net.ipv4.ip_forward", 1)
        return router

    def uplink_to_root(self, ip_root: str, ip_ns: str, host: Host) -> Uplink:
        """A point-to-point veth from the root namespace to ``host`` (both ends /32 peers).

        Lets a process in ``host`` reach a server listening on ``ip_root`` in the root namespace
        (e.g. the MQTT broker), and nothing else: only the two /32 routes are added.
        """
        root_ip, _ = self.address(ip_root)
        ns_ip, _ = self.address(ip_ns)
        index = len(self.uplinks)
        root_if, host_if = f"{self.prefix}-up{index}", f"up{index}"
        _ip("link", "add", root_if, "type", "veth", "peer", "name", host_if, "netns", host.ns)
        _ip("addr", "add", root_ip, "peer", f"{ns_ip}/32", "dev", root_if)
        _ip("link", "set", root_if, "up")
        _ip("-n", host.ns, "addr", "add", ns_ip, "peer", f"{root_ip}/32", "dev", host_if)
        _ip("-n", host.ns, "link", "set", host_if, "up")
        uplink = Uplink(root_ifname=root_if, root_ip=root_ip, host_ifname=host_if, host_ip=ns_ip)
        self.uplinks.append(uplink)
        return uplink

    # -- processes ---------------------------------------------------------------------------
    def stop(self, proc: subprocess.Popen[Any], timeout: float = _STOP_GRACE_S) -> int:
        """SIGTERM a spawned process (its group), SIGKILL after ``timeout``; its exit code."""
        _kill_group(proc, grace_s=timeout)
        return proc.wait(timeout=_STOP_GRACE_S)


def wait_for(predicate: Callable[[], object], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``predicate()`` until it is truthy or ``timeout`` seconds pass; its last result."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
