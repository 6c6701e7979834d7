"""The verdict classifier on held-out homes: learning curve, pushes, questions, merge check.

Run: ``.venv/bin/python benchmarks/classifier_eval.py`` (or with ``.venv-agent``: the learning
package is pure Python + numpy). Two corpora, never used to choose anything they report:

* ``homes`` (``classifier_homes.py``): homes whose devices' frames go through the agent's own
  pipeline, tool shapes recorded from real tools in the lab;
* ``generated`` (``classifier_corpus.py``): the project's first corpus, events written directly;

each with held-out seeds 1-12 (reported by default) and development seeds 101-108.

Hyper-parameters (the alarm cut-off, the question band, the prior variance) were chosen by
``--tune`` and the features and the domain prior by hand, on the development homes only.

The owner (``Owner`` of each home: some answer most notifications within minutes, some late
and rarely, some never) answers what reached them: a push (an incident first judged alarm, or
escalating) or a question, by the home's shares, after a delay drawn around its median,
labelling the event the notification shows at that moment (the incident's latest: updates
replace it silently), wrong 2 % of the time. Owners who answer also review the inbox like a
spam folder (weekly, or every three weeks when they answer little): they label up to five of
the week's events judged normal that the classifier was least sure of (one per source and
shape), among those the event history still shows. Pushes follow ``PushPolicy`` (one per
incident when it is first judged alarm or asked about, one more per escalated level, silent
updates), questions ``QuestionPolicy`` (uncertainty sampling, 3 a day at most). How many of
the labels came from the inbox is printed with the curve.

Learning curve: for N labels, the owner's answers stop being learned after the N-th (the model
is frozen; questions and pushes go on), and every later event is scored. Recall: alarm events
judged alarm; incidents: malicious incidents (the agent's incident ids) with an alarm verdict on
any scored event; 1st alarm: seconds from such an incident's first scored event to its first
alarm (median/worst); false alarms: normal events judged alarm; questions: events judged
unsure (asked), per home-day; pushes per home-day (all, and on benign incidents only) and per
malicious incident. The baseline on the very same events is the level rule "alarm iff level >=
2", pushed under the same per-incident policy (the integration applies this very policy; what
pushing every notified event would cost is printed too). Counts are pooled over the homes that
reached N labels.

Merge check: each home's own model learns from its whole stream; for each held-out home, every
other home's model alone and the import of all of them score the held-out stream (no labels
there, so its sources have no label history).
"""

from __future__ import annotations

import argparse
import heapq
import importlib.util
import math
import os
import random
import sys
import types
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any, Final, Protocol

import numpy as np

ROOT: Final = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _learning_without_homeassistant() -> None:
    """Make ``custom_components.lan_guard.learning`` importable without running the
    integration's ``__init__`` when Home Assistant is not installed (the agent venv): the
    learning core is pure. With Home Assistant present the package imports normally."""
    name = "custom_components.lan_guard"
    if name not in sys.modules and importlib.util.find_spec("homeassistant") is None:
        package = types.ModuleType(name)
        package.__path__ = [str(ROOT / "custom_components" / "lan_guard")]
        sys.modules[name] = package


_learning_without_homeassistant()

from benchmarks import classifier_corpus, classifier_homes  # noqa: E402
from custom_components.lan_guard.learning import federated  # noqa: E402
from custom_components.lan_guard.learning.classifier import Classifier  # noqa: E402
from custom_components.lan_guard.learning.features import (  # noqa: E402
    History,
    event_shape,
    extract,
)
from custom_components.lan_guard.learning.model import (  # noqa: E402
    DEFAULT_ALARM_FROM,
    DEFAULT_PRIOR_VARIANCE,
    Label,
    OnlineLogisticModel,
)
from custom_components.lan_guard.learning.policy import (  # noqa: E402
    DEFAULT_ASK_FROM,
    DEFAULT_QUESTIONS_PER_DAY,
    PushPolicy,
    QuestionPolicy,
)

CHECKPOINTS: Final = (0, 5, 10, 20, 50)
REPORT_SEEDS: Final = tuple(range(1, 13))
DEV_SEEDS: Final = tuple(range(101, 109))
CORPORA: Final = ("homes", "generated")


