"""Slow sweeps: the same precursors as the fast detectors, paced to stay under their windows.

Malware that knows the 10-targets-in-10-s rule asks ARP for one address every few seconds,
or knocks on one port of the node a minute. This detector looks over a long horizon per
source instead, with a few hundred bytes per source: two 512-bit bitmaps (hashed targets of
the current and the previous half-horizon), so what it remembers is bounded whatever the
pace or the number of targets. Their union is the distinct targets of the last half to whole
horizon (hash collisions only ever undercount).

What it counts, and why:

* ARP requests for *dark* addresses (no host heard using them): a sweep mostly asks for
  addresses nobody holds; a host resolving its usual peers (even Home Assistant polling forty
  devices) asks for live ones, which never count.
* Probes of the node's ports, per kind (SYN, stealth, UDP): nothing legitimate touches the
  node, only the pace differs from a fast scan.

It reports each kind once per episode, and never an episode the fast detector of that kind
already reported (it gives the details of fast scans: a second event for the same scan would
be noise); an episode ends when the source has been quiet for a whole horizon.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from ..bounded import BoundedTable
from ..formats import addr_str
from . import LEVEL_ARP_SCAN, LEVEL_SYN_SCAN, Detection

_BITS: Final = 512
_SAMPLE: Final = 16


@dataclass(frozen=True, slots=True)
class SlowSweepConfig:
    # 15 minutes: an ARP sweep at one request per 30 s asks for 15 dark addresses in half
    # of it (the bitmaps always cover at least half a horizon); slower still is not a sweep
    # anyone waits for.
    horizon_s: float = 900.0
    # 12 dark addresses: a sweep at one request per 2 s gets there in 22 s; a host asks for
    # a gone device or two, never a dozen addresses nobody uses.
    min_dark_targets: int = 12
    # 5 node ports: at one port per 60 s, 4 minutes; a client that mistyped an address, or a
    # router's clients of its DNS and web interface, stay below.
    min_ports: int = 5
    max_sources: int = 4096


class _Track:
    """One kind of target of one source: two bitmaps and a small sample."""

    __slots__ = (
        "current",
        "epoch",
        "first",
        "ip",
        "ips",
        "last",
        "previous",
        "probes",
        "reported",
        "sample",
    )

    def __init__(self, now: float, ip: bytes | None, epoch: int) -> None:
        self.current = 0
        self.previous = 0
        self.epoch = epoch
        self.first = now
        self.last = now
        self.ip = ip
        self.ips: tuple[bytes, ...] = (ip,) if ip is not None else ()
        self.probes = 0
        self.reported = False
        self.sample: list[Any] = []


_KINDS = ("arp_scan", "syn_scan", "stealth_scan", "udp_scan")


class SlowSweepDetector:
    kind = "slow_sweep"  # not an event kind: its detections carry the kind of what was swept

    def __init__(
        self, config: SlowSweepConfig | None = None, minimum: dict[str, int] | None = None
    ) -> None:
        """``minimum``: per kind, the fast detector's threshold, which a slow sweep must also
        reach (an owner who raised it wants no reports of fewer targets, at any pace)."""
        self.config = config or SlowSweepConfig()
        cfg = self.config
        minimum = minimum or {}
        self._half = cfg.horizon_s / 2
        # One table per kind: one small object per source and kind, nothing else. They
        # remember evicted sources: a slow sweep pushed out by a spray between two of its
        # probes comes back into a part of the table the spray does not churn.
        self.tables: dict[str, BoundedTable[_Track]] = {
            kind: BoundedTable(cfg.max_sources, cfg.horizon_s, remember=True) for kind in _KINDS
        }
        self.thresholds = {
            kind: max(
                cfg.min_dark_targets if kind == "arp_scan" else cfg.min_ports,
                minimum.get(kind, 0),
            )
            for kind in _KINDS
        }

    @property
    def evictions(self) -> int:
        return sum(table.evictions for table in self.tables.values())

    def on_dark_arp(
        self,
        now: float,
        mac: bytes,
        sender_ip: bytes | None,
        target: bytes,
        *,
        fast: bool = False,
    ) -> Detection | None:
        """An ARP request from ``mac`` for ``target``, an address no host is known to hold.
        ``fast``: the fast ARP scan detector reported this request (this episode is its)."""
        return self._add(now, mac, sender_ip, "arp_scan", target, fast=fast)

    def on_port(
        self, now: float, mac: bytes, ip: bytes, kind: str, port: int, *, fast: bool = False
    ) -> Detection | None:
        """A probe of ``port`` of the node (``kind``: syn_scan, stealth_scan or udp_scan).
        ``fast``: the fast detector of ``kind`` reported this probe (this episode is its)."""
        return self._add(now, mac, ip, kind, port, fast=fast)

    def _add(
        self, now: float, mac: bytes, ip: bytes | None, kind: str, target: Any, *, fast: bool
    ) -> Detection | None:
        epoch = int(now // self._half)
        table = self.tables[kind]
        track = table.current(mac, now, self.config.horizon_s, lambda: _Track(now, ip, epoch))
        track.last = now
        if epoch != track.epoch:  # a new half-horizon: the older half is forgotten
            track.previous = track.current if epoch - track.epoch == 1 else 0
            track.current = 0
            track.epoch = epoch
        if ip is not None and ip != track.ip:
            track.ip = ip
            if ip not in track.ips and len(track.ips) < 16:
                track.ips += (ip,)
        track.probes += 1
        if not track.current | track.previous:  # the first target of an episode
            track.first = now
            track.probes = 1
            track.reported = False
        if fast:
            track.reported = True
        # bytes hash with the interpreter's per-process salt: a scanner cannot pick targets
        # that all fall on one bit (an int would hash to itself)
        key = target if isinstance(target, bytes) else int(target).to_bytes(2, "big")
        bit = 1 << (hash(key) % _BITS)
        if not track.current & bit:
            track.current |= bit
            if target not in track.sample:
                track.sample.append(target)
                del track.sample[:-_SAMPLE]
        if track.reported or (track.current | track.previous).bit_count() < self.thresholds[kind]:
            return None
        track.reported = True
        return self._detection(mac, kind, track)

    def _detection(self, mac: bytes, kind: str, track: _Track) -> Detection:
        horizon = self.config.horizon_s
        count = (track.current | track.previous).bit_count()
        level = LEVEL_ARP_SCAN if kind == "arp_scan" else LEVEL_SYN_SCAN

        def evidence() -> dict[str, Any]:
            duration = max(track.last - track.first, 0.0)
            found: dict[str, Any] = {
                "slow": True,
                "horizon_s": horizon,
                "target_count": count,
                "packets": track.probes,
                "window_s": round(duration, 3),
                "rate": round(track.probes / duration, 3) if duration > 0 else 0.0,
            }
            if kind == "arp_scan":
                found["targets"] = [addr_str(ip) for ip in track.sample]
            else:
                found["ports"] = sorted(track.sample)
            return found

        return Detection(kind, level, mac, track.ip, track.first, track.last, evidence, track.ips)

    def expire(self, now: float) -> None:
        for table in self.tables.values():
            table.expire(now)
