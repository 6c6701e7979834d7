"""The classifier the integration calls (custom_components/lan_guard/learning/classifier.py)."""

from __future__ import annotations

import json
from datetime import timedelta, timezone
from typing import Any

import numpy as np
import pytest

from custom_components.lan_guard.learning import federated
from custom_components.lan_guard.learning.classifier import MAX_IMPORTS, Classifier
from custom_components.lan_guard.learning.features import FEATURE_VERSION, INDEX, N_FEATURES
from custom_components.lan_guard.learning.model import ModelError, OnlineLogisticModel
from custom_components.lan_guard.learning.policy import QuestionPolicy
from tests.ha.test_learning_features import LAPTOP, T0, make_event, sweep

NMAP_PORTS = [21, 22, 23, 25, 53, 80, 110, 139, 443, 445, 3389, 8080]


def owner_scan(hours: float) -> dict[str, Any]:
    """The owner's nmap -sS from the laptop: many ports, level 2."""
    evidence = {"ports": NMAP_PORTS, "packets": 24, "rate": 800.0}
    return make_event(at=T0 + timedelta(hours=hours), evidence=evidence)


def ransomware(hours: float, mac: str = "00:1e:c9:aa:bb:cc") -> dict[str, Any]:
    evidence = {"ports": [554, 445, 9100, 80, 515, 139], "packets": 12, "rate": 40.0}
    return make_event(at=T0 + timedelta(hours=hours), mac=mac, evidence=evidence)


def taught(count: int, classifier: Classifier | None = None) -> Classifier:
    """The owner calls ``count`` of the laptop's daily scans normal."""
    classifier = classifier or Classifier()
    for n in range(count):
        event = owner_scan(24 * n)
        classifier.assess(event)
        classifier.learn(event["id"], "normal")
    return classifier


def test_the_prior_then_the_owner_teaches_a_known_scan() -> None:
    classifier = Classifier()
    first = owner_scan(0)
    assessment = classifier.assess(first)
    assert (assessment.verdict, assessment.decided_by, assessment.labels) == ("alarm", "prior", 0)
    assert classifier.learn(first["id"], "normal") is False  # the prior said alarm
    taught(5, classifier)
    later = classifier.assess(owner_scan(24 * 7))
    assert (later.verdict, later.decided_by, later.labels) == ("normal", "model", 6)
    # The same laptop scanning the ransomware ports is another shape: not waved through.
    assert classifier.assess(ransomware(24 * 7, mac=LAPTOP)).verdict == "alarm"
    assert classifier.assess(ransomware(24 * 7)).verdict == "alarm"
    stats = classifier.stats()
    assert stats["labels"] == 6
    assert stats["labels_normal"] == 6
    assert stats["labels_alarm"] == 0
    assert stats["decided_by"] == "model"
    assert stats["imported_models"] == stats["imported_labels"] == 0
    assert stats["feature_version"] == FEATURE_VERSION
    assert stats["model_id"] == classifier.own.model_id
    assert 0.0 <= stats["accuracy"] <= 1.0


def test_a_repeated_event_is_counted_once() -> None:
    classifier = Classifier()
    event = sweep(T0)
    assert classifier.assess(event) == classifier.assess(dict(event))
    entry = classifier.history.get(event["source"]["mac"])
    assert entry is not None
    assert entry.seen == 1


def test_one_label_per_event_the_same_answer_again_changes_nothing() -> None:
    classifier = taught(3)
    event = owner_scan(100)
    classifier.assess(event)
    assert classifier.learn(event["id"], "normal") is not None
    before = classifier.to_dict()
    for _ in range(5):  # the owner presses the same button five times
        assert classifier.learn(event["id"], "normal") is None
    assert classifier.to_dict() == before
    assert classifier.stats()["labels"] == 4
    assert classifier.model.decided_by == "model"


def test_a_new_answer_replaces_the_old_one() -> None:
    classifier = taught(4)
    event = ransomware(100, mac=LAPTOP)
    classifier.assess(event)
    classifier.learn(event["id"], "normal")  # a slip of the thumb
    classifier.learn(event["id"], "alarm")  # corrected
    stats = classifier.stats()
    assert (stats["labels"], stats["labels_normal"], stats["labels_alarm"]) == (5, 4, 1)
    # The model is exactly the one that only ever heard the corrected answer.
    straight = taught(4)
    again = ransomware(100, mac=LAPTOP)
    again["id"] = event["id"]
    straight.assess(again)
    straight.learn(event["id"], "alarm")
    probe = ransomware(200, mac=LAPTOP)
    assert classifier.assess(dict(probe)).probability == pytest.approx(
        straight.assess(dict(probe)).probability
    )
    entry = classifier.history.get(LAPTOP)
    assert entry is not None
    assert [label for _, label in entry.labelled].count("normal") == 4  # the slip is gone


