"""The Flower ServerApp the PSOC runs: FedAvg over the sites' agent nodes, each round stored.

Run config (``lan-guard-psoc federate`` writes it; names are Flower's kebab-case):

- ``initial-model``: a model file of the integration (its stored or exported form) whose
  weights and precision start the run; its feature version, feature names, prior and cut-offs
  are carried into every global model, so a site's integration loads the result with its own
  code and refuses it when its feature version differs.
- ``rounds-db``: the :class:`~psoc.federation.rounds.RoundStore` file.
- ``nodes``: the registered nodes' sites (``lan-guard-psoc federate-node`` writes them): a
  round's update is credited to the site the provider registered its node for, and a round
  with a reply from a node registered outside that command is refused whole.
- ``num-rounds``, ``min-sites`` (no round with fewer sites), ``round-timeout`` (s),
  ``evaluate`` (each round, the sites score the new global model on their examples).
- ``dp`` with ``noise-multiplier``, ``clipping-norm``, ``target-delta``, ``max-epsilon``
  (0: none): Flower's central differential privacy with server-side fixed clipping (each
  site's update is clipped to the norm, the average gets Gaussian noise) and its RDP
  accountant, at the level of sites (a site's whole contribution is what is protected). The
  accountant needs the same number of sites every round and equal weights, so with ``dp``
  every round samples exactly ``min-sites`` sites and FedAvg weighs them alike; without,
  FedAvg weighs sites by their examples.

Each round's global model is the FedAvg of the sites' posteriors (mean and precision): a site
that agrees with the others changes little, and the averaged precision is as sure as a typical
site, not as all sites together, so a home's own labels can still move it when it becomes the
home's prior. With ``dp`` (and under secure aggregation) the sites share their weights only and
the precision stays the initial model's: clipping and noise then act on the weights, not on a
precision matrix of thousands of numbers whose noise would drown them (the benchmark
``federated_eval.py`` measured recall fall to 70-77% that way, at the same budget).

``secure-aggregation``: the rounds run under SecAgg+ instead (:mod:`psoc.federation.secure`;
Flower offers it for its legacy workflow API only): the PSOC learns the sum of the sites'
clipped changes and never one site's update; the clipping moves to the sites and every site
weighs the same.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.common import Scalar, ndarrays_to_parameters
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import DifferentialPrivacyServerSideFixedClipping, FedAvg, Strategy
from flwr.serverapp.strategy.strategy_utils import aggregate_metricrecords
from flwr.supercore.privacy_accounting import (
    NeighboringRelation,
    PrivacyConfig,
    SamplingMethod,
)
from flwr.supercore.privacy_accounting.rdp_accountant import RdpAccountant

from psoc.federation import secure
from psoc.federation.flower import registered_nodes
from psoc.federation.rounds import RoundStore
from sensor_agent.federation import logreg

_LOGGER = logging.getLogger(__name__)
# An agent id as the agent's config allows it: it becomes a topic level of the global model.
AGENT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")

app = ServerApp()


@dataclass(frozen=True)
class RoundResult:
    """A round's global model and what is known of how it was made."""

    number: int
    mean: logreg.FloatArray
    precision: logreg.FloatArray
    sites: list[tuple[str, str]]  # (site, agent) of each update
    labels: dict[str, int]  # the sites' label counts, summed
    evaluated: dict[str, Any] | None  # the sites' scores of the model, aggregated
    privacy: dict[str, Any] | None  # the DP settings and the budget spent so far


StoreRound = Callable[[RoundResult], int]  # stores a round; returns its version


def template_arrays(template: dict[str, Any]) -> tuple[logreg.FloatArray, logreg.FloatArray]:
    """The starting mean and precision of a model file; ``ValueError`` when it holds none."""
    posterior = logreg.Posterior.of(
        np.asarray(template["weights"], dtype=np.float64),
        np.asarray(template["precision"], dtype=np.float64),
    )
    return posterior.mean, posterior.precision


