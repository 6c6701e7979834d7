"""Federated learning against local-only, pooled and the level rule, on held-out homes.

K training homes (their owners answer what reaches them, as in ``classifier_eval.py``, over
the whole stream) hold their labelled examples (the features the integration took when each
event arrived); the federated model is trained from the integration's hand-set prior by FedAvg
over them, in process, with the agent's own training (``sensor_agent.federation.logreg``, what
the Flower ClientApp runs) and, for differential privacy, Flower's own clipping, noise and RDP
accountant (what the ServerApp's DP wrapper does, on the weights). The pooled model learns
every training home's examples in one place: the upper bound. Then each held-out home (not
among the K) starts its classifier from (a) the hand-set prior: local only, (b) the federated
model, (b') the federated model under secure aggregation (each site's change of the weights
clipped at the site, one weight per site: what ``--secure-aggregation`` sums), (b'') the
federated model with DP (the weights only, clipped and noised), (c) the pooled model, and its
owner answers until 0, 5 or 20 labels; the rest of its stream is scored with the model frozen
there (``classifier_eval.run_home``: the same owners, question budget and push policy). (d) is
the level rule (alarm iff level >= 2). Printed side by side: alarm recall, malicious incidents
alarmed, false-alarm rate, unsure rate, wrong calls (missed alarms and false alarms) and
pushes per home-day, and the privacy budget of the DP run. Every variant is counted over the
same homes: those that reached that many labels under every variant (how many homes reach a
count depends on what the model asks, so homes reaching it under one variant only would make
the rows incomparable).

Corpus: ``classifier_eval.py``'s (``--corpus generated``, the default: events written
directly, quick to make; ``homes``: through the agent's pipeline, cached after the first
run); training homes are seeds 201.., held-out homes 301.. (neither the development nor the
report homes of ``classifier_eval.py``).

    python benchmarks/federated_eval.py [--sites 12] [--held-out 8] [--rounds 5] [--days 14]
"""

from __future__ import annotations

import argparse
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
    clip_inputs_inplace,
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

from benchmarks.classifier_eval import (  # noqa: E402 (after the path; no Home Assistant)
    CORPORA,
    DEFAULT_PARAMS,
    EvalHome,
    Tally,
    load_homes,
    run_home,
)
from custom_components.lan_guard.learning.model import OnlineLogisticModel  # noqa: E402
from sensor_agent.federation import logreg  # noqa: E402

LABELS: Final = (0, 5, 20)
# A site with fewer examples declines a round (the agent's ``federation.min_examples``).
MIN_EXAMPLES: Final = 10
Prior = tuple[logreg.FloatArray, logreg.FloatArray]
Bools = npt.NDArray[np.bool_]


def site_examples(home: EvalHome) -> tuple[logreg.FloatArray, Bools]:
    """A training home's labelled examples: what its owner answered over the whole stream,
    with the features the integration took when each event arrived."""
    examples = list(run_home(home, DEFAULT_PARAMS, None).examples.values())
    xs = np.asarray([x for x, _ in examples], dtype=np.float64)
    ys = np.asarray([alarm for _, alarm in examples], dtype=bool)
    return xs, ys


@dataclass
class Dp:
    noise_multiplier: float
    clipping_norm: float
    delta: float


def fedavg(
    prior: Prior, sites: Sequence[tuple[logreg.FloatArray, Bools]], rounds: int, dp: Dp | None
) -> tuple[Prior, float | None]:
    """FedAvg rounds as the ServerApp runs them: without DP over the sites' posteriors
    weighted by examples; with DP over their weights only (the precision stays the prior's),
    each site's change clipped, the average of equal weights noised; returns the model and
    the epsilon spent (None without DP)."""
    if dp is None:
        mean, precision = prior
        floor = float(np.linalg.eigvalsh(precision).min())
        for _ in range(rounds):
            posteriors, weights = [], []
            for xs, ys in sites:
                trained = logreg.train(
                    mean, logreg.mend_precision(precision, floor), zip(xs, ys, strict=True)
                )
                posteriors.append((trained.mean, trained.precision))
                weights.append(float(len(ys)))
            share = np.asarray(weights) / sum(weights)
            mean = np.einsum("s,sj->j", share, np.stack([p[0] for p in posteriors]))
            precision = np.einsum("s,sjk->jk", share, np.stack([p[1] for p in posteriors]))
            precision = logreg.mend_precision(precision, floor)
        return (np.asarray(mean), np.asarray(precision)), None
    accountant = RdpAccountant(
        PrivacyConfig(
            target_delta=dp.delta,
            population_size=len(sites),
            neighboring_relation=NeighboringRelation.ADD_OR_REMOVE_ONE,
            sampling_method=SamplingMethod.NO_AMPLIFICATION,
        )
    )
    mean, precision = prior
    for _ in range(rounds):
        updates = []
        for xs, ys in sites:
            trained = logreg.train(mean, precision, zip(xs, ys, strict=True))
            update = [trained.mean]
            compute_clip_model_update(update, [mean], dp.clipping_norm)
            updates.append(update[0])
        noised = [np.mean(updates, axis=0)]
        add_gaussian_noise_inplace(
            noised, compute_stdv(dp.noise_multiplier, dp.clipping_norm, len(sites))
        )
        mean = noised[0]
        accountant.compose(
            GaussianPrivacyEvent(
                noise_multiplier=dp.noise_multiplier,
                sample_size=len(sites),
                population_size=len(sites),
            )
        )
    return (np.asarray(mean), precision), accountant.get_privacy_spent().epsilon


