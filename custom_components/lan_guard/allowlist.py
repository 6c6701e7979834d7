"""The owner's allowlist: hosts that are trusted to scan (never a threat, never isolated).

Entries are MAC addresses (any common spelling), IP addresses or networks in CIDR form.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeAlias

_MAC = re.compile(r"[0-9a-f]{2}([:-]?)[0-9a-f]{2}(?:\1[0-9a-f]{2}){4}")

Network: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network


def normalize_entry(entry: str) -> str:
    """The canonical spelling of one allowlist entry; ``ValueError`` when it is neither."""
    text = entry.strip().lower()
    if _MAC.fullmatch(text):
        digits = re.sub(r"[:-]", "", text)
        return ":".join(digits[i : i + 2] for i in range(0, 12, 2))
    try:
        return str(ipaddress.ip_network(text, strict=False))
    except ValueError as err:
        raise ValueError(f"{entry!r} is not a MAC address, an IP address or a network") from err


@dataclass(frozen=True, slots=True)
class Allowlist:
    """Parsed allowlist for fast membership tests."""

    macs: frozenset[str]
    networks: tuple[Network, ...]

    @classmethod
    def parse(cls, entries: Iterable[str]) -> Allowlist:
        """Build from normalised entries (invalid ones were refused by the options flow)."""
        macs: set[str] = set()
        networks: list[Network] = []
        for entry in entries:
            normal = normalize_entry(entry)
            if ":" in normal and "/" not in normal:
                macs.add(normal)
            else:
                networks.append(ipaddress.ip_network(normal))
        return cls(frozenset(macs), tuple(networks))

    def contains(self, host: dict[str, Any]) -> bool:
        """Whether a host (mac, ip) is allowlisted by its MAC or its IP."""
        if host.get("mac") in self.macs:
            return True
        ip = host.get("ip")
        if not ip or not self.networks:
            return False
        address = ipaddress.ip_address(ip)
        return any(address in network for network in self.networks)