def test_answers_to_notifications_outlive_the_recent_events() -> None:
    classifier = Classifier(max_recent=5, questions=QuestionPolicy(per_day=0))
    alarm = ransomware(0)
    assert classifier.assess(alarm).verdict == "alarm"  # notified: kept
    quiet = sweep(T0 + timedelta(minutes=1))
    classifier.assess(quiet)
    shown = sweep(T0 + timedelta(minutes=2), mac="02:00:00:00:00:05")
    classifier.assess(shown)
    assert classifier.keep(shown["id"])  # its notification shows it: kept
    for n in range(20):  # many events later
        classifier.assess(sweep(T0 + timedelta(minutes=3 + n)))
    assert classifier.can_learn(alarm["id"])
    assert classifier.learn(alarm["id"], "alarm") is not None
    assert classifier.learn(shown["id"], "normal") is not None
    assert not classifier.can_learn(quiet["id"])
    with pytest.raises(KeyError):  # only what nobody was told of is forgotten
        classifier.learn(quiet["id"], "normal")
    assert not classifier.keep("f" * 32)


def test_kept_events_are_bounded_in_count_and_age() -> None:
    classifier = Classifier(max_recent=1, max_kept=3, keep_for_s=86400.0)
    alarms = [ransomware(n, mac=f"00:1e:c9:aa:bb:{n:02x}") for n in range(5)]
    for event in alarms:
        classifier.assess(event)
    assert [classifier.can_learn(e["id"]) for e in alarms] == [False, False, True, True, True]
    late = ransomware(29, mac="00:1e:c9:aa:bb:ff")  # more than a day after the last one
    classifier.assess(late)
    assert [classifier.can_learn(e["id"]) for e in alarms] == [False] * 5
    assert classifier.can_learn(late["id"])


def test_learning_an_unknown_event() -> None:
    classifier = Classifier()
    with pytest.raises(KeyError):
        classifier.learn("f" * 32, "alarm")
    event = ransomware(1)
    classifier.learn(event["id"], "alarm", event)  # not seen before: assessed now
    assert classifier.stats()["labels_alarm"] == 1
    with pytest.raises(ModelError, match="label"):
        classifier.learn(event["id"], "dunno")


def test_labelled_records_are_bounded_and_older_ones_stay_learned() -> None:
    classifier = Classifier(max_labelled=3)
    events = [owner_scan(24 * n) for n in range(6)]
    for event in events:
        classifier.assess(event)
        classifier.learn(event["id"], "normal")
    assert classifier.stats()["labels"] == 6  # folded into the model for good
    with pytest.raises(KeyError):  # too old to be answered again
        classifier.learn(events[0]["id"], "alarm")
    classifier.learn(events[-1]["id"], "alarm")  # recent enough to be replaced
    assert classifier.stats()["labels"] == 6
    assert classifier.stats()["labels_alarm"] == 1


def test_the_model_asks_about_the_events_it_is_least_sure_of_within_the_budget() -> None:
    questions = QuestionPolicy(per_day=2, ask_from=0.05)
    classifier = Classifier(questions=questions)
    verdicts = []
    for n in range(6):  # new devices' first sweeps, each its own source: p about 0.1
        event = sweep(T0 + timedelta(minutes=n), mac=f"02:00:00:00:01:{n:02x}")
        verdicts.append(classifier.assess(event).verdict)
    assert verdicts == ["unsure", "unsure", "normal", "normal", "normal", "normal"]
    assert len(classifier.questions.open) == 2
    asked = next(iter(classifier.questions.open))
    classifier.learn(asked, "normal")
    assert asked not in classifier.questions.open  # answered
    sure = Classifier(questions=QuestionPolicy(per_day=2, ask_from=0.2))
    assert sure.assess(sweep(T0)).verdict == "normal"  # below the band: not asked


