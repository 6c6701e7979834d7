"""The generated corpus and the evaluation of benchmarks/classifier_*.py, on a small scale."""

from __future__ import annotations

import random
from datetime import datetime

import pytest

from benchmarks.classifier_corpus import AGENT_CLOSE_AFTER_S, generate_home
from benchmarks.classifier_eval import (
    DEFAULT_PARAMS,
    Owner,
    Tally,
    learning_curve,
    merge_check,
    run_home,
    tune,
)
from custom_components.lan_guard.learning.model import Assessment
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


def test_the_owner_labels_by_policy() -> None:
    owner = Owner(random.Random(1), mistakes=0.0)
    asked = [owner.label(Assessment("unsure", 0.5, "model"), "alarm") for _ in range(400)]
    logged = [owner.label(Assessment("normal", 0.1, "model"), "normal") for _ in range(400)]
    assert 0.7 < sum(label == "alarm" for label in asked) / 400 < 0.9
    assert sum(label is not None for label in logged) < 15
    liar = Owner(random.Random(1), answers_asked=1.0, mistakes=1.0)
    assert liar.label(Assessment("unsure", 0.5, "model"), "alarm") == "normal"


def test_runs_score_only_the_events_after_the_last_label() -> None:
    home = generate_home(7, days=1.0)
    run = run_home(home, DEFAULT_PARAMS, 5)
    assert run.labels == 5
    assert 0 < run.model.scored < len(home.events)
    assert run.model.scored == run.baseline.scored
    curve = learning_curve([home], DEFAULT_PARAMS)
    assert curve["0"][0].model.scored == len(home.events)
    results = merge_check([home, generate_home(8, days=1.0)], DEFAULT_PARAMS)
    assert [len(singles) for _, singles, _ in results] == [1, 1]


def test_incident_recall_and_time_to_the_first_alarm() -> None:
    home = generate_home(5, days=2.0)
    malware = [item for item in home.events if item.truth == "alarm"]
    incident = malware[0].event["incident_id"]
    events = [item for item in malware if item.event["incident_id"] == incident]
    tally = Tally()
    for n, item in enumerate(events):
        tally.add(item, "alarm" if n == len(events) - 1 else "unsure")
    assert tally.incident_recall == tally.attack_recall == 1.0
    assert len(tally.attacks) == 1
    assert tally.alarm_delays() == [events[-1].time - events[0].time]
    assert tally.recall == 1 / len(events)
    missed = Tally()
    missed.add(events[0], "normal")
    assert missed.incident_recall == missed.attack_recall == 0.0
    assert missed.alarm_delays() == []


def test_tuning_picks_the_most_recall_within_the_budgets(
    capsys: pytest.CaptureFixture[str],
) -> None:
    grid = {"prior_variance": (0.2,), "normal_below": (0.2, 0.3), "alarm_from": (0.3, 0.9)}
    chosen = tune([3], 1.0, DEFAULT_PARAMS, grid, workers=1)
    printed = capsys.readouterr().out
    rows = [line for line in printed.splitlines() if "|" in line][1:]
    assert len(rows) == 3  # 0.3 / 0.3 is no band
    assert sum("<- chosen" in row for row in rows) == 1
    assert (chosen["normal_below"], chosen["alarm_from"]) in {(0.2, 0.3), (0.2, 0.9), (0.3, 0.9)}
    recall = [float(row.split("|")[1].split()[0].rstrip("%")) for row in rows]
    assert recall == sorted(recall, reverse=True)
    with pytest.raises(SystemExit, match="budgets"):
        tune([3], 1.0, DEFAULT_PARAMS, grid, workers=1, budgets=(0.0, -1.0))


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