# -- the homes, whichever corpus ------------------------------------------------------------------
class Labelled(Protocol):
    """An event of a corpus with its ground truth (both corpora's ``LabelledEvent``)."""

    @property
    def event(self) -> dict[str, Any]: ...
    @property
    def truth(self) -> str: ...
    @property
    def scenario(self) -> str: ...
    @property
    def time(self) -> float: ...
    @property
    def episode(self) -> str: ...


@dataclass
class EvalHome:
    """What the evaluation needs of a home."""

    name: str
    seed: int
    events: Sequence[Labelled]
    tz: tzinfo
    owner: classifier_homes.Owner
    hosts: list[tuple[float, list[dict[str, Any]]]]
    attacked: bool

    @property
    def days(self) -> float:
        return (self.events[-1].time - self.events[0].time) / 86400.0 if self.events else 0.0


def load_home(corpus: str, seed: int, days: float) -> EvalHome:
    """One home of ``corpus`` (the new one cached on disk: it runs the agent's pipeline)."""
    if corpus == "homes":
        home = classifier_homes.cached_home(seed, days)
        return EvalHome(
            f"homes-{seed}",
            seed,
            home.events,
            home.tz,
            home.owner,
            home.hosts,
            bool(home.attacks),
        )
    old = classifier_corpus.generate_home(seed, days)
    # The first corpus has no owner of its own: one like the new corpus's, drawn by seed.
    owner = classifier_homes._owner(random.Random(seed * 7_654_321 + 99))
    attacked = any(item.truth == "alarm" for item in old.events)
    return EvalHome(
        f"generated-{seed}", seed, old.events, classifier_corpus.HOME_TZ, owner, [], attacked
    )


def load_homes(corpus: str, seeds: Sequence[int], days: float, workers: int = 1) -> list[EvalHome]:
    """Homes of ``corpus``, made in ``workers`` processes when not cached yet."""
    if workers > 1 and len(seeds) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(load_home, [corpus] * len(seeds), seeds, [days] * len(seeds)))
    return [load_home(corpus, seed, days) for seed in seeds]


# -- counting -------------------------------------------------------------------------------------
@dataclass
class Tally:
    """Verdicts, pushes and questions of the scored events, by ground truth."""

    verdicts: Counter[tuple[str, str]] = field(default_factory=Counter)
    scenarios: Counter[tuple[str, str]] = field(default_factory=Counter)
    # malicious incident -> (its first scored event's time, its first alarm's time)
    incidents: dict[str, tuple[float, float | None]] = field(default_factory=dict)
    attacks: dict[str, tuple[float, float | None]] = field(default_factory=dict)
    pushes: Counter[str] = field(default_factory=Counter)  # "benign"/"malicious" -> pushes
    per_event_pushes: int = 0  # without the push policy: every notified event pushes
    questions: int = 0
    scored: int = 0
    days: float = 0.0
    quiet_days: float = 0.0  # scored days of homes with no attack at all
    quiet_pushes: int = 0

    def add(self, item: Labelled, incident: str, verdict: str, malicious: bool) -> None:
        truth = item.truth
        self.verdicts[truth, verdict] += 1
        self.scenarios[item.scenario, verdict] += 1
        self.questions += verdict == "unsure"
        self.scored += 1
        if truth == "alarm":
            for key, seen in ((incident, self.incidents), (item.episode, self.attacks)):
                first, alarmed = seen.get(key, (item.time, None))
                if alarmed is None and verdict == "alarm":
                    alarmed = item.time
                seen[key] = (first, alarmed)
        del malicious

    def push(self, malicious: bool) -> None:
        self.pushes["malicious" if malicious else "benign"] += 1

    def merge(self, other: Tally) -> None:
        self.verdicts.update(other.verdicts)
        self.scenarios.update(other.scenarios)
        self.incidents.update(other.incidents)
        self.attacks.update(other.attacks)
        self.pushes.update(other.pushes)
        self.per_event_pushes += other.per_event_pushes
        self.questions += other.questions
        self.scored += other.scored
        self.days += other.days
        self.quiet_days += other.quiet_days
        self.quiet_pushes += other.quiet_pushes

    def count(self, truth: str, verdicts: Iterable[str] = ("normal", "alarm", "unsure")) -> int:
        return sum(self.verdicts[truth, v] for v in verdicts)

    @property
    def recall(self) -> float:
        return self.count("alarm", ["alarm"]) / max(self.count("alarm"), 1)

    @property
    def incident_recall(self) -> float:
        alarmed = [a for _, a in self.incidents.values() if a is not None]
        return len(alarmed) / max(len(self.incidents), 1)

    @property
    def attack_recall(self) -> float:
        alarmed = [a for _, a in self.attacks.values() if a is not None]
        return len(alarmed) / max(len(self.attacks), 1)

    def alarm_delays(self) -> list[float]:
        """Seconds from each alarmed malicious incident's first scored event to its first
        alarm."""
        return sorted(a - first for first, a in self.incidents.values() if a is not None)

    @property
    def false_alarms(self) -> float:
        return self.count("normal", ["alarm"]) / max(self.count("normal"), 1)

    @property
    def question_rate(self) -> float:
        return self.questions / max(self.scored, 1)

    @property
    def pushes_per_day(self) -> float:
        return sum(self.pushes.values()) / max(self.days, 1e-9)

    @property
    def benign_pushes_per_day(self) -> float:
        return self.pushes["benign"] / max(self.days, 1e-9)

    @property
    def pushes_per_incident(self) -> float:
        return self.pushes["malicious"] / max(len(self.incidents), 1)

    @property
    def quiet_pushes_per_day(self) -> float | None:
        return self.quiet_pushes / self.quiet_days if self.quiet_days else None


