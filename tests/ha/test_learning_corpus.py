"""The first generated corpus (benchmarks/classifier_corpus.py), on a small scale."""

from __future__ import annotations

from datetime import datetime

from benchmarks.classifier_corpus import AGENT_CLOSE_AFTER_S, generate_home
from tests.contract import errors

MALWARE = {"ransomware", "mirai", "slow_scan", "gateway_spoof"}


def test_events_follow_the_contract_and_time() -> None:
    home = generate_home(3, days=1.0)
    assert home.events
    times = [item.time for item in home.events]
    assert times == sorted(times)
    assert len({item.event["id"] for item in home.events}) == len(home.events)
    alarms = [item for item in home.events if item.truth == "alarm"]
    sample = home.events[:: max(len(home.events) // 150, 1)] + alarms
    for item in sample:
        assert errors("event", item.event) == [], item.scenario
    for item in home.events:
        assert (item.truth == "alarm") == (item.scenario in MALWARE)


def test_homes_are_reproducible_and_different() -> None:
    first = [item.event for item in generate_home(5, days=0.5).events]
    again = [item.event for item in generate_home(5, days=0.5).events]
    other = [item.event for item in generate_home(6, days=0.5).events]
    assert first == again
    assert first != other


def test_a_quiet_source_gets_a_new_incident_as_from_the_agent() -> None:
    home = generate_home(1, days=14.0)
    last_seen: dict[str, float] = {}
    incidents_by_episode_source: dict[str, set[str]] = {}
    for item in home.events:
        event = item.event
        first = datetime.fromisoformat(event["first_seen"].replace("Z", "+00:00")).timestamp()
        end = datetime.fromisoformat(event["last_seen"].replace("Z", "+00:00")).timestamp()
        incident = event["incident_id"]
        if incident in last_seen:  # events of one incident follow each other within 300 s
            assert first - last_seen[incident] < AGENT_CLOSE_AFTER_S, item.scenario
        last_seen[incident] = max(last_seen.get(incident, end), end)
        if item.scenario == "slow_scan":
            incidents_by_episode_source.setdefault(event["source"]["mac"], set()).add(incident)
    assert incidents_by_episode_source  # this home has slow scans, split into incidents
    assert max(len(ids) for ids in incidents_by_episode_source.values()) > 1
    slow = [item for item in home.events if item.scenario == "slow_scan"]
    by_attack = {item.episode for item in slow}
    assert len(by_attack) < len({item.event["incident_id"] for item in slow})  # one attack
    assert all(item.episode.startswith("home-1/") for item in home.events)
