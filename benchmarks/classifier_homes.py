"""A second, independent corpus for the classifier: homes replayed through the real agent.

Unlike ``classifier_corpus.py`` (which writes events directly), this generator writes the
*frames* a home's devices send and pushes them through the agent's own pipeline
(``sensor_agent.pipeline.Pipeline``: its detectors, incident tracker, rate limits and hosts
inventory), so the events, their evidence, their incidents and their timing are the agent's.
What each tool sends comes from ``data/classifier_lab_shapes.json``: the probe schedules of the
real tools (Home Assistant's nmap tracker with its options, NetAlertX's arp-scan, nmap -T1..T5,
a vulnerability scanner, an NVR's RTSP discovery, printer software's SNMP sweep, Mirai-like
telnet bots, ransomware) as the real agent watched them in a namespace lab
(``classifier_lab_record.py`` records them; ``tests/ha/test_learning_homes.py`` checks that a
replayed schedule gives the events the agent published there). Device MACs carry real OUIs, so
the agent names vendors with its own OUI database; hostnames come from DHCP requests.

A home (one seed) draws its time zone, its devices and what they run, its attacks and its owner:

Benign (truth ``normal``)
  * Home Assistant's nmap tracker (every 120 s, or as configured), NetAlertX (every 5 min),
    a router refreshing its host map (every 10-20 min), phones running a Fing-like sweep,
    streaming boxes resolving their peers in bursts, a Hue bridge's small periodic bursts,
    printer software sweeping SNMP from the family PC, an NVR discovering cameras over RTSP
    (level 3 on the RTSP decoy), a weekly vulnerability scanner appliance (level 1-3), the
    owner's nmap from a laptop (-F, top 1000 with a flood event, an SMB check: level 3),
    guests that sweep as they join, a new device's first sweeps, DHCP handing a departed phone's
    address to a newcomer (arp_spoof, level 1), phones leaving home (host_left).
Malicious (truth ``alarm``), none in some homes, up to four in others
  * a camera, thermostat, plug or doorbell quiet for days turning into a telnet bot, mostly at
    night, often again on the following nights (ARP sweeps; SYN scans when it probes 3+ ports);
  * a device with a regular benign cycle (a Hue bridge, a streaming box) turning into one;
  * ransomware or an SMB worm on the family PC or the owner's laptop (known, benign history);
  * a compromised streaming box sweeping the whole /24 at night, then scanning ports;
  * slow reconnaissance (nmap -T2 sweep, -T1 port scan) from a guest, a PC or an IoT device;
  * ARP spoofing of the gateway (after a sweep, sometimes).

The owner: answers a share of pushes and questions (some never answer), late (minutes to a
day), reviews the inbox now and then, and gets 2 % of answers wrong; ``classifier_eval.py``
plays them.

Each home has its own time zone (schedules run on local time), subnet, node address and
device mix; generation runs the agent's pipeline over every frame (a few million per
simulated week), so ``cached_home`` keeps generated homes in ``$XDG_CACHE_HOME/lan-guard``.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import heapq
import itertools
import json
import os
import pickle
import random
import struct
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo

from sensor_agent.formats import iso_utc, mac_str
from sensor_agent.pipeline import Pipeline, PipelineConfig
from sensor_agent.sinks import RetainedTopic

Truth = Literal["normal", "alarm"]

GENERATOR_VERSION: Final = 2
SHAPES_PATH: Final = Path(__file__).resolve().parent / "data" / "classifier_lab_shapes.json"
EPOCH: Final = datetime(2026, 11, 2)  # local midnight of every home's first day
ZONES: Final = (
    "Asia/Tokyo",
    "Europe/Berlin",
    "America/New_York",
    "America/Los_Angeles",
    "Australia/Sydney",
    "Europe/London",
    "Asia/Kolkata",
    "America/Sao_Paulo",
)
LAB_NODE: Final = 2  # the lab's node address (…​.2), swapped with the home's node address
_DECOY_PORTS: Final = (554, 445, 9100, 80, 515, 139)

# Real OUIs (the agent's netaddr database names their vendors).
OUIS: Final[Mapping[str, tuple[str, ...]]] = {
    "router": ("08:10:86", "d4:2c:46", "d0:12:cb", "f0:9f:c2", "14:d8:64"),
    "rpi": ("dc:a6:32", "e4:5f:01", "d8:3a:dd"),
    "nas": ("90:09:d0", "00:11:32"),
    "pc": ("d0:43:1e", "d8:cb:8a", "64:4e:d7"),
    "laptop": ("74:5d:22", "60:fd:a6", "e4:c7:67", "84:7b:eb"),
    "phone": ("64:1b:2f", "cc:eb:5e", "80:a9:97"),
    "printer": ("3c:2a:f4", "a4:d7:3c", "84:ba:3b"),
    "roku": ("34:5e:08", "a8:b5:7c"),
    "chromecast": ("60:70:6c", "c8:2a:dd"),
    "firetv": ("84:28:59", "28:73:f6"),
    "sonos": ("f0:f6:c1", "54:2a:1b"),
    "console": ("f4:64:12", "60:1a:c7"),
    "tv": ("ac:5a:f0", "b0:37:95"),
    "camera": ("0c:75:d2", "74:c9:29", "ec:71:db", "d0:3f:27"),
    "nvr": ("54:8c:81", "24:48:45"),
    "thermostat": ("44:61:32", "64:16:66"),
    "plug": ("10:06:1c", "1c:90:ff", "d4:8a:fc"),
    "hue": ("00:17:88", "ec:b5:fa"),
    "doorbell": ("54:e0:19", "5c:47:5e"),
}
HOSTNAMES: Final[Mapping[str, tuple[str | None, ...]]] = {
    "router": (None,),
    "rpi": ("homeassistant",),
    "nas": ("netalertx", "nas"),
    "pc": ("DESKTOP-FAMILY", "LIVING-PC", None),
    "laptop": ("owner-mbp", "DESKTOP-7F3K2", None),
    "phone": ("iPhone", "Galaxy-S23", "Pixel-8", None),
    "printer": ("BRW3C2AF4", "EPSON1A2B3C", None),
    "roku": ("Roku-Ultra", None),
    "chromecast": ("Chromecast", None),
    "firetv": ("Fire-TV", None),
    "sonos": ("Sonos-Living", None),
    "console": (None,),
    "tv": ("LG-webOS-TV", None),
    "camera": ("IPCamera", "Reolink", None),
    "nvr": ("NVR", None),
    "thermostat": ("ecobee", "Nest-Thermostat", None),
    "plug": ("tasmota-4F2A", "ESP_8A1B2C", None),
    "hue": ("Philips-hue",),
    "doorbell": ("Ring-Doorbell", None),
    "guest": ("Galaxy-A54", "DESKTOP-GUEST", None),
}
QUIET_ROLES: Final = ("camera", "thermostat", "plug", "doorbell")


@dataclass(frozen=True)
class Probe:
    """One frame of a recorded schedule (see ``classifier_lab_record.py``)."""

    t: float
    op: str  # a: ARP request for host ``arg``; s: SYN, k: ACK, d: data to node port ``arg``
    arg: int
    nbytes: int = 0
    data: bytes = b""


@dataclass(frozen=True)
class ToolShape:
    """A real tool's probes as the agent saw them in the lab, and the events it published."""

    name: str
    role: str
    probes: tuple[Probe, ...]
    agent_events: tuple[Mapping[str, Any], ...]
    command: str
    tool_host: int  # the tool's address in the lab's /24

    @property
    def duration(self) -> float:
        return self.probes[-1].t if self.probes else 0.0

    def arp_gap(self) -> float:
        """Median time between its ARP requests (its pacing)."""
        times = [p.t for p in self.probes if p.op == "a"]
        gaps = sorted(b - a for a, b in itertools.pairwise(times) if b > a)
        return gaps[len(gaps) // 2] if gaps else 0.01


@functools.cache
def load_shapes(path: Path = SHAPES_PATH) -> dict[str, ToolShape]:
    """The recorded tool shapes by name."""
    raw = json.loads(path.read_text())
    shapes: dict[str, ToolShape] = {}
    for name, profile in raw["profiles"].items():
        probes = tuple(
            Probe(
                float(item[0]),
                str(item[1]),
                int(item[2]),
                int(item[3]) if len(item) > 3 else 0,
                bytes.fromhex(item[4]) if len(item) > 4 else b"",
            )
            for item in profile["probes"]
        )  # in time order (the capture may swap two frames of parallel senders by 0.1 ms)
        shapes[name] = ToolShape(
            name,
            profile["role"],
            tuple(sorted(probes, key=lambda probe: probe.t)),
            tuple(profile["agent_events"]),
            profile["command"],
            int(profile["tool_host"]),
        )
    return shapes


def shapes_digest(path: Path = SHAPES_PATH) -> str:
    """A short digest of the shapes file (what a cached corpus was built from)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


# -- frames -------------------------------------------------------------------------------------
_BROADCAST: Final = b"\xff" * 6


def arp_request(mac: bytes, ip: bytes, target: bytes) -> bytes:
    """An Ethernet ARP request from ``mac``/``ip`` for ``target``."""
    return (
        _BROADCAST
        + mac
        + b"\x08\x06\x00\x01\x08\x00\x06\x04\x00\x01"
        + mac
        + ip
        + b"\x00" * 6
        + target
    )


def arp_reply(mac: bytes, claimed_ip: bytes, to_mac: bytes, to_ip: bytes) -> bytes:
    """An ARP reply from ``mac`` saying ``claimed_ip`` is at ``mac`` (a spoof when not its)."""
    return (
        to_mac
        + mac
        + b"\x08\x06\x00\x01\x08\x00\x06\x04\x00\x02"
        + mac
        + claimed_ip
        + to_mac
        + to_ip
    )


def tcp_frame(
    source: tuple[bytes, bytes],
    node: tuple[bytes, bytes],
    dport: int,
    flags: int,
    *,
    payload: bytes = b"",
    nbytes: int = 0,
) -> bytes:
    """A TCP segment (IPv4, no options) from ``source`` to ``node`` (each MAC, IP); ``nbytes``
    is the length the IP header claims for the payload, of which ``payload`` was captured (the
    agent's snap length cuts the rest)."""
    (mac, ip), (dst_mac, dst_ip) = source, node
    length = 40 + max(nbytes, len(payload))
    ip_header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, length, 0, 0x4000, 64, 6, 0, ip, dst_ip)
    tcp = struct.pack("!HHIIBBHHH", 40000 + dport % 20000, dport, 1, 0, 0x50, flags, 64240, 0, 0)
    return dst_mac + mac + b"\x08\x00" + ip_header + tcp + payload


def dhcp_request(mac: bytes, ip: bytes, hostname: str | None) -> bytes:
    """A DHCP request (from 0.0.0.0, broadcast) asking for ``ip``, naming ``hostname``."""
    options = b"\x35\x01\x03" + b"\x32\x04" + ip
    if hostname:
        name = hostname.encode()[:63]
        options += b"\x0c" + bytes([len(name)]) + name
    options += b"\xff"
    bootp = (
        b"\x01\x01\x06\x00"
        + b"\x00" * 24
        + mac
        + b"\x00" * 10
        + b"\x00" * 192
        + b"\x63\x82\x53\x63"
        + options
    )
    udp = struct.pack("!HHHH", 68, 67, 8 + len(bootp), 0) + bootp
    ip_header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, b"\x00" * 4, b"\xff" * 4
    )
    return _BROADCAST + mac + b"\x08\x00" + ip_header + udp


