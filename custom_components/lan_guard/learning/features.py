"""Features of a LAN Guard event (schema/event.schema.json) for the verdict model.

An event becomes a fixed-length float vector. Part of it is the event itself: its kind, level,
counts, ports, rate, whether it probes slower than any home discovery tool, what protocol the
data sent to a decoy speaks, the class of the device (vendor, else host name), the time of day.
The rest is what changed about its source, from what the integration saw of it before (a
:class:`History`, bounded, persisted by the integration with :meth:`History.to_dict`):

* whether the source is new to the classifier, and how long the LAN has known the device (the
  agent's hosts inventory): a thermostat present for weeks that starts sweeping is not a guest's
  laptop sweeping as it joins;
* the first event of a kind from a known source (its first sweep ever), at an hour it has never
  been active, larger than anything of that kind it did before, or a scan from a device class
  that never scans (cameras, thermostats, plugs, bulbs);
* the owner's labels of the same *shape* of this source (kind, size class and ports: a label of a
  10-address burst says nothing about a 253-address sweep), and of its other shapes; a label of
  an event carries to every shape of its incident (the owner judged the incident);
* whether the shape recurs with a rhythm of its own (Home Assistant's nmap tracker every 120 s,
  NetAlertX every 5 min): a rhythm of one shape never excuses another shape of the same device;
* the incident's escalation path: a higher level within the open incident, how many kinds it
  has shown, the highest level of the source within the hour, and whether it has been scanning
  for minutes on end rather than seconds.

Event kinds map to feature buckets through :data:`KIND_BUCKETS`; a kind the table does not know
falls in the ``other`` bucket, so a new kind from a newer agent is scored (as unknown) rather
than refused, and giving it a bucket is one line there. A new bucket changes the vector: bump
the version.

Version 3 replaced the per-kind one-hot with the buckets, vouching by behaviour with vouching by
shape, and the per-kind rhythm with a per-shape one; it added ``bot_port_share`` (telnet and the
IoT exploit ports, was ``telnet_port_share``), the session sample's protocol, the device class
from the host name, ``quiet_class_scan``, ``host_age``, ``quiet_host_wakes``, ``first_of_kind``,
``new_hour``, ``grown``, ``shape_*``, ``routine``, ``incident_steps`` and ``sustained``; novelty
is judged against the source's habits before its current block of 6 h (see SourceHistory).
Version 4 added the ``spray`` bucket for the kinds ``arp_spray`` and ``source_spray`` (one
sender using many addresses not its own; their address count is ``log_targets``), put the
kinds of the agent's kinds list version 3 in the buckets they resemble, and counts a scan the
agent reports as paced (``evidence.slow``) as ``slow_probe``. An earlier
integration's version 3 had a one-hot per kind instead of buckets: its stored models reset.

Every value is scaled to roughly [0, 1] so that one prior variance fits all weights.

Bump :data:`FEATURE_VERSION` whenever the meaning, order or scaling of a feature changes:
a stored model of another version no longer fits and is reset (see ``model.py``).
"""

from __future__ import annotations

import itertools
import math
import re
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from typing import Any, Final, NamedTuple

import numpy as np
import numpy.typing as npt

FEATURE_VERSION: Final = 4

# Event kind -> feature bucket. Unknown kinds go to "other" (see the module docstring).
KIND_BUCKETS: Final[Mapping[str, str]] = {
    "arp_scan": "sweep",
    "syn_scan": "port_scan",
    "session": "session",
    "flood": "flood",
    "arp_spoof": "spoof",
    "host_left": "info",
    "arp_spray": "spray",
    "source_spray": "spray",
    # Kinds list version 3, each in the bucket of what it resembles: a scan of the node, a
    # sweep, driving a decoy, a DoS, many addresses claimed by one sender, a hijack of an
    # address or of the route.
    "stealth_scan": "port_scan",
    "udp_scan": "port_scan",
    "echonet_sweep": "port_scan",
    "ipv6_sweep": "sweep",
    "echonet_control": "session",
    "dhcp_starvation": "flood",
    "cache_exhaustion": "spray",
    "ndp_spoof": "spoof",
    "rogue_ra": "spoof",
    "rogue_dhcp": "spoof",
}
BUCKETS: Final = ("sweep", "port_scan", "session", "flood", "spoof", "spray", "info", "other")
SCAN_BUCKETS: Final = frozenset({"sweep", "port_scan"})

DEVICE_CLASSES: Final = (
    "network",
    "computer",
    "phone",
    "printer",
    "media",
    "camera",
    "iot",
    "unknown",
)
# Cameras and the small appliances (thermostats, plugs, bulbs, their hubs) talk to their cloud
# and their app; none of them sweeps the LAN or scans ports. Media boxes, printers' software,
# computers and routers do discover their neighbours.
QUIET_CLASSES: Final = frozenset({"camera", "iot"})

