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

It reports each kind once per episode (the fast detectors report the details of fast scans);
an episode ends when the source has been quiet for a whole horizon.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from ..formats import addr_str
from . import LEVEL_ARP_SCAN, LEVEL_SYN_SCAN, Detection, SourceTable

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

    __slots__ = ("current", "first", "previous", "probes", "reported", "sample")

    def __init__(self, now: float) -> None:
        self.current = 0
        self.previous = 0
        self.first = now
        self.probes = 0
        self.reported = False
        self.sample: list[Any] = []


class _Source:
    __slots__ = ("epoch", "ip", "ips", "last", "tracks")

    def __init__(self, now: float, ip: bytes | None, epoch: int) -> None:
        self.last = now
        self.ip = ip
        self.ips: dict[bytes, None] = {}
        self.epoch = epoch
        self.tracks: dict[str, _Track] = {}


class SlowSweepDetector:
    kind = "slow_sweep"  # not an event kind: its detections carry the kind of what was swept

    def __init__(
        self, config: SlowSweepConfig | None = None, minimum: dict[str, int] | None = None
    ) -> None:
        """``minimum``: per kind, the fast detector's threshold, which a slow sweep must also
        reach (an owner who raised it wants no reports of fewer targets, at any pace)."""
        self.config = config or SlowSweepConfig()
        self.minimum = minimum or {}
        self._half = self.config.horizon_s / 2
        self.sources: SourceTable[_Source] = SourceTable(
            self.config.max_sources, self.config.horizon_s
        )

    def _source(self, now: float, mac: bytes, ip: bytes | None) -> _Source:
        epoch = int(now // self._half)
        state = self.sources.current(
            mac, now, self.config.horizon_s, lambda: _Source(now, ip, epoch)
        )
        if epoch != state.epoch:  # a new half-horizon: the older half is forgotten
            shift = epoch - state.epoch
            for track in state.tracks.values():
                track.previous = track.current if shift == 1 else 0
                track.current = 0
            state.epoch = epoch
        if ip is not None:
            state.ip = ip
            if ip not in state.ips and len(state.ips) < 16:
                state.ips[ip] = None
        return state

    def on_dark_arp(
        self, now: float, mac: bytes, sender_ip: bytes | None, target: bytes
    ) -> Detection | None:
        """An ARP request from ``mac`` for ``target``, an address no host is known to hold."""
        state = self._source(now, mac, sender_ip)
        return self._add(
            now,
            mac,
            state,
            "arp_scan",
            target,
            threshold=max(self.config.min_dark_targets, self.minimum.get("arp_scan", 0)),
        )

    def on_port(self, now: float, mac: bytes, ip: bytes, kind: str, port: int) -> Detection | None:
        """A probe of ``port`` of the node (``kind``: syn_scan, stealth_scan or udp_scan)."""
        state = self._source(now, mac, ip)
        return self._add(
            now,
            mac,
            state,
            kind,
            port,
            threshold=max(self.config.min_ports, self.minimum.get(kind, 0)),
        )

    def _add(
        self, now: float, mac: bytes, state: _Source, kind: str, target: Any, *, threshold: int
    ) -> Detection | None:
        track = state.tracks.get(kind)
        if track is None:
            if len(state.tracks) >= 8:
                return None
            track = state.tracks[kind] = _Track(now)
        track.probes += 1
        if not track.current | track.previous:  # the first target of an episode
            track.first = now
            track.probes = 1
            track.reported = False
        # bytes hash with the interpreter's per-process salt: a scanner cannot pick targets
        # that all fall on one bit (an int would hash to itself)
        key = target if isinstance(target, bytes) else int(target).to_bytes(2, "big")
        bit = 1 << (hash(key) % _BITS)
        if not track.current & bit:
            track.current |= bit
            if target not in track.sample:
                track.sample.append(target)
                del track.sample[:-_SAMPLE]
        if track.reported or (track.current | track.previous).bit_count() < threshold:
            return None
        track.reported = True
        return self._detection(mac, state, kind, track)

    def _detection(self, mac: bytes, state: _Source, kind: str, track: _Track) -> Detection:
        horizon = self.config.horizon_s
        count = (track.current | track.previous).bit_count()
        level = LEVEL_ARP_SCAN if kind == "arp_scan" else LEVEL_SYN_SCAN

        def evidence() -> dict[str, Any]:
            duration = max(state.last - track.first, 0.0)
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

        return Detection(
            kind, level, mac, state.ip, track.first, state.last, evidence, tuple(state.ips)
        )

    def expire(self, now: float) -> None:
        self.sources.expire(now)