def global_model(
    template: dict[str, Any],
    mean: logreg.FloatArray,
    precision: logreg.FloatArray,
    labels: dict[str, int],
) -> dict[str, Any]:
    """The integration's model form: the template with the federated weights and counts."""
    model = copy.deepcopy(template)
    model["weights"] = [float(v) for v in mean]
    model["precision"] = [[float(v) for v in row] for row in precision]
    model["labels"] = {"normal": int(labels["normal"]), "alarm": int(labels["alarm"])}
    model["correct"] = 0  # prequential scores stay at the sites
    return model


def credit_sites(
    nodes: dict[int, str], server_round: int, replies: Iterable[Message]
) -> list[Message]:
    """The round's replies, each credited to the site its node was registered for (a node
    names its site in its reply, but the provider's registration decides: a node cannot earn
    another site its global model); none at all when a node is no site's."""
    credited = list(replies)
    for reply in credited:
        if reply.has_error():
            continue
        node = reply.metadata.src_node_id
        site = nodes.get(node)
        if site is None:
            # Admitted by the SuperLink but not registered for a site through the PSOC.
            _LOGGER.error("round %d: node %d is no site's; round refused", server_round, node)
            return []
        record = reply.content.config_records.get("site")
        claimed = None if record is None else record.get("site-id")
        if claimed != site:
            _LOGGER.warning("node %d of site %s said it was %r", node, site, claimed)
        agent = "" if record is None else str(record.get("agent-id", ""))
        if not AGENT_ID.fullmatch(agent):
            agent = ""  # no such agent: the model goes to none of the site's agents
        reply.content.config_records["site"] = ConfigRecord({"site-id": site, "agent-id": agent})
    return credited