# The ports ransomware probes first (the agent's default decoy ports).
RANSOMWARE_PORTS: Final = frozenset({554, 445, 9100, 80, 515, 139})
# IoT bots: telnet (Mirai and descendants) and the exploit ports of their later variants (ADB
# 5555, TR-069 7547, Huawei HG532 37215, Realtek SDK 52869).
BOT_PORTS: Final = frozenset({23, 2323, 5555, 7547, 37215, 52869})

# Keywords, lower case, checked in this order: first in the vendor (OUI organisation), then,
# when the vendor says nothing (private MACs, unknown OUIs), in the host name the device gives
# itself (DHCP, mDNS). Ambiguous makers go where most of their devices on a home LAN belong
# (Apple: phones and tablets; Google: Chromecast and Nest speakers; HP: computers).
_VENDOR_KEYWORDS: Final[tuple[tuple[str, tuple[str, ...]], ...]] = (
    (
        "camera",
        ("hikvision", "dahua", "reolink", "axis communications", "hanwha", "uniview", "wyze"),
    ),
    (
        "printer",
        ("brother", "canon", "epson", "kyocera", "ricoh", "xerox", "lexmark", "konica"),
    ),
    (
        "network",
        (
            "tp-link",
            "netgear",
            "buffalo",
            "nec platforms",
            "yamaha",
            "ubiquiti",
            "cisco",
            "juniper",
            "aruba",
            "mikrotik",
            "zyxel",
            "d-link",
            "linksys",
            "fortinet",
            "i-o data",
            "allied telesis",
            "avm",
        ),
    ),
    (
        "media",
        ("google", "amazon", "roku", "sonos", "nintendo", "sony interactive", "lg electronics"),
    ),
    (
        "phone",
        (
            "apple",
            "samsung",
            "xiaomi",
            "oppo",
            "vivo",
            "oneplus",
            "sony mobile",
            "sharp",
            "motorola",
            "huawei",
            "fcnt",
        ),
    ),
    (
        "iot",
        (
            "espressif",
            "tuya",
            "itead",
            "signify",
            "philips lighting",
            "nature",
            "woan",
            "ring llc",
            "nest labs",
            "ecobee",
            "silicon lab",
            "texas instruments",
            "azurewave",
            "murata",
            "gaoshengda",
            "shelly",
            "allterco",
        ),
    ),
    (
        "computer",
        (
            "dell",
            "lenovo",
            "lcfc",
            "hewlett",
            "hp inc",
            "intel",
            "micro-star",
            "gigabyte",
            "giga-byte",
            "asrock",
            "asustek",
            "acer",
            "raspberry pi",
            "microsoft",
            "toshiba",
            "fujitsu",
            "vaio",
            "synology",
            "qnap",
        ),
    ),
)
_HOSTNAME_KEYWORDS: Final[tuple[tuple[str, tuple[str, ...]], ...]] = (
    ("camera", ("camera", "ipcam", "cam-", "doorbell", "nvr")),
    ("printer", ("printer", "brn", "brw", "epson", "canon", "hp-print", "laserjet")),
    (
        "iot",
        (
            "hue",
            "thermostat",
            "ecobee",
            "nest",
            "plug",
            "tasmota",
            "shelly",
            "esp_",
            "esp-",
            "espressif",
            "tuya",
            "switchbot",
            "bulb",
            "lamp",
            "sensor",
        ),
    ),
    ("media", ("roku", "chromecast", "fire-tv", "firetv", "appletv", "sonos", "tv", "echo")),
    ("phone", ("iphone", "ipad", "android", "galaxy", "pixel", "phone")),
    ("network", ("router", "fritz", "gateway", "switch", "ap-", "unifi")),
    ("computer", ("desktop", "laptop", "pc", "mbp", "macbook", "server", "nas")),
)

