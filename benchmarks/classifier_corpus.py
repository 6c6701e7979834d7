"""A generated, labelled corpus of LAN Guard event streams for the classifier evaluation.

Each home (one seed) gets its own devices, vendors, schedules and attacks, and a time-ordered
stream of events shaped like ``schema/event.schema.json`` (what the agent would publish), each
with its ground truth: ``normal`` for what the household's own devices do, ``alarm`` for every
event of a malware episode.

What happens in a home (each only in some homes; rates per home drawn from the seed):

Benign (label ``normal``)
  * Home Assistant's nmap tracker: ``nmap -sn`` of the /24 every 120 s (some homes 60/180/300 s),
    a few seconds of jitter, restarts shift the phase (level 1).
  * NetAlertX: ``arp-scan`` of the /24 every 5 min (some homes 3 or 10 min) (level 1).
  * The router's host map: an ARP sweep every 10-20 min, irregular (level 1).
  * A printer's and a Chromecast's discovery: small ARP sweeps every 30-90 min, irregular.
  * The owner's laptop (about twice a week, a third of runs at odd hours 0-5 h): ``nmap -sn``
    (level 1), then ``-sS``/``-F`` scans of the node (level 2, many ports, the ransomware ports
    among them); now and then ``-p 445 --script smb-vuln*`` or ``-sV`` that talks to a decoy
    (level 3: benign data on a ransomware port).
  * A phone running Fing (random MAC: no vendor) (level 1).
  * The family PC's printer software probing printing ports (80/443/515/631/9100) on every
    host when it wakes (level 2, sometimes a PJL query on 9100: level 3). Deliberately hard:
    benign traffic on ransomware ports from a computer.
  * New devices mid-stream (a guest's laptop, a new smart hub) sweeping once or twice.
  * DHCP handing a departed device's address to another one (arp_spoof, level 1), family
    phones leaving home (host_left, level 0).

Malware (label ``alarm``), 2-6 episodes per home at uniformly random times:
  * ransomware from a computer (the family PC or the owner's laptop, both known and with a
    benign history, or a guest's laptop): ARP sweep, SYN scan of 554/445/9100/80/515/139
    (sometimes a subset, sometimes with 3389/22), SMB session with data (levels 1-3);
  * Mirai-like from a camera or an IoT device: telnet 23/2323 SYN scans (sometimes 22, 80,
    8080, 5555 too) with rate-limited updates for 10-90 min, sometimes a small slow ARP sweep,
    an HTTP exploit on the port 80 decoy (level 3) or a flood;
  * slow scans over hours: small, slow ARP sweeps, then a few ports, low rate;
  * ARP spoofing of the gateway (level 3), sometimes after an ARP sweep.

The agent is assumed to close an incident after a quiet period shorter than the sweep periods
(so each periodic sweep is an event of its own) and to send updates of a long scan at most once a
minute. An episode's events share an incident unless the source was quiet for the agent's
``close_after_s`` (300 s) in between: then the agent opened a new one (a slow scan's sweeps half
an hour apart are separate incidents, as the agent reports them).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Final, Literal

import numpy as np

Truth = Literal["normal", "alarm"]

HOME_TZ: Final = timezone(timedelta(hours=9), "JST")
AGENT_CLOSE_AFTER_S: Final = 300.0  # sensor_agent.incidents.IncidentConfig.close_after_s
START: Final = datetime(2026, 11, 2, 0, 0, tzinfo=HOME_TZ).timestamp()
RANSOMWARE_PORTS: Final = (554, 445, 9100, 80, 515, 139)
TOP_PORTS: Final = (
    *(21, 22, 23, 25, 53, 80, 110, 111, 135, 139, 143, 443, 445, 993, 995, 1723, 3306, 3389),
    *(5900, 8080, 8443, 554, 515, 9100, 631, 548, 5000, 8000, 8888, 49152, 1900, 2049, 6000),
)

VENDORS: Final[dict[str, tuple[str | None, ...]]] = {
    "router": ("NEC Platforms, Ltd.", "BUFFALO.INC", "TP-LINK TECHNOLOGIES CO.,LTD.", "YAMAHA"),
    "server": ("Raspberry Pi Trading Ltd", "Intel Corporate", "Synology Incorporated", None),
    "laptop": ("Apple, Inc.", "Dell Inc.", "LCFC(HeFei) Electronics Technology co., ltd", None),
    "pc": ("Dell Inc.", "Micro-Star INTL CO., LTD.", "GIGA-BYTE TECHNOLOGY CO.,LTD.", "HP Inc."),
    "printer": ("Brother Industries, LTD.", "Canon Inc.", "Seiko Epson Corporation"),
    "media": ("Google, Inc.", "Amazon Technologies Inc.", "Roku, Inc"),
    "camera": (
        "Hangzhou Hikvision Digital Technology Co.,Ltd.",
        "Zhejiang Dahua Technology Co., Ltd.",
        "TP-LINK TECHNOLOGIES CO.,LTD.",
    ),
    "iot": ("Espressif Inc.", "Tuya Smart Inc.", "Shenzhen Bilian Electronic Co., Ltd", None),
    "guest": ("Apple, Inc.", "Dell Inc.", "ASUSTek COMPUTER INC.", None),
    "private": (None,),  # phones with a private (random) MAC address
}


@dataclass(frozen=True)
class Device:
    """A host of the home LAN."""

    mac: str
    ip: str
    vendor: str | None
    hostname: str | None

    def as_source(self) -> dict[str, Any]:
        return {"mac": self.mac, "ip": self.ip, "vendor": self.vendor, "hostname": self.hostname}


@dataclass(frozen=True)
class LabelledEvent:
    """An event as the agent publishes it, its ground truth and what produced it."""

    event: dict[str, Any]
    truth: Truth
    scenario: str
    time: float  # detected_at, unix seconds
    episode: str = ""  # what one source did, e.g. a whole slow scan (it may span incidents)


@dataclass
class Episode:
    """What one source does in one incident: its events share the incident id and truth."""

    source: Device
    truth: Truth
    scenario: str
    incident: str | None = None
    quiet_from: float = 0.0  # when its last event ended
    opened: int = 0  # incidents the episode has opened
    name: str = ""  # "<home>/<first incident>"


@dataclass
class Home:
    """One home's devices and time-ordered labelled event stream."""

    seed: int
    agent_id: str
    subnet: str
    node_ip: str
    events: list[LabelledEvent]


