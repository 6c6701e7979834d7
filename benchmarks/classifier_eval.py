"""Learning curve and merge check of the LAN Guard verdict classifier on generated homes.

Run: ``.venv/bin/python benchmarks/classifier_eval.py`` (or with ``.venv-agent``: the learning
package is pure Python + numpy). Homes come from ``classifier_corpus.generate_home`` (14 days
each; see that module for what happens in a home). Hyper-parameters (prior variance,
cut-offs) were chosen by ``--tune`` and the features, the domain prior and the merge rule by
hand, all on the development seeds 101-108 (``--dev``); the default run prints the held-out
seeds 1-8, which choose nothing.

How labels arrive (the simulated owner, seeded per home, labels right away):
  * an ``unsure`` verdict asks the owner (actionable notification): answered 80 % of the time;
  * an ``alarm`` verdict notifies with the Normal/Alarm buttons: pressed 50 % of the time;
  * a ``normal`` verdict is only logged: the owner labels a random 1 % while browsing the log;
  * the owner gets 2 % of labels wrong.

Learning curve: for N labels, the owner stops labelling after the N-th label, the model is frozen,
and every later event of the stream is scored. Recall is the share of alarm events whose
verdict is ``alarm`` (``unsure`` does not count as caught; "asked" counts alarm or unsure),
false alarms the share of normal events with verdict ``alarm``, unsure the share of all events.
Event recall is dominated by long Mirai scans (an update a minute), so the table also gives what
an owner feels: the share of malware incidents (the agent's incident ids) and of attacks (all one
culprit did, which may span incidents) with at least one alarm verdict, and how long after an
attack's first scored event its first alarm came. The
baseline on the very same events is the fixed rule "alarm iff level >= 2". Counts are pooled
over the homes.

Merge check: each home's model learns from its whole stream; for each held-out home, every
other home's model alone and the merge of all of them score the held-out stream (no labels
there, so its sources have no label history).
"""

from __future__ import annotations

import argparse
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
from pathlib import Path
from typing import Any, Final

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

from benchmarks.classifier_corpus import (  # noqa: E402
    HOME_TZ,
    Home,
    LabelledEvent,
    generate_home,
)
from custom_components.lan_guard.learning.classifier import Classifier  # noqa: E402
from custom_components.lan_guard.learning.features import History, extract  # noqa: E402
from custom_components.lan_guard.learning.model import (  # noqa: E402
    DEFAULT_ALARM_FROM,
    DEFAULT_MIN_LABELS,
    DEFAULT_NORMAL_BELOW,
    DEFAULT_PRIOR_VARIANCE,
    Assessment,
    Label,
    OnlineLogisticModel,
    prior_assessment,
)

CHECKPOINTS: Final = (0, 5, 10, 20, 50)
REPORT_SEEDS: Final = tuple(range(1, 9))
DEV_SEEDS: Final = tuple(range(101, 109))


@dataclass
class Owner:
    """The simulated owner's labelling policy (see the module docstring)."""

    rng: random.Random
    answers_asked: float = 0.8
    presses_alarm: float = 0.5
    browses_log: float = 0.01
    mistakes: float = 0.02

    def label(self, assessment: Assessment, truth: Label) -> Label | None:
        chance = {"unsure": self.answers_asked, "alarm": self.presses_alarm}.get(
            assessment.verdict, self.browses_log
        )
        if self.rng.random() >= chance:
            return None
        if self.rng.random() < self.mistakes:
            return "normal" if truth == "alarm" else "alarm"
        return truth