# -- homes --------------------------------------------------------------------------------------
@dataclass
class Device:
    """A host of the home LAN."""

    role: str
    mac: bytes
    index: int  # host part of its address in the home's /24
    hostname: str | None
    away: list[tuple[float, float]] = field(default_factory=list)  # (from, to): silent
    joins: float = 0.0  # when it first appears
    leaves: float = float("inf")  # when it is gone for good


@dataclass(frozen=True)
class Run:
    """One activity: a device sends frames from ``start`` on."""

    start: float
    device: Device
    frames: Callable[[], Iterator[tuple[float, bytes]]]
    truth: Truth
    scenario: str
    attack: str = ""  # the attack it belongs to (malicious runs)
    end: float = 0.0  # when its last frame goes (known in advance)


@dataclass(frozen=True)
class LabelledEvent:
    """An event as the agent published it, its ground truth and what produced it."""

    event: dict[str, Any]
    truth: Truth
    scenario: str
    time: float  # detected_at, unix seconds
    episode: str = ""  # the attack it belongs to ("" for benign)


@dataclass(frozen=True)
class Owner:
    """How the home's owner answers: shares of pushes and of questions answered, the median
    delay of an answer (seconds), and the share of answers that are wrong. Owners who answer
    also open the inbox now and then, like a spam folder: weekly when they answer most
    notifications, every three weeks when they answer few, never when they never answer."""

    answers_pushes: float
    answers_questions: float
    median_delay_s: float
    mistakes: float = 0.02

    @property
    def reviews_every_s(self) -> float | None:
        """How often the owner reviews the inbox (None: never)."""
        if self.answers_pushes <= 0.0:
            return None
        return (7.0 if self.answers_pushes >= 0.6 else 21.0) * 86400.0

    review_size: int = 5  # events labelled in one review of the inbox