FEATURE_NAMES: Final[tuple[str, ...]] = (
    "bias",
    *(f"kind_{bucket}" for bucket in BUCKETS),
    "level",  # level / 3
    "log_targets",  # log1p(target_count, or a spray's address_count) / log(256)
    "log_ports",  # log1p(number of node ports touched) / log(256)
    "log_packets",  # log1p(packets) / log(1e6)
    "log_bytes",  # log1p(bytes) / log(1e8)
    "log_rate",  # log1p(probes or frames per second) / log(1e5)
    "ransomware_port_share",  # share of the ports touched that are RANSOMWARE_PORTS
    "bot_port_share",  # share of the ports touched that are BOT_PORTS
    "other_port_share",  # share of the ports touched that are neither
    "gateway",  # evidence.is_gateway (an arp_spoof of the router)
    "slow_probe",  # 1 for a scan at under SLOW_RATE probes per second (stealth timing)
    "sample_smb",  # the data sent to a decoy speaks SMB, HTTP or RTSP (from its sample)
    "sample_http",
    "sample_rtsp",
    *(f"device_{name}" for name in DEVICE_CLASSES),  # vendor class, else host-name class
    "quiet_class_scan",  # 1 for a scan (not "few") by a QUIET_CLASSES device, not its routine
    "source_new",  # 1 when this source never raised an event before
    "host_age",  # log1p(days the LAN has known the device) / log(31); 0 when unknown
    "quiet_host_wakes",  # 1 within the first block of a source the LAN knew for a day before
    "first_of_kind",  # 1 for a kind bucket the source never showed before its current block
    "new_hour",  # 1 when a source active for days was never active within an hour of now
    "grown",  # (log2(size / the largest of its kind before the block) - 1) / 3, in [0, 1]
    "source_seen",  # log1p(events before) / log(1000)
    "shape_normal_labels",  # log1p(owner's "normal" labels of this shape of the source) / log(10)
    "shape_alarm_labels",  # the same for "alarm"
    "shape_vouched",  # 1 when the owner called this shape of the source normal, never alarm
    "other_normal_labels",  # log1p(labels of the source's other shapes) / log(10)
    "other_alarm_labels",
    "unvouched",  # 1 for a known source's shape nobody vouched for, out of any routine
    "routine",  # 1 when the shape recurs at a steady period, around the clock, and keeps it up
    "repeat_regularity",  # 1 - MAD/median of the gaps between the shape's events
    "repeat_period",  # log1p(median gap in s) / log(86400), 0 without a rhythm
    "incident_escalation",  # 1 when the event raises the level of its source's open incident
    "incident_steps",  # (kind buckets the open incident has shown, this one included - 1) / 3
    "source_recent_level",  # (highest level of this source within the last hour - 1) / 2, >= 0
    "sustained",  # (seconds spent scanning in the last 10 min - 30) / 60, in [0, 1]
    "since_last",  # log1p(s since the source's previous event) / log(1 week); 1 when new
    "time_sin",  # time of day (local), cyclic
    "time_cos",
)
N_FEATURES: Final = len(FEATURE_NAMES)
INDEX: Final[Mapping[str, int]] = {name: i for i, name in enumerate(FEATURE_NAMES)}

_RECENT_S: Final = 3600.0
# A scheduled sweep lasts seconds (the lab: 1.5-13 s every 2-20 min, so at most about 30 s of
# sweeping in 10 minutes); a bot or a slow scan keeps the agent's 10 s detection window full,
# event after event (100 s and more in 10 minutes).
_SUSTAINED_S: Final = 600.0
_SUSTAINED_FROM_S: Final = 30.0
_SUSTAINED_FULL_S: Final = 90.0
_DAY_S: Final = 86400.0
_WEEK_S: Final = 7 * _DAY_S
_MAX_LABELLED: Final = 32
_MAX_SHAPE_PORTS: Final = 64
_MAX_INCIDENT_SHAPES: Final = 8
# Two port sets are the same shape when the labelled one holds at least this share of the new
# event's ports (a printer tool's 80/515/9100 after 80/443/515/9100 was approved; not a
# ransomware scan that adds 445/139/554 to them), or when both are wide scans (nmap's top ports:
# the agent reports a sample, so two runs share few ports but are one behaviour).
_COVERED_PORTS: Final = 2.0 / 3.0
_WIDE_SCAN_PORTS: Final = 16
# Size classes: sweeps by addresses asked (the agent reports at 10; a streaming box resolves a
# few dozen peers; a whole /24 is 254), port scans by ports touched.
_SWEEP_SIZES: Final = ((24, "few"), (96, "some"))
_PORT_SIZES: Final = ((8, "few"), (32, "some"))
# Home discovery tools (nmap -sn, arp-scan, a printer's SNMP sweep, a router's host map, a TV's
# burst) probe at 20 to several hundred a second (recorded in the lab: see benchmarks/data);
# nmap -T2 sweeps at about 3 and -T1 scans ports at 0.1: the timing of scans meant to stay
# below detection thresholds.
SLOW_RATE: Final = 5.0
_SLOW_FEW_RATE: Final = 1.0
_MIN_GAPS_FOR_RHYTHM: Final = 2  # three events of a shape before a rhythm counts
_ROUTINE_REGULARITY: Final = 0.5
# A rhythm is a routine once the shape was seen at this many different hours of the day: a
# scheduled job runs around the clock, a bot's or a scan's rate-limited updates (every minute
# while it lasts) do not.
_ROUTINE_HOURS: Final = 12
_MAX_RHYTHM_KEYS: Final = 16
# Novelty is measured against the habits before the current block of this length.
BLOCK_S: Final = 6 * 3600.0
_QUIET_HOST_S: Final = _DAY_S

FloatVector = npt.NDArray[np.float64]