def secure_fedavg(
    prior: Prior, sites: Sequence[tuple[logreg.FloatArray, Bools]], rounds: int, norm: float
) -> Prior:
    """FedAvg rounds as a ``--secure-aggregation`` run makes them: each site's change to the
    global weights clipped to ``norm`` at the site (Flower's clipping), the mean change added;
    the precision stays the prior's."""
    mean, precision = prior
    for _ in range(rounds):
        changes = []
        for xs, ys in sites:
            trained = logreg.train(mean, precision, zip(xs, ys, strict=True))
            change = [trained.mean - mean]
            clip_inputs_inplace(change, norm)
            changes.append(change[0])
        mean = mean + np.mean(changes, axis=0)
    return np.asarray(mean), precision


def pooled(prior: Prior, sites: Sequence[tuple[logreg.FloatArray, Bools]]) -> Prior:
    """Every training home's examples learned in one place (home after home)."""
    examples = [(x, y) for xs, ys in sites for x, y in zip(xs, ys, strict=True)]
    trained = logreg.train(prior[0], prior[1], examples)
    return trained.mean, trained.precision


def held_out_runs(
    homes: Sequence[EvalHome], starts: dict[str, Prior | None], labels: int
) -> tuple[dict[str, Tally], Tally, int]:
    """Each home's owner answers until ``labels``; the rest is scored frozen. A start None:
    the hand-set prior (local only); else that prior under the home's labels. Returns each
    variant's tally and the level rule's over the homes that reached ``labels`` under every
    variant, and how many they are."""
    runs = {
        name: [run_home(h, DEFAULT_PARAMS, labels, prior=s) for h in homes]
        for name, s in starts.items()
    }
    common = [i for i in range(len(homes)) if all(r[i].reached for r in runs.values())]
    totals, rule = {name: Tally() for name in starts}, Tally()
    for i in common:
        for name, home_runs in runs.items():
            totals[name].merge(home_runs[i].model)
        rule.merge(next(iter(runs.values()))[i].rule)
    return totals, rule, len(common)


def row(name: str, tally: Tally) -> str:
    """One variant's figures (per home-day: the days are summed over the homes)."""
    days = max(tally.days, 1e-9)
    missed = tally.count("alarm", ["normal", "unsure"])
    false = tally.count("normal", ["alarm"])
    return (
        f"  {name:<24} recall {100 * tally.recall:5.1f}%  incidents "
        f"{100 * tally.incident_recall:5.1f}%  false alarms {100 * tally.false_alarms:5.2f}%  "
        f"unsure {100 * tally.questions / max(tally.scored, 1):4.1f}%  "
        f"wrong calls/home-day {(missed + false) / days:5.2f}  "
        f"pushes/home-day {tally.pushes_per_day:5.2f}"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sites", type=int, default=12)
    parser.add_argument("--held-out", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--days", type=float, default=14.0)
    parser.add_argument("--corpus", choices=CORPORA, default="generated")
    parser.add_argument("--noise-multiplier", type=float, default=1.0)
    parser.add_argument(
        "--clipping-norm", type=float, default=1.0, help="of the weights' change (DP, SecAgg+)"
    )
    parser.add_argument("--delta", type=float, default=1e-5)
    args = parser.parse_args(argv)
    started = time.monotonic()

    prior_model = OnlineLogisticModel()
    prior: Prior = (prior_model.mean.copy(), prior_model.precision.copy())
    training = load_homes(args.corpus, [201 + i for i in range(args.sites)], args.days)
    every = [site_examples(home) for home in training]
    sites = [(xs, ys) for xs, ys in every if len(ys) >= MIN_EXAMPLES]
    examples = sum(len(ys) for _, ys in sites)
    alarms = sum(int(ys.sum()) for _, ys in sites)
    print(
        f"{args.sites} training homes, {args.days:g} days each; {len(sites)} with at least "
        f"{MIN_EXAMPLES} labels take part: {examples} labels ({alarms} alarm); "
        f"{args.rounds} FedAvg rounds"
    )
    fed, _ = fedavg(prior, sites, args.rounds, None)
    dp = Dp(args.noise_multiplier, args.clipping_norm, args.delta)
    fed_dp, epsilon = fedavg(prior, sites, args.rounds, dp)
    upper = pooled(prior, sites)
    starts: dict[str, Prior | None] = {
        "local only": None,
        "federated": fed,
        "federated, SecAgg+": secure_fedavg(prior, sites, args.rounds, args.clipping_norm),
        f"federated, DP eps={epsilon:.1f}": fed_dp,
        "pooled (upper bound)": upper,
    }
    homes = load_homes(args.corpus, [301 + i for i in range(args.held_out)], args.days)
    for labels in LABELS:
        totals, rule, reached = held_out_runs(homes, starts, labels)
        print(
            f"\n{args.held_out} held-out homes, {labels} local labels, then frozen "
            f"({reached} homes reached {labels} labels under every variant):"
        )
        for name, total in totals.items():
            print(row(name, total))
        print(row("level rule", rule))
    print(
        f"\nDP: server-side fixed clipping at {args.clipping_norm:g}, noise multiplier "
        f"{args.noise_multiplier:g}, {len(sites)} sites a round, {args.rounds} rounds: "
        f"epsilon {epsilon:.2f} at delta {args.delta:g} (Flower's RDP accountant, per site); "
        f"with DP and SecAgg+ the sites share their weights only, each change clipped to "
        f"{args.clipping_norm:g}"
    )
    print(f"({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