@dataclass
class Home:
    """One home's labelled event stream and what the classifier also learns from the agent."""

    seed: int
    agent_id: str
    tz_name: str
    subnet: str
    node_ip: str
    owner: Owner
    events: list[LabelledEvent]
    # (time, entries of the agent's retained hosts payload that were new then)
    hosts: list[tuple[float, list[dict[str, Any]]]]
    attacks: dict[str, str]  # attack id -> scenario
    start: float
    end: float
    frames: int = 0
    devices: dict[str, int] = field(default_factory=dict)  # role -> count

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.tz_name)


class _Collector:
    """The pipeline's sink: events, and hosts as they first appear in the inventory."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.hosts: list[tuple[float, list[dict[str, Any]]]] = []
        self._known: set[str] = set()

    def event(self, event: Mapping[str, Any]) -> None:
        self.events.append(dict(event))

    def retained(self, topic: RetainedTopic, payload: Mapping[str, Any]) -> None:
        if topic != "hosts":
            return
        new = [
            {"mac": host["mac"], "first_seen": host["first_seen"]}
            for host in payload["hosts"]
            if host["mac"] not in self._known
        ]
        self._known.update(host["mac"] for host in new)
        if new:
            when = datetime.fromisoformat(payload["updated_at"].replace("Z", "+00:00"))
            self.hosts.append((when.timestamp(), new))

    def close(self) -> None:
        return None


class _Builder:
    """Draws one home and schedules what its devices send."""

    def __init__(self, seed: int, days: float) -> None:
        self.rng = random.Random(seed * 7_654_321 + GENERATOR_VERSION)
        self.seed = seed
        self.days = days
        self.tz_name = self.rng.choice(ZONES)
        self.tz = ZoneInfo(self.tz_name)
        self.start = EPOCH.replace(tzinfo=self.tz).timestamp()
        self.end = self.start + days * 86400.0
        self.net = bytes([192, 168, self.rng.randrange(0, 250), 0])
        self.node_index = self.rng.choice([2, 5, 50, 200, 250, 253])
        self.node_mac = bytes.fromhex(f"b827eb{seed % 0xFFFFFF:06x}")
        self.gateway_index = 1
        self.devices: list[Device] = []
        self.runs: list[Run] = []
        self.attacks: dict[str, str] = {}
        self.shapes = load_shapes()
        self._arp_cache: dict[tuple[bytes, int], list[bytes]] = {}
        self._used = {1, self.node_index}

    # -- addresses ------------------------------------------------------------------------
    def ip(self, index: int) -> bytes:
        return self.net[:3] + bytes([index])

    def home_index(self, lab_index: int) -> int:
        """A lab address's host part in this home (the node and the lab node swap)."""
        if lab_index == LAB_NODE:
            return self.node_index
        if lab_index == self.node_index:
            return LAB_NODE
        return lab_index

    def device(
        self,
        role: str,
        *,
        joins: float | None = None,
        private: bool = False,
        index: int | None = None,
    ) -> Device:
        rng = self.rng
        if index is None:
            index = rng.choice([h for h in range(2, 250) if h not in self._used])
        self._used.add(index)
        if private or role == "guest" or (role == "phone" and rng.random() < 0.6):
            first = (rng.randrange(256) | 0x02) & 0xFE  # locally administered: no vendor
            mac = bytes([first, *(rng.randrange(256) for _ in range(5))])
        else:
            oui = bytes.fromhex(rng.choice(OUIS[role]).replace(":", ""))
            mac = oui + bytes(rng.randrange(256) for _ in range(3))
        hostname = rng.choice(HOSTNAMES.get(role, (None,)))
        device = Device(role, mac, index, hostname, joins=self.start if joins is None else joins)
        self.devices.append(device)
        return device

    def local(self, day: int, hour: float) -> float:
        """Unix time of ``hour`` (local, may exceed 24) on the home's ``day``."""
        moment = (EPOCH + timedelta(days=day, hours=hour)).replace(tzinfo=self.tz)
        return moment.timestamp()

    # -- runs -----------------------------------------------------------------------------
    def add(
        self,
        device: Device,
        start: float,
        frames: Callable[[], Iterator[tuple[float, bytes]]],
        duration: float,
        *,
        scenario: str,
        attack: str = "",
    ) -> None:
        """A run; malicious when it belongs to an ``attack`` (its scenario is the attack's)."""
        if start >= self.end:
            return
        truth: Truth = "alarm" if attack else "normal"
        scenario = self.attacks.get(attack, scenario)
        self.runs.append(Run(start, device, frames, truth, scenario, attack, start + duration))

    def tool(
        self,
        device: Device,
        start: float,
        name: str,
        *,
        scenario: str = "",
        attack: str = "",
    ) -> float:
        """Schedule a recorded tool run (a little faster or slower); returns when it ends."""
        shape = self.shapes[name]
        scale = self.rng.uniform(0.9, 1.15)
        self.add(
            device,
            start,
            functools.partial(self._replay, device, start, shape, scale),
            shape.duration * scale,
            scenario=scenario or name,
            attack=attack,
        )
        return start + shape.duration * scale

    def _replay(
        self, device: Device, start: float, shape: ToolShape, scale: float
    ) -> Iterator[tuple[float, bytes]]:
        source = (device.mac, self.ip(device.index))
        node = (self.node_mac, self.ip(self.node_index))
        arps = self._arp_frames(device)
        for probe in shape.probes:
            t = start + probe.t * scale
            if probe.op == "a":
                target = self.home_index(probe.arg)
                if target != device.index:
                    yield t, arps[target]
            elif probe.op == "s":
                yield t, tcp_frame(source, node, probe.arg, 0x02)
            elif probe.op == "k":
                yield t, tcp_frame(source, node, probe.arg, 0x10)
            else:
                data, nbytes = probe.data, probe.nbytes
                yield t, tcp_frame(source, node, probe.arg, 0x18, payload=data, nbytes=nbytes)

    def _arp_frames(self, device: Device) -> list[bytes]:
        """The device's ARP request for each host part of the /24 (built once per device)."""
        key = (device.mac, device.index)
        frames = self._arp_cache.get(key)
        if frames is None:
            ip = self.ip(device.index)
            frames = [arp_request(device.mac, ip, self.ip(host)) for host in range(256)]
            self._arp_cache[key] = frames
        return frames

    def burst(
        self,
        device: Device,
        start: float,
        targets: Sequence[int],
        *,
        scenario: str,
        attack: str = "",
    ) -> None:
        """ARP requests for ``targets`` at a streaming box's recorded pacing."""
        gap = self.shapes["streaming_burst"].arp_gap()
        arps = self._arp_frames(device)
        times = [start + i * gap * self.rng.uniform(0.8, 1.2) for i in range(len(targets))]

        def frames() -> Iterator[tuple[float, bytes]]:
            for t, target in zip(times, targets, strict=True):
                yield t, arps[target]

        self.add(device, start, frames, times[-1] - start, scenario=scenario, attack=attack)

    def spoof(self, device: Device, start: float, minutes: float, attack: str) -> None:
        """``arpspoof``-like: an ARP reply claiming the gateway's address every 2 s."""
        gateway_ip = self.ip(self.gateway_index)
        victim = self.rng.choice([d for d in self.devices if d.role != "router"])
        count = int(minutes * 30)

        def frames() -> Iterator[tuple[float, bytes]]:
            for i in range(count):
                yield (
                    start + 2.0 * i,
                    arp_reply(device.mac, gateway_ip, victim.mac, self.ip(victim.index)),
                )

        self.add(device, start, frames, 2.0 * count, scenario="gateway_spoof", attack=attack)

    def live(self) -> list[int]:
        return [d.index for d in self.devices]

    def attack_id(self, scenario: str) -> str:
        attack = f"home-{self.seed}/{scenario}/{len(self.attacks)}"
        self.attacks[attack] = scenario
        return attack

    # -- background ------------------------------------------------------------------------
    def background(self) -> Iterator[tuple[float, bytes]]:
        """Every present device's DHCP request when it (re)appears and an ARP for the gateway
        every 40-100 s (what keeps it in the agent's inventory), in time order."""
        rng = random.Random(self.seed + 17)
        gateway = self.ip(self.gateway_index)
        heap: list[tuple[float, int, bool]] = []
        for n, device in enumerate(self.devices):
            heapq.heappush(heap, (max(device.joins, self.start) + rng.uniform(0, 30), n, True))
        while heap:
            t, n, announce = heapq.heappop(heap)
            device = self.devices[n]
            if t >= min(self.end, device.leaves):
                continue
            away = next((span for span in device.away if span[0] <= t < span[1]), None)
            if away is not None:
                heapq.heappush(heap, (away[1] + rng.uniform(0, 20), n, True))
                continue
            ip = self.ip(device.index)
            if announce:
                yield t, dhcp_request(device.mac, ip, device.hostname)
            if device.index != self.gateway_index:
                yield t + 0.001, arp_request(device.mac, ip, gateway)
            else:
                yield t + 0.001, arp_request(device.mac, ip, self.ip(self.node_index))
            daily = (t - self.start) % 86400.0 < 100.0
            heapq.heappush(heap, (t + rng.uniform(40, 100), n, daily))