@dataclass
class Tally:
    """Verdict counts by ground truth (and by scenario, for the breakdown)."""

    verdicts: Counter[tuple[str, str]] = field(default_factory=Counter)
    scenarios: Counter[tuple[str, str]] = field(default_factory=Counter)
    # Malware incident (the agent's id) and attack (the corpus's episode: all a culprit did,
    # e.g. a slow scan over hours) -> (its first scored event's time, its first alarm's time).
    incidents: dict[str, tuple[float, float | None]] = field(default_factory=dict)
    attacks: dict[str, tuple[float, float | None]] = field(default_factory=dict)
    log_loss: float = 0.0
    scored: int = 0

    def add(self, item: LabelledEvent, verdict: str, probability: float = 0.5) -> None:
        truth, scenario = item.truth, item.scenario
        self.verdicts[truth, verdict] += 1
        self.scenarios[scenario, verdict] += 1
        if truth == "alarm":
            incident = f"{item.event['agent_id']}/{item.event['incident_id']}"
            for key, seen in ((incident, self.incidents), (item.episode, self.attacks)):
                first, alarmed = seen.get(key, (item.time, None))
                if alarmed is None and verdict == "alarm":
                    alarmed = item.time
                seen[key] = (first, alarmed)
        p = min(max(probability, 1e-6), 1 - 1e-6)
        self.log_loss -= math.log(p if truth == "alarm" else 1 - p)
        self.scored += 1

    def merge(self, other: Tally) -> None:
        self.verdicts.update(other.verdicts)
        self.scenarios.update(other.scenarios)
        self.incidents.update(other.incidents)
        self.attacks.update(other.attacks)
        self.log_loss += other.log_loss
        self.scored += other.scored

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
        """Seconds from each alarmed attack's first scored event to its first alarm."""
        return sorted(a - first for first, a in self.attacks.values() if a is not None)

    @property
    def asked_recall(self) -> float:
        return self.count("alarm", ["alarm", "unsure"]) / max(self.count("alarm"), 1)

    @property
    def false_alarms(self) -> float:
        return self.count("normal", ["alarm"]) / max(self.count("normal"), 1)

    @property
    def unsure(self) -> float:
        unsure = self.count("alarm", ["unsure"]) + self.count("normal", ["unsure"])
        return unsure / max(self.scored, 1)

    @property
    def mean_log_loss(self) -> float:
        return self.log_loss / max(self.scored, 1)


def baseline_verdict(event: dict[str, Any]) -> str:
    """The fixed rule the classifier must beat: alarm iff level >= 2."""
    return "alarm" if int(event["level"]) >= 2 else "normal"


def new_model(params: dict[str, float]) -> OnlineLogisticModel:
    return OnlineLogisticModel(
        prior_variance=params["prior_variance"],
        normal_below=params["normal_below"],
        alarm_from=params["alarm_from"],
        min_labels=int(params["min_labels"]),
    )


@dataclass
class Run:
    """One home's stream with the owner labelling until ``stop_after`` labels (or the end)."""

    model: Tally = field(default_factory=Tally)
    baseline: Tally = field(default_factory=Tally)
    labels: int = 0
    days: float = 0.0  # how long the scored part of the stream lasts
    classifier: Classifier | None = None


def run_home(home: Home, params: dict[str, float], stop_after: int | None) -> Run:
    classifier = Classifier(new_model(params), tz=HOME_TZ)
    owner = Owner(random.Random(home.seed * 7919 + 1))
    run = Run(classifier=classifier)
    frozen = stop_after == 0
    for item in home.events:
        assessment = classifier.assess(item.event)
        if frozen:
            run.days = (home.events[-1].time - item.time) / 86400.0 if not run.days else run.days
            run.model.add(item, assessment.verdict, assessment.probability)
            run.baseline.add(item, baseline_verdict(item.event))
            continue
        label = owner.label(assessment, item.truth)
        if label is not None:
            classifier.learn(item.event["id"], label)
            frozen = stop_after is not None and classifier.model.labels >= stop_after
    run.labels = classifier.model.labels
    return run


def learning_curve(homes: Sequence[Home], params: dict[str, float]) -> dict[str, tuple[Run, int]]:
    """Pooled runs per checkpoint, with how many homes reached that many labels. The extra
    row "prior" is the model's prior mean deciding with no label at all (no level gate)."""
    curve: dict[str, tuple[Run, int]] = {}
    rows = [(str(n), n, params) for n in CHECKPOINTS]
    rows.insert(1, ("prior", 0, {**params, "min_labels": 0}))
    for name, n, row_params in rows:
        pooled, reached = Run(), 0
        for home in homes:
            run = run_home(home, row_params, n)
            reached += run.labels >= n
            pooled.model.merge(run.model)
            pooled.baseline.merge(run.baseline)
            pooled.days += run.days
        curve[name] = (pooled, reached)
    return curve