def rule_verdict(event: dict[str, Any]) -> str:
    """The fixed rule the classifier must beat: alarm iff level >= 2."""
    return "alarm" if int(event["level"]) >= 2 else "normal"


# -- one home, one checkpoint ---------------------------------------------------------------------
DEFAULT_PARAMS: Final[dict[str, float]] = {
    "prior_variance": DEFAULT_PRIOR_VARIANCE,
    "alarm_from": DEFAULT_ALARM_FROM,
    "ask_from": DEFAULT_ASK_FROM,
    "questions_per_day": DEFAULT_QUESTIONS_PER_DAY,
}


def new_classifier(params: dict[str, float], tz: tzinfo) -> Classifier:
    model = OnlineLogisticModel(
        prior_variance=params["prior_variance"], alarm_from=params["alarm_from"]
    )
    questions = QuestionPolicy(
        per_day=int(params["questions_per_day"]), ask_from=params["ask_from"]
    )
    return Classifier(model, tz=tz, questions=questions)


@dataclass
class Run:
    """One home's stream with the owner labelling until ``stop_after`` labels (or never)."""

    model: Tally = field(default_factory=Tally)
    rule: Tally = field(default_factory=Tally)
    labels: int = 0
    inbox_labels: int = 0  # of them, labelled while reviewing the inbox
    expired: int = 0  # answers that found their event forgotten (should be none)
    reached: bool = False
    classifier: Classifier | None = None
    # event id -> (the features learned, alarm?): the labelled examples a federated site
    # contributes (a later answer to the same event replaces the earlier).
    examples: dict[str, tuple[list[float], bool]] = field(default_factory=dict)


def _delay(rng: random.Random, median: float) -> float:
    """An answer's delay: log-normal around the owner's median (a day's spread)."""
    return median * math.exp(rng.gauss(0.0, 1.0))