def _periodic(
    b: _Builder, period: float, jitter: float, restarts_per_day: float, since: float | None = None
) -> list[float]:
    """Start times of a scheduled job: a fixed period, small jitter, restarts shift the phase."""
    times: list[float] = []
    t = (since or b.start) + b.rng.uniform(0, period)
    while t < b.end:
        times.append(t + b.rng.uniform(-jitter, jitter))
        t += period
        if b.rng.random() < restarts_per_day * period / 86400.0:
            t += b.rng.uniform(60.0, 900.0)
    return times


def _daily_times(
    b: _Builder, per_day: float, hours: tuple[float, float], since: int = 0
) -> list[float]:
    """Random times at a mean daily rate within local ``hours`` of each day from ``since``."""
    times = []
    for day in range(since, int(b.days)):
        count = sum(1 for _ in range(8) if b.rng.random() < per_day / 8)
        times += [b.local(day, b.rng.uniform(*hours)) for _ in range(count)]
    return sorted(times)


# -- the household ------------------------------------------------------------------------------
def _household(b: _Builder) -> dict[str, list[Device]]:
    rng = b.rng
    router = b.device("router", index=b.gateway_index)
    roles: dict[str, list[Device]] = {"router": [router]}

    def some(role: str, low: int, high: int) -> list[Device]:
        found = [b.device(role) for _ in range(rng.randint(low, high))]
        roles.setdefault(role, []).extend(found)
        return found

    phones = some("phone", 1, 4)
    for phone in phones:  # away at work or school on most weekdays
        for day in range(int(b.days)):
            if rng.random() < 0.6:
                b_from = b.local(day, rng.uniform(7, 9))
                phone.away.append((b_from, b_from + rng.uniform(7, 11) * 3600))
    some("pc", 0, 1)
    some("laptop", 1, 2)
    some("printer", 0, 1)
    some("roku", 0, 1)
    some("chromecast", 0, 1)
    some("firetv", 0, 1)
    some("sonos", 0, 2)
    some("tv", 0, 1)
    some("console", 0, 1)
    some("camera", 0, 4)
    some("thermostat", 0, 2)
    some("plug", 0, 6)
    some("doorbell", 0, 1)
    if rng.random() < 0.4:
        some("hue", 1, 1)

    if rng.random() < 0.55:  # Home Assistant's nmap device tracker
        ha = b.device("rpi")
        roles["ha"] = [ha]
        period = 120.0 if rng.random() < 0.8 else rng.choice([60.0, 300.0, 600.0])
        for t in _periodic(b, period, 1.0, rng.uniform(0.3, 1.5)):
            b.tool(ha, t, "ha_nmap_tracker")
    if rng.random() < 0.3:  # NetAlertX
        nax = b.device("nas")
        roles["netalertx"] = [nax]
        period = 300.0 if rng.random() < 0.75 else rng.choice([180.0, 600.0])
        for t in _periodic(b, period, 2.0, 0.2):
            b.tool(nax, t, "netalertx")
    if rng.random() < 0.35:  # the router's host map, irregular
        t = b.start + rng.uniform(0, 900)
        while t < b.end:
            b.tool(router, t, "router_hostmap")
            t += rng.uniform(600, 1200)
    for phone in phones:  # a phone app sweeping the LAN
        if rng.random() < 0.3:
            for t in _daily_times(b, rng.uniform(0.1, 1.0), (8, 23)):
                if not any(a <= t < z for a, z in phone.away):
                    b.tool(phone, t, "fing_phone")
    boxes = [*roles.get("roku", []), *roles.get("chromecast", []), *roles.get("firetv", [])]
    for box in boxes:  # discovery bursts: the peers it found, irregular
        if rng.random() < 0.7:
            t = b.start + rng.uniform(0, 3600)
            while t < b.end:
                peers = rng.sample(b.live(), min(len(b.live()), rng.randint(10, 30)))
                b.burst(box, t, peers, scenario="streaming_burst")
                t += rng.uniform(1200, 5400)
    for hue in roles.get("hue", []):  # a Hue bridge's small bursts, steady
        if rng.random() < 0.6:
            period = rng.uniform(1800, 3600)
            for t in _periodic(b, period, 30.0, 0.1):
                peers = rng.sample(b.live(), min(len(b.live()), rng.randint(10, 14)))
                b.burst(hue, t, peers, scenario="hue_bursts")
    pcs = roles.get("pc", []) or roles["laptop"][:1]
    if rng.random() < 0.4:  # printer software sweeping SNMP when the PC wakes
        for t in _daily_times(b, rng.uniform(0.5, 3.0), (7, 23)):
            b.tool(pcs[0], t, "printer_snmp")
    if roles.get("camera") and rng.random() < 0.5:  # an NVR discovering its cameras
        nvr = b.device("nvr")
        roles["nvr"] = [nvr]
        t = b.start + rng.uniform(600, 7200)
        while t < b.end:
            b.tool(nvr, t, "nvr_rtsp")
            t += rng.uniform(12, 24) * 3600
    if rng.random() < 0.15:  # a vulnerability scanner appliance, weekly
        scanner = b.device("rpi")
        scanner.hostname = "greenbone"
        roles["scanner"] = [scanner]
        day, hour = rng.randrange(7), rng.uniform(0, 24)
        while day < b.days:
            b.tool(scanner, b.local(day, hour), "vuln_scanner")
            day += 7
    if rng.random() < 0.5:  # the owner's nmap from a laptop, evenings and nights
        laptop = roles["laptop"][0]
        for t in _daily_times(b, rng.uniform(0.1, 0.4), (19, 27)):
            what = rng.choice(
                ["owner_nmap_fast", "owner_nmap_top1000", "owner_smb_check", "nmap_sweep_t4"]
            )
            b.tool(laptop, t, what, scenario="owner_nmap")
    for _ in range(rng.randint(0, 3)):  # guests: a few hours, some sweep as they join
        arrive = b.start + rng.uniform(0.5, b.days - 0.5) * 86400
        guest = b.device("guest", joins=arrive)
        guest.leaves = arrive + rng.uniform(2, 8) * 3600
        roles.setdefault("guest", []).append(guest)
        if rng.random() < 0.4:
            b.tool(
                guest,
                arrive + rng.uniform(30, 600),
                rng.choice(["fing_phone", "nmap_sweep_t3"]),
                scenario="guest_sweep",
            )
    if rng.random() < 0.5:  # a new device's first sweeps as it joins
        joins = b.start + rng.uniform(1, b.days - 1) * 86400
        newcomer = b.device(rng.choice(["tv", "sonos", "chromecast"]), joins=joins)
        for k in range(rng.randint(1, 2)):
            peers = rng.sample(b.live(), min(len(b.live()), rng.randint(10, 40)))
            b.burst(newcomer, joins + 60 + k * rng.uniform(300, 3600), peers, scenario="new_device")
    if phones and rng.random() < 0.3:  # DHCP gives a departed phone's address to a newcomer
        phone = phones[0]
        day = rng.randrange(1, max(int(b.days), 2))
        gone = b.local(day, rng.uniform(9, 18))
        phone.away.append((gone, gone + 86400))
        newcomer = b.device("guest", joins=gone + rng.uniform(30, 200), index=phone.index)
        newcomer.leaves = newcomer.joins + 3 * 3600
    return roles