def home_features(home: Home) -> tuple[np.ndarray[Any, Any], list[int]]:
    """Features of a home's stream as the integration would see them without any label."""
    history = History()
    rows, levels = [], []
    for item in home.events:
        rows.append(extract(item.event, history, HOME_TZ))
        levels.append(int(item.event["level"]))
        history.observe(item.event)
    return np.asarray(rows), levels


def score_frozen(
    model: OnlineLogisticModel, home: Home, features: np.ndarray[Any, Any], levels: list[int]
) -> Tally:
    tally = Tally()
    if model.uses_prior:
        assessments = [prior_assessment(level) for level in levels]
    else:
        probabilities = model.probabilities(features)
        assessments = [
            Assessment(model.verdict_of(float(p)), float(p), "model") for p in probabilities
        ]
    for item, assessment in zip(home.events, assessments, strict=True):
        tally.add(item, assessment.verdict, assessment.probability)
    return tally


def merge_check(
    homes: Sequence[Home], params: dict[str, float]
) -> list[tuple[int, list[Tally], Tally]]:
    """Per held-out home: the other homes' single models' tallies and the merged model's."""
    models = {}
    for home in homes:
        classifier = run_home(home, params, None).classifier
        assert classifier is not None
        models[home.seed] = classifier.model
    results = []
    for held_out in homes:
        features, levels = home_features(held_out)
        others = [models[home.seed] for home in homes if home.seed != held_out.seed]
        singles = [score_frozen(model, held_out, features, levels) for model in others]
        merged = others[0]
        for model in others[1:]:
            merged = merged.merge(model)
        results.append((held_out.seed, singles, score_frozen(merged, held_out, features, levels)))
    return results


def _pct(value: float) -> str:
    return f"{100 * value:5.1f}%"


def _delays(tally: Tally) -> str:
    """Median and worst time to an incident's first alarm verdict, in seconds."""
    delays = tally.alarm_delays()
    if not delays:
        return f"{'-':>11}"
    return f"{float(np.median(delays)):>5.0f}/{delays[-1]:<5.0f}"


def print_curve(curve: dict[str, tuple[Run, int]], homes: int) -> None:
    print(
        f"{'labels':>6} {'homes':>5} {'alarms':>6} {'normals':>7} | {'recall':>6} "
        f"{'asked':>6} {'incid.':>6} {'attack':>6} {'1st alarm s':>11} {'f.alarm':>7} "
        f"{'FA/day':>6} {'unsure':>6} | {'base recall':>11} {'incid.':>6} {'attack':>6} "
        f"{'1st alarm s':>11} {'f.alarm':>7} {'FA/day':>6}"
    )
    for name, (run, reached) in curve.items():
        m, b = run.model, run.baseline
        days = max(run.days, 1e-9)
        print(
            f"{name:>6} {reached:>2}/{homes:<2} {m.count('alarm'):>6} {m.count('normal'):>7} | "
            f"{_pct(m.recall):>6} {_pct(m.asked_recall):>6} {_pct(m.incident_recall):>6} "
            f"{_pct(m.attack_recall):>6} {_delays(m)} {_pct(m.false_alarms):>7} "
            f"{m.count('normal', ['alarm']) / days:>6.2f} {_pct(m.unsure):>6} | "
            f"{_pct(b.recall):>11} {_pct(b.incident_recall):>6} {_pct(b.attack_recall):>6} "
            f"{_delays(b)} {_pct(b.false_alarms):>7} "
            f"{b.count('normal', ['alarm']) / days:>6.2f}"
        )
    print(
        "  0: the level rule decides (level 3 alarm, 2 unsure, 1 and 0 normal);"
        " prior: the model's prior mean, no label\n"
        "  recall: alarm events with verdict alarm; asked: alarm or unsure; incid.: malware"
        " incidents (agent incident ids) with an alarm verdict on any scored event;\n"
        "  attack: the same per attack (all one culprit did, e.g. a slow scan's incidents over"
        " hours); 1st alarm s: median/worst seconds from an alarmed\n"
        "  attack's first scored event to its first alarm verdict; f.alarm: normal events with"
        " verdict alarm; FA/day: those per home-day;\n"
        "  unsure: share of all scored events; base: alarm iff level >= 2"
    )


