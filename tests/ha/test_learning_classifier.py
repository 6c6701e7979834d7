"""The classifier the integration calls (custom_components/lan_guard/learning/classifier.py)."""

from __future__ import annotations

import json
from datetime import timedelta, timezone
from typing import Any

import pytest

from custom_components.lan_guard.learning.classifier import Classifier
from custom_components.lan_guard.learning.features import FEATURE_VERSION
from custom_components.lan_guard.learning.model import ModelError, OnlineLogisticModel
from tests.ha.test_learning_features import LAPTOP, T0, make_event, sweep

NMAP_PORTS = [21, 22, 23, 25, 53, 80, 110, 139, 443, 445, 3389, 8080]


def owner_scan(hours: float) -> dict[str, Any]:
    """The owner's nmap -sS from the laptop: many ports, level 2."""
    evidence = {"ports": NMAP_PORTS, "packets": 24, "rate": 800.0}
    return make_event(at=T0 + timedelta(hours=hours), evidence=evidence)


def ransomware(hours: float, mac: str = "00:1e:c9:aa:bb:cc") -> dict[str, Any]:
    evidence = {"ports": [554, 445, 9100, 80, 515, 139], "packets": 12, "rate": 40.0}
    return make_event(at=T0 + timedelta(hours=hours), mac=mac, evidence=evidence)


def test_prior_then_the_owner_teaches_a_known_scan() -> None:
    classifier = Classifier()
    first = owner_scan(0)
    assessment = classifier.assess(first)
    assert (assessment.verdict, assessment.source) == ("unsure", "prior")
    assert classifier.learn(first["id"], "normal") is False  # prior 0.5 leans to alarm
    for n in range(1, 6):
        event = owner_scan(24 * n)
        classifier.assess(event)
        classifier.learn(event["id"], "normal")
    later = classifier.assess(owner_scan(24 * 7))
    assert (later.verdict, later.source) == ("normal", "model")
    # The same laptop scanning the ransomware ports is another behaviour: not waved through.
    assert classifier.assess(ransomware(24 * 7, mac=LAPTOP)).verdict != "normal"
    assert classifier.assess(ransomware(24 * 7)).verdict == "alarm"
    stats = classifier.stats()
    assert stats["labels"] == 6
    assert stats["labels_normal"] == 6
    assert stats["labels_alarm"] == 0
    assert stats["source"] == "model"
    assert stats["feature_version"] == FEATURE_VERSION
    assert 0.0 <= stats["accuracy"] <= 1.0


def test_prequential_first_label_is_scored_by_the_prior() -> None:
    classifier = Classifier()
    event = sweep(T0)
    classifier.assess(event)
    assert classifier.learn(event["id"], "normal") is True  # level 1: prior 0.1
    session = make_event("session", level=3, evidence={"port": 445, "bytes": 900})
    classifier.assess(session)
    assert classifier.learn(session["id"], "normal") is False  # level 3: prior 0.9
    assert classifier.stats()["accuracy"] == pytest.approx(0.5)


def test_a_repeated_event_is_counted_once() -> None:
    classifier = Classifier()
    event = sweep(T0)
    assert classifier.assess(event) == classifier.assess(dict(event))
    entry = classifier.history.get(event["source"]["mac"])
    assert entry is not None
    assert entry.seen == 1


def test_learning_an_unknown_event() -> None:
    classifier = Classifier()
    with pytest.raises(KeyError):
        classifier.learn("f" * 32, "alarm")
    event = ransomware(1)
    classifier.learn(event["id"], "alarm", event)  # not seen before: assessed now
    assert classifier.stats()["labels_alarm"] == 1
    with pytest.raises(ModelError, match="label"):
        classifier.learn(event["id"], "dunno")


