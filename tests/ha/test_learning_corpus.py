"""The generated corpus and the evaluation of benchmarks/classifier_*.py, on a small scale."""

from __future__ import annotations

import random

from benchmarks.classifier_corpus import generate_home
from benchmarks.classifier_eval import (
    DEFAULT_PARAMS,
    Owner,
    learning_curve,
    merge_check,
    run_home,
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
