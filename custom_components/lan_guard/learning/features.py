"""Features of a LAN Guard event (schema/event.schema.json) for the verdict model.

An event becomes a fixed-length float vector. Part of it is the event itself (kind, level,
counts, ports, rate, whether it probes slower than any home discovery tool, the source's vendor
class, time of day); part is what the integration has seen of the same source before: how many
events, how the owner labelled them and whether this very behaviour (kind and ports) was
vouched for, whether this source sweeps the LAN with a rhythm of its own (Home Assistant's nmap
tracker every 120 s, NetAlertX every 5 min, a router's host map every few minutes), and whether
it escalated within the last hour or within the agent's open incident. That memory is a
:class:`History`, bounded in sources and in times per source, persisted by the integration with
:meth:`History.to_dict`.

Version 2 added ``slow_probe``, ``behaviour_vouched``, ``unvouched`` and
``incident_escalation``, and a behaviour now matches by port coverage (see
``_same_behaviour``) instead of a Jaccard index. Version 3 added the kinds ``arp_spray`` and
``source_spray`` (one sender using many addresses not its own); their address count is the
``log_targets`` feature.

Every value is scaled to roughly [0, 1] so that one prior variance fits all weights.

Bump :data:`FEATURE_VERSION` whenever the meaning, order or scaling of a feature changes:
a stored model of another version no longer fits and is reset (see ``model.py``).
"""

from __future__ import annotations

import itertools
import math
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from typing import Any, Final

import numpy as np
import numpy.typing as npt

FEATURE_VERSION: Final = 3

KINDS: Final = (
    "arp_scan",
    "syn_scan",
    "session",
    "flood",
    "arp_spoof",
    "host_left",
    "arp_spray",
    "source_spray",
)
# Kinds added after the feature layout (kinds list version 3) count as the kind they resemble,
# so the vector and stored models stay valid: a sweep, a scan of the node, driving a decoy,
# a DoS, many addresses claimed by one sender (as an ARP spray), a hijack of an address or
# of the route.
KIND_FEATURE: Final[Mapping[str, str]] = {
    **{kind: kind for kind in KINDS},
    "stealth_scan": "syn_scan",
    "udp_scan": "syn_scan",
    "echonet_sweep": "syn_scan",
    "ipv6_sweep": "arp_scan",
    "echonet_control": "session",
    "dhcp_starvation": "flood",
    "cache_exhaustion": "arp_spray",
    "ndp_spoof": "arp_spoof",
    "rogue_ra": "arp_spoof",
    "rogue_dhcp": "arp_spoof",
}
VENDOR_CLASSES: Final = (
    "network",
    "computer",
    "phone",
    "printer",
    "media",
    "camera",
    "iot",
    "unknown",
)
# The ports LAN-aware ransomware probes first; the agent's default decoy ports.
RANSOMWARE_PORTS: Final = frozenset({554, 445, 9100, 80, 515, 139})
# Mirai and its descendants brute-force telnet on these.
TELNET_PORTS: Final = frozenset({23, 2323})