# -- attacks ------------------------------------------------------------------------------------
def _bot_runs(b: _Builder, device: Device, start: float, attack: str) -> None:
    """A telnet bot scanning the LAN: back-to-back runs for minutes to hours, often again on
    the following nights."""
    rng = b.rng
    name = rng.choice(["telnet_bot", "telnet_bot", "telnet_bot_multi"])
    nights = 1 if rng.random() < 0.5 else rng.randint(2, 4)
    for night in range(nights):
        t = start + night * 86400 + rng.uniform(-1800, 1800)
        end = t + rng.uniform(20, 150) * 60
        while t < end:
            t = b.tool(device, t, name, attack=attack) + rng.uniform(0, 30)


def _attacks(b: _Builder, roles: dict[str, list[Device]]) -> None:
    rng = b.rng
    if rng.random() < 0.3:
        return  # a home with no attack at all
    for _ in range(rng.randint(1, 4)):
        what = rng.random()
        first = min(3, max(int(b.days) - 1, 0))  # after a few days (at once in a short home)
        day = rng.randrange(first, max(int(b.days) - 1, first + 1))
        night = b.local(day, rng.uniform(0, 5) if rng.random() < 0.6 else rng.uniform(5, 24))
        quiet = [d for role in QUIET_ROLES for d in roles.get(role, [])]
        cyclic = [*roles.get("hue", []), *roles.get("roku", []), *roles.get("chromecast", [])]
        computers = [*roles.get("pc", []), *roles.get("laptop", [])]
        guests = [g for g in roles.get("guest", []) if g.joins <= night < g.leaves]
        if what < 0.35:
            device = rng.choice(quiet) if quiet else b.device(rng.choice(QUIET_ROLES))
            _bot_runs(b, device, night, b.attack_id("iot_bot"))
        elif what < 0.45 and cyclic:
            start = b.local(max(day, 7), rng.uniform(0, 24))
            _bot_runs(b, rng.choice(cyclic), start, b.attack_id("turned_bot"))
        elif what < 0.65:
            device = rng.choice(computers)
            name = rng.choice(["ransomware", "ransomware", "smb_worm"])
            attack = b.attack_id(name)
            t = b.tool(device, night, name, attack=attack)
            if rng.random() < 0.5:
                b.tool(device, t + rng.uniform(30, 240), name, attack=attack)
        elif what < 0.75:
            boxes = roles.get("roku", []) or roles.get("firetv", []) or [b.device("roku")]
            box = rng.choice(boxes)
            attack = b.attack_id("compromised_box")
            sweep = rng.choice(["nmap_sweep_t4", "nmap_sweep_t5"])
            t = b.tool(box, night, sweep, attack=attack) + rng.uniform(5, 120)
            b.tool(box, t, rng.choice(["nmap_ports_t4", "nmap_ports_t3"]), attack=attack)
        elif what < 0.9:
            device = rng.choice([*guests, *computers, *quiet])
            attack = b.attack_id("slow_recon")
            t = b.tool(device, night, "nmap_sweep_t2", attack=attack) + rng.uniform(60, 1800)
            b.tool(device, t, "nmap_ports_t1", attack=attack)
        else:
            device = rng.choice([*computers, *guests])
            attack = b.attack_id("gateway_spoof")
            t = night
            if rng.random() < 0.5:
                t = b.tool(device, t, "nmap_sweep_t5", attack=attack) + 20
            b.spoof(device, t, rng.uniform(5, 30), attack)


