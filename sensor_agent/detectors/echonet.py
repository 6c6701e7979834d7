"""ECHONET Lite: driving the decoy appliance, sweeping objects, Sets from a new controller.

ECHONET Lite has no authentication: whoever sends a Set changes the appliance. So:

* ``echonet_control`` level 3: a request to the decoy node's objects that reads its working
  state or changes it (any Set, or a Get beyond what discovery reads: property maps,
  identification, manufacturer, instance lists). The owner never added the decoy to any
  controller, so nobody legitimate drives it; controllers that discover the LAN read only
  the descriptive properties, which are recorded as discovery context, not reported.
* ``echonet_sweep`` level 2: one source reading the property maps of many objects (or asking
  the node for objects it never announced): enumerating what can be driven.
* ``echonet_control`` level 2: a Set to an appliance (unicast, seen where the agent sees
  other hosts' traffic: on the router, a bridge, a mirror port) or a multicast Set, from a
  controller never seen setting that target during the learning period. Home controllers
  (a HEMS, Home Assistant) drive the same appliances every day.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from ..bounded import BoundedTable
from ..echonet import DESCRIPTIVE_EPCS, PROPERTY_MAPS, SETS, Frame, matches
from ..formats import addr_str
from . import LEVEL_SESSION, LEVEL_SYN_SCAN, Detection

ESV_NAMES = {
    0x60: "SetI",
    0x61: "SetC",
    0x62: "Get",
    0x63: "INF_REQ",
    0x6E: "SetGet",
}
MULTICAST = b"multicast"


@dataclass(frozen=True, slots=True)
class EchonetConfig:
    # 4 objects: discovering one node reads the maps of its node profile and an appliance or
    # two; enumerating the LAN's (or the node's non-existent) objects reads many more.
    min_objects: int = 4
    window_s: float = 60.0
    # A day of learning which controller sets which appliance: a HEMS or Home Assistant
    # runs its schedules (heating, water heater, battery) at least daily.
    learn_s: float = 86400.0
    max_sources: int = 4096
    max_pairs: int = 1024


class _Source:
    __slots__ = ("epcs", "esvs", "first", "ip", "last", "objects", "packets", "reported")

    def __init__(self, now: float, ip: bytes) -> None:
        self.first = now
        self.last = now
        self.ip = ip
        self.packets = 0
        self.reported = False
        self.esvs: set[str] = set()
        self.epcs: set[int] = set()
        self.objects: dict[tuple[bytes, bytes], float] = {}


class _Pair:
    __slots__ = ("last",)

    def __init__(self, now: float) -> None:
        self.last = now


def _eoj(eoj: bytes) -> str:
    return eoj.hex()


CONTROL: Final = "echonet_control"
SWEEP: Final = "echonet_sweep"


class EchonetDetector:
    kinds = (CONTROL, SWEEP)  # the event kinds it reports

    def __init__(
        self, decoy_objects: tuple[bytes, ...], config: EchonetConfig | None = None
    ) -> None:
        self.config = config or EchonetConfig()
        self.decoy_objects = decoy_objects
        cfg = self.config
        # Every control request is reported as it comes: those tables need no memory of
        # evicted sources; a sweep adds up, as a scan does.
        self.control: BoundedTable[_Source] = BoundedTable(cfg.max_sources, 600.0, remember=False)
        self.sweeps: BoundedTable[_Source] = BoundedTable(cfg.max_sources, cfg.window_s)
        self.new_controllers: BoundedTable[_Source] = BoundedTable(
            cfg.max_sources, 600.0, remember=False
        )
        # Which controller sets which appliance: a pair seen twice (a schedule runs daily) is
        # established, so a spray of forged Sets pushes out only other one-off pairs.
        self.pairs: BoundedTable[_Pair] = BoundedTable(cfg.max_pairs, float("inf"), remember=False)
        self.started: float | None = None

    def on_request(
        self, now: float, mac: bytes, ip: bytes, dst: bytes, frame: Frame, *, to_node: bool
    ) -> Detection | None:
        """An ECHONET Lite request (Get, Set, SetGet, INF_REQ) from ``mac``/``ip`` to ``dst``
        (an address, or :data:`MULTICAST`); ``to_node``: sent to the node's own address."""
        if self.started is None:
            self.started = now
        epcs = frame.epcs
        if to_node:
            decoy = next((eoj for eoj in self.decoy_objects if matches(frame.deoj, eoj)), None)
            if decoy is None:
                return self._sweep(now, mac, ip, dst, frame)
            if frame.esv in SETS or epcs - DESCRIPTIVE_EPCS:
                return self._control(now, mac, ip, frame, decoy)
            return self._sweep(now, mac, ip, dst, frame) if epcs & PROPERTY_MAPS else None
        if frame.esv in SETS:
            return self._new_controller(now, mac, ip, dst, frame)
        if dst != MULTICAST and epcs & PROPERTY_MAPS:
            return self._sweep(now, mac, ip, dst, frame)
        return None

    def _control(self, now: float, mac: bytes, ip: bytes, frame: Frame, eoj: bytes) -> Detection:
        state = self.control.current(mac, now, 600.0, lambda: _Source(now, ip))
        state.last = now
        state.ip = ip
        self._note(state, frame, b"", eoj)
        return self._detection(CONTROL, LEVEL_SESSION, mac, state, decoy=True)

    def _sweep(
        self, now: float, mac: bytes, ip: bytes, dst: bytes, frame: Frame
    ) -> Detection | None:
        cfg = self.config
        state = self.sweeps.current(mac, now, cfg.window_s, lambda: _Source(now, ip))
        state.last = now
        state.ip = ip
        is_new = (dst, frame.deoj) not in state.objects
        self._note(state, frame, dst, frame.deoj)
        if state.reported:
            return self._detection(SWEEP, LEVEL_SYN_SCAN, mac, state) if is_new else None
        horizon = now - cfg.window_s
        for old in [key for key, seen in state.objects.items() if seen < horizon]:
            del state.objects[old]
        if len(state.objects) < cfg.min_objects:
            return None
        state.reported = True
        state.first = min(state.objects.values())
        return self._detection(SWEEP, LEVEL_SYN_SCAN, mac, state)

    def _new_controller(
        self, now: float, mac: bytes, ip: bytes, dst: bytes, frame: Frame
    ) -> Detection | None:
        assert self.started is not None
        key = mac + frame.deoj[:2] + dst  # the controller, the appliance's class, the appliance
        pairs = self.pairs
        pair = pairs.get(key)
        if pair is not None:
            pair.last = now
            pairs.touch(key)
            return None
        pairs.put(key, _Pair(now))
        if now - self.started < self.config.learn_s:
            return None
        state = self.new_controllers.current(mac, now, 600.0, lambda: _Source(now, ip))
        state.last = now
        state.ip = ip
        self._note(state, frame, dst, frame.deoj)
        return self._detection(CONTROL, LEVEL_SYN_SCAN, mac, state, decoy=False)

    def _note(self, state: _Source, frame: Frame, dst: bytes, eoj: bytes) -> None:
        state.packets += 1
        if len(state.esvs) < 8:
            state.esvs.add(ESV_NAMES.get(frame.esv, f"0x{frame.esv:02x}"))
        if len(state.epcs) < 64:
            state.epcs.update(list(frame.epcs)[: 64 - len(state.epcs)])
        key = (dst, eoj)
        if key in state.objects or len(state.objects) < 256:
            state.objects[key] = state.last

    def _detection(
        self, kind: str, level: int, mac: bytes, state: _Source, *, decoy: bool | None = None
    ) -> Detection:
        def evidence() -> dict[str, Any]:
            targets = [
                f"{addr_str(dst) if dst and dst != MULTICAST else dst.decode() or 'node'}"
                f"/{_eoj(eoj)}"
                for dst, eoj in list(state.objects)[:64]
            ]
            found: dict[str, Any] = {
                "services": sorted(state.esvs),
                "epcs": sorted(state.epcs),
                "objects": targets,
                "target_count": len(state.objects),
                "packets": state.packets,
                "window_s": round(max(state.last - state.first, 0.0), 3),
            }
            if decoy is not None:
                found["decoy"] = decoy
            return found

        return Detection(kind, level, mac, state.ip, state.first, state.last, evidence)

    def expire(self, now: float) -> None:
        for table in (self.control, self.sweeps, self.new_controllers):
            table.expire(now)