class SiteFedAvg(FedAvg):
    """FedAvg over the replies :func:`credit_sites` lets through."""

    def __init__(self, nodes: dict[int, str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.nodes = nodes

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        return super().aggregate_train(
            server_round, credit_sites(self.nodes, server_round, replies)
        )


class SiteDpFedAvg(DifferentialPrivacyServerSideFixedClipping):
    """DP over FedAvg, over the replies :func:`credit_sites` lets through (here, outside the
    wrapped FedAvg: Flower's accountant insists on FedAvg's own aggregation)."""

    def __init__(self, nodes: dict[int, str], strategy: FedAvg, **kwargs: Any) -> None:
        super().__init__(strategy, **kwargs)
        self.nodes = nodes

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        return super().aggregate_train(
            server_round, credit_sites(self.nodes, server_round, replies)
        )


def _config(context: Context, key: str, default: Any) -> Any:
    return context.run_config.get(key, default)


def _record(values: dict[str, Scalar]) -> ConfigRecord:
    record = ConfigRecord()
    record.update(values)
    return record


def _fixed_precision(precision: logreg.FloatArray) -> dict[str, Scalar]:
    """The run's fixed precision for a round that shares the weights only (the sites train
    under it; the global model keeps it)."""
    return {"prior-precision": [float(v) for v in np.asarray(precision).ravel()]}  # type: ignore[dict-item]


def _accountant(context: Context, min_sites: int) -> RdpAccountant:
    """Flower's RDP accountant for per-site DP over exactly ``min_sites`` sites a round."""
    max_epsilon = float(_config(context, "max-epsilon", 0.0))
    return RdpAccountant(
        PrivacyConfig(
            target_delta=float(_config(context, "target-delta", 1e-5)),
            population_size=int(_config(context, "population", min_sites)),
            neighboring_relation=NeighboringRelation.ADD_OR_REMOVE_ONE,
            sampling_method=SamplingMethod.NO_AMPLIFICATION,
            max_epsilon=max_epsilon if max_epsilon > 0 else None,
        )
    )


def _privacy(noise_multiplier: float, clipping_norm: float, spent: Any) -> dict[str, Any]:
    return {
        "noise_multiplier": noise_multiplier,
        "clipping_norm": clipping_norm,
        "epsilon": None if spent is None else spent.epsilon,
        "delta": None if spent is None else spent.delta,
    }


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Run ``num-rounds`` rounds and store each round's global model."""
    template = json.loads(Path(str(_config(context, "initial-model", ""))).read_text("utf-8"))
    mean, precision = template_arrays(template)
    floor = float(np.linalg.eigvalsh(precision).min())
    feature_version = int(template["feature_version"])
    rounds = RoundStore(str(_config(context, "rounds-db", "rounds.db")))
    run_id = uuid.uuid4().hex
    round_config: dict[str, Scalar] = {
        "feature-version": feature_version,
        "precision-floor": floor,
        "alarm-from": float(template.get("alarm_from", 0.5)),
    }

    def store(result: RoundResult) -> int:
        precision = logreg.mend_precision(result.precision, floor)
        version = rounds.add(
            run_id=run_id,
            round_number=result.number,
            feature_version=feature_version,
            model=global_model(template, result.mean, precision, result.labels),
            metrics={"evaluation": result.evaluated, "sites": len(result.sites)},
            privacy=result.privacy,
            sites=result.sites,
        )
        _LOGGER.info("round %d stored as global model version %d", result.number, version)
        return version

    try:
        if bool(_config(context, "secure-aggregation", False)):
            _run_secure(grid, context, (mean, precision), round_config, store)
        else:
            _run_messages(grid, context, (mean, precision), round_config, store)
    finally:
        rounds.close()


def _run_messages(
    grid: Grid,
    context: Context,
    initial: tuple[logreg.FloatArray, logreg.FloatArray],
    round_config: dict[str, Scalar],
    store: StoreRound,
) -> None:
    """The rounds with Flower's message strategies: the PSOC sees and clips each update."""
    min_sites = int(_config(context, "min-sites", 2))
    dp = bool(_config(context, "dp", False))
    # With DP the weights only (the precision stays the initial model's, in the config).
    shared = [initial[0]] if dp else list(initial)
    if dp:
        round_config = {**round_config, **_fixed_precision(initial[1])}

    # What FedAvg's metric aggregation sees of each reply: remember who took part and the
    # label counts (the sums, not FedAvg's weighted means), for the round's stored model.
    seen: dict[str, Any] = {}

    def train_metrics(replies: list[RecordDict], weight_key: str) -> MetricRecord:
        sites, labels = [], {"normal": 0, "alarm": 0}
        for reply in replies:
            site = reply.config_records.get("site", ConfigRecord())
            sites.append((str(site.get("site-id", "")), str(site.get("agent-id", ""))))
            metrics = next(iter(reply.metric_records.values()))
            for label in ("normal", "alarm"):
                count = metrics.get(f"{label}-labels", 0)
                labels[label] += int(count) if isinstance(count, int | float) else 0
        seen.update(sites=sites, labels=labels, evaluated=None)
        return aggregate_metricrecords(replies, weight_key)

    def evaluate_metrics(replies: list[RecordDict], weight_key: str) -> MetricRecord:
        aggregated = aggregate_metricrecords(replies, weight_key)
        seen["evaluated"] = dict(aggregated)
        return aggregated

    nodes = registered_nodes(Path(str(_config(context, "nodes", ""))))
    settings: dict[str, Any] = dict(
        fraction_train=1e-9 if dp else 1.0,  # with dp: exactly min-sites (see the docstring)
        # Federated evaluation: each site scores the new global model on its own examples.
        fraction_evaluate=1.0 if bool(_config(context, "evaluate", True)) else 0.0,
        min_train_nodes=min_sites,
        min_evaluate_nodes=min_sites,
        min_available_nodes=min_sites,
        weighted_by_key="sites" if dp else "num-examples",
        train_metrics_aggr_fn=train_metrics,
        evaluate_metrics_aggr_fn=evaluate_metrics,
    )
    strategy: Strategy = SiteFedAvg(nodes, **settings)
    accounted: DifferentialPrivacyServerSideFixedClipping | None = None
    if dp:
        # The DP wrapper credits the sites: Flower's accountant wants FedAvg's own aggregation.
        accounted = SiteDpFedAvg(
            nodes,
            FedAvg(**settings),
            noise_multiplier=float(_config(context, "noise-multiplier", 1.0)),
            clipping_norm=float(_config(context, "clipping-norm", 1.0)),
            num_sampled_clients=min_sites,
            accountant=_accountant(context, min_sites),
        )
        strategy = accounted

    def store_round(server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
        if server_round == 0 or "sites" not in seen:
            return None  # the initial model, or a round that produced nothing
        new_mean, *learnt = arrays.to_numpy_ndarrays()
        new_precision = learnt[0] if learnt else initial[1]
        privacy = None
        if accounted is not None:
            privacy = _privacy(
                accounted.noise_multiplier, accounted.clipping_norm, accounted.privacy_spent()
            )
        version = store(
            RoundResult(
                server_round,
                new_mean,
                new_precision,
                seen["sites"],
                seen["labels"],
                seen.get("evaluated"),
                privacy,
            )
        )
        seen.clear()
        return MetricRecord({"version": version})

    strategy.start(
        grid=grid,
        initial_arrays=ArrayRecord(shared),
        num_rounds=int(_config(context, "num-rounds", 3)),
        timeout=float(_config(context, "round-timeout", 300.0)),
        train_config=_record(round_config),
        evaluate_config=_record(round_config),
        evaluate_fn=store_round,
    )


def _run_secure(
    grid: Grid,
    context: Context,
    initial: tuple[logreg.FloatArray, logreg.FloatArray],
    round_config: dict[str, Scalar],
    store: StoreRound,
) -> None:
    """The rounds under SecAgg+ (:mod:`psoc.federation.secure`): the PSOC sees only sums."""
    min_sites = int(_config(context, "min-sites", 2))
    clipping_norm = float(_config(context, "clipping-norm", 1.0))
    dp: secure.AccountedDp | None = None

    def store_round(
        number: int, mean: Any, taken: secure.Round, evaluated: dict[str, float] | None
    ) -> int:
        privacy = None
        if dp is not None:
            privacy = _privacy(
                dp.noise_multiplier, dp.clipping_norm, dp.accountant.get_privacy_spent()
            )
        precision = initial[1]  # SecAgg+ sums the weights' changes only
        return store(
            RoundResult(number, mean, precision, taken.sites, taken.labels, evaluated, privacy)
        )

    evaluate = bool(_config(context, "evaluate", True))
    strategy = secure.SecureSiteFedAvg(
        registered_nodes(Path(str(_config(context, "nodes", "")))),
        store_round,
        {**round_config, **_fixed_precision(initial[1]), "clipping-norm": clipping_norm},
        # Exactly min-sites sites a round (DP's accountant counts on it; SecAgg+ needs none
        # more), each weighing the same.
        fraction_fit=1e-9,
        fraction_evaluate=1.0 if evaluate else 0.0,
        min_fit_clients=min_sites,
        min_evaluate_clients=min_sites,
        min_available_clients=min_sites,
        initial_parameters=ndarrays_to_parameters([initial[0]]),
    )
    if bool(_config(context, "dp", False)):
        dp = secure.AccountedDp(
            strategy,
            _accountant(context, min_sites),
            noise_multiplier=float(_config(context, "noise-multiplier", 1.0)),
            clipping_norm=clipping_norm,
            num_sampled_clients=min_sites,
        )
    secure.run(
        grid,
        context,
        strategy=strategy,
        dp=dp,
        clipping_norm=clipping_norm,
        num_rounds=int(_config(context, "num-rounds", 3)),
        round_timeout=float(_config(context, "round-timeout", 300.0)),
    )