# -- the stream ---------------------------------------------------------------------------------
_WINDOW_S: Final = 600.0


def _frames(b: _Builder) -> Iterator[tuple[list[float], list[bytes]]]:
    """All frames of the home in time order, in batches: each window's runs are made whole
    and sorted with what spilled over from the last window (runs last seconds, a few minutes
    at most)."""
    runs = sorted(b.runs, key=lambda run: run.start)
    background = b.background()
    pending = next(background, None)
    spill: list[tuple[float, bytes]] = []
    next_run = 0
    window = b.start
    while window < b.end or spill:
        edge = window + _WINDOW_S
        batch = spill
        while next_run < len(runs) and runs[next_run].start < edge:
            batch.extend(runs[next_run].frames())
            next_run += 1
        while pending is not None and pending[0] < edge:
            batch.append(pending)
            pending = next(background, None)
        batch.sort(key=lambda item: item[0])
        cut = len(batch)
        if window + _WINDOW_S < b.end or next_run < len(runs):
            cut = next((i for i, item in enumerate(batch) if item[0] >= edge), len(batch))
        spill = batch[cut:]
        if cut:
            yield [t for t, _ in batch[:cut]], [frame for _, frame in batch[:cut]]
        window = edge
        if window >= b.end and next_run >= len(runs) and pending is None:
            if spill:
                yield [t for t, _ in spill], [frame for _, frame in spill]
            return