class Shape(NamedTuple):
    """What an event of a source looks like, for labels and rhythms: its kind bucket, its size
    class and the node ports it touched (a session's port included)."""

    bucket: str
    size: str
    ports: frozenset[int]

    @property
    def rhythm_key(self) -> str:
        """Events of one rhythm: the same bucket and size class (ports vary between runs)."""
        return f"{self.bucket}/{self.size}"

    def matches(self, labelled: Shape, label: str) -> bool:
        """Whether an owner's ``label`` of ``labelled`` speaks for this shape (same bucket, ports
        covered: see _COVERED_PORTS). Sizes: "normal" for a larger shape vouches for a smaller
        one (a whole sweep approved, its first ten addresses too), "alarm" for a smaller shape
        condemns a larger one (a small sweep was bad, a whole one is), never the reverse: an
        alarm on a box's 253-address sweep does not taint its ordinary 20-address bursts."""
        if self.bucket != labelled.bucket:
            return False
        mine, theirs = _size_rank(self.size), _size_rank(labelled.size)
        if (mine > theirs) if label == "normal" else (mine < theirs):
            return False
        if not self.ports:
            return not labelled.ports
        if len(self.ports) >= _WIDE_SCAN_PORTS and len(labelled.ports) >= _WIDE_SCAN_PORTS:
            return True
        return len(self.ports & labelled.ports) / len(self.ports) >= _COVERED_PORTS


def _size_rank(size: str) -> int:
    return {"few": 0, "some": 1}.get(size, 2)


def kind_bucket(kind: Any) -> str:
    """The feature bucket of an event kind (``other`` for a kind this version does not know)."""
    return KIND_BUCKETS.get(kind, "other") if isinstance(kind, str) else "other"


def _patterns(
    table: tuple[tuple[str, tuple[str, ...]], ...],
) -> tuple[tuple[str, re.Pattern[str]], ...]:
    """Each class's keywords as one pattern; a keyword must start a word ("ring llc" is Ring,
    not "Sage Electronic Engineering LLC")."""
    return tuple(
        (name, re.compile("|".join(rf"\b{re.escape(keyword)}" for keyword in keywords)))
        for name, keywords in table
    )


_VENDOR_PATTERNS: Final = _patterns(_VENDOR_KEYWORDS)
_HOSTNAME_PATTERNS: Final = _patterns(_HOSTNAME_KEYWORDS)


def _keyword_class(
    text: str | None, patterns: tuple[tuple[str, re.Pattern[str]], ...]
) -> str | None:
    if not text:
        return None
    lowered = text.lower()
    for name, pattern in patterns:
        if pattern.search(lowered):
            return name
    return None


@lru_cache(maxsize=1024)
def vendor_class(vendor: str | None) -> str:
    """The class of a device from its OUI vendor name (one of DEVICE_CLASSES)."""
    return _keyword_class(vendor, _VENDOR_PATTERNS) or "unknown"


@lru_cache(maxsize=4096)
def device_class(vendor: str | None, hostname: str | None) -> str:
    """The class of a device: from its vendor, else from its host name, else ``unknown``."""
    found = _keyword_class(vendor, _VENDOR_PATTERNS)
    if found is None and isinstance(hostname, str):
        found = _keyword_class(hostname[:64], _HOSTNAME_PATTERNS)
    return found or "unknown"


def parse_time(value: str) -> datetime:
    """An ISO 8601 UTC timestamp of the contract as an aware datetime."""
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def event_time(event: Mapping[str, Any]) -> float:
    """When the episode behind the event began (unix seconds): sweeps repeat from there."""
    return parse_time(str(event.get("first_seen") or event["detected_at"])).timestamp()


def event_ports(evidence: Mapping[str, Any]) -> frozenset[int]:
    """The node ports an event touched: the scanned ports plus a session's port."""
    ports = {int(port) for port in evidence.get("ports") or () if isinstance(port, int)}
    if isinstance(evidence.get("port"), int):
        ports.add(int(evidence["port"]))
    return frozenset(ports)


def _targets(evidence: Mapping[str, Any]) -> int:
    """Addresses swept, or a spray's addresses claimed or forged."""
    targets = evidence.get("target_count", evidence.get("address_count"))
    if isinstance(targets, int) and not isinstance(targets, bool):
        return max(targets, 0)
    listed = evidence.get("targets")
    return len(listed) if isinstance(listed, list) else 0


def event_shape(event: Mapping[str, Any]) -> Shape:
    """The shape of an event (see :class:`Shape`)."""
    evidence: Mapping[str, Any] = event.get("evidence") or {}
    bucket = kind_bucket(event.get("kind"))
    ports = event_ports(evidence)
    size = "-"
    if bucket == "sweep":
        size = _size_class(_targets(evidence), _SWEEP_SIZES)
    elif bucket == "port_scan":
        size = _size_class(len(ports), _PORT_SIZES)
    return Shape(bucket, size, frozenset(sorted(ports)[:_MAX_SHAPE_PORTS]))


def _size_class(count: int, limits: tuple[tuple[int, str], ...]) -> str:
    for limit, name in limits:
        if count < limit:
            return name
    return "many"


def _event_size(event: Mapping[str, Any]) -> float:
    """Addresses swept or ports scanned (what ``grown`` compares), 0 for other kinds."""
    evidence: Mapping[str, Any] = event.get("evidence") or {}
    bucket = kind_bucket(event.get("kind"))
    if bucket == "sweep":
        return float(_targets(evidence))
    if bucket == "port_scan":
        return float(len(event_ports(evidence)))
    return 0.0