# Vendor (OUI organisation name) keywords per class, checked in this order, lower case.
# Ambiguous makers go where most of their devices on a home LAN belong (Apple: phones and
# tablets; Google: Chromecast / Nest speakers; HP: computers). Phones with a private (random)
# MAC have no vendor at all, so "unknown" is common and not suspicious by itself.
_VENDOR_KEYWORDS: Final[tuple[tuple[str, tuple[str, ...]], ...]] = (
    ("camera", ("hikvision", "dahua", "reolink", "axis communications", "hanwha", "uniview")),
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
            "ring",
            "nest labs",
            "ecobee",
            "silicon lab",
            "texas instruments",
            "azurewave",
            "murata",
            "gaoshengda",
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

FEATURE_NAMES: Final[tuple[str, ...]] = (
    "bias",
    *(f"kind_{kind}" for kind in KINDS),
    "level",  # level / 3
    "log_targets",  # log1p(target_count, or a spray's address_count) / log(256)
    "log_ports",  # log1p(number of node ports touched) / log(256)
    "log_packets",  # log1p(packets) / log(1e6)
    "log_bytes",  # log1p(bytes) / log(1e8)
    "log_rate",  # log1p(probes or frames per second) / log(1e5)
    "ransomware_port_share",  # share of the ports touched that are RANSOMWARE_PORTS
    "telnet_port_share",  # share of the ports touched that are TELNET_PORTS
    "other_port_share",  # share of the ports touched that are neither
    "gateway",  # evidence.is_gateway (an arp_spoof of the router)
    "slow_probe",  # 1 for a scan at under SLOW_RATE probes per second (stealth timing)
    *(f"vendor_{name}" for name in VENDOR_CLASSES),
    "source_new",  # 1 when this source never raised an event before
    "source_seen",  # log1p(events before) / log(1000)
    "source_seen_kind",  # log1p(events of the same kind before) / log(1000)
    "source_normal_labels",  # log1p(owner's "normal" labels of this source) / log(10)
    "source_alarm_labels",  # log1p(owner's "alarm" labels of this source) / log(10)
    "behaviour_normal_labels",  # the same, for its events like this one (kind, ports)
    "behaviour_alarm_labels",
    "behaviour_vouched",  # 1 when the owner called this behaviour of the source normal, never alarm
    "unvouched",  # 1 for a known source's behaviour nobody vouched for, not its own routine
    "incident_escalation",  # 1 when the event raises the level of its source's open incident
    "source_recent_level",  # highest level of this source within the last hour / 3
    "repeat_regularity",  # 1 - MAD/median of the gaps between its same-kind events
    "repeat_in_rhythm",  # 1 when this event comes one to three periods after the last
    "repeat_period",  # log1p(median gap in s) / log(86400), 0 without a rhythm
    "since_last",  # log1p(s since the source's previous event) / log(1 week); 1 when new
    "time_sin",  # time of day (local), cyclic
    "time_cos",
)
N_FEATURES: Final = len(FEATURE_NAMES)
INDEX: Final[Mapping[str, int]] = {name: i for i, name in enumerate(FEATURE_NAMES)}

_RECENT_S: Final = 3600.0
_MAX_LABELLED: Final = 16
_MAX_BEHAVIOUR_PORTS: Final = 64
# Two port sets are the same behaviour when the labelled one holds at least this share of the
# new event's ports (a printer tool's 80/515/9100 after 80/443/515/9100 was approved; not a
# ransomware sweep that adds 445/139/554 to them), or when both are wide scans (nmap's top
# ports: the agent reports a random sample, so two runs share few ports but are one behaviour).
_COVERED_PORTS: Final = 2.0 / 3.0
_WIDE_SCAN_PORTS: Final = 16
# Home discovery tools (nmap -sn, arp-scan, a printer's or a TV's discovery) probe at several
# per second; slower is the timing of scans meant to stay below detection thresholds.
SLOW_RATE: Final = 1.0
_SCANS: Final = frozenset({"arp_scan", "syn_scan"})
_MIN_GAPS_FOR_RHYTHM: Final = 2  # three events of a kind before a rhythm counts
_RHYTHM_TOLERANCE: Final = 0.15
_ROUTINE_REGULARITY: Final = 0.5
_WEEK_S: Final = 7 * 86400.0

FloatVector = npt.NDArray[np.float64]


def _kind_index(kind: object) -> int:
    """The index in KINDS of the kind an event kind counts as; -1 for one unknown."""
    feature = KIND_FEATURE.get(str(kind))
    return KINDS.index(feature) if feature is not None else -1


@lru_cache(maxsize=1024)
def vendor_class(vendor: str | None) -> str:
    """The class of a device from its OUI vendor name (one of VENDOR_CLASSES)."""
    if not vendor:
        return "unknown"
    lowered = vendor.lower()
    for name, keywords in _VENDOR_KEYWORDS:
        if any(keyword in lowered for keyword in keywords):
            return name
    return "unknown"


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


def _log_scaled(value: Any, scale: float) -> float:
    number = float(value) if isinstance(value, int | float) and value > 0 else 0.0
    return min(math.log1p(number) / math.log(scale), 2.0)


@dataclass
class SourceHistory:
    """What was seen of one source: its last event times and kinds, counts and labels."""

    times: deque[tuple[float, int, int]]  # (unix time, kind index, level), oldest first
    seen: int = 0
    seen_by_kind: dict[int, int] = field(default_factory=dict)
    normal: int = 0
    alarm: int = 0
    last: float = 0.0
    # (kind index, ports, label) of the last labelled events: what the owner approved of
    # this source is a behaviour, not a blank cheque (a known PC that turns into ransomware).
    labelled: deque[tuple[int, frozenset[int], str]] = field(
        default_factory=lambda: deque(maxlen=_MAX_LABELLED)
    )
    # The agent's incident the source's last event belonged to, and its highest level so far.
    incident: str = ""
    incident_level: int = 0


class History:
    """Per-source memory with bounded size: at most ``max_sources`` sources (the least
    recently seen is forgotten first) and ``max_times`` event times per source."""

    def __init__(self, max_sources: int = 1000, max_times: int = 32) -> None:
        self.max_sources = max_sources
        self.max_times = max_times
        self._sources: OrderedDict[str, SourceHistory] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sources)

    def get(self, mac: str) -> SourceHistory | None:
        """The history of a source, or None when it is unknown (or was forgotten)."""
        return self._sources.get(mac)

    def _entry(self, mac: str) -> SourceHistory:
        entry = self._sources.get(mac)
        if entry is None:
            entry = SourceHistory(times=deque(maxlen=self.max_times))
            self._sources[mac] = entry
            while len(self._sources) > self.max_sources:
                self._sources.popitem(last=False)
        self._sources.move_to_end(mac)
        return entry

    def observe(self, event: Mapping[str, Any]) -> None:
        """Remember an event of its source (call after extracting the event's features)."""
        kind = _kind_index(event.get("kind"))
        entry = self._entry(str(event["source"]["mac"]))
        when = event_time(event)
        entry.times.append((when, kind, int(event.get("level", 0))))
        entry.seen += 1
        entry.seen_by_kind[kind] = entry.seen_by_kind.get(kind, 0) + 1
        entry.last = max(entry.last, when)
        level = int(event.get("level", 0))
        incident = str(event.get("incident_id") or "")
        if incident and incident == entry.incident:
            entry.incident_level = max(entry.incident_level, level)
        else:
            entry.incident, entry.incident_level = incident, level

    def add_label(
        self, mac: str, label: str, behaviour: tuple[str, frozenset[int]], count: int = 1
    ) -> None:
        """Count an owner's label of a source's event of ``behaviour`` (kind, ports);
        ``count=-1`` takes one back."""
        entry = self._entry(mac)
        if label == "alarm":
            entry.alarm = max(entry.alarm + count, 0)
        else:
            entry.normal = max(entry.normal + count, 0)
        kind = _kind_index(behaviour[0])
        ports = frozenset(sorted(behaviour[1])[:_MAX_BEHAVIOUR_PORTS])
        if count > 0:
            entry.labelled.append((kind, ports, label))
        elif (kind, ports, label) in entry.labelled:
            entry.labelled.remove((kind, ports, label))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form for HA storage (local only: it names sources, never exported)."""
        return {
            "version": FEATURE_VERSION,
            "max_sources": self.max_sources,
            "max_times": self.max_times,
            "sources": {
                mac: {
                    "times": [list(item) for item in entry.times],
                    "seen": entry.seen,
                    "seen_by_kind": {str(k): v for k, v in entry.seen_by_kind.items()},
                    "normal": entry.normal,
                    "alarm": entry.alarm,
                    "last": entry.last,
                    "labelled": [[k, sorted(p), lb] for k, p, lb in entry.labelled],
                    "incident": entry.incident,
                    "incident_level": entry.incident_level,
                }
                for mac, entry in self._sources.items()
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> History:
        """Rebuild a history; raises ValueError (or KeyError/TypeError) on a malformed one."""
        if data.get("version") != FEATURE_VERSION:
            raise ValueError(f"history of feature version {data.get('version')!r}")
        history = cls(int(data["max_sources"]), int(data["max_times"]))
        for mac, raw in data["sources"].items():
            entry = SourceHistory(
                times=deque(
                    ((float(t), int(k), int(lv)) for t, k, lv in raw["times"]),
                    maxlen=history.max_times,
                ),
                seen=int(raw["seen"]),
                seen_by_kind={int(k): int(v) for k, v in raw["seen_by_kind"].items()},
                normal=int(raw["normal"]),
                alarm=int(raw["alarm"]),
                last=float(raw["last"]),
                labelled=deque(
                    (
                        (int(k), frozenset(int(p) for p in ports), str(lb))
                        for k, ports, lb in raw["labelled"]
                    ),
                    maxlen=_MAX_LABELLED,
                ),
                incident=str(raw["incident"]),
                incident_level=int(raw["incident_level"]),
            )
            history._sources[str(mac)] = entry
        while len(history._sources) > history.max_sources:
            history._sources.popitem(last=False)
        return history


def _same_behaviour(labelled: frozenset[int], ports: frozenset[int]) -> bool:
    """The ports of a new event are those of a labelled one (both empty counts as the same:
    an ARP sweep, a spoof)."""
    if not ports:
        return not labelled
    if len(ports) >= _WIDE_SCAN_PORTS and len(labelled) >= _WIDE_SCAN_PORTS:
        return True
    return len(ports & labelled) / len(ports) >= _COVERED_PORTS


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2.0


def _rhythm(times: list[float], now: float) -> tuple[float, float, float, bool]:
    """(regularity, in_rhythm, scaled period, routine) of a source's same-kind event times.
    Routine: it recurs at a fairly steady period and this event keeps it up (no more than
    three periods since the last), though not necessarily on the beat (a router's host map
    every 10-20 min)."""
    gaps = [later - earlier for earlier, later in itertools.pairwise(times) if later > earlier]
    if len(gaps) < _MIN_GAPS_FOR_RHYTHM:
        return 0.0, 0.0, 0.0, False
    period = _median(gaps)
    spread = _median([abs(gap - period) for gap in gaps])
    regularity = max(0.0, 1.0 - spread / period)
    since = now - times[-1]
    periods = round(since / period)
    in_rhythm = float(
        1 <= periods <= 3 and abs(since - periods * period) <= _RHYTHM_TOLERANCE * period
    )
    routine = regularity >= _ROUTINE_REGULARITY and since <= 3 * period
    return regularity, in_rhythm, min(math.log1p(period) / math.log(86400.0), 1.5), routine


def extract(event: Mapping[str, Any], history: History, tz: tzinfo = UTC) -> FloatVector:
    """The feature vector of an event, given what was seen before it (``history`` is only
    read). ``tz`` is the home's time zone, for the time of day."""
    x = np.zeros(N_FEATURES, dtype=np.float64)
    x[INDEX["bias"]] = 1.0
    kind = KIND_FEATURE.get(str(event.get("kind")))
    if kind is not None:
        x[INDEX[f"kind_{kind}"]] = 1.0
    level = int(event.get("level", 0))
    x[INDEX["level"]] = min(max(level, 0), 3) / 3.0

    evidence: Mapping[str, Any] = event.get("evidence") or {}
    targets = evidence.get("target_count", evidence.get("address_count"))
    if not isinstance(targets, int):
        targets = len(evidence.get("targets") or ())
    x[INDEX["log_targets"]] = _log_scaled(targets, 256.0)
    ports = event_ports(evidence)
    x[INDEX["log_ports"]] = _log_scaled(len(ports), 256.0)
    x[INDEX["log_packets"]] = _log_scaled(evidence.get("packets"), 1e6)
    x[INDEX["log_bytes"]] = _log_scaled(evidence.get("bytes"), 1e8)
    x[INDEX["log_rate"]] = _log_scaled(evidence.get("rate"), 1e5)
    if ports:
        ransomware = len(ports & RANSOMWARE_PORTS) / len(ports)
        telnet = len(ports & TELNET_PORTS) / len(ports)
        x[INDEX["ransomware_port_share"]] = ransomware
        x[INDEX["telnet_port_share"]] = telnet
        x[INDEX["other_port_share"]] = 1.0 - ransomware - telnet
    x[INDEX["gateway"]] = float(evidence.get("is_gateway") is True)
    rate = evidence.get("rate")
    if kind in _SCANS and (
        evidence.get("slow") is True or (isinstance(rate, int | float) and 0 < rate < SLOW_RATE)
    ):
        x[INDEX["slow_probe"]] = 1.0

    source: Mapping[str, Any] = event.get("source") or {}
    x[INDEX[f"vendor_{vendor_class(source.get('vendor'))}"]] = 1.0

    when = event_time(event)
    entry = history.get(str(source.get("mac")))
    if entry is None or entry.seen == 0:
        x[INDEX["source_new"]] = 1.0
        x[INDEX["since_last"]] = 1.0
    else:
        kind_index = _kind_index(kind)
        x[INDEX["source_seen"]] = _log_scaled(entry.seen, 1000.0)
        x[INDEX["source_seen_kind"]] = _log_scaled(entry.seen_by_kind.get(kind_index, 0), 1000.0)
        x[INDEX["source_normal_labels"]] = _log_scaled(entry.normal, 10.0)
        x[INDEX["source_alarm_labels"]] = _log_scaled(entry.alarm, 10.0)
        alike = [lb for k, p, lb in entry.labelled if k == kind_index and _same_behaviour(p, ports)]
        x[INDEX["behaviour_normal_labels"]] = _log_scaled(alike.count("normal"), 10.0)
        x[INDEX["behaviour_alarm_labels"]] = _log_scaled(alike.count("alarm"), 10.0)
        x[INDEX["behaviour_vouched"]] = float("normal" in alike and "alarm" not in alike)
        recent = [lv for t, _, lv in entry.times if 0.0 <= when - t <= _RECENT_S]
        x[INDEX["source_recent_level"]] = max(recent, default=0) / 3.0
        same_kind = [t for t, k, _ in entry.times if k == kind_index and t <= when]
        regularity, in_rhythm, period, routine = _rhythm(same_kind, when)
        x[INDEX["repeat_regularity"]] = regularity
        x[INDEX["repeat_in_rhythm"]] = in_rhythm
        x[INDEX["repeat_period"]] = period
        x[INDEX["since_last"]] = _log_scaled(max(when - entry.last, 0.0), _WEEK_S)
        # The spam filter's sender that is neither approved nor a known routine: asked about.
        x[INDEX["unvouched"]] = float("normal" not in alike and not routine)
        incident = str(event.get("incident_id") or "")
        x[INDEX["incident_escalation"]] = float(
            bool(incident) and incident == entry.incident and level > entry.incident_level
        )

    local = datetime.fromtimestamp(when, tz)
    angle = 2.0 * math.pi * (local.hour * 3600 + local.minute * 60 + local.second) / 86400.0
    x[INDEX["time_sin"]] = math.sin(angle)
    x[INDEX["time_cos"]] = math.cos(angle)
    return x
