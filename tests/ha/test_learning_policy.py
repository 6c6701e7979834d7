"""What reaches the owner: questions, pushes, the digest (learning/policy.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from custom_components.lan_guard.learning.policy import (
    DailyDigest,
    Push,
    PushPolicy,
    QuestionPolicy,
    describe_push,
)

TRANSLATIONS = Path(__file__).resolve().parents[2] / "custom_components/lan_guard/translations"
DAY = 86400.0


def common(language: str) -> dict[str, str]:
    texts: dict[str, str] = json.loads(
        (TRANSLATIONS / f"{language}.json").read_text(encoding="utf-8")
    )["common"]
    return texts


def kind_name(language: str, kind: str) -> str:
    data: dict[str, Any] = json.loads((TRANSLATIONS / f"{language}.json").read_text("utf-8"))
    name: str = data["entity"]["event"]["activity"]["state_attributes"]["event_type"]["state"][kind]
    return name


# -- questions ------------------------------------------------------------------------------------
def ask(policy: QuestionPolicy, n: int, p: float, *, key: str = "", when: float = 0.0) -> bool:
    return policy.consider(
        f"{n:032x}",
        key or f"source-{n}",
        probability=p,
        alarm_from=0.3,
        when=when,
        day=int(when // DAY),
    )


def test_asks_only_about_uncertain_normal_verdicts() -> None:
    policy = QuestionPolicy(per_day=10, ask_from=0.1)
    assert not ask(policy, 1, 0.05)  # sure it is normal
    assert not ask(policy, 2, 0.3)  # an alarm: it is notified with the buttons anyway
    assert not ask(policy, 3, 0.95)
    assert ask(policy, 4, 0.1)
    assert ask(policy, 5, 0.29)
    assert list(policy.open) == [f"{4:032x}", f"{5:032x}"]


def test_the_daily_budget_and_a_new_day() -> None:
    policy = QuestionPolicy(per_day=3, ask_from=0.1)
    asked = [ask(policy, n, 0.2, when=3600.0 * n) for n in range(5)]
    assert asked == [True, True, True, False, False]
    assert ask(policy, 9, 0.2, when=DAY + 60)  # the next day has its own budget
    assert policy.asked_today == 1
    silent = QuestionPolicy(per_day=0)
    assert not ask(silent, 1, 0.2)


def test_one_question_per_source_and_shape_a_week() -> None:
    policy = QuestionPolicy(per_day=10, ask_from=0.1)
    assert ask(policy, 1, 0.2, key="roku/sweep/few", when=0.0)
    assert not ask(policy, 2, 0.2, key="roku/sweep/few", when=2 * DAY)
    assert ask(policy, 3, 0.2, key="roku/sweep/many", when=2 * DAY)  # another shape
    assert ask(policy, 4, 0.2, key="roku/sweep/few", when=7 * DAY)


def test_unanswered_questions_expire_quietly_answered_ones_do_not() -> None:
    policy = QuestionPolicy(per_day=10, ask_from=0.1, ttl_s=DAY)
    ask(policy, 1, 0.2, when=0.0)
    ask(policy, 2, 0.2, when=100.0)
    ask(policy, 3, 0.2, when=DAY)
    policy.answered(f"{2:032x}")
    policy.answered("not a question")  # any label: nothing to withdraw
    assert policy.expire(DAY + 50) == [f"{1:032x}"]
    assert policy.expire(DAY + 50) == []
    assert list(policy.open) == [f"{3:032x}"]


def test_question_state_is_bounded_and_round_trips() -> None:
    policy = QuestionPolicy(per_day=5000, ask_from=0.1)
    for n in range(3000):
        ask(policy, n, 0.2, when=float(n))
    assert len(policy.asked) == 1024
    assert len(policy.open) == 256
    stored = json.loads(json.dumps(policy.to_dict()))
    restored = QuestionPolicy.from_dict(stored, per_day=2, ask_from=0.15)
    assert (restored.per_day, restored.ask_from) == (2, 0.15)  # the owner's current options
    assert restored.asked == policy.asked
    assert restored.open == policy.open
    assert restored.asked_today == policy.asked_today
    with pytest.raises(KeyError):
        QuestionPolicy.from_dict({})


# -- pushes ----------------------------------------------------------------------------------------
ESCALATION = [  # (level, verdict): an incident seen L1 -> L2 -> L3, many updates in between
    (1, "normal"),
    (1, "normal"),
    (1, "alarm"),  # judged alarm: the first push
    (1, "alarm"),
    (1, "normal"),
    (2, "alarm"),  # escalates: one more push
    (2, "alarm"),
    (2, "alarm"),
    (2, "unsure"),
    (3, "alarm"),  # escalates again
    (3, "alarm"),
    (2, "alarm"),  # a lower level later: an update
    (3, "alarm"),
]


def run(policy: PushPolicy, steps: list[tuple[int, str]], incident: str = "i1") -> list[Push]:
    return [
        policy.decide(incident, verdict, level, 60.0 * n)
        for n, (level, verdict) in enumerate(steps)
    ]


def test_an_incident_escalating_l1_l2_l3_pushes_three_times() -> None:
    decisions = run(PushPolicy(), ESCALATION)
    assert [d.action for d in decisions] == [
        "none",
        "none",
        "push",
        "update",
        "update",
        "push",
        "update",
        "update",
        "update",
        "push",
        "update",
        "update",
        "update",
    ]
    pushes = [d for d in decisions if d.action == "push"]
    assert [(d.reason, d.level) for d in pushes] == [
        ("alarm", 1),
        ("escalation", 2),
        ("escalation", 3),
    ]
    assert all(d.incident_id == "i1" for d in decisions)


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        (
            "en",
            [
                "Alarm: ARP scan (level 1)",
                "Escalated to level 2: SYN scan of the monitoring node",
                "Escalated to level 3: Session with the monitoring node",
            ],
        ),
        (
            "ja",
            [
                "警報: ARPスキャン（レベル1）",  # noqa: RUF001
                "レベル2に上昇: 監視ノードへのSYNスキャン",  # noqa: RUF001
                "レベル3に上昇: 監視ノードとの通信セッション",
            ],
        ),
    ],
)
def test_the_pushes_read_in_english_and_japanese(language: str, expected: list[str]) -> None:
    kinds = {1: "arp_scan", 2: "syn_scan", 3: "session"}
    decisions = run(PushPolicy(), ESCALATION)
    texts = common(language)
    lines = [
        describe_push(texts, d, kind_name(language, kinds[d.level]))
        for d in decisions
        if d.action == "push"
    ]
    assert lines == expected
    updates = {describe_push(texts, d, "x") for d in decisions if d.action == "update"}
    assert len(updates) == 3  # silent updates read as updates (one per level)
    assert all(text.startswith("Update" if language == "en" else "更新") for text in updates)


def test_a_question_pushes_once_and_a_later_alarm_at_the_same_level_does_not() -> None:
    decisions = run(
        PushPolicy(), [(1, "unsure"), (1, "alarm"), (1, "normal"), (2, "normal"), (2, "alarm")]
    )
    assert [(d.action, d.reason) for d in decisions] == [
        ("push", "question"),
        ("update", "update"),
        ("update", "update"),
        ("update", "update"),  # a higher level judged normal: no sound
        ("push", "escalation"),
    ]


def test_a_normal_incident_never_pushes_and_incidents_are_independent() -> None:
    policy = PushPolicy()
    quiet = run(policy, [(1, "normal")] * 50, "tracker")
    assert {d.action for d in quiet} == {"none"}
    assert not policy.pushed("tracker")
    assert policy.decide("other", "alarm", 2, 0.0).action == "push"
    assert policy.pushed("other")
    assert not policy.pushed("never seen")


def test_push_state_is_bounded_and_round_trips() -> None:
    policy = PushPolicy(max_incidents=3)
    for n in range(5):
        policy.decide(f"i{n}", "alarm", 2, float(n))
    assert not policy.pushed("i0")  # the least recently seen was forgotten
    assert policy.pushed("i4")
    restored = PushPolicy.from_dict(json.loads(json.dumps(policy.to_dict())))
    assert restored.decide("i4", "alarm", 2, 9.0).action == "update"
    assert restored.decide("i4", "alarm", 3, 9.0).action == "push"
    with pytest.raises(KeyError):
        PushPolicy.from_dict({})


# -- digest ---------------------------------------------------------------------------------------
def test_the_daily_digest_is_optional_and_at_most_once_a_day() -> None:
    off = DailyDigest()
    off.add("arp_scan", "aa", 1)
    assert off.due(1, 23) is None
    digest = DailyDigest(enabled=True, hour=20)
    assert digest.due(1, 21) is None  # nothing to tell
    for mac in ("aa", "bb", "aa"):
        digest.add("arp_scan", mac, 1)
    digest.add("syn_scan", "aa", 1)
    assert digest.due(1, 19) is None  # not yet
    assert digest.due(1, 20) == {"events": {"arp_scan": 3, "syn_scan": 1}, "sources": 2}
    assert digest.due(1, 22) is None  # once a day
    digest.add("arp_scan", "cc", 2)
    assert digest.due(2, 20) == {"events": {"arp_scan": 1}, "sources": 1}
