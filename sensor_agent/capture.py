"""Live capture: raw frames from an interface through a kernel BPF filter, no dissection.

scapy opens the ``AF_PACKET`` socket and compiles the tcpdump-syntax filter; the agent then
attaches its own version of that program (below) and reads raw bytes itself, so no scapy
packet is ever built.

Frames arrive through a ``PACKET_MMAP`` ring (``TPACKET_V3``): the kernel fills blocks of
frames in memory shared with the agent, which drains every full block per wake-up with no
system call per frame. A flood then costs the kernel's copy plus a slice per frame, and the
buffer (``capture.buffer_mb``, default 8 MB) needs only CAP_NET_RAW, unlike a socket buffer
beyond ``net.core.rmem_max`` (CAP_NET_ADMIN). Should the ring fail, frames are read from
the socket with a receive buffer of the same size (forced when allowed).

The kernel filter program is the compiled filter with two changes: it first drops frames
the node sends (packet type ``OUTGOING``, never evidence, and the agent's own MQTT traffic
would cost a copy each), and it returns at most ``snaplen`` bytes, so the kernel copies no
more. The kernel's drop counter (``PACKET_STATISTICS``) is read on every tick and reported
in the state counters (``kernel_drops``).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import logging
import mmap
import os
import socket
import struct
import time
from collections.abc import Sequence
from ipaddress import IPv4Network
from pathlib import Path

from .formats import ip_str, mac_bytes

log = logging.getLogger(__name__)

SOL_PACKET = 263
PACKET_RX_RING = 5
PACKET_STATISTICS = 6
PACKET_VERSION = 10
TPACKET_V3 = 2
TP_STATUS_KERNEL = 0
TP_STATUS_USER = 1
PACKET_OUTGOING = 4  # our own frames: never evidence
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_ALLMULTI = 2
SO_ATTACH_FILTER = 26
SO_RCVBUFFORCE = 33
SIOCGIFADDR = 0x8915
SIOCGIFNETMASK = 0x891B
ETH_P_ARP = b"\x08\x06"

# Classic BPF (linux/filter.h): the opcodes the program rewrite needs.
BPF_LD_W_ABS = 0x20
BPF_JEQ_K = 0x15
BPF_RET_K = 0x06
SKF_AD_PKTTYPE = -0x1000 + 4  # SKF_AD_OFF + SKF_AD_PKTTYPE: the frame's packet type

Instruction = tuple[int, int, int, int]
"""One classic BPF instruction: (code, jt, jf, k)."""

# The ring: blocks of 256 KiB (a multiple of the page size), each retired to the agent when
# full or 5 ms after its first frame, so a lone frame waits at most 5 ms.
RING_BLOCK_BYTES = 1 << 18
RING_FRAME_BYTES = 2048  # only checked by the kernel for V3 (frames are packed in a block)
RING_RETIRE_MS = 5
_BLOCK_STATUS = struct.Struct("I")  # tpacket_block_desc.hdr.bh1.block_status at offset 8
_BLOCK_HEADER = struct.Struct("III")  # block_status, num_pkts, offset_to_first_pkt
_FRAME_HEADER = struct.Struct("IIIIIIH")  # tpacket3_hdr up to tp_mac
_STATUS_OFFSET = 8


class CaptureOpenError(Exception):
    """The interface could not be opened for capture (the message says why)."""


def capture_program(compiled: Sequence[Instruction], snaplen: int) -> list[Instruction]:
    """The kernel filter: frames the node sends are dropped first, then ``compiled`` (the
    tcpdump expression; empty: every frame) runs with each accept capped at ``snaplen``."""
    guard = [
        (BPF_LD_W_ABS, 0, 0, SKF_AD_PKTTYPE),
        (BPF_JEQ_K, 0, 1, PACKET_OUTGOING),  # outgoing: next (drop), else skip it
        (BPF_RET_K, 0, 0, 0),
    ]
    body = [
        (code, jt, jf, min(k, snaplen) if code == BPF_RET_K and k > 0 else k)
        for code, jt, jf, k in compiled
    ] or [(BPF_RET_K, 0, 0, snaplen)]
    return guard + body  # jumps are relative: prepending keeps the body's targets


def compile_expression(expression: str, interface: str) -> list[Instruction]:
    """The tcpdump-syntax ``expression`` as classic BPF (libpcap, through scapy)."""
    if not expression:
        return []
    from scapy.arch.common import compile_filter, free_filter  # noqa: PLC0415 - live only

    program = compile_filter(expression, interface)
    try:
        insns = program.bf_insns
        return [(i.code, i.jt, i.jf, i.k) for i in (insns[n] for n in range(program.bf_len))]
    finally:
        free_filter(program)


def attach_program(sock: socket.socket, program: Sequence[Instruction]) -> None:
    """``SO_ATTACH_FILTER`` (replaces any filter attached before)."""
    code = b"".join(struct.pack("HBBi", c, jt, jf, k) for c, jt, jf, k in program)
    buffer = ctypes.create_string_buffer(code, len(code))
    fprog = struct.pack("HL", len(program), ctypes.addressof(buffer))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


def read_block(
    block: mmap.mmap | bytes, offset: int, stamps: list[float], frames: list[bytes]
) -> int:
    """Append the frames of the ``TPACKET_V3`` block at ``offset`` (kernel timestamps, bytes
    copied out of the ring) to ``stamps``/``frames``; their number. The caller hands the
    block back to the kernel afterwards."""
    _status, count, position = _BLOCK_HEADER.unpack_from(block, offset + _STATUS_OFFSET)
    position += offset
    unpack = _FRAME_HEADER.unpack_from
    for _ in range(count):
        step, sec, nsec, snaplen, _wire_len, _status, mac = unpack(block, position)
        start = position + mac
        frames.append(block[start : start + snaplen])
        stamps.append(sec + nsec * 1e-9)
        position += step
    return int(count)


class _Ring:
    """A ``TPACKET_V3`` receive ring on a packet socket."""

    def __init__(self, sock: socket.socket, size: int) -> None:
        self.blocks = max(2, size // RING_BLOCK_BYTES)
        frames = RING_BLOCK_BYTES // RING_FRAME_BYTES * self.blocks
        sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
        request = struct.pack(
            "7I", RING_BLOCK_BYTES, self.blocks, RING_FRAME_BYTES, frames, RING_RETIRE_MS, 0, 0
        )
        sock.setsockopt(SOL_PACKET, PACKET_RX_RING, request)
        self.map = mmap.mmap(sock.fileno(), RING_BLOCK_BYTES * self.blocks)
        self.next = 0  # the block the kernel hands over next (blocks go round in order)

    def read(self, max_frames: int) -> tuple[list[float], list[bytes]]:
        stamps: list[float] = []
        frames: list[bytes] = []
        ring, status = self.map, _BLOCK_STATUS
        while len(frames) < max_frames:
            offset = self.next * RING_BLOCK_BYTES
            if not status.unpack_from(ring, offset + _STATUS_OFFSET)[0] & TP_STATUS_USER:
                break
            read_block(ring, offset, stamps, frames)
            status.pack_into(ring, offset + _STATUS_OFFSET, TP_STATUS_KERNEL)
            self.next = (self.next + 1) % self.blocks
        return stamps, frames

    def close(self) -> None:
        self.map.close()


class LiveCapture:
    def __init__(
        self,
        interface: str,
        snaplen: int = 512,
        bpf_filter: str = "",
        promiscuous: bool = False,
        *,
        buffer_mb: int = 8,
        ring: bool = True,
    ) -> None:
        # scapy is imported here only: replay and the demo's pipeline never load it
        from scapy.arch.linux import L2ListenSocket  # noqa: PLC0415
        from scapy.error import Scapy_Exception  # noqa: PLC0415

        try:
            # scapy attaches the compiled filter before binding and flushes what came first
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
        try:
            program = capture_program(compile_expression(bpf_filter, interface), snaplen)
            attach_program(self.sock, program)
        except (OSError, ValueError, Scapy_Exception) as exc:
            self._scapy.close()
            raise CaptureOpenError(f"{interface}: cannot attach the capture filter: {exc}") from exc
        self.sock.setblocking(False)
        if not promiscuous:
            self._all_multicast(interface)
        size = buffer_mb << 20
        self._ring: _Ring | None = None
        if ring:
            try:
                self._ring = _Ring(self.sock, size)
            except OSError as exc:
                log.warning(
                    "%s: no PACKET_MMAP ring (%s): reading the socket instead", interface, exc
                )
        if self._ring is None:
            self.buffer_bytes = self._socket_buffer(size)
        else:
            self.buffer_bytes = self._ring.blocks * RING_BLOCK_BYTES

    def _all_multicast(self, interface: str) -> None:
        """Receive every multicast frame (PACKET_MR_ALLMULTI; cheap next to promiscuous mode):
        IPv6 neighbour solicitations go to per-address groups a NIC otherwise filters out,
        and they are how an IPv6 sweep shows."""
        try:
            request = struct.pack(
                "iHH8s", socket.if_nametoindex(interface), PACKET_MR_ALLMULTI, 0, b""
            )
            self.sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, request)
        except OSError as exc:
            log.warning(
                "%s: no all-multicast reception (IPv6 sweeps may go unseen): %s", interface, exc
            )

    @property
    def mode(self) -> str:
        """``ring`` (PACKET_MMAP) or ``socket``."""
        return "ring" if self._ring is not None else "socket"

    def _socket_buffer(self, size: int) -> int:
        """A receive buffer of ``size`` bytes: forced past rmem_max when allowed
        (CAP_NET_ADMIN), else as much as rmem_max allows. The size the kernel granted."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, size)
        except OSError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
        granted = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 2
        if granted < size:
            log.warning(
                "%s: capture buffer %d KiB of the %d KiB asked (net.core.rmem_max)",
                self.interface,
                granted >> 10,
                size >> 10,
            )
        return int(granted)

    def fileno(self) -> int:
        return self.sock.fileno()

    def read_batch(self, max_frames: int = 8192) -> tuple[list[float], list[bytes]]:
        """The frames waiting (about ``max_frames`` at most: whole ring blocks) with their
        timestamps: the kernel's from the ring, else the time of reading."""
        if self._ring is not None:
            return self._ring.read(max_frames)
        frames: list[bytes] = []
        recv = self.sock.recv
        snaplen = self.snaplen
        for _ in range(max_frames):
            try:
                frames.append(recv(snaplen))
            except (BlockingIOError, InterruptedError):
                break
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
        if self._ring is not None:
            self._ring.close()
            self._ring = None
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