def _truth(b: _Builder, events: list[dict[str, Any]]) -> list[LabelledEvent]:
    """Each event's truth: alarm when its source ran a malicious activity during it, else
    normal; the scenario of the activity it overlaps most closely."""
    by_mac: dict[str, list[Run]] = {}
    for run in b.runs:
        by_mac.setdefault(mac_str(run.device.mac), []).append(run)
    labelled = []
    for event in events:
        first = datetime.fromisoformat(event["first_seen"].replace("Z", "+00:00")).timestamp()
        last = datetime.fromisoformat(event["last_seen"].replace("Z", "+00:00")).timestamp()
        detected = datetime.fromisoformat(event["detected_at"].replace("Z", "+00:00")).timestamp()
        runs = by_mac.get(event["source"]["mac"], [])
        during = [r for r in runs if r.start - 2.0 <= last and first <= r.end + 2.0]
        bad = [r for r in during if r.truth == "alarm"]
        if event["kind"] == "host_left":
            labelled.append(LabelledEvent(event, "normal", "host_left", detected))
        elif bad:
            labelled.append(LabelledEvent(event, "alarm", bad[0].scenario, detected, bad[0].attack))
        elif during:
            labelled.append(LabelledEvent(event, "normal", during[0].scenario, detected))
        else:
            label = "dhcp_reuse" if event["kind"] == "arp_spoof" else "other"
            labelled.append(LabelledEvent(event, "normal", label, detected))
    return labelled


