"""Federated learning against local-only, pooled and the level rule, on held-out homes.

K training homes (their owners label as the classifier asks, over the whole stream) hold their
examples; the federated model is trained from the integration's hand-set prior by FedAvg over
them, in process, with the agent's own training (``sensor_agent.federation.logreg``, what the
Flower ClientApp runs) and, for differential privacy, Flower's own clipping, noise and RDP
accountant (what the ServerApp's ``DifferentialPrivacyServerSideFixedClipping`` does). The
pooled model learns every training home's examples in one place: the upper bound. Then each
held-out home (not among the K) starts its classifier from (a) the hand-set prior: local only,
(b) the federated model, (b') the federated model with DP, (c) the pooled model, and its owner
labels until 0, 5 or 20 labels; the rest of its stream is scored with the model frozen there.
(d) is the level rule (alarm iff level >= 2). Printed side by side: alarm recall, false-alarm
rate, unsure rate, notifications per home-day (alarm and unsure verdicts: both reach the
owner's phone), and the privacy budget of the DP run.

Corpus: ``benchmarks/classifier_corpus.py`` (each seed a home with its own device mix, owner
habits and attacks); training homes are seeds 201.., held-out homes 301.. (neither the
development nor the report homes of ``classifier_eval.py``).

    python benchmarks/federated_eval.py [--sites 12] [--held-out 8] [--rounds 5] [--days 7]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
from flwr.supercore.differential_privacy import (
    add_gaussian_noise_inplace,
    compute_clip_model_update,
    compute_stdv,
)
from flwr.supercore.privacy_accounting import (
    GaussianPrivacyEvent,
    NeighboringRelation,
    PrivacyConfig,
    SamplingMethod,
)
from flwr.supercore.privacy_accounting.rdp_accountant import RdpAccountant

ROOT: Final = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.classifier_corpus import HOME_TZ, Home, generate_home  # noqa: E402
from benchmarks.classifier_eval import (  # noqa: E402 (after the path; no Home Assistant)
    DEFAULT_PARAMS,
    Owner,
    Tally,
    baseline_verdict,
    new_model,
)
from custom_components.lan_guard.learning import federated  # noqa: E402
from custom_components.lan_guard.learning.classifier import Classifier  # noqa: E402
from custom_components.lan_guard.learning.model import OnlineLogisticModel  # noqa: E402
from sensor_agent.federation import logreg  # noqa: E402

LABELS: Final = (0, 5, 20)
Prior = tuple[logreg.FloatArray, logreg.FloatArray]
Bools = npt.NDArray[np.bool_]


def site_examples(home: Home) -> tuple[logreg.FloatArray, Bools]:
    """A training home's labelled examples: its owner labels what the classifier asks about
    (and now and then anything), as in ``classifier_eval.py``; the features are those the
    integration took when each event arrived."""
    classifier = Classifier(new_model(DEFAULT_PARAMS), tz=HOME_TZ)
    owner = Owner(random.Random(home.seed * 7919 + 1))
    xs, ys = [], []
    for item in home.events:
        assessment = classifier.assess(item.event)
        label = owner.label(assessment, item.truth)
        if label is not None:
            features = classifier.features_of(item.event["id"])
            assert features is not None
            classifier.learn(item.event["id"], label)
            xs.append(features)
            ys.append(label == "alarm")
    return np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=bool)


@dataclass
class Dp:
    noise_multiplier: float
    clipping_norm: float
    delta: float


def fedavg(
    prior: Prior, sites: Sequence[tuple[logreg.FloatArray, Bools]], rounds: int, dp: Dp | None
) -> tuple[Prior, float | None]:
    """FedAvg rounds as the ServerApp runs them: without DP weighted by examples, with DP
    each site's update clipped, the average of equal weights noised; returns the model and
    the epsilon spent (None without DP)."""
    mean, precision = prior
    floor = float(np.linalg.eigvalsh(precision).min())
    accountant = None
    if dp is not None:
        accountant = RdpAccountant(
            PrivacyConfig(
                target_delta=dp.delta,
                population_size=len(sites),
                neighboring_relation=NeighboringRelation.ADD_OR_REMOVE_ONE,
                sampling_method=SamplingMethod.NO_AMPLIFICATION,
            )
        )
    for _ in range(rounds):
        current = [mean, precision]
        updates, weights = [], []
        for xs, ys in sites:
            trained = logreg.train(
                mean, logreg.mend_precision(precision, floor), zip(xs, ys, strict=True)
            )
            arrays = [trained.mean, trained.precision]
            if dp is not None:
                compute_clip_model_update(arrays, current, dp.clipping_norm)
            updates.append(arrays)
            weights.append(1.0 if dp is not None else float(len(ys)))
        share = np.asarray(weights) / sum(weights)
        mean = np.einsum("s,sj->j", share, np.stack([u[0] for u in updates]))
        precision = np.einsum("s,sjk->jk", share, np.stack([u[1] for u in updates]))
        if dp is not None and accountant is not None:
            noised = [mean, precision]
            add_gaussian_noise_inplace(
                noised, compute_stdv(dp.noise_multiplier, dp.clipping_norm, len(sites))
            )
            mean, precision = noised
            accountant.compose(
                GaussianPrivacyEvent(
                    noise_multiplier=dp.noise_multiplier,
                    sample_size=len(sites),
                    population_size=len(sites),
                )
            )
        precision = logreg.mend_precision(precision, floor)
    epsilon = None if accountant is None else accountant.get_privacy_spent().epsilon
    return (np.asarray(mean), np.asarray(precision)), epsilon


def pooled(prior: Prior, sites: Sequence[tuple[logreg.FloatArray, Bools]]) -> Prior:
    """Every training home's examples learned in one place (home after home)."""
    examples = [(x, y) for xs, ys in sites for x, y in zip(xs, ys, strict=True)]
    trained = logreg.train(prior[0], prior[1], examples)
    return trained.mean, trained.precision