def interface_addresses6(interface: str, table: Path = Path("/proc/net/if_inet6")) -> list[bytes]:
    """The IPv6 addresses of ``interface`` (link-local and global), from the kernel's table."""
    try:
        lines = table.read_text().splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        fields = line.split()
        if len(fields) == 6 and fields[5] == interface:
            with contextlib.suppress(ValueError):
                raw = bytes.fromhex(fields[0])
                if len(raw) == 16:
                    found.append(raw)
    return found


def interface_subnet(interface: str) -> IPv4Network | None:
    """The IPv4 network ``interface`` is on (its address and netmask), ``None`` if unknown."""
    request = struct.pack("256s", interface.encode()[:15])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            ip = fcntl.ioctl(sock.fileno(), SIOCGIFADDR, request)[20:24]
            mask = fcntl.ioctl(sock.fileno(), SIOCGIFNETMASK, request)[20:24]
        except OSError:
            return None
    try:
        return IPv4Network((ip_str(ip), ip_str(mask)), strict=False)
    except ValueError:  # not a contiguous mask
        return None


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


def _checksum(header: bytes) -> int:
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return int(~total & 0xFFFF)


def dhcp_discover(node_mac: bytes, xid: int) -> bytes:
    """A DHCPDISCOVER from the node with the broadcast flag set: every DHCP server of the LAN
    answers with a broadcast offer, which the capture sees even on a switch."""
    options = b"\x63\x82\x53\x63" + b"\x35\x01\x01" + b"\x37\x03\x01\x03\x06" + b"\xff"
    bootp = (
        b"\x01\x01\x06\x00"
        + xid.to_bytes(4, "big")
        + b"\x00\x00\x80\x00"  # secs, flags: broadcast
        + bytes(16)  # ciaddr, yiaddr, siaddr, giaddr
        + node_mac
        + bytes(10 + 64 + 128)  # chaddr padding, sname, file
        + options
    )
    udp = struct.pack("!HHHH", 68, 67, 8 + len(bootp), 0) + bootp  # checksum 0: none (IPv4)
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, bytes(4), b"\xff" * 4
    )
    header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
    return b"\xff" * 6 + node_mac + b"\x08\x00" + header + udp


class DhcpProber:
    """Sends the node's DHCP discovery that makes rogue servers answer where it can hear
    them (live only; the node never requests the address offered)."""

    def __init__(self, interface: str, node_mac: bytes) -> None:
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        self.sock.bind((interface, 0))
        self.node_mac = node_mac
        self.sent = 0

    def __call__(self) -> None:
        try:
            self.sock.send(dhcp_discover(self.node_mac, int.from_bytes(os.urandom(4), "big")))
            self.sent += 1
        except OSError:
            pass

    def close(self) -> None:
        self.sock.close()


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