def generate_home(seed: int, days: float = 56.0) -> Home:
    """One home over ``days`` days: its frames through the agent's pipeline, labelled."""
    b = _Builder(seed, days)
    roles = _household(b)
    _attacks(b, roles)
    collector = _Collector()
    ids = random.Random(seed * 31 + 7)
    config = PipelineConfig(
        agent_id=f"home-{seed}",
        node_ip=b.ip(b.node_index),
        node_mac=b.node_mac,
        gateway_ip=b.ip(b.gateway_index),
    )
    pipeline = Pipeline(
        config,
        [collector],
        id_factory=lambda: uuid.UUID(int=ids.getrandbits(128), version=4).hex,
    )
    frames = 0
    for times, batch in _frames(b):
        pipeline.feed_many(times, batch)
        frames += len(times)
    pipeline.tick(b.end)
    pipeline.finish(b.end)
    owner = _owner(b.rng)
    events = sorted(_truth(b, collector.events), key=lambda item: item.time)
    counts: dict[str, int] = {}
    for device in b.devices:
        counts[device.role] = counts.get(device.role, 0) + 1
    return Home(
        seed,
        config.agent_id,
        b.tz_name,
        ".".join(str(o) for o in b.net[:3]) + ".0/24",
        ".".join(str(o) for o in b.ip(b.node_index)),
        owner,
        events,
        collector.hosts,
        dict(b.attacks),
        b.start,
        b.end,
        frames,
        counts,
    )


def _owner(rng: random.Random) -> Owner:
    """Most owners answer most pushes within hours; some answer late, some never."""
    kind = rng.random()
    if kind < 0.15:
        return Owner(0.0, 0.0, 3600.0)  # never answers
    if kind < 0.4:
        return Owner(rng.uniform(0.2, 0.5), rng.uniform(0.1, 0.4), rng.uniform(6, 20) * 3600)
    return Owner(rng.uniform(0.6, 0.95), rng.uniform(0.5, 0.9), rng.uniform(2, 60) * 60)


def cached_home(seed: int, days: float = 56.0) -> Home:
    """``generate_home``, cached on disk (``$XDG_CACHE_HOME/lan-guard``) by seed, days, this
    generator's version and the shapes file's digest."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lan-guard"
    path = base / f"home-v{GENERATOR_VERSION}-{shapes_digest()}-{seed}-{days:g}.pickle.gz"
    if path.exists():
        try:
            home = pickle.loads(gzip.decompress(path.read_bytes()))
            if isinstance(home, Home):
                return home
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError):
            pass
    home = generate_home(seed, days)
    try:
        base.mkdir(parents=True, exist_ok=True)
        path.write_bytes(gzip.compress(pickle.dumps(home), compresslevel=3))
    except OSError:
        pass
    return home


def iso(t: float) -> str:
    """Contract timestamp: ISO 8601 UTC with Z."""
    return iso_utc(t)


def replay_profile(shape: ToolShape) -> list[dict[str, Any]]:
    """The events the agent's pipeline publishes for one recorded tool run, replayed on the
    lab's addresses (198.18.40.0/24, node .2, gateway .1, the tool where it was): what the check
    of the shapes compares with the events the agent published in the lab."""
    net = bytes([198, 18, 40, 0])
    node = (bytes.fromhex("0200c6122802"), net[:3] + b"\x02")
    tool = Device("tool", bytes([2, 0, 198, 18, 40, shape.tool_host]), shape.tool_host, None)
    source = (tool.mac, net[:3] + bytes([tool.index]))
    collector = _Collector()
    pipeline = Pipeline(
        PipelineConfig(
            agent_id="lab", node_ip=node[1], node_mac=node[0], gateway_ip=net[:3] + b"\x01"
        ),
        [collector],
    )
    start = 1_800_000_000.0
    times: list[float] = []
    frames: list[bytes] = []
    for probe in shape.probes:
        times.append(start + probe.t)
        if probe.op == "a":
            frames.append(arp_request(source[0], source[1], net[:3] + bytes([probe.arg])))
        elif probe.op == "d":
            frames.append(
                tcp_frame(source, node, probe.arg, 0x18, payload=probe.data, nbytes=probe.nbytes)
            )
        else:
            frames.append(tcp_frame(source, node, probe.arg, 0x02 if probe.op == "s" else 0x10))
    pipeline.feed_many(times, frames)
    pipeline.finish(times[-1] + 1.0 if times else start)
    return [event for event in collector.events if event["source"]["mac"] == mac_str(tool.mac)]
