"""The hosts a quarantine must never touch, each group with the reason it is refused.

Pure (no Home Assistant): the state machine asks it before any quarantine is sent, and the
``start_evacuation`` action asks it before accepting a host.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..allowlist import Allowlist

_GROUPS = ("gateway", "agent_node", "ha_host", "protected", "allowlist")


@dataclass(frozen=True, slots=True)
class ProtectedHosts:
    """Hosts never isolated: the gateway, the agent's node, Home Assistant, the options."""

    gateway: Allowlist
    agent_node: Allowlist
    ha_host: Allowlist
    protected: Allowlist
    allowlist: Allowlist

    @classmethod
    def build(
        cls,
        *,
        info: Mapping[str, Any] | None,
        ha_ips: Iterable[str],
        protected: Iterable[str],
        allowlist: Allowlist,
        ha_macs: Iterable[str] = (),
    ) -> ProtectedHosts:
        """From the agent's info (gateway, node), HA's own addresses and the options.

        Gateway and HA host are protected by MAC as well as by IP: a culprit can claim
        either IP, not both identities.
        """
        info = info or {}
        node = info.get("node") or {}
        gateway = [info.get("gateway"), info.get("gateway_mac")]
        return cls(
            gateway=Allowlist.parse(value for value in gateway if value),
            agent_node=Allowlist.parse(value for value in node.values() if value),
            ha_host=Allowlist.parse([*ha_ips, *ha_macs]),
            protected=Allowlist.parse(protected),
            allowlist=allowlist,
        )

    @classmethod
    def nothing(cls) -> ProtectedHosts:
        """No host protected (tests of the state machine)."""
        empty = Allowlist.parse([])
        return cls(empty, empty, empty, empty, empty)

    def reason(self, mac: str, ip: str | None) -> str | None:
        """Why ``mac``/``ip`` may not be quarantined (a reason key), or None."""
        if mac == "00:00:00:00:00:00" or int(mac[:2], 16) & 1:
            return "not_unicast"
        if ip is not None:
            address = ipaddress.ip_address(ip)
            # As the agent's command handler: reserved includes 255.255.255.255.
            if (
                address.is_multicast
                or address.is_unspecified
                or address.is_loopback
                or address.is_reserved
            ):
                return "not_unicast"
        host = {"mac": mac, "ip": ip}
        for reason in _GROUPS:
            group: Allowlist = getattr(self, reason)
            if group.contains(host):
                return reason
        return None
