"""Events -> a graded incident timeline a newcomer can read (the demo's output)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

LEVEL_MEANING = {
    0: "information",
    1: "level 1, ARP scan: it is mapping the LAN (also done by discovery tools, "
    "e.g. Home Assistant's nmap tracker)",
    2: "level 2, SYN scan of the monitoring node: it is looking for services to attack",
    3: "level 3, session with data to a decoy: it is attacking (only an announced "
    "penetration test does this)",
}
KIND_TITLE = {
    "arp_scan": "ARP scan",
    "syn_scan": "SYN scan",
    "session": "session",
    "flood": "flood",
    "arp_spoof": "ARP spoofing",
    "host_left": "host left",
    "arp_spray": "ARP claim spray",
    "source_spray": "forged sources",
}


def who(source: Mapping[str, Any]) -> str:
    name = source.get("hostname") or "unknown name"
    parts = [p for p in (source.get("ip"), source.get("vendor"), source["mac"]) if p]
    return f"{name} ({', '.join(parts)})"


def what(event: Mapping[str, Any]) -> str:
    """One sentence on the evidence of ``event``."""
    ev = event["evidence"]
    kind = event["kind"]
    if kind == "arp_scan":
        return f"asked ARP for {ev.get('target_count', 0)} addresses in {ev.get('window_s', 0)} s"
    if kind == "syn_scan":
        ports = ", ".join(str(p) for p in ev.get("ports", [])[:12])
        more = " ..." if ev.get("target_count", 0) > 12 else ""
        return (
            f"sent SYNs to {ev.get('target_count', 0)} ports of the node ({ports}{more}), "
            f"{ev.get('handshakes', 0)} handshakes completed"
        )
    if kind == "session":
        return (
            f"sent {ev.get('bytes', 0)} bytes to decoy port {ev.get('port')}: "
            f'"{ev.get("sample", "")[:40]}"'
        )
    if kind == "flood":
        return f"{ev.get('rate', 0):,.0f} frames/s ({ev.get('scope')})"
    if kind == "arp_spoof":
        target = "the gateway's" if ev.get("is_gateway") else "the"
        return f"claims {target} address {ev.get('ip')} (owner {ev.get('old_mac')})"
    if kind == "host_left":
        return f"silent for {ev.get('silent_s', 0):.0f} s: it has left the network"
    if kind == "arp_spray":
        return (
            f"claimed {ev.get('address_count', 0)} addresses in {ev.get('window_s', 0)} s "
            f"({ev.get('forged', 0)} for other MACs)"
        )
    if kind == "source_spray":
        return f"sent from {ev.get('address_count', 0)} source IPs in {ev.get('window_s', 0)} s"
    return ""


def render(events: Iterable[Mapping[str, Any]]) -> list[str]:
    """Timeline lines, grouped by incident, in time order."""
    lines: list[str] = []
    seen: dict[str, set[str]] = {}
    numbers: dict[str, int] = {}
    for event in events:
        incident = event["incident_id"]
        number = numbers.setdefault(incident, len(numbers) + 1)
        kinds = seen.setdefault(incident, set())
        update = event["kind"] in kinds
        kinds.add(event["kind"])
        clock = event["detected_at"][11:23]
        title = KIND_TITLE.get(event["kind"], event["kind"]) + (" (update)" if update else "")
        level = f"L{event['level']}" if event["level"] else "--"
        lines.append(f"  {clock}  #{number} {level}  {title:<18} {who(event['source'])}")
        lines.append(f"  {'':12}  {'':6}{what(event)}")
        if not update and event["level"] in LEVEL_MEANING and event["kind"] != "host_left":
            lines.append(f"  {'':12}  {'':6}-> {LEVEL_MEANING[event['level']]}")
    return lines