def _window(event: Mapping[str, Any]) -> float:
    """How long the detection behind the event lasted (evidence.window_s), 0 when unknown."""
    window = (event.get("evidence") or {}).get("window_s")
    if isinstance(window, int | float) and not isinstance(window, bool) and window > 0:
        return min(float(window), _SUSTAINED_S)
    return 0.0


def _sample_protocol(evidence: Mapping[str, Any]) -> str | None:
    sample = evidence.get("sample")
    if not isinstance(sample, str):
        return None
    head = sample[:64]
    if "SMB" in head:
        return "smb"
    if "RTSP/" in head:
        return "rtsp"
    if "HTTP/" in head or head.startswith(("GET ", "POST ", "HEAD ", "PUT ", "OPTIONS ")):
        return "http"
    return None


def _log_scaled(value: Any, scale: float) -> float:
    number = float(value) if isinstance(value, int | float) and value > 0 else 0.0
    return min(math.log1p(number) / math.log(scale), 2.0)


def _local_hour(when: float, tz: tzinfo) -> int:
    return datetime.fromtimestamp(when, tz).hour


@dataclass
class Habits:
    """What a source did over a span of time: events per kind bucket, the largest size per
    bucket, the local hours it was active at."""

    buckets: dict[str, int] = field(default_factory=dict)
    largest: dict[str, float] = field(default_factory=dict)
    hours: int = 0  # bit h set: an event at local hour h

    def add(self, bucket: str, size: float, hour: int) -> None:
        self.buckets[bucket] = self.buckets.get(bucket, 0) + 1
        if size > self.largest.get(bucket, 0.0):
            self.largest[bucket] = size
        self.hours |= 1 << hour

    def absorb(self, other: Habits) -> None:
        for bucket, count in other.buckets.items():
            self.buckets[bucket] = self.buckets.get(bucket, 0) + count
        for bucket, size in other.largest.items():
            self.largest[bucket] = max(self.largest.get(bucket, 0.0), size)
        self.hours |= other.hours

    def as_list(self) -> list[Any]:
        return [dict(self.buckets), dict(self.largest), self.hours]

    @classmethod
    def of(cls, raw: Any) -> Habits:
        buckets, largest, hours = raw
        return cls(
            {str(k): int(v) for k, v in buckets.items()},
            {str(k): float(v) for k, v in largest.items()},
            int(hours) & 0xFFFFFF,
        )


@dataclass
class SourceHistory:
    """What was seen of one source: event times by shape, its habits, its labels.

    Novelty is judged against ``past``: the source's habits up to the start of its current
    ``block`` of at most BLOCK_S (6 h). A bot that scans for two hours stays "new" for all of
    its events, not only for the first, and a device's habits of weeks are not forgotten.
    """

    times: deque[tuple[float, str, int, float]]  # (unix time, rhythm key, level, window s)
    first: float = 0.0
    last: float = 0.0
    seen: int = 0
    past: Habits = field(default_factory=Habits)
    block: Habits = field(default_factory=Habits)
    block_start: float = 0.0
    shape_hours: dict[str, int] = field(default_factory=dict)  # rhythm key -> hours mask
    # (shape, label) of the last labelled shapes: what the owner approved of this source is a
    # shape, not a blank cheque (a known PC that turns into ransomware).
    labelled: deque[tuple[Shape, str]] = field(default_factory=lambda: deque(maxlen=_MAX_LABELLED))
    # The agent's incident the source's last event belonged to, its highest level so far, and
    # the kind buckets and shapes it showed.
    incident: str = ""
    incident_level: int = 0
    incident_buckets: set[str] = field(default_factory=set)
    incident_shapes: list[Shape] = field(default_factory=list)


