"""The evaluation (benchmarks/classifier_eval.py) on a small scale: the owner, the counting."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from benchmarks import classifier_homes
from benchmarks.classifier_eval import (
    DEFAULT_PARAMS,
    EvalHome,
    Tally,
    learning_curve,
    load_home,
    merge_check,
    print_curve,
    rule_verdict,
    run_home,
    tune,
)
from benchmarks.classifier_homes import LabelledEvent, Owner

EAGER = Owner(answers_pushes=1.0, answers_questions=1.0, median_delay_s=60.0, mistakes=0.0)
SILENT = Owner(answers_pushes=0.0, answers_questions=0.0, median_delay_s=60.0)


def small_home(owner: Owner = EAGER, seed: int = 2, days: float = 0.2) -> EvalHome:
    home = classifier_homes.generate_home(seed, days)
    return EvalHome(
        f"homes-{seed}", seed, home.events, home.tz, owner, home.hosts, bool(home.attacks)
    )


def labelled(event: dict[str, Any], truth: str, time: float, episode: str = "") -> LabelledEvent:
    return LabelledEvent(event, truth, "s", time, episode)  # type: ignore[arg-type]


def test_the_rule_is_alarm_from_level_2() -> None:
    assert [rule_verdict({"level": level}) for level in range(4)] == [
        "normal",
        "normal",
        "alarm",
        "alarm",
    ]


def test_the_tally_counts_incidents_delays_pushes_and_questions() -> None:
    tally = Tally()
    times = [100.0, 160.0, 220.0]
    for n, (time, verdict) in enumerate(zip(times, ["unsure", "normal", "alarm"], strict=True)):
        tally.add(labelled({"level": 1}, "alarm", time, "attack"), "bad", verdict, True)
        if n == 2:
            tally.push(True)
    tally.add(labelled({"level": 1}, "normal", 300.0), "good", "alarm", False)
    tally.push(False)
    tally.days = 2.0
    assert tally.recall == pytest.approx(1 / 3)
    assert tally.incident_recall == tally.attack_recall == 1.0
    assert tally.alarm_delays() == [120.0]
    assert tally.false_alarms == 1.0
    assert tally.question_rate == 0.25
    assert (tally.pushes_per_day, tally.benign_pushes_per_day) == (1.0, 0.5)
    assert tally.pushes_per_incident == 1.0
    assert tally.quiet_pushes_per_day is None
    missed = Tally()
    missed.add(labelled({"level": 1}, "alarm", 5.0, "x"), "bad", "normal", True)
    assert missed.incident_recall == 0.0
    assert missed.alarm_delays() == []


def test_the_owner_answers_only_what_reached_them_and_learning_stops_at_n() -> None:
    home = small_home()
    full = run_home(home, DEFAULT_PARAMS, None)  # learns from every answer
    assert full.labels > 2
    assert full.expired == 0
    run = run_home(home, DEFAULT_PARAMS, 2)
    assert run.labels == 2
    assert run.reached
    assert 0 < run.model.scored < len(home.events)
    assert run.model.scored == run.rule.scored
    assert run.model.days > 0
    classifier = run.classifier
    assert classifier is not None
    assert classifier.stats()["labels"] == 2  # frozen at the checkpoint
    silent = run_home(small_home(SILENT), DEFAULT_PARAMS, 1)
    assert not silent.reached
    assert silent.labels == 0
    everything = run_home(small_home(SILENT), DEFAULT_PARAMS, 0)
    assert everything.reached
    assert everything.model.scored == len(home.events)
    assert sum(everything.model.pushes.values()) >= 1  # notified, though nobody answers


@dataclasses.dataclass(frozen=True)
class Browser(Owner):
    """An owner who reviews the inbox every hour (for a short home)."""

    @property
    def reviews_every_s(self) -> float | None:
        return 3600.0


def test_an_owner_reviews_the_inbox_like_a_spam_folder() -> None:
    assert EAGER.reviews_every_s == 7 * 86400.0
    assert dataclasses.replace(EAGER, answers_pushes=0.3).reviews_every_s == 21 * 86400.0
    assert SILENT.reviews_every_s is None
    browser = Browser(answers_pushes=0.0, answers_questions=0.0, median_delay_s=60.0, mistakes=0.0)
    run = run_home(small_home(browser), DEFAULT_PARAMS, None)
    assert run.labels == run.inbox_labels > 0  # answers nothing, labels from the inbox
    assert run.expired == 0
    classifier = run.classifier
    assert classifier is not None
    assert classifier.stats()["labels"] == run.labels


def test_answers_arrive_late() -> None:
    prompt = run_home(small_home(), DEFAULT_PARAMS, None)
    late = run_home(
        small_home(dataclasses.replace(EAGER, median_delay_s=10 * 86400.0)), DEFAULT_PARAMS, None
    )
    assert late.labels < prompt.labels  # answers due after the end never came


def test_the_curve_pools_the_homes_that_reached_n_labels() -> None:
    homes = [small_home(), small_home(SILENT)]
    curve = learning_curve(homes, DEFAULT_PARAMS, (0, 2))
    assert curve[0][1] == 2
    assert curve[2][1] == 1
    assert curve[0][0].model.scored == sum(len(home.events) for home in homes)


def test_the_curve_prints_the_figures_beside_the_rule(capsys: pytest.CaptureFixture[str]) -> None:
    curve = learning_curve([small_home()], DEFAULT_PARAMS, (0,))
    print_curve(curve, 1)
    printed = capsys.readouterr().out
    header, row = printed.splitlines()[:2]
    for column in ("recall", "incid.", "1st alarm s", "f.alarm", "asked", "push/d", "p/inc"):
        assert column in header
    assert "rule recall" in header
    assert row.split()[0] == "0"


def test_the_merge_check_scores_each_home_with_the_others() -> None:
    homes = [small_home(seed=2), small_home(seed=11)]
    results = merge_check(homes, DEFAULT_PARAMS)
    assert results
    for name, singles, merged in results:
        assert name in {"homes-2", "homes-11"}
        assert len(singles) == 1
        assert merged.scored > 0


def test_both_corpora_load() -> None:
    old = load_home("generated", 3, 0.5)
    assert old.name == "generated-3"
    assert old.events
    assert old.hosts == []
    assert 0 <= old.owner.answers_pushes <= 1
    assert old.days > 0


def test_tuning_respects_the_budgets(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        "benchmarks.classifier_eval.load_home", lambda corpus, seed, days: small_home(seed=seed)
    )
    monkeypatch.setattr("benchmarks.classifier_eval.TUNE_LABELS", 2)
    grid = {"prior_variance": (0.1,), "alarm_from": (0.3, 0.9), "ask_from": (0.1, 0.5)}
    chosen = tune("homes", [2], 0.2, DEFAULT_PARAMS, grid, workers=1)
    rows = [line for line in capsys.readouterr().out.splitlines() if "|" in line][1:]
    assert len(rows) == 3  # 0.5 / 0.3 is no band
    assert sum("<- chosen" in row for row in rows) == 1
    assert (chosen["alarm_from"], chosen["ask_from"]) in {(0.3, 0.1), (0.9, 0.1), (0.9, 0.5)}