def run_home(
    home: EvalHome,
    params: dict[str, float],
    stop_after: int | None,
    *,
    prior: federated.Prior | None = None,
) -> Run:
    """Play the home's stream (see the module docstring); score the events after the
    ``stop_after``-th label (all of them for 0; none for None: learn from the whole stream).
    ``prior``: a global model (mean, precision) in place of the hand-set prior."""
    classifier = new_classifier(params, home.tz)
    if prior is not None:
        classifier.replace_prior(federated.hand_set_prior(classifier.own), prior)
    owner = home.owner
    rng = random.Random(home.seed * 7919 + 1)
    run = Run(classifier=classifier)
    model_push, rule_push = PushPolicy(), PushPolicy()
    malicious_incidents = {
        f"{item.event['incident_id']}" for item in home.events if item.truth == "alarm"
    }
    latest: dict[str, Labelled] = {}  # incident -> its latest event (what its notification shows)
    answers: list[tuple[float, int, str]] = []  # (when, order, incident)
    # The inbox: per source and shape, the past week's least sure event judged normal.
    inbox: dict[str, tuple[float, Labelled]] = {}
    every = owner.reviews_every_s
    next_review = home.events[0].time + every if every and home.events else math.inf

    def learn(shown: Labelled) -> bool:
        """The owner labels ``shown`` (wrong now and then); True when it counted."""
        truth: Label = "alarm" if shown.truth == "alarm" else "normal"
        if rng.random() < owner.mistakes:
            truth = "normal" if truth == "alarm" else "alarm"
        event_id = str(shown.event["id"])
        try:
            learned = classifier.learn(event_id, truth)
        except KeyError:
            run.expired += 1  # the answer came after its event was forgotten
            return False
        if learned is None:
            return False
        features = classifier.features_of(event_id)
        assert features is not None  # a labelled event's record is kept
        run.examples[event_id] = (features, truth == "alarm")
        run.labels += 1
        return True

    hosts = list(home.hosts)
    frozen = stop_after == 0
    scored_from: float | None = home.events[0].time if frozen and home.events else None
    order = 0
    for item in home.events:
        now = item.time
        due = []
        while answers and answers[0][0] <= now:
            due.append((latest[heapq.heappop(answers)[2]], False))
        while now >= next_review:  # the owner opens the inbox: the least sure first
            next_review += every or math.inf
            # What the inbox still shows: the week's events the event history still holds.
            week = [
                entry
                for entry in inbox.values()
                if now - entry[1].time <= 7 * 86400.0
                and classifier.can_learn(str(entry[1].event["id"]))
            ]
            inbox.clear()
            ranked = sorted(week, key=lambda entry: -entry[0])[: owner.review_size]
            due += [(shown, True) for _, shown in ranked]
        for shown, from_inbox in due:
            if frozen or not learn(shown):
                continue
            run.inbox_labels += from_inbox
            if stop_after is not None and run.labels >= stop_after:
                frozen, scored_from = True, now
        while hosts and hosts[0][0] <= now:
            classifier.history.observe_hosts(hosts.pop(0)[1])
        event = item.event
        incident = str(event["incident_id"])
        latest[incident] = item
        assessment = classifier.assess(event)
        malicious = incident in malicious_incidents
        if assessment.verdict == "normal":  # alarms and questions were notified already
            key = f"{event['source']['mac']}/{event_shape(event).rhythm_key}"
            if key not in inbox or inbox[key][0] < assessment.probability:
                inbox[key] = (assessment.probability, item)
        push = model_push.decide(incident, assessment.verdict, int(event["level"]), now)
        if push.action != "none":  # the notification shows it: its answer must be learnable
            classifier.keep(str(event["id"]))
        if push.action == "push":
            chance = owner.answers_questions if push.reason == "question" else owner.answers_pushes
            if rng.random() < chance:
                order += 1
                heapq.heappush(answers, (now + _delay(rng, owner.median_delay_s), order, incident))
        rule = rule_verdict(event)
        rule_decision = rule_push.decide(incident, rule, int(event["level"]), now)
        if not frozen:
            continue
        run.model.add(item, incident, assessment.verdict, malicious)
        run.rule.add(item, incident, rule, malicious)
        if push.action == "push":
            run.model.push(malicious)
            run.model.quiet_pushes += not home.attacked
        if rule_decision.action == "push":
            run.rule.push(malicious)
            run.rule.quiet_pushes += not home.attacked
        run.rule.per_event_pushes += rule == "alarm"
        run.model.per_event_pushes += assessment.verdict != "normal"
    run.reached = frozen
    if scored_from is not None and home.events:
        days = (home.events[-1].time - scored_from) / 86400.0
        for tally in (run.model, run.rule):
            tally.days = days
            tally.quiet_days = 0.0 if home.attacked else days
    return run


def learning_curve(
    homes: Sequence[EvalHome], params: dict[str, float], checkpoints: Sequence[int] = CHECKPOINTS
) -> dict[int, tuple[Run, int]]:
    """Pooled runs per checkpoint, with how many homes reached that many labels."""
    curve: dict[int, tuple[Run, int]] = {}
    for n in checkpoints:
        pooled, reached = Run(), 0
        for home in homes:
            run = run_home(home, params, n)
            if not run.reached:
                continue
            reached += 1
            pooled.model.merge(run.model)
            pooled.rule.merge(run.rule)
            pooled.expired += run.expired
            pooled.labels += run.labels
            pooled.inbox_labels += run.inbox_labels
        curve[n] = (pooled, reached)
    return curve


# -- merge check ---------------------------------------------------------------------------------
def home_features(home: EvalHome) -> np.ndarray[Any, Any]:
    """Features of a home's stream as the integration would see them without any label."""
    history = History()
    rows = []
    hosts = list(home.hosts)
    for item in home.events:
        while hosts and hosts[0][0] <= item.time:
            history.observe_hosts(hosts.pop(0)[1])
        rows.append(extract(item.event, history, home.tz))
        history.observe(item.event, home.tz)
    return np.asarray(rows)