class History:
    """Per-source memory with bounded size: at most ``max_sources`` sources (the least recently
    seen is forgotten first), ``max_times`` event times per source, and the first-seen time of
    at most ``max_hosts`` devices from the agent's hosts inventory."""

    def __init__(self, max_sources: int = 1000, max_times: int = 32, max_hosts: int = 4096) -> None:
        self.max_sources = max_sources
        self.max_times = max_times
        self.max_hosts = max_hosts
        self._sources: OrderedDict[str, SourceHistory] = OrderedDict()
        self._hosts: OrderedDict[str, float] = OrderedDict()  # mac -> earliest first_seen

    def __len__(self) -> int:
        return len(self._sources)

    def get(self, mac: str) -> SourceHistory | None:
        """The history of a source, or None when it is unknown (or was forgotten)."""
        return self._sources.get(mac)

    def host_first_seen(self, mac: str) -> float | None:
        """When the LAN first had this device (unix seconds), if the inventory said so."""
        return self._hosts.get(mac)

    def _entry(self, mac: str) -> SourceHistory:
        entry = self._sources.get(mac)
        if entry is None:
            entry = SourceHistory(times=deque(maxlen=self.max_times))
            self._sources[mac] = entry
            while len(self._sources) > self.max_sources:
                self._sources.popitem(last=False)
        self._sources.move_to_end(mac)
        return entry

    def observe_hosts(self, hosts: Iterable[Mapping[str, Any]]) -> None:
        """Remember when the agent first saw each device (its ``hosts`` payload's entries). The
        earliest time is kept: an agent restart resets its inventory, not what HA knew."""
        for host in hosts:
            mac, first_seen = host.get("mac"), host.get("first_seen")
            if not isinstance(mac, str) or not isinstance(first_seen, str):
                continue
            try:
                when = parse_time(first_seen).timestamp()
            except ValueError:
                continue
            known = self._hosts.get(mac)
            self._hosts[mac] = when if known is None else min(known, when)
            self._hosts.move_to_end(mac)
            while len(self._hosts) > self.max_hosts:
                self._hosts.popitem(last=False)

    def observe(self, event: Mapping[str, Any], tz: tzinfo = UTC) -> None:
        """Remember an event of its source (call after extracting the event's features)."""
        shape = event_shape(event)
        entry = self._entry(str(event["source"]["mac"]))
        when = event_time(event)
        level = int(event.get("level", 0))
        hour = _local_hour(when, tz)
        entry.times.append((when, shape.rhythm_key, level, _window(event)))
        entry.first = when if entry.seen == 0 else min(entry.first, when)
        entry.seen += 1
        if entry.seen == 1 or when - entry.block_start >= BLOCK_S:
            entry.past.absorb(entry.block)
            entry.block, entry.block_start = Habits(), when
        entry.block.add(shape.bucket, _event_size(event), hour)
        key = shape.rhythm_key
        if key in entry.shape_hours or len(entry.shape_hours) < _MAX_RHYTHM_KEYS:
            entry.shape_hours[key] = entry.shape_hours.get(key, 0) | 1 << hour
        entry.last = max(entry.last, when)
        incident = str(event.get("incident_id") or "")
        if not incident or incident != entry.incident:
            entry.incident, entry.incident_level = incident, level
            entry.incident_buckets, entry.incident_shapes = set(), []
        entry.incident_level = max(entry.incident_level, level)
        entry.incident_buckets.add(shape.bucket)
        if shape not in entry.incident_shapes:
            entry.incident_shapes = [*entry.incident_shapes, shape][-_MAX_INCIDENT_SHAPES:]

    def incident_shapes(self, mac: str) -> tuple[Shape, ...]:
        """The shapes the source's current incident showed so far that a label of it covers:
        per kind bucket the largest (a sweep's first ten addresses are a prefix of the sweep,
        not a shape of their own)."""
        entry = self._sources.get(mac)
        shapes = entry.incident_shapes if entry is not None else []
        largest = {
            s.bucket: max(_size_rank(o.size) for o in shapes if o.bucket == s.bucket)
            for s in shapes
        }
        return tuple(s for s in shapes if _size_rank(s.size) == largest[s.bucket])

    def add_label(self, mac: str, label: str, shapes: Iterable[Shape], count: int = 1) -> None:
        """Count an owner's label for ``shapes`` of a source (the labelled event's and its
        incident's); ``count=-1`` takes such a label back."""
        entry = self._entry(mac)
        for shape in dict.fromkeys(shapes):
            if count > 0:
                entry.labelled.append((shape, label))
            elif (shape, label) in entry.labelled:
                entry.labelled.remove((shape, label))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form for HA storage (local only: it names sources, never exported)."""
        return {
            "version": FEATURE_VERSION,
            "max_sources": self.max_sources,
            "max_times": self.max_times,
            "max_hosts": self.max_hosts,
            "hosts": dict(self._hosts),
            "sources": {
                mac: {
                    "times": [list(item) for item in entry.times],
                    "first": entry.first,
                    "last": entry.last,
                    "seen": entry.seen,
                    "past": entry.past.as_list(),
                    "block": entry.block.as_list(),
                    "block_start": entry.block_start,
                    "shape_hours": dict(entry.shape_hours),
                    "labelled": [[*_shape_list(shape), lb] for shape, lb in entry.labelled],
                    "incident": entry.incident,
                    "incident_level": entry.incident_level,
                    "incident_buckets": sorted(entry.incident_buckets),
                    "incident_shapes": [_shape_list(shape) for shape in entry.incident_shapes],
                }
                for mac, entry in self._sources.items()
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> History:
        """Rebuild a history; raises ValueError (or KeyError/TypeError) on a malformed one."""
        if data.get("version") != FEATURE_VERSION:
            raise ValueError(f"history of feature version {data.get('version')!r}")
        history = cls(int(data["max_sources"]), int(data["max_times"]), int(data["max_hosts"]))
        for mac, when in data["hosts"].items():
            history._hosts[str(mac)] = float(when)
        while len(history._hosts) > history.max_hosts:
            history._hosts.popitem(last=False)
        for mac, raw in data["sources"].items():
            entry = SourceHistory(
                times=deque(
                    ((float(t), str(k), int(lv), float(w)) for t, k, lv, w in raw["times"]),
                    maxlen=history.max_times,
                ),
                first=float(raw["first"]),
                last=float(raw["last"]),
                seen=int(raw["seen"]),
                past=Habits.of(raw["past"]),
                block=Habits.of(raw["block"]),
                block_start=float(raw["block_start"]),
                shape_hours={
                    str(k): int(v) & 0xFFFFFF
                    for k, v in list(raw["shape_hours"].items())[:_MAX_RHYTHM_KEYS]
                },
                labelled=deque(
                    ((_shape_of(item[:3]), str(item[3])) for item in raw["labelled"]),
                    maxlen=_MAX_LABELLED,
                ),
                incident=str(raw["incident"]),
                incident_level=int(raw["incident_level"]),
                incident_buckets={str(b) for b in raw["incident_buckets"]},
                incident_shapes=[_shape_of(item) for item in raw["incident_shapes"]][
                    -_MAX_INCIDENT_SHAPES:
                ],
            )
            history._sources[str(mac)] = entry
        while len(history._sources) > history.max_sources:
            history._sources.popitem(last=False)
        return history


def _shape_list(shape: Shape) -> list[Any]:
    return [shape.bucket, shape.size, sorted(shape.ports)]


def _shape_of(raw: Any) -> Shape:
    bucket, size, ports = raw
    return Shape(str(bucket), str(size), frozenset(int(p) for p in ports[:_MAX_SHAPE_PORTS]))


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2.0


def _rhythm(times: list[float], now: float) -> tuple[float, float, bool]:
    """(regularity, scaled period, routine) of the event times of one shape of a source.
    Routine: it recurs at a fairly steady period and this event keeps it up (no more than three
    periods since the last), though not necessarily on the beat (a router's host map every
    10-20 min)."""
    gaps = [later - earlier for earlier, later in itertools.pairwise(times) if later > earlier]
    if len(gaps) < _MIN_GAPS_FOR_RHYTHM:
        return 0.0, 0.0, False
    period = _median(gaps)
    spread = _median([abs(gap - period) for gap in gaps])
    regularity = max(0.0, 1.0 - spread / period)
    routine = regularity >= _ROUTINE_REGULARITY and now - times[-1] <= 3 * period
    return regularity, min(math.log1p(period) / math.log(86400.0), 1.5), routine


def _merged(entry: SourceHistory) -> Habits:
    """The source's habits including its block (the block is over: this event starts anew)."""
    merged = Habits()
    merged.absorb(entry.past)
    merged.absorb(entry.block)
    return merged


