"""Federated learning against local-only, pooled and the level rule, on held-out homes.

K training homes (their owners answer what reaches them, as in ``classifier_eval.py``, over
the whole stream) hold their labelled examples (the features the integration took when each
event arrived); the federated model is trained from the integration's hand-set prior by FedAvg
over them, in process, with the agent's own training (``sensor_agent.federation.logreg``, what
the Flower ClientApp runs) and, for differential privacy, Flower's own clipping, noise and RDP
accountant (what the ServerApp's ``DifferentialPrivacyServerSideFixedClipping`` does). The
pooled model learns every training home's examples in one place: the upper bound. Then each
held-out home (not among the K) starts its classifier from (a) the hand-set prior: local only,
(b) the federated model, (b') the federated model with DP, (c) the pooled model, and its owner
answers until 0, 5 or 20 labels; the rest of its stream is scored with the model frozen there
(``classifier_eval.run_home``: the same owners, question budget and push policy). (d) is the
level rule (alarm iff level >= 2). Printed side by side: alarm recall, malicious incidents
alarmed, false-alarm rate, questions and pushes per home-day, and the privacy budget of the DP
run; counts pooled over the held-out homes that reached that many labels.

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


def held_out_runs(
    homes: Sequence[EvalHome], start: Prior | None, labels: int
) -> tuple[Tally, Tally, int]:
    """Each home's owner answers until ``labels``; the rest is scored frozen. ``start`` None:
    the hand-set prior (local only); else that prior under the home's labels. Returns the
    pooled model and level-rule tallies and how many homes reached ``labels``."""
    model, rule, reached = Tally(), Tally(), 0
    for home in homes:
        run = run_home(home, DEFAULT_PARAMS, labels, prior=start)
        if run.reached:
            reached += 1
            model.merge(run.model)
            rule.merge(run.rule)
    return model, rule, reached


def row(name: str, tally: Tally) -> str:
    """One variant's figures (per home-day: the days are summed over the homes)."""
    return (
        f"  {name:<26} recall {100 * tally.recall:5.1f}%  incidents "
        f"{100 * tally.incident_recall:5.1f}%  false alarms {100 * tally.false_alarms:5.2f}%  "
        f"questions/home-day {tally.questions / max(tally.days, 1e-9):5.2f}  "
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
    parser.add_argument("--clipping-norm", type=float, default=50.0)
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
        f"federated, DP eps={epsilon:.1f}": fed_dp,
        "pooled (upper bound)": upper,
    }
    homes = load_homes(args.corpus, [301 + i for i in range(args.held_out)], args.days)
    for labels in LABELS:
        print(f"\n{args.held_out} held-out homes, {labels} local labels, then frozen:")
        rule_total = Tally()
        for name, start in starts.items():
            total, rule, reached = held_out_runs(homes, start, labels)
            print(row(f"{name} ({reached} homes)", total))
            if start is None:
                rule_total = rule
        print(row("level rule", rule_total))
    print(
        f"\nDP: server-side fixed clipping at {args.clipping_norm:g}, noise multiplier "
        f"{args.noise_multiplier:g}, {len(sites)} sites a round, {args.rounds} rounds: "
        f"epsilon {epsilon:.2f} at delta {args.delta:g} (Flower's RDP accountant, per site)"
    )
    print(f"({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