def test_a_changed_label_moves_the_source_counts() -> None:
    classifier = Classifier()
    event = owner_scan(0)
    classifier.assess(event)
    classifier.learn(event["id"], "alarm")
    classifier.learn(event["id"], "normal")
    entry = classifier.history.get(LAPTOP)
    assert entry is not None
    assert (entry.normal, entry.alarm) == (1, 0)
    assert [label for _, _, label in entry.labelled] == ["normal"]
    assert classifier.model.labels == 2  # the model learned both (it cannot unlearn)


def test_recent_features_are_bounded() -> None:
    classifier = Classifier(max_pending=3)
    events = [sweep(T0 + timedelta(seconds=120 * n)) for n in range(5)]
    for event in events:
        classifier.assess(event)
    with pytest.raises(KeyError):
        classifier.learn(events[0]["id"], "normal")
    classifier.learn(events[-1]["id"], "normal")


def test_round_trip_keeps_model_history_and_recent_features() -> None:
    japan = timezone(timedelta(hours=9))
    classifier = Classifier(tz=japan)
    for n in range(8):
        event = owner_scan(24 * n)
        classifier.assess(event)
        classifier.learn(event["id"], "normal")
    pending = ransomware(200)
    classifier.assess(pending)
    stored = json.loads(json.dumps(classifier.to_dict()))
    restored, reason = Classifier.from_dict(stored, tz=japan)
    assert reason is None
    assert restored.stats() == classifier.stats()
    probe = owner_scan(24 * 9)
    assert restored.assess(dict(probe)) == classifier.assess(dict(probe))
    restored.learn(pending["id"], "alarm")  # the label of an event seen before the restart
    assert restored.stats()["labels_alarm"] == 1


def test_another_feature_version_starts_afresh_with_a_reason() -> None:
    classifier = Classifier()
    event = owner_scan(0)
    classifier.assess(event)
    stored = {**classifier.to_dict(), "feature_version": FEATURE_VERSION - 1}
    restored, reason = Classifier.from_dict(stored)
    assert reason is not None
    assert "feature version" in reason
    assert restored.stats()["labels"] == 0
    assert len(restored.history) == 0
    fresh, why = Classifier.from_dict("garbage")  # type: ignore[arg-type]
    assert why is not None
    assert fresh.stats()["labels"] == 0


def test_broken_parts_are_reset_and_named() -> None:
    classifier = Classifier()
    event = owner_scan(0)
    classifier.assess(event)
    classifier.learn(event["id"], "normal")
    stored = classifier.to_dict()

    bad_model, reason = Classifier.from_dict({**stored, "model": {"format": 1}})
    assert reason is not None
    assert "model reset" in reason
    assert bad_model.model.labels == 0
    assert len(bad_model.history) == 1  # the history survived

    bad_history, reason = Classifier.from_dict({**stored, "history": {"version": 0}})
    assert reason is not None
    assert "history reset" in reason
    assert bad_history.model.labels == 1

    broken_pending = {**stored, "pending": {"x": {"features": [1.0]}}}
    no_pending, reason = Classifier.from_dict(broken_pending)
    assert reason is not None
    assert "recent event features dropped" in reason
    with pytest.raises(KeyError):
        no_pending.learn("x", "normal")


def test_reset_keeps_history_and_settings() -> None:
    classifier = Classifier(OnlineLogisticModel(alarm_from=0.9))
    for n in range(6):
        event = owner_scan(24 * n)
        classifier.assess(event)
        classifier.learn(event["id"], "normal")
    classifier.reset_model()
    assert classifier.stats()["labels"] == 0
    assert classifier.stats()["source"] == "prior"
    assert classifier.model.alarm_from == 0.9
    assert len(classifier.history) == 1


def test_merge_an_exported_model() -> None:
    teacher = Classifier()
    for n in range(12):
        event = owner_scan(24 * n)
        teacher.assess(event)
        teacher.learn(event["id"], "normal")
    exported = json.loads(json.dumps(teacher.model.export()))
    learner = Classifier()
    learner.merge(exported)
    assert learner.stats()["labels"] == 12
    with pytest.raises(ModelError):
        learner.merge({"format": 1, "feature_version": FEATURE_VERSION + 1})