def score_frozen(
    model: OnlineLogisticModel, home: EvalHome, features: np.ndarray[Any, Any]
) -> Tally:
    tally = Tally()
    probabilities = model.probabilities(features)
    for item, p in zip(home.events, probabilities, strict=True):
        tally.add(item, str(item.event["incident_id"]), model.verdict_of(float(p)), False)
    return tally


def merge_check(
    homes: Sequence[EvalHome], params: dict[str, float]
) -> list[tuple[str, list[Tally], Tally]]:
    """Per held-out home: the other homes' single models' tallies and the merged model's."""
    models: dict[str, OnlineLogisticModel] = {}
    for home in homes:
        classifier = run_home(home, params, None).classifier
        assert classifier is not None
        if classifier.own.labels:
            models[home.name] = classifier.own
    results = []
    for held_out in homes:
        others = [model for name, model in models.items() if name != held_out.name]
        if not others:
            continue
        features = home_features(held_out)
        singles = [score_frozen(model, held_out, features) for model in others]
        merged = new_classifier(params, held_out.tz)
        for model in others:
            merged.merge(model.to_dict())
        results.append((held_out.name, singles, score_frozen(merged.model, held_out, features)))
    return results


# -- printing ------------------------------------------------------------------------------------
def _pct(value: float) -> str:
    return f"{100 * value:5.1f}%"


def _delays(tally: Tally) -> str:
    delays = tally.alarm_delays()
    if not delays:
        return f"{'-':>11}"
    return f"{float(np.median(delays)):>5.0f}/{delays[-1]:<5.0f}"


def _quiet(tally: Tally) -> str:
    value = tally.quiet_pushes_per_day
    return f"{'-':>5}" if value is None else f"{value:5.2f}"


def print_curve(curve: dict[int, tuple[Run, int]], homes: int) -> None:
    print(
        f"{'labels':>6} {'homes':>5} {'alarms':>6} {'normals':>7} {'days':>5} | "
        f"{'recall':>6} {'incid.':>6} {'1st alarm s':>11} {'f.alarm':>7} {'asked':>6} "
        f"{'q/day':>5} {'push/d':>6} {'benign':>6} {'quiet':>5} {'p/inc':>5} | "
        f"{'rule recall':>11} {'incid.':>6} {'1st alarm s':>11} {'f.alarm':>7} {'push/d':>6} "
        f"{'benign':>6} {'p/inc':>5} {'every':>6}"
    )
    for n, (run, reached) in curve.items():
        m, r = run.model, run.rule
        days = max(m.days, 1e-9)
        print(
            f"{n:>6} {reached:>2}/{homes:<2} {m.count('alarm'):>6} {m.count('normal'):>7} "
            f"{m.days:>5.0f} | {_pct(m.recall):>6} {_pct(m.incident_recall):>6} {_delays(m)} "
            f"{_pct(m.false_alarms):>7} {_pct(m.question_rate):>6} {m.questions / days:>5.2f} "
            f"{m.pushes_per_day:>6.2f} {m.benign_pushes_per_day:>6.2f} {_quiet(m)} "
            f"{m.pushes_per_incident:>5.2f} | {_pct(r.recall):>11} {_pct(r.incident_recall):>6} "
            f"{_delays(r)} {_pct(r.false_alarms):>7} {r.pushes_per_day:>6.2f} "
            f"{r.benign_pushes_per_day:>6.2f} {r.pushes_per_incident:>5.2f} "
            f"{r.per_event_pushes / days:>6.1f}"
        )
    print(
        "  recall: alarm events judged alarm; incid.: malicious incidents with an alarm; 1st alarm"
        " s: median/worst seconds from a malicious incident's\n  first scored event to its first"
        " alarm; f.alarm: normal events judged alarm; asked: events asked about (unsure); q/day:"
        " questions per home-day;\n  push/d: pushes per home-day (benign: on benign incidents;"
        " quiet: in homes with no attack); p/inc: pushes per malicious incident;\n  rule: alarm"
        " iff level >= 2 under the same push policy; every: pushes per home-day if every"
        " notified event pushed (no push policy)"
    )