def print_breakdown(run: Run, title: str) -> None:
    print(title)
    scenarios = sorted({scenario for scenario, _ in run.model.scenarios})
    print(f"  {'scenario':<17} {'events':>6}  {'alarm':>6} {'unsure':>6} {'normal':>6}")
    for scenario in scenarios:
        counts = [run.model.scenarios[scenario, v] for v in ("alarm", "unsure", "normal")]
        total = sum(counts)
        shares = " ".join(f"{_pct(c / total):>6}" for c in counts)
        print(f"  {scenario:<17} {total:>6}  {shares}")


def print_merge(results: list[tuple[int, list[Tally], Tally]]) -> None:
    print(
        f"{'held-out':>8} | {'single-home mean: recall':>24} {'f.alarm':>7} {'unsure':>6} "
        f"{'logloss':>7} | {'merged: recall':>14} {'f.alarm':>7} {'unsure':>6} {'logloss':>7}"
    )
    rows = []
    for seed, singles, merged in results:
        single = [
            float(np.mean([getattr(t, name) for t in singles]))
            for name in ("recall", "false_alarms", "unsure", "mean_log_loss")
        ]
        joint = [merged.recall, merged.false_alarms, merged.unsure, merged.mean_log_loss]
        rows.append((single, joint))
        print(
            f"{'home-' + str(seed):>8} | {_pct(single[0]):>24} {_pct(single[1]):>7} "
            f"{_pct(single[2]):>6} {single[3]:>7.3f} | {_pct(joint[0]):>14} "
            f"{_pct(joint[1]):>7} {_pct(joint[2]):>6} {joint[3]:>7.3f}"
        )
    single_mean = np.mean([r[0] for r in rows], axis=0)
    joint_mean = np.mean([r[1] for r in rows], axis=0)
    print(
        f"{'mean':>8} | {_pct(single_mean[0]):>24} {_pct(single_mean[1]):>7} "
        f"{_pct(single_mean[2]):>6} {single_mean[3]:>7.3f} | {_pct(joint_mean[0]):>14} "
        f"{_pct(joint_mean[1]):>7} {_pct(joint_mean[2]):>6} {joint_mean[3]:>7.3f}"
    )


# The operating point: the most recall after TUNE_LABELS labels on the development homes
# while false alarms and unsure stay inside these budgets (below the 2 % and 10 %,
# leaving a margin for homes unlike the development ones).
TUNE_LABELS: Final = 20
TUNE_MAX_FALSE_ALARMS: Final = 0.015
TUNE_MAX_UNSURE: Final = 0.08
TUNE_GRID: Final[dict[str, tuple[float, ...]]] = {
    "prior_variance": (0.1, 0.2, 0.5),
    "normal_below": (0.05, 0.1, 0.2, 0.3),
    "alarm_from": (0.15, 0.2, 0.3, 0.4, 0.5, 0.7),
}


def _tune_one(job: tuple[tuple[int, ...], float, dict[str, float]]) -> tuple[dict[str, float], Run]:
    seeds, days, params = job
    pooled = Run()
    for seed in seeds:
        run = run_home(generate_home(seed, days), params, TUNE_LABELS)
        pooled.model.merge(run.model)
    return params, pooled