def test_round_trip_keeps_models_history_kept_events_and_questions() -> None:
    japan = timezone(timedelta(hours=9))
    classifier = taught(8, Classifier(tz=japan))
    teacher = taught(12)
    classifier.merge(teacher.export())
    pending = ransomware(200)
    classifier.assess(pending)
    classifier.questions.open["a" * 32] = 1.0
    stored = json.loads(json.dumps(classifier.to_dict()))
    restored, reason = Classifier.from_dict(stored, tz=japan)
    assert reason is None
    assert restored.stats() == classifier.stats()
    assert restored.questions.open == classifier.questions.open
    probe = owner_scan(24 * 9)
    assert restored.assess(dict(probe)) == classifier.assess(dict(probe))
    restored.to_dict()  # written once before the label
    restored.learn(pending["id"], "alarm")  # the label of an event seen before the restart
    assert restored.stats()["labels_alarm"] == 1
    assert restored.merge(teacher.export()) is False  # the import survived the restart
    # A label given after a write is in the next one (what is written is made once per event).
    again, _ = Classifier.from_dict(json.loads(json.dumps(restored.to_dict())), tz=japan)
    assert again.stats()["labels_alarm"] == 1
    assert again.learn(pending["id"], "alarm") is None  # already this label


def test_another_feature_version_starts_afresh_with_a_reason() -> None:
    classifier = Classifier()
    classifier.assess(owner_scan(0))
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
    classifier = taught(1)
    classifier.merge(taught(10).export())
    stored = classifier.to_dict()

    bad_model, reason = Classifier.from_dict({**stored, "own": {"format": 1}})
    assert reason is not None
    assert "model reset" in reason
    assert bad_model.own.labels == 0
    assert len(bad_model.history) == 1  # the history survived

    bad_history, reason = Classifier.from_dict({**stored, "history": {"version": 0}})
    assert reason is not None
    assert "history reset" in reason
    assert bad_history.own.labels == 1
    for not_objects in ("broken", [1]):  # storage edited by hand: reset, never a crash
        _, reason = Classifier.from_dict({**stored, "history": not_objects, "questions": [1]})
        assert reason is not None and "history reset" in reason and "question budget" in reason

    bad_imports, reason = Classifier.from_dict({**stored, "imports": [{"format": 1}]})
    assert reason is not None
    assert "imported models dropped" in reason
    assert bad_imports.stats()["imported_models"] == 0

    _, reason = Classifier.from_dict({**stored, "questions": {}})
    assert reason is not None
    assert "question budget reset" in reason

    broken = {**stored, "examples": {"x": {"features": [[999, 1.0]]}}, "recent": ["x"]}
    no_examples, reason = Classifier.from_dict(broken)
    assert reason is not None
    assert "recent event features dropped" in reason
    with pytest.raises(KeyError):
        no_examples.learn("x", "normal")


def test_reset_forgets_labels_and_imports_keeps_history_and_settings() -> None:
    classifier = taught(6, Classifier(OnlineLogisticModel(alarm_from=0.9)))
    classifier.merge(taught(12).export())
    old_id = classifier.own.model_id
    classifier.reset_model()
    stats = classifier.stats()
    assert (stats["labels"], stats["imported_models"], stats["decided_by"]) == (0, 0, "prior")
    assert stats["model_id"] != old_id
    assert classifier.model.alarm_from == 0.9
    assert len(classifier.history) == 1
    entry = classifier.history.get(LAPTOP)
    assert entry is not None
    assert not entry.labelled  # the owner's labels went with the model


def test_importing_a_model_once_counts_once() -> None:
    teacher = taught(12)
    exported = json.loads(json.dumps(teacher.export()))
    learner = taught(2)
    assert learner.merge(exported) is True
    stats = learner.stats()
    assert (stats["labels"], stats["imported_models"], stats["imported_labels"]) == (2, 1, 12)
    probe = owner_scan(300)
    once = learner.assess(dict(probe)).probability
    assert learner.merge(exported) is False  # the same export again: nothing changes
    assert learner.stats()["imported_labels"] == 12
    assert learner.assess(dict(probe)).probability == pytest.approx(once)
    taught(3, teacher)  # the teacher learns more and exports again: it replaces, not adds
    assert learner.merge(teacher.export()) is True
    assert learner.stats()["imported_labels"] == 15
    assert learner.stats()["imported_models"] == 1
    # What leaves this home is its own model only (2 labels), never what it imported.
    with pytest.raises(ModelError, match="at least"):
        learner.export()
    with pytest.raises(ModelError, match="own model"):
        teacher.merge(teacher.export())
    with pytest.raises(ModelError):
        learner.merge({"format": 2, "feature_version": FEATURE_VERSION + 1})