def print_breakdown(run: Run, title: str) -> None:
    print(title)
    scenarios = sorted({scenario for scenario, _ in run.model.scenarios})
    print(f"  {'scenario':<18} {'events':>7}  {'alarm':>6} {'unsure':>6} {'normal':>6}")
    for scenario in scenarios:
        counts = [run.model.scenarios[scenario, v] for v in ("alarm", "unsure", "normal")]
        total = sum(counts)
        shares = " ".join(f"{_pct(c / total):>6}" for c in counts)
        print(f"  {scenario:<18} {total:>7}  {shares}")


def print_merge(results: list[tuple[str, list[Tally], Tally]]) -> None:
    print(
        f"{'held-out':>13} | {'single-home mean: recall':>24} {'f.alarm':>7} "
        f"| {'all imported: recall':>20} {'f.alarm':>7}"
    )
    rows = []
    for name, singles, merged in results:
        attacked = merged.count("alarm") > 0  # recall says nothing in a home never attacked
        single = [
            float(np.mean([t.recall for t in singles])) if attacked else math.nan,
            float(np.mean([t.false_alarms for t in singles])),
        ]
        joint = [merged.recall if attacked else math.nan, merged.false_alarms]
        rows.append((single, joint))
        print(
            f"{name:>13} | {_maybe(single[0]):>24} {_pct(single[1]):>7} | "
            f"{_maybe(joint[0]):>20} {_pct(joint[1]):>7}"
        )
    if rows:
        single_mean = np.nanmean([r[0] for r in rows], axis=0)
        joint_mean = np.nanmean([r[1] for r in rows], axis=0)
        print(
            f"{'mean':>13} | {_maybe(single_mean[0]):>24} {_pct(single_mean[1]):>7} | "
            f"{_maybe(joint_mean[0]):>20} {_pct(joint_mean[1]):>7}"
        )


def _maybe(value: float) -> str:
    return "-" if math.isnan(value) else _pct(value)


# -- tuning --------------------------------------------------------------------------------------
# The operating point: the most alarm recall after TUNE_LABELS labels on the development homes
# while false alarms stay under TUNE_MAX_FALSE_ALARMS, benign pushes under TUNE_MAX_BENIGN_PUSHES
# a home-day, and recall with no label at least the level rule's.
TUNE_LABELS: Final = 20
TUNE_MAX_FALSE_ALARMS: Final = 0.015
TUNE_MAX_BENIGN_PUSHES: Final = 1.0
TUNE_GRID: Final[dict[str, tuple[float, ...]]] = {
    "prior_variance": (0.1, 0.2),
    "alarm_from": (0.2, 0.3, 0.4),
    "ask_from": (0.03, 0.1),
}


def _tune_one(
    job: tuple[str, tuple[int, ...], float, dict[str, float]],
) -> tuple[dict[str, float], dict[int, tuple[Run, int]]]:
    corpus, seeds, days, params = job
    homes = [load_home(corpus, seed, days) for seed in seeds]
    return params, learning_curve(homes, params, (0, TUNE_LABELS))


def tune(
    corpus: str,
    seeds: Sequence[int],
    days: float,
    base: dict[str, float],
    grid: dict[str, tuple[float, ...]] = TUNE_GRID,
    *,
    workers: int | None = None,
) -> dict[str, float]:
    """Grid search of the operating point on ``seeds`` (development homes only); prints every
    setting's figures, best first, and returns the chosen one."""
    settings = [
        {**base, "prior_variance": v, "alarm_from": hi, "ask_from": lo}
        for v in grid["prior_variance"]
        for hi in grid["alarm_from"]
        for lo in grid["ask_from"]
        if lo < hi
    ]
    load_homes(corpus, seeds, days, workers or os.cpu_count() or 1)  # fill the cache
    jobs = [(corpus, tuple(seeds), days, p) for p in settings]
    workers = workers or os.cpu_count() or 1
    if workers == 1:
        results = [_tune_one(job) for job in jobs]
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(_tune_one, jobs))
    print(
        f"{'variance':>8} {'alarm>=':>7} {'ask>=':>6} | {'recall@0':>8} {'rule@0':>6} "
        f"{'recall':>6} {'incid.':>6} {'f.alarm':>7} {'benign/d':>8} {'q/day':>5} | ok"
    )

    def key(item: tuple[dict[str, float], dict[int, tuple[Run, int]]]) -> tuple[float, ...]:
        m = item[1][TUNE_LABELS][0].model
        return (m.recall, m.incident_recall, -m.false_alarms)

    best: dict[str, float] | None = None
    for params, curve in sorted(results, key=key, reverse=True):
        start, tuned = curve[0][0], curve[TUNE_LABELS][0].model
        fits = (
            tuned.false_alarms <= TUNE_MAX_FALSE_ALARMS
            and tuned.benign_pushes_per_day <= TUNE_MAX_BENIGN_PUSHES
            and start.model.recall >= start.rule.recall
        )
        if fits and best is None:
            best = params
        print(
            f"{params['prior_variance']:>8g} {params['alarm_from']:>7g} {params['ask_from']:>6g} | "
            f"{_pct(start.model.recall):>8} {_pct(start.rule.recall):>6} {_pct(tuned.recall):>6} "
            f"{_pct(tuned.incident_recall):>6} {_pct(tuned.false_alarms):>7} "
            f"{tuned.benign_pushes_per_day:>8.2f} {tuned.questions / max(tuned.days, 1e-9):>5.2f} "
            "| "
            f"{'yes' if fits else 'no'}{'  <- chosen' if params is best else ''}"
        )
    if best is None:
        raise SystemExit("no setting stays within the budgets")
    return best