def tune(
    seeds: Sequence[int],
    days: float,
    base: dict[str, float],
    grid: dict[str, tuple[float, ...]] = TUNE_GRID,
    *,
    workers: int | None = None,
    budgets: tuple[float, float] = (TUNE_MAX_FALSE_ALARMS, TUNE_MAX_UNSURE),
) -> dict[str, float]:
    """Grid search of the operating point on ``seeds`` (the development homes only); prints
    every setting's figures, best first, and returns the chosen one."""
    settings = [
        {**base, "prior_variance": v, "normal_below": lo, "alarm_from": hi}
        for v in grid["prior_variance"]
        for lo in grid["normal_below"]
        for hi in grid["alarm_from"]
        if lo < hi
    ]
    jobs = [(tuple(seeds), days, p) for p in settings]
    workers = workers or os.cpu_count() or 1
    if workers == 1:
        results = [_tune_one(job) for job in jobs]
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(_tune_one, jobs))
    print(
        f"{'variance':>8} {'normal<':>7} {'alarm>=':>7} | {'recall':>6} {'attack':>6} "
        f"{'f.alarm':>7} {'unsure':>6} | within budget"
    )

    def key(item: tuple[dict[str, float], Run]) -> tuple[float, float, float, float]:
        m = item[1].model
        return (m.recall, m.attack_recall, -m.unsure, -m.false_alarms)

    best: dict[str, float] | None = None
    for params, run in sorted(results, key=key, reverse=True):
        m = run.model
        fits = m.false_alarms <= budgets[0] and m.unsure <= budgets[1]
        if fits and best is None:
            best = params
        print(
            f"{params['prior_variance']:>8g} {params['normal_below']:>7g} "
            f"{params['alarm_from']:>7g} | {_pct(m.recall):>6} {_pct(m.attack_recall):>6} "
            f"{_pct(m.false_alarms):>7} {_pct(m.unsure):>6} | {'yes' if fits else 'no'}"
            f"{'  <- chosen' if params is best else ''}"
        )
    if best is None:
        raise SystemExit("no setting stays within the budgets")
    return best


DEFAULT_PARAMS: Final[dict[str, float]] = {
    "prior_variance": DEFAULT_PRIOR_VARIANCE,
    "normal_below": DEFAULT_NORMAL_BELOW,
    "alarm_from": DEFAULT_ALARM_FROM,
    "min_labels": DEFAULT_MIN_LABELS,
}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else "")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(REPORT_SEEDS))
    parser.add_argument("--dev", action="store_true", help="the development seeds 101-108")
    parser.add_argument("--days", type=float, default=14.0)
    for name, value in DEFAULT_PARAMS.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=float, default=value)
    parser.add_argument(
        "--tune",
        action="store_true",
        help=f"choose the operating point on the development seeds {DEV_SEEDS[0]}-{DEV_SEEDS[-1]}"
        f" (most recall after {TUNE_LABELS} labels with false alarms <= "
        f"{TUNE_MAX_FALSE_ALARMS:.1%} and unsure <= {TUNE_MAX_UNSURE:.0%})",
    )
    args = parser.parse_args(argv)
    seeds = list(DEV_SEEDS) if args.dev or args.tune else args.seeds
    if args.tune:
        params = {name: float(getattr(args, name)) for name in DEFAULT_PARAMS}
        print(f"tuning on seeds {seeds}, {args.days:g} days each, after {TUNE_LABELS} labels")
        print(f"chosen: {tune(seeds, args.days, params)}")
        return
    params = {name: float(getattr(args, name)) for name in DEFAULT_PARAMS}
    homes = [generate_home(seed, args.days) for seed in seeds]
    alarms = sum(item.truth == "alarm" for home in homes for item in home.events)
    total = sum(len(home.events) for home in homes)
    print(f"homes: seeds {seeds}, {args.days:g} days each, {total} events, {alarms} alarm events")
    print(f"model: {params}")
    print()
    print("Learning curve (owner stops after N labels; scored on the rest of each stream)")
    curve = learning_curve(homes, params)
    print_curve(curve, len(homes))
    print()
    print_breakdown(curve["20"][0], "Verdicts by scenario after 20 labels (rest of the streams)")
    print()
    print("Merge check (each held-out home scored by the other homes' models, no labels there)")
    print_merge(merge_check(homes, params))


if __name__ == "__main__":
    main()