def _near_hours(hour: int) -> int:
    return (1 << hour) | (1 << ((hour + 1) % 24)) | (1 << ((hour - 1) % 24))


def extract(event: Mapping[str, Any], history: History, tz: tzinfo = UTC) -> FloatVector:
    """The feature vector of an event, given what was seen before it (``history`` is only
    read). ``tz`` is the home's time zone, for the time of day."""
    x = np.zeros(N_FEATURES, dtype=np.float64)
    x[INDEX["bias"]] = 1.0
    shape = event_shape(event)
    x[INDEX[f"kind_{shape.bucket}"]] = 1.0
    level = int(event.get("level", 0))
    x[INDEX["level"]] = min(max(level, 0), 3) / 3.0

    evidence: Mapping[str, Any] = event.get("evidence") or {}
    x[INDEX["log_targets"]] = _log_scaled(_targets(evidence), 256.0)
    ports = event_ports(evidence)
    x[INDEX["log_ports"]] = _log_scaled(len(ports), 256.0)
    x[INDEX["log_packets"]] = _log_scaled(evidence.get("packets"), 1e6)
    x[INDEX["log_bytes"]] = _log_scaled(evidence.get("bytes"), 1e8)
    x[INDEX["log_rate"]] = _log_scaled(evidence.get("rate"), 1e5)
    if ports:
        ransomware = len(ports & RANSOMWARE_PORTS) / len(ports)
        bot = len(ports & BOT_PORTS) / len(ports)
        x[INDEX["ransomware_port_share"]] = ransomware
        x[INDEX["bot_port_share"]] = bot
        x[INDEX["other_port_share"]] = 1.0 - ransomware - bot
    x[INDEX["gateway"]] = float(evidence.get("is_gateway") is True)
    rate = evidence.get("rate")
    scan = shape.bucket in SCAN_BUCKETS
    # A sweep of a few addresses tells its rate poorly: the agent measures it from the source's
    # first ARP in the window, often an ordinary one seconds before the burst (1-2 a second for
    # a streaming box's burst of a dozen); only far slower is slow.
    few = shape.bucket == "sweep" and shape.size == "few"
    slow = _SLOW_FEW_RATE if few else SLOW_RATE
    # The agent's paced-scan detectors say so themselves (``slow``).
    paced = evidence.get("slow") is True
    if scan and (paced or (isinstance(rate, int | float) and 0 < rate < slow)):
        x[INDEX["slow_probe"]] = 1.0
    if (protocol := _sample_protocol(evidence)) is not None:
        x[INDEX[f"sample_{protocol}"]] = 1.0

    source: Mapping[str, Any] = event.get("source") or {}
    vendor, hostname = source.get("vendor"), source.get("hostname")
    device = device_class(
        vendor if isinstance(vendor, str) else None, hostname if isinstance(hostname, str) else None
    )
    x[INDEX[f"device_{device}"]] = 1.0
    # More than a few addresses or ports: a hub resolving a dozen peers is not scanning.
    quiet_class_scan = scan and device in QUIET_CLASSES and shape.size != "few"

    when = event_time(event)
    mac = str(source.get("mac"))
    first_seen = history.host_first_seen(mac)
    age = max(when - first_seen, 0.0) if first_seen is not None else 0.0
    x[INDEX["host_age"]] = min(math.log1p(age / _DAY_S) / math.log(31.0), 1.5)
    entry = history.get(mac)
    hour = _local_hour(when, tz)
    routine = False
    if entry is None or entry.seen == 0:
        x[INDEX["source_new"]] = 1.0
        x[INDEX["since_last"]] = 1.0
        x[INDEX["quiet_host_wakes"]] = float(age > _QUIET_HOST_S)
    else:
        x[INDEX["source_seen"]] = _log_scaled(entry.seen, 1000.0)
        # A device the LAN knew for a day before its first event, and that began within the
        # block: woke up.
        woke = first_seen is not None and entry.first - first_seen > _QUIET_HOST_S
        x[INDEX["quiet_host_wakes"]] = float(woke and when - entry.first < BLOCK_S)
        past = entry.past if when - entry.block_start < BLOCK_S else _merged(entry)
        if past.hours:  # the source has habits from before this block
            x[INDEX["first_of_kind"]] = float(past.buckets.get(shape.bucket, 0) == 0)
            old = when - entry.first >= _DAY_S
            x[INDEX["new_hour"]] = float(old and not past.hours & _near_hours(hour))
            largest = past.largest.get(shape.bucket, 0.0)
            size = _event_size(event)
            if largest > 0 and size > 2 * largest:
                # Twice its largest is still its own range (a box resolving 12 or 30 peers).
                x[INDEX["grown"]] = min((math.log2(size / largest) - 1.0) / 3.0, 1.0)

        alike = [lb for labelled, lb in entry.labelled if shape.matches(labelled, lb)]
        others = [lb for labelled, lb in entry.labelled if not shape.matches(labelled, lb)]
        x[INDEX["shape_normal_labels"]] = _log_scaled(alike.count("normal"), 10.0)
        x[INDEX["shape_alarm_labels"]] = _log_scaled(alike.count("alarm"), 10.0)
        x[INDEX["shape_vouched"]] = float("normal" in alike and "alarm" not in alike)
        x[INDEX["other_normal_labels"]] = _log_scaled(others.count("normal"), 10.0)
        x[INDEX["other_alarm_labels"]] = _log_scaled(others.count("alarm"), 10.0)

        rhythm_key = shape.rhythm_key
        same = [t for t, key, _, _ in entry.times if key == rhythm_key and t <= when]
        regularity, period, rhythm = _rhythm(same, when)
        hours = entry.shape_hours.get(rhythm_key, 0)
        routine = rhythm and hours.bit_count() >= _ROUTINE_HOURS
        x[INDEX["routine"]] = float(routine)
        x[INDEX["repeat_regularity"]] = regularity
        x[INDEX["repeat_period"]] = period
        # The spam filter's sender that is neither approved nor a known routine: asked about.
        x[INDEX["unvouched"]] = float("normal" not in alike and not routine)

        incident = str(event.get("incident_id") or "")
        ongoing = bool(incident) and incident == entry.incident
        x[INDEX["incident_escalation"]] = float(ongoing and level > entry.incident_level)
        buckets = (entry.incident_buckets if ongoing else set()) | {shape.bucket}
        x[INDEX["incident_steps"]] = min(len(buckets) - 1, 3) / 3.0
        recent = [lv for t, _, lv, _ in entry.times if 0.0 <= when - t <= _RECENT_S]

        x[INDEX["source_recent_level"]] = min(max(max(recent, default=0) - 1, 0), 2) / 2.0
        x[INDEX["since_last"]] = _log_scaled(max(when - entry.last, 0.0), _WEEK_S)

    # Scanning for minutes on end (a bot, a slow scan), not a sweep of seconds on a schedule.
    busy = _window(event)
    if entry is not None:
        busy += sum(w for t, _, _, w in entry.times if 0.0 <= when - t <= _SUSTAINED_S)
    x[INDEX["sustained"]] = min(
        max(busy - _SUSTAINED_FROM_S, 0.0) / (_SUSTAINED_FULL_S - _SUSTAINED_FROM_S), 1.0
    )
    # A camera or plug that scans is compromised, unless scanning this way is its own
    # steady routine (some hubs resolve their peers every half hour): a different shape is not.
    x[INDEX["quiet_class_scan"]] = float(quiet_class_scan and not routine)

    local = datetime.fromtimestamp(when, tz)
    angle = 2.0 * math.pi * (local.hour * 3600 + local.minute * 60 + local.second) / 86400.0
    x[INDEX["time_sin"]] = math.sin(angle)
    x[INDEX["time_cos"]] = math.cos(angle)
    return x
