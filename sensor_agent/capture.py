"""Live capture: raw frames from an interface through a kernel BPF filter, no dissection.

scapy opens the ``AF_PACKET`` socket and compiles/attaches the BPF filter; after that the
agent reads raw bytes from the socket itself (``recvfrom`` of at most ``snaplen`` bytes),
so no scapy packet is ever built. The kernel's drop counter (``PACKET_STATISTICS``) is read
on every tick and reported in the state counters.
"""

from __future__ import annotations

import contextlib
import fcntl
import socket
import struct
import time
from pathlib import Path

from .formats import mac_bytes

SOL_PACKET = 263
PACKET_STATISTICS = 6
PACKET_OUTGOING = 4  # our own frames: never evidence
SIOCGIFADDR = 0x8915
ETH_P_ARP = b"\x08\x06"


class CaptureOpenError(Exception):
    """The interface could not be opened for capture (the message says why)."""


class LiveCapture:
    def __init__(
        self,
        interface: str,
        snaplen: int = 512,
        bpf_filter: str = "",
        promiscuous: bool = False,
    ) -> None:
        # scapy is imported here only: replay and the demo's pipeline never load it
        from scapy.arch.linux import L2ListenSocket  # noqa: PLC0415
        from scapy.error import Scapy_Exception  # noqa: PLC0415

        try:
            self._scapy = L2ListenSocket(
                iface=interface, filter=bpf_filter or None, promisc=promiscuous
            )
        except PermissionError as exc:
            raise CaptureOpenError(
                f"{interface}: permission denied (needs root or CAP_NET_RAW)"
            ) from exc
        except (OSError, ValueError, Scapy_Exception) as exc:
            raise CaptureOpenError(f"{interface}: cannot capture: {exc}") from exc
        self.interface = interface
        self.snaplen = snaplen
        self.sock: socket.socket = self._scapy.ins
        self.sock.setblocking(False)

    def fileno(self) -> int:
        return self.sock.fileno()

    def read_batch(self, max_frames: int = 2048) -> tuple[list[float], list[bytes]]:
        """Every frame waiting in the socket (up to ``max_frames``), stamped now."""
        frames: list[bytes] = []
        recv = self.sock.recvfrom
        snaplen = self.snaplen
        for _ in range(max_frames):
            try:
                frame, address = recv(snaplen)
            except (BlockingIOError, InterruptedError):
                break
            if address[2] != PACKET_OUTGOING:
                frames.append(frame)
        return [time.time()] * len(frames), frames

    def drops(self) -> int:
        """Frames the kernel dropped since the last call (the counter resets when read)."""
        try:
            raw = self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)
        except OSError:
            return 0
        _packets, dropped = struct.unpack("II", raw)
        return int(dropped)

    def close(self) -> None:
        self._scapy.close()


def interface_addresses(interface: str) -> tuple[bytes | None, bytes | None]:
    """(IPv4, MAC) of ``interface`` as bytes, ``None`` where unknown."""
    mac = None
    with contextlib.suppress(OSError, ValueError):
        mac = mac_bytes((Path("/sys/class/net") / interface / "address").read_text().strip())
    ip = None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            request = struct.pack("256s", interface.encode()[:15])
            ip = fcntl.ioctl(sock.fileno(), SIOCGIFADDR, request)[20:24]
        except OSError:
            ip = None
    return ip, mac


def default_gateway(interface: str, route_table: Path = Path("/proc/net/route")) -> bytes | None:
    """The IPv4 default gateway via ``interface`` (from the kernel's routing table)."""
    try:
        lines = route_table.read_text().splitlines()[1:]
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) > 3 and fields[0] == interface and fields[1] == "00000000":
            return struct.pack("<I", int(fields[2], 16))
    return None


def kernel_arp_lookup(ip: str, table: Path = Path("/proc/net/arp")) -> bytes | None:
    """The MAC the kernel resolved for ``ip`` (a decoy's peer has just talked to us)."""
    try:
        lines = table.read_text().splitlines()[1:]
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) >= 4 and fields[0] == ip and fields[3] != "00:00:00:00:00:00":
            try:
                return mac_bytes(fields[3])
            except ValueError:
                return None
    return None


def arp_request(node_mac: bytes, node_ip: bytes, target_ip: bytes) -> bytes:
    """An ARP request frame from the node asking for ``target_ip``."""
    return (
        b"\xff" * 6
        + node_mac
        + ETH_P_ARP
        + b"\x00\x01\x08\x00\x06\x04\x00\x01"
        + node_mac
        + node_ip
        + b"\x00" * 6
        + target_ip
    )


class ArpProber:
    """Sends the (at most ``probe_count``) ARP requests that check whether a culprit left."""

    def __init__(self, interface: str, node_mac: bytes, node_ip: bytes) -> None:
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        self.sock.bind((interface, 0))
        self.node_mac = node_mac
        self.node_ip = node_ip
        self.sent = 0

    def __call__(self, mac: bytes, ip: bytes) -> None:
        try:
            self.sock.send(arp_request(self.node_mac, self.node_ip, ip))
            self.sent += 1
        except OSError:
            pass

    def close(self) -> None:
        self.sock.close()
