"""Conversions at the edges: internal bytes (6-byte MACs, 4-byte IPv4, 16-byte IPv6) to the
contract's strings.

The hot path keeps addresses as ``bytes`` (cheap dict keys, no per-frame objects); they become
strings only when an event, state or hosts payload is built.
"""

from __future__ import annotations

import math
import re
import socket
from datetime import UTC, datetime

_PRINTABLE = bytes(b if 0x20 <= b < 0x7F else 0x2E for b in range(256))


def mac_str(mac: bytes) -> str:
    """``b'\\x00\\x11...'`` -> ``'00:11:...'`` (lower case, colon separated)."""
    return mac.hex(":")


def mac_bytes(text: str) -> bytes:
    """``'00:11:22:33:44:55'`` (or ``-`` separated) -> 6 bytes; ``ValueError`` otherwise."""
    raw = bytes.fromhex(text.replace(":", "").replace("-", ""))
    if len(raw) != 6:
        raise ValueError(f"not a MAC address: {text!r}")
    return raw


def ip_str(ip: bytes) -> str:
    """4 bytes -> dotted quad."""
    return socket.inet_ntoa(ip)


def ip_bytes(text: str) -> bytes:
    """Dotted quad -> 4 bytes; ``OSError``/``ValueError`` for anything else."""
    parts = text.split(".")
    if len(parts) != 4 or not all(p.isdigit() and int(p) < 256 for p in parts):
        raise ValueError(f"not an IPv4 address: {text!r}")
    return bytes(int(p) for p in parts)


def addr_str(ip: bytes) -> str:
    """4 bytes -> dotted quad, 16 bytes -> IPv6 text (RFC 5952 form)."""
    return socket.inet_ntop(socket.AF_INET6 if len(ip) == 16 else socket.AF_INET, ip)


def addr_bytes(text: str) -> bytes:
    """IPv4 or IPv6 text (no zone) -> 4 or 16 bytes; ``ValueError`` for anything else."""
    if ":" not in text:
        return ip_bytes(text)
    try:
        return socket.inet_pton(socket.AF_INET6, text.split("%", 1)[0])
    except OSError as exc:
        raise ValueError(f"not an IP address: {text!r}") from exc


# What ``datetime`` can show: 0001-01-01 to 9999-12-31 (a capture file may say anything).
_MIN_TS = datetime(1, 1, 1, tzinfo=UTC).timestamp()
_MAX_TS = datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC).timestamp()


def iso_utc(ts: float) -> str:
    """Unix time -> ISO 8601 UTC with a trailing ``Z`` (millisecond precision). Never raises:
    a time beyond what a date can show (a forged capture timestamp) is clamped to the nearest
    one it can (``NaN`` to the epoch)."""
    if not _MIN_TS <= ts <= _MAX_TS:
        ts = 0.0 if math.isnan(ts) else min(max(ts, _MIN_TS), _MAX_TS)
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def printable(data: bytes, limit: int) -> str:
    """At most ``limit`` bytes of ``data`` as text; non-printable bytes shown as ``'.'``."""
    return data[:limit].translate(_PRINTABLE).decode("ascii")


def default_agent_id() -> str:
    """The host name, reduced to the characters an agent id may hold."""
    name = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname().split(".")[0])[:64]
    return name or "lan_guard_agent"