def test_a_global_prior_goes_under_the_own_labels_and_stays_through_a_rebuild() -> None:
    classifier = taught(4)
    imported = taught(10).export()
    classifier.merge(imported)
    event = ransomware(100, mac=LAPTOP)
    classifier.assess(event)
    classifier.learn(event["id"], "normal")
    features = classifier.features_of(event["id"])  # as taken on arrival, for the federation
    assert features is not None and len(features) == N_FEATURES and features[INDEX["bias"]] == 1
    assert classifier.features_of("f" * 32) is None
    # A global model very sure that everything is an alarm (a large bias, a high precision).
    sure = (np.zeros(N_FEATURES), np.eye(N_FEATURES) * 1e4)
    sure[0][INDEX["bias"]] = 6.0
    classifier.replace_prior(federated.hand_set_prior(classifier.own), sure)
    assert classifier.stats()["labels"] == 5  # the owner's labels stay the home's
    assert classifier.imports[imported["model_id"]].to_dict() == imported  # theirs kept
    assert classifier.own.mean[INDEX["bias"]] == pytest.approx(6.0, abs=0.05)
    # A new answer rebuilds the own model from the folded labels and the records: on the
    # global prior, not on the hand-set one.
    classifier.learn(event["id"], "alarm")
    assert classifier.own.mean[INDEX["bias"]] == pytest.approx(6.0, abs=0.05)
    assert classifier.assess(owner_scan(500)).verdict == "alarm"
    with pytest.raises(ModelError, match="another size"):  # nothing changes
        classifier.replace_prior(sure, (np.zeros(3), np.eye(3)))
    assert classifier.own.mean[INDEX["bias"]] == pytest.approx(6.0, abs=0.05)


def test_imports_are_bounded() -> None:
    learner = Classifier()
    for _ in range(MAX_IMPORTS):
        learner.merge(taught(10).export())
    with pytest.raises(ModelError, match="at most"):
        learner.merge(taught(10).export())


ROKU_VENDOR = "Roku, Inc"


def bursts(classifier: Classifier, mac: str, vendor: str, days: float, targets: int = 20) -> None:
    """A device's discovery bursts every 40 minutes for ``days`` days (its routine)."""
    for n in range(int(days * 36)):
        at = T0 + timedelta(minutes=40 * n)
        classifier.assess(sweep(at, mac, targets=targets, vendor=vendor))


def test_a_hue_bridge_with_a_routine_that_turns_into_a_telnet_bot_is_an_alarm() -> None:
    classifier = Classifier()
    hue = "00:17:88:00:00:01"
    bursts(classifier, hue, "Philips Lighting BV", 3, targets=12)
    routine = classifier.assess(sweep(T0 + timedelta(days=3), hue, targets=12, vendor=None))
    assert routine.verdict == "normal"
    night = T0 + timedelta(days=3, hours=3)
    verdicts = [
        classifier.assess(
            sweep(night + timedelta(minutes=n), hue, targets=160, vendor="Philips Lighting BV")
        ).verdict
        for n in range(10)
    ]
    assert verdicts == ["alarm"] * 10


def test_a_roku_burst_labelled_normal_vouches_for_nothing_larger() -> None:
    classifier = Classifier()
    roku = "34:5e:08:00:00:01"
    burst = sweep(T0, roku, targets=10, vendor=ROKU_VENDOR)
    classifier.assess(burst)
    classifier.learn(burst["id"], "normal")
    bursts(classifier, roku, ROKU_VENDOR, 2, targets=10)
    big = sweep(T0 + timedelta(days=2, minutes=31), roku, targets=253, vendor=ROKU_VENDOR)
    assert classifier.assess(big).verdict == "alarm"


def test_an_alarm_on_a_roku_sweep_does_not_taint_its_ordinary_bursts() -> None:
    classifier = Classifier()
    roku = "34:5e:08:00:00:02"
    bursts(classifier, roku, ROKU_VENDOR, 2)
    bad = sweep(T0 + timedelta(days=2, minutes=10), roku, targets=253, vendor=ROKU_VENDOR)
    classifier.assess(bad)
    classifier.learn(bad["id"], "alarm")
    # Its next burst, in its rhythm: still its routine.
    ordinary = sweep(T0 + timedelta(days=2, minutes=40), roku, targets=20, vendor=ROKU_VENDOR)
    assessment = classifier.assess(ordinary)
    assert assessment.verdict == "normal"
    assert assessment.probability < 0.1
    # The big sweep again is an alarm, by its label.
    again = sweep(T0 + timedelta(days=2, minutes=70), roku, targets=250, vendor=ROKU_VENDOR)
    assert classifier.assess(again).verdict == "alarm"
