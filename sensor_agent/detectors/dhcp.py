"""LAN DoS and hijack through DHCP: starvation of the address pool, rogue servers.

* ``dhcp_starvation`` (level 2): a flood of DISCOVERs and REQUESTs for client MACs nobody
  has seen (tools draw a random MAC per request) empties the server's pool; every device
  that joins or renews afterwards gets no address, or the attacker's own server answers it.
  One sender asking for several other MACs is the culprit (``scope: source``); random
  source MACs leave no culprit beyond the sending frames (``scope: total``). Ordinary
  renewals come from known clients, one request per lease, and never add up.
* ``rogue_dhcp`` (level 3 when it offers another router or DNS server than the LAN's, 2
  otherwise): a DHCP server answering from a MAC that is not the LAN's server (the gateway's
  MAC, configured servers, else the first server heard) can send every client's traffic
  through its own router or DNS.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from ..bounded import BoundedTable
from ..formats import addr_str, mac_str
from ..parse import DhcpServerReply
from . import Detection

LEVEL_STARVATION = 2
LEVEL_ROGUE = 2
LEVEL_ROGUE_HIJACK = 3


@dataclass(frozen=True, slots=True)
class DhcpConfig:
    # 4 other client MACs from one sender within the window: a relay agent would say so
    # (giaddr, never counted); no device asks for addresses on behalf of others otherwise.
    min_clients_per_sender: int = 4
    # 32 new client MACs LAN-wide within the window: a home's devices rejoining after a
    # power cut are known ones and spread over minutes; a starvation tool sends hundreds.
    min_new_clients: int = 32
    window_s: float = 60.0
    # DHCP servers of the LAN besides the gateway (a Pi-hole, a NAS): their MACs.
    servers: tuple[bytes, ...] = ()
    max_sources: int = 4096
    # Live: the node's own DISCOVER (broadcast flag) every 10 minutes makes every server of
    # the LAN answer where the node hears it, also on a switch (0: never). One broadcast
    # and one offer per server; the node never takes the address.
    probe_interval_s: float = 600.0


class _Clients:
    __slots__ = ("first", "last", "macs", "packets", "reported")

    def __init__(self, now: float) -> None:
        self.first = now
        self.last = now
        self.packets = 0
        self.reported = False
        self.macs: OrderedDict[bytes, float] = OrderedDict()

    def add(self, now: float, mac: bytes, window_s: float, cap: int) -> None:
        macs = self.macs
        macs[mac] = now
        macs.move_to_end(mac)
        horizon = now - window_s
        while macs and (next(iter(macs.values())) < horizon or len(macs) > cap):
            macs.popitem(last=False)


class DhcpStarvationDetector:
    kind = "dhcp_starvation"

    def __init__(self, config: DhcpConfig | None = None) -> None:
        self.config = config or DhcpConfig()
        # No memory of evicted senders: starvation is fast by definition.
        self.senders: BoundedTable[_Clients] = BoundedTable(
            self.config.max_sources, self.config.window_s, remember=False
        )
        self.lan = _Clients(0.0)  # new client MACs of the whole LAN

    def on_request(
        self, now: float, mac: bytes, client_mac: bytes, known: bool
    ) -> Detection | None:
        """A DISCOVER or REQUEST sent by ``mac`` for ``client_mac`` (``known``: a host the
        agent knew before this request)."""
        cfg = self.config
        if client_mac != mac:
            state = self.senders.current(mac, now, cfg.window_s, lambda: _Clients(now))
            state.last = now
            state.packets += 1
            state.add(now, client_mac, cfg.window_s, 1024)
            if len(state.macs) >= cfg.min_clients_per_sender:
                if not state.reported:
                    state.reported = True
                    state.first = min(state.macs.values())
                return self._detection(mac, state, "source")
            return None
        if known:
            return None
        lan = self.lan
        if now - lan.last > cfg.window_s:
            self.lan = lan = _Clients(now)
        lan.last = now
        lan.packets += 1
        lan.add(now, client_mac, cfg.window_s, 1024)
        if len(lan.macs) < cfg.min_new_clients:
            return None
        if not lan.reported:
            lan.reported = True
            lan.first = min(lan.macs.values())
        return self._detection(mac, lan, "total")

    def _detection(self, mac: bytes, state: _Clients, scope: str) -> Detection:
        def evidence() -> dict[str, Any]:
            duration = max(state.last - state.first, 0.0)
            return {
                "scope": scope,
                "client_count": len(state.macs),
                "client_macs": [mac_str(m) for m in list(state.macs)[-16:]],
                "packets": state.packets,
                "window_s": round(duration, 3),
                "rate": round(state.packets / duration, 1) if duration > 0 else 0.0,
            }

        return Detection(self.kind, LEVEL_STARVATION, mac, None, state.first, state.last, evidence)

    def expire(self, now: float) -> None:
        self.senders.expire(now)


class _Server:
    __slots__ = ("dns", "first", "ip", "last", "offered", "packets", "routers")

    def __init__(self, now: float, ip: bytes) -> None:
        self.first = now
        self.last = now
        self.ip = ip
        self.packets = 0
        self.offered: bytes | None = None
        self.routers: tuple[bytes, ...] = ()
        self.dns: tuple[bytes, ...] = ()


class RogueDhcpDetector:
    kind = "rogue_dhcp"

    def __init__(self, config: DhcpConfig | None = None) -> None:
        self.config = config or DhcpConfig()
        self.first_server: bytes | None = None
        self.legit_dns: tuple[bytes, ...] = ()  # what the LAN's own server hands out
        self.servers: BoundedTable[_Server] = BoundedTable(256, 3600.0, remember=False)

    def on_reply(
        self,
        now: float,
        mac: bytes,
        ip: bytes,
        reply: DhcpServerReply,
        *,
        gateway_ip: bytes | None,
        gateway_mac: bytes | None,
    ) -> Detection | None:
        """An OFFER or ACK from ``mac`` (source address ``ip``)."""
        if reply.message_type not in (2, 5):
            return None
        legit = set(self.config.servers)
        if gateway_mac is not None:
            legit.add(gateway_mac)
        if not legit:
            if self.first_server is None:
                self.first_server = mac
            legit.add(self.first_server)
        if mac in legit:
            if reply.dns:
                self.legit_dns = reply.dns
            return None
        state = self.servers.current(mac, now, 3600.0, lambda: _Server(now, ip))
        state.last = now
        state.ip = ip
        state.packets += 1
        state.offered = reply.your_ip
        state.routers = reply.routers
        state.dns = reply.dns
        expected_routers = (gateway_ip,) if gateway_ip is not None else ()
        hijack = bool(
            (reply.routers and reply.routers[0] not in expected_routers)
            or (reply.dns and self.legit_dns and not set(reply.dns) <= set(self.legit_dns))
            or (reply.dns and not self.legit_dns and gateway_ip not in reply.dns)
        )
        level = LEVEL_ROGUE_HIJACK if hijack else LEVEL_ROGUE
        expected = next(iter(sorted(legit)))

        def evidence() -> dict[str, Any]:
            found: dict[str, Any] = {
                "server_ip": addr_str(state.ip),
                "old_mac": mac_str(expected),
                "new_mac": mac_str(mac),
                "routers": [addr_str(r) for r in state.routers],
                "dns": [addr_str(d) for d in state.dns],
                "packets": state.packets,
            }
            if state.offered is not None and state.offered != b"\x00" * 4:
                found["offered_ip"] = addr_str(state.offered)
            return found

        return Detection(self.kind, level, mac, ip, state.first, state.last, evidence)

    def expire(self, now: float) -> None:
        self.servers.expire(now)