def held_out_run(home: Home, start: Prior | None, labels: int) -> tuple[Tally, Tally, float]:
    """The home's owner labels until ``labels``; the rest is scored frozen. ``start`` None:
    the hand-set prior (local only); else that prior under the home's labels."""
    model = new_model(DEFAULT_PARAMS)
    if start is not None:
        model = federated.replace_prior(
            model, federated.hand_set_prior(model), start, global_model=True
        )
    classifier = Classifier(model, tz=HOME_TZ)
    owner = Owner(random.Random(home.seed * 7919 + 1))
    tally, rule = Tally(), Tally()
    frozen_at = None
    for item in home.events:
        assessment = classifier.assess(item.event)
        if frozen_at is None and classifier.model.labels >= labels:
            frozen_at = item.time
        if frozen_at is not None:
            tally.add(item, assessment.verdict, assessment.probability)
            rule.add(item, baseline_verdict(item.event))
            continue
        label = owner.label(assessment, item.truth)
        if label is not None:
            classifier.learn(item.event["id"], label)
    days = (home.events[-1].time - (frozen_at or home.events[-1].time)) / 86400.0
    return tally, rule, days


def row(name: str, tally: Tally, days: float) -> str:
    """One variant's figures; ``days`` is summed over the homes (so per home-day)."""
    notifications = tally.count("alarm", ["alarm", "unsure"]) + tally.count(
        "normal", ["alarm", "unsure"]
    )
    per_day = notifications / max(days, 1e-9)
    return (
        f"  {name:<22} recall {100 * tally.recall:5.1f}%  false alarms "
        f"{100 * tally.false_alarms:5.2f}%  unsure {100 * tally.unsure:5.2f}%  "
        f"notifications/home-day {per_day:6.2f}"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sites", type=int, default=12)
    parser.add_argument("--held-out", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--noise-multiplier", type=float, default=1.0)
    parser.add_argument("--clipping-norm", type=float, default=50.0)
    parser.add_argument("--delta", type=float, default=1e-5)
    args = parser.parse_args(argv)
    started = time.monotonic()

    prior_model = OnlineLogisticModel()
    prior: Prior = (prior_model.mean.copy(), prior_model.precision.copy())
    sites = [site_examples(generate_home(201 + i, days=args.days)) for i in range(args.sites)]
    examples = sum(len(ys) for _, ys in sites)
    alarms = sum(int(ys.sum()) for _, ys in sites)
    print(
        f"{args.sites} training homes, {args.days:g} days each: {examples} labels "
        f"({alarms} alarm); {args.rounds} FedAvg rounds"
    )
    fed, _ = fedavg(prior, sites, args.rounds, None)
    dp = Dp(args.noise_multiplier, args.clipping_norm, args.delta)
    fed_dp, epsilon = fedavg(prior, sites, args.rounds, dp)
    upper = pooled(prior, sites)
    starts: dict[str, Prior | None] = {
        "local only": None,
        "federated": fed,
        f"federated, DP eps={epsilon:.1f}": fed_dp,
        "pooled (upper bound)": upper,
    }
    homes = [generate_home(301 + i, days=args.days) for i in range(args.held_out)]
    for labels in LABELS:
        print(f"\n{args.held_out} held-out homes, {labels} local labels, then frozen:")
        rule_total, rule_days = Tally(), 0.0
        for name, start in starts.items():
            total, days = Tally(), 0.0
            for home in homes:
                tally, rule, home_days = held_out_run(home, start, labels)
                total.merge(tally)
                days += home_days
                if start is None:
                    rule_total.merge(rule)
                    rule_days += home_days
            print(row(name, total, days))
        print(row("level rule", rule_total, rule_days))
    print(
        f"\nDP: server-side fixed clipping at {args.clipping_norm:g}, noise multiplier "
        f"{args.noise_multiplier:g}, {args.sites} sites a round, {args.rounds} rounds: "
        f"epsilon {epsilon:.2f} at delta {args.delta:g} (Flower's RDP accountant, per site)"
    )
    print(f"({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