def iso(t: float) -> str:
    """Contract timestamp: ISO 8601 UTC with Z."""
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Builder:
    """Collects a home's events; every helper adds one agent event."""

    def __init__(self, seed: int, days: float) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.end = START + days * 86400.0
        self.subnet = f"192.168.{seed % 250 + 1}"
        self.node_ip = f"{self.subnet}.250"
        self.agent_id = f"home-{seed}"
        self.events: list[LabelledEvent] = []
        self._used_hosts: set[int] = {1, 250}

    # -- devices ------------------------------------------------------------------------
    def device(self, role: str, hostname: str | None, *, host: int | None = None) -> Device:
        vendor = self.rng.choice(VENDORS[role])
        if host is None:
            host = self.rng.choice([h for h in range(2, 240) if h not in self._used_hosts])
        self._used_hosts.add(host)
        octets = [self.rng.randrange(256) for _ in range(6)]
        if vendor is None:  # private (random) MAC: locally administered, no OUI
            octets[0] = (octets[0] | 0x02) & 0xFE
        else:
            octets[0] &= 0xFC
        mac = ":".join(f"{o:02x}" for o in octets)
        return Device(mac, f"{self.subnet}.{host}", vendor, hostname)

    def uid(self) -> str:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4).hex

    # -- events -------------------------------------------------------------------------
    def add(
        self,
        ep: Episode,
        kind: str,
        level: int,
        *,
        start: float,
        duration: float,
        evidence: dict[str, Any],
    ) -> None:
        """One agent event of an episode (the episode's first event opens its incident)."""
        if start >= self.end:
            return
        if ep.incident is None:
            ep.incident = self.uid()
            ep.name = f"{self.agent_id}/{ep.incident}"
        elif start - ep.quiet_from >= AGENT_CLOSE_AFTER_S:
            # The agent closed the quiet incident; derived, not drawn, so that the homes'
            # random streams stay as they were.
            ep.opened += 1
            ep.incident = uuid.uuid5(uuid.UUID(ep.incident), str(ep.opened)).hex
        ep.quiet_from = max(ep.quiet_from, start + duration)
        detected = start + duration + self.rng.uniform(0.05, 1.5)
        event = {
            "schema": 1,
            "id": self.uid(),
            "incident_id": ep.incident,
            "agent_id": self.agent_id,
            "kind": kind,
            "level": level,
            "source": ep.source.as_source(),
            "first_seen": iso(start),
            "last_seen": iso(start + duration),
            "detected_at": iso(detected),
            "evidence": evidence,
        }
        self.events.append(LabelledEvent(event, ep.truth, ep.scenario, detected, ep.name))

    def arp_sweep(
        self, ep: Episode, start: float, *, targets: int, rate: float, retries: float = 1.0
    ) -> None:
        """An ARP scan event: ``targets`` addresses at ``rate`` per second."""
        targets = min(targets, 254)
        hosts = self.rng.sample(range(1, 255), min(targets, 64))  # the agent's capped sample
        duration = targets / rate
        packets = int(targets * retries * self.rng.uniform(1.0, 1.3))
        evidence = {
            "targets": [f"{self.subnet}.{h}" for h in hosts],
            "target_count": targets,
            "packets": packets,
            "rate": round(packets / max(duration, 0.01), 2),
            "window_s": round(max(duration, 0.01), 2),
        }
        self.add(ep, "arp_scan", 1, start=start, duration=duration, evidence=evidence)

    def syn_scan(
        self, ep: Episode, start: float, *, ports: Sequence[int], rate: float, repeats: int = 1
    ) -> None:
        """A SYN scan of the node's ``ports`` (the agent reports a sample of at most 256)."""
        distinct = sorted(set(ports))
        if len(distinct) > 256:
            distinct = sorted(self.rng.sample(distinct, 256))
        packets = len(ports) * repeats * self.rng.randint(1, 2)
        duration = packets / rate
        evidence = {
            "targets": [self.node_ip],
            "target_count": 1,
            "ports": distinct,
            "packets": packets,
            "bytes": packets * 60,
            "rate": round(rate, 2),
            "window_s": round(duration, 2),
        }
        self.add(ep, "syn_scan", 2, start=start, duration=duration, evidence=evidence)

    def session(self, ep: Episode, start: float, *, port: int, sample: str, size: int) -> None:
        """Application data sent to a decoy port."""
        evidence = {
            "port": port,
            "bytes": size,
            "packets": max(3, size // 500 + 3),
            "sample": sample[:256],
            "handshakes": 1,
        }
        self.add(ep, "session", 3, start=start, duration=0.5, evidence=evidence)


def _periodic(b: _Builder, period: float, jitter: float, restarts_per_day: float) -> list[float]:
    """Start times of a scheduled job: fixed period, small jitter, restarts shift the phase."""
    times: list[float] = []
    t = START + b.rng.uniform(0, period)
    while t < b.end:
        times.append(t + b.rng.uniform(-jitter, jitter))
        t += period
        if b.rng.random() < restarts_per_day * period / 86400.0:
            t += b.rng.uniform(60.0, 900.0)  # host restarted: a gap, then a new phase
    return times


def _poisson_times(b: _Builder, per_day: float, hour: Callable[[], float]) -> list[float]:
    """Random times at a mean daily rate; ``hour`` draws the local hour of each."""
    days = (b.end - START) / 86400.0
    count = int(np.random.default_rng(b.rng.getrandbits(32)).poisson(per_day * days))
    return sorted(
        START + int(b.rng.uniform(0, days)) * 86400.0 + hour() * 3600.0 for _ in range(count)
    )


def _hours(low: float, high: float, b: _Builder) -> Callable[[], float]:
    return lambda: b.rng.uniform(low, high)


def _odd_or_evening(b: _Builder) -> Callable[[], float]:
    """An owner's hour: usually the evening, a third of the time the small hours."""
    return lambda: b.rng.uniform(0, 5) if b.rng.random() < 0.33 else b.rng.uniform(19, 24)


# -- benign behaviour --------------------------------------------------------------------------
def _normal(source: Device, scenario: str) -> Episode:
    return Episode(source, "normal", scenario)


def _benign(b: _Builder) -> dict[str, Device]:
    """The household's own devices and what they do; returns the ones malware may use."""
    rng = b.rng
    router = b.device("router", None, host=1)
    known = {"router": router}
    if rng.random() < 0.5:  # the router's host map
        for t in _periodic(b, rng.uniform(600, 1200), 240.0, 0.2):
            b.arp_sweep(
                _normal(router, "router"),
                t,
                targets=rng.randint(200, 254),
                rate=rng.uniform(20, 60),
            )
    if rng.random() < 0.65:  # Home Assistant's nmap device tracker
        ha = b.device("server", "homeassistant")
        period = 120.0 if rng.random() < 0.7 else rng.choice([60.0, 180.0, 300.0])
        for t in _periodic(b, period, 2.0, rng.uniform(0.3, 1.5)):
            b.arp_sweep(
                _normal(ha, "ha_nmap"), t, targets=254, rate=rng.uniform(60, 250), retries=1.8
            )
    if rng.random() < 0.4:  # NetAlertX
        nax = b.device("server", "netalertx")
        period = 300.0 if rng.random() < 0.7 else rng.choice([180.0, 600.0])
        for t in _periodic(b, period, 3.0, 0.2):
            b.arp_sweep(
                _normal(nax, "netalertx"), t, targets=254, rate=rng.uniform(300, 600), retries=1.2
            )
    if rng.random() < 0.7:  # a printer's discovery
        printer = b.device("printer", rng.choice(["BRN30055C", "EPSON1A2B3C", None]))
        for t in _periodic(b, rng.uniform(1800, 5400), 900.0, 1.0):
            b.arp_sweep(
                _normal(printer, "printer"), t, targets=rng.randint(12, 60), rate=rng.uniform(2, 20)
            )
    if rng.random() < 0.6:  # a Chromecast / Fire TV's discovery, irregular
        cast = b.device("media", rng.choice(["Chromecast", "Fire-TV", None]))
        t = START + rng.uniform(0, 3600)
        while t < b.end:
            b.arp_sweep(
                _normal(cast, "chromecast"), t, targets=rng.randint(16, 48), rate=rng.uniform(5, 40)
            )
            t += rng.uniform(1800, 5400)

    laptop = b.device("laptop", rng.choice(["owner-mbp", "DESKTOP-7F3K2", None]))
    known["laptop"] = laptop
    for start in _poisson_times(b, 2.0 / 7.0, _odd_or_evening(b)):
        _owner_nmap(b, _normal(laptop, "owner_nmap"), start)

    if rng.random() < 0.5:  # the owner's phone running Fing (private MAC: no vendor)
        phone = b.device("private", None)
        for t in _poisson_times(b, rng.uniform(0.2, 0.8), _hours(8, 23, b)):
            b.arp_sweep(_normal(phone, "fing"), t, targets=254, rate=rng.uniform(50, 200))

    pc = b.device("pc", rng.choice(["DESKTOP-FAMILY", "LIVING-PC", None]))
    known["pc"] = pc
    if rng.random() < 0.6:  # printer software probing the printing ports when the PC wakes
        for t in _poisson_times(b, rng.uniform(0.5, 2.0), _hours(7, 23, b)):
            ep = _normal(pc, "printer_software")
            ports = rng.choice([(80, 443, 631, 9100), (80, 515, 9100), (80, 443, 9100)])
            b.syn_scan(ep, t, ports=ports, rate=rng.uniform(2, 20))
            if rng.random() < 0.3:
                b.session(ep, t + 1, port=9100, sample="@PJL INFO ID..", size=16)

    for _ in range(rng.randint(1, 3)):  # new devices: a guest's laptop, a new smart hub
        ep = _normal(b.device(rng.choice(["guest", "iot"]), None), "new_device")
        t = START + rng.uniform(0, b.end - START)
        for _ in range(rng.randint(1, 2)):
            b.arp_sweep(ep, t, targets=rng.randint(30, 254), rate=rng.uniform(10, 300))
            t += rng.uniform(300, 7200)

    for t in _poisson_times(b, rng.uniform(0.0, 0.15), _hours(0, 24, b)):
        newcomer = b.device("guest", None)  # DHCP gave it a departed host's address
        evidence = {
            "ip": newcomer.ip,
            "old_mac": b.device("iot", None).mac,
            "new_mac": newcomer.mac,
            "is_gateway": False,
        }
        b.add(
            _normal(newcomer, "dhcp_reuse"),
            "arp_spoof",
            1,
            start=t,
            duration=0.1,
            evidence=evidence,
        )

    for _ in range(rng.randint(1, 4)):  # family phones leaving home in the morning
        ep = _normal(b.device("private", None), "host_left")
        for day in range(int((b.end - START) / 86400)):
            if rng.random() < 0.8:
                t = START + day * 86400 + rng.uniform(7, 9.5) * 3600
                b.add(ep, "host_left", 0, start=t, duration=0.0, evidence={"silent_s": 600.0})
                ep = _normal(ep.source, "host_left")
    return known


def _owner_nmap(b: _Builder, ep: Episode, t: float) -> None:
    """The owner checks the network with nmap from the laptop."""
    rng = b.rng
    if rng.random() < 0.7:  # host discovery of the /24 first
        b.arp_sweep(ep, t, targets=254, rate=rng.uniform(100, 500))
        t += rng.uniform(5, 40)
    style = rng.random()
    if style < 0.55:  # -sS, top 1000 ports
        ports = [*TOP_PORTS, *rng.sample(range(1, 65535), 970)]
        b.syn_scan(ep, t, ports=ports, rate=rng.uniform(200, 2000))
    elif style < 0.8:  # -F, top 100 ports
        ports = [*TOP_PORTS, *rng.sample(range(1, 10000), 67)]
        b.syn_scan(ep, t, ports=ports, rate=rng.uniform(100, 1000))
    elif style < 0.9:  # -p 139,445 --script smb-vuln*: data on the SMB decoy
        b.syn_scan(ep, t, ports=[139, 445], rate=50.0)
        b.session(ep, t + 2, port=445, sample=".SMBr.....NT LM 0.12", size=1400)
    else:  # -sV: service probes send data to the decoys
        ports = [*TOP_PORTS, *rng.sample(range(1, 10000), 67)]
        b.syn_scan(ep, t, ports=ports, rate=500.0)
        b.session(ep, t + 8, port=80, sample="GET / HTTP/1.0....", size=18)


# -- malware -----------------------------------------------------------------------------------
def _ransomware(b: _Builder, ep: Episode, t: float) -> None:
    rng = b.rng
    if rng.random() < 0.8:
        b.arp_sweep(ep, t, targets=254, rate=rng.uniform(80, 1500))
        t += rng.uniform(2, 60)
    ports = list(RANSOMWARE_PORTS) if rng.random() < 0.6 else rng.sample(RANSOMWARE_PORTS, 3)
    if rng.random() < 0.3:
        ports += [3389, 22]
    b.syn_scan(ep, t, ports=ports, rate=rng.uniform(20, 500))
    sample = rng.choice([".SMBr.....PC NETWORK PROGRAM 1.0", "..SMB@..........", ".SMBs....."])
    port = 445 if rng.random() < 0.8 else 139
    b.session(ep, t + rng.uniform(1, 20), port=port, sample=sample, size=rng.randint(120, 4000))


def _mirai(b: _Builder, ep: Episode, t: float) -> None:
    rng = b.rng
    if rng.random() < 0.5:  # random-address scanning hits a few LAN addresses, slowly
        b.arp_sweep(ep, t, targets=rng.randint(8, 30), rate=rng.uniform(0.5, 5))
    ports = [23, 2323] + (rng.sample([22, 80, 8080, 5555], 2) if rng.random() < 0.4 else [])
    end = t + rng.uniform(600, 5400)
    rate = rng.uniform(10, 200)
    t += rng.uniform(5, 60)
    repeats = 1
    while t < end:  # the agent's rate-limited updates of the running scan
        b.syn_scan(ep, t, ports=ports, rate=rate, repeats=repeats)
        t += rng.uniform(60, 66)  # the agent's update rate limit: a rhythm of its own
        repeats += 1
    if rng.random() < 0.3:
        sample = "POST /GponForm/diag_Form?images/ HTTP/1.1.."
        b.session(ep, t, port=80, sample=sample, size=420)
    if rng.random() < 0.2:
        evidence = {
            "rate": round(rng.uniform(5000, 40000), 1),
            "packets": rng.randint(50000, 400000),
            "window_s": 10.0,
            "scope": "source",
        }
        b.add(ep, "flood", 2, start=t + 60, duration=10.0, evidence=evidence)


def _slow_scan(b: _Builder, ep: Episode, t: float) -> None:
    rng = b.rng
    for _ in range(rng.randint(2, 6)):
        b.arp_sweep(ep, t, targets=rng.randint(8, 25), rate=rng.uniform(0.05, 0.5))
        t += rng.uniform(600, 2400)
    ports = rng.sample([22, 80, 443, 445, 3389, 139, 554], rng.randint(2, 4))
    b.syn_scan(ep, t, ports=ports, rate=rng.uniform(0.1, 1.0))


def _gateway_spoof(b: _Builder, ep: Episode, router: Device, t: float) -> None:
    if b.rng.random() < 0.5:
        b.arp_sweep(ep, t, targets=254, rate=b.rng.uniform(50, 500))
        t += b.rng.uniform(5, 60)
    evidence = {
        "ip": router.ip,
        "old_mac": router.mac,
        "new_mac": ep.source.mac,
        "is_gateway": True,
    }
    b.add(ep, "arp_spoof", 3, start=t, duration=0.1, evidence=evidence)


def _malware(b: _Builder, known: dict[str, Device]) -> None:
    rng = b.rng
    for _ in range(rng.randint(2, 6)):
        t = START + rng.uniform(0.02, 1.0) * (b.end - START)
        what = rng.random()
        if what < 0.4:  # from a known computer (with a benign history) or a guest's laptop
            pick = rng.random()
            source = known["pc"] if pick < 0.35 else known["laptop"] if pick < 0.6 else None
            source = source or b.device("guest", None)
            _ransomware(b, Episode(source, "alarm", "ransomware"), t)
        elif what < 0.7:
            source = b.device(rng.choice(["camera", "iot"]), None)
            _mirai(b, Episode(source, "alarm", "mirai"), t)
        elif what < 0.9:
            source = b.device(rng.choice(["guest", "pc", "iot"]), None)
            _slow_scan(b, Episode(source, "alarm", "slow_scan"), t)
        else:
            source = b.device(rng.choice(["guest", "pc"]), None)
            _gateway_spoof(b, Episode(source, "alarm", "gateway_spoof"), known["router"], t)


def generate_home(seed: int, days: float = 14.0) -> Home:
    """One home's labelled stream over ``days`` days, ordered by detection time."""
    builder = _Builder(seed, days)
    known = _benign(builder)
    _malware(builder, known)
    events = sorted(builder.events, key=lambda item: item.time)
    # The agent's event store numbers its events in the order it makes them (a fixed epoch
    # per home; nothing drawn, so the random streams stay as they were).
    epoch = uuid.uuid5(uuid.NAMESPACE_URL, builder.agent_id).hex
    for seq, item in enumerate(events, start=1):
        item.event["seq"], item.event["epoch"] = seq, epoch
    return Home(seed, builder.agent_id, builder.subnet + ".0/24", builder.node_ip, events)