# -- main ----------------------------------------------------------------------------------------
def report(
    corpus: str, seeds: Sequence[int], days: float, params: dict[str, float], workers: int
) -> None:
    homes = load_homes(corpus, seeds, days, workers)
    alarms = sum(item.truth == "alarm" for home in homes for item in home.events)
    total = sum(len(home.events) for home in homes)
    attacked = sum(home.attacked for home in homes)
    print(
        f"corpus {corpus}: seeds {list(seeds)}, {days:g} days each, {total} events, {alarms} "
        f"alarm events ({100 * alarms / max(total, 1):.1f}%), {attacked} homes attacked"
    )
    print(f"model: {params}")
    print()
    print("Learning curve (answers learned until N labels; scored on the rest of each stream)")
    curve = learning_curve(homes, params)
    print_curve(curve, len(homes))
    final = [run_home(home, params, None) for home in homes]
    print(
        f"  labels by the end of the streams: {sum(r.labels for r in final)} "
        f"({sum(r.inbox_labels for r in final)} from inbox reviews, the rest answers to "
        f"pushes and questions); per home {[r.labels for r in final]}; answers that came "
        f"after their event was forgotten: {sum(r.expired for r in final)}"
    )
    print()
    print_breakdown(curve[0][0], "Verdicts by scenario with no label (the prior)")
    print()
    print_breakdown(curve[20][0], "Verdicts by scenario after 20 labels (rest of the streams)")
    print()
    print("Merge check (each held-out home scored by the other homes' models, no labels there)")
    print_merge(merge_check(homes, params))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else "")
    parser.add_argument("--corpus", choices=[*CORPORA, "both"], default="both")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(REPORT_SEEDS))
    parser.add_argument("--dev", action="store_true", help="the development seeds 101-108")
    parser.add_argument("--days", type=float, default=56.0)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    for name, value in DEFAULT_PARAMS.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=float, default=value)
    parser.add_argument(
        "--tune",
        action="store_true",
        help=f"choose the operating point on the development seeds {DEV_SEEDS[0]}-{DEV_SEEDS[-1]}"
        f" of the homes corpus (most recall after {TUNE_LABELS} labels with false alarms <= "
        f"{TUNE_MAX_FALSE_ALARMS:.1%}, benign pushes <= {TUNE_MAX_BENIGN_PUSHES:g}/day and recall"
        " with no label >= the level rule's)",
    )
    args = parser.parse_args(argv)
    seeds = list(DEV_SEEDS) if args.dev or args.tune else args.seeds
    params = {name: float(getattr(args, name)) for name in DEFAULT_PARAMS}
    if args.tune:
        print(f"tuning on homes seeds {seeds}, {args.days:g} days each, after {TUNE_LABELS} labels")
        print(f"chosen: {tune('homes', seeds, args.days, params, workers=args.workers)}")
        return
    corpora = CORPORA if args.corpus == "both" else (args.corpus,)
    started = datetime.now(UTC)
    for n, corpus in enumerate(corpora):
        if n:
            print("\n" + "=" * 100 + "\n")
        report(corpus, seeds, args.days, params, args.workers)
    print(f"\n(ran in {(datetime.now(UTC) - started).total_seconds():.0f} s)")


if __name__ == "__main__":
    main()
