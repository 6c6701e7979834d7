"""Secure aggregation: rounds in which the PSOC learns only the sum of the sites' updates.

Flower offers SecAgg+ (``SecAggPlusWorkflow`` with the clients' ``secaggplus_mod``) for its
legacy workflow API only, so a secure run is a ``DefaultWorkflow`` over the legacy strategy
here instead of the message strategies of :mod:`psoc.federation.server_app`. Each site masks
its update with pairwise and private masks that cancel only in the sum; the SuperLink and the
ServerApp see masked numbers, then the sum, never one site's update.

What the protocol needs, and what it costs:

- Updates must lie in a fixed range to be quantized. A site sends the *change* it made to the
  global model, clipped to ``clipping-norm`` (each number of a vector that short lies in
  [-norm, norm], the quantization range), so clipping moves from the PSOC to the sites: the
  provider can no longer see or clip an update. That is the trade: privacy of each site's
  update against the PSOC, for the PSOC's ability to inspect it (see the last point).
- Every site weighs the same (one site, one weight): the mean of the changes.
- Differential privacy stays Flower's: its client-side fixed clipping wrapper adds the noise
  to the aggregate, and Flower's RDP accountant (composed here; the legacy wrapper has none)
  reports the budget, refusing a round that would exceed ``max-epsilon``.
- SecAgg+ checks nothing of what it sums: a node running other code than the sites' could
  send any numbers. The one check left is on the sum: honest changes clipped to the norm
  cannot average to a longer change, so a round whose mean change is longer is refused. A
  cheating node can still steer the mean anywhere within that norm, one round at a time.
- Crediting is by the nodes that took part (the workflow knows them): a round with a node the
  provider did not register is refused whole, as in the other path.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from flwr.app import Context
from flwr.common import (
    EvaluateIns,
    EvaluateRes,
    FitIns,
    FitRes,
    Metrics,
    Parameters,
    Scalar,
    ndarrays_to_parameters,
    parameters_to_ndarrays,
)
from flwr.server import LegacyContext, ServerConfig
from flwr.server.client_manager import ClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.strategy import DifferentialPrivacyClientSideFixedClipping, FedAvg
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
from flwr.serverapp import Grid
from flwr.serverapp.exception import PrivacyBudgetExhausted
from flwr.supercore.privacy_accounting import GaussianPrivacyEvent
from flwr.supercore.privacy_accounting.rdp_accountant import RdpAccountant

from sensor_agent.federation import logreg

_LOGGER = logging.getLogger(__name__)

# One weight per site, so the largest weight a site may give its update is one.
MAX_WEIGHT = 1.0
# What SecAgg+'s quantization (2**22 steps over [-norm, norm]) may add to a mean's length.
NORM_SLACK = 1.001
# A site's private key is shared among all sampled sites; any majority can rebuild a dropped
# site's masks (and no minority can unmask anyone).
RECONSTRUCTION_THRESHOLD = 0.51


@dataclass
class Round:
    """What a round's replies said besides the masked numbers: who and how many labels."""

    sites: list[tuple[str, str]] = field(default_factory=list)
    labels: dict[str, int] = field(default_factory=lambda: {"normal": 0, "alarm": 0})


# store(round, the global weights, round's replies, the sites' evaluation) -> its version
Store = Callable[[int, logreg.FloatArray, Round, dict[str, float] | None], int]


def weighted_metrics(results: list[tuple[int, Metrics]]) -> Metrics:
    """The sites' evaluation figures, each weighted by the site's examples."""
    total = sum(examples for examples, _ in results)
    sums: dict[str, float] = {}
    for examples, metrics in results:
        for name, value in metrics.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                sums[name] = sums.get(name, 0.0) + examples * float(value)
    return {name: value / total for name, value in sorted(sums.items())} if total > 0 else {}


class SecureSiteFedAvg(FedAvg):
    """The mean of the sites' clipped changes, added to the global model; each round stored.

    Under SecAgg+ every reply's parameters are already the aggregate (the workflow's mean of
    the changes), so this strategy never holds one site's numbers. Flower's workflow runs the
    sites' evaluation of a round's model after its centralized ``evaluate``: the round waits
    there and is stored with the sites' figures (or without, when no site is asked).
    """

    def __init__(
        self,
        nodes: dict[int, str],
        store: Store,
        round_config: dict[str, Scalar],
        **kwargs: Any,
    ) -> None:
        super().__init__(
            on_fit_config_fn=lambda _: dict(round_config),
            on_evaluate_config_fn=lambda _: dict(round_config),
            evaluate_metrics_aggregation_fn=weighted_metrics,
            **kwargs,
        )
        self.nodes = nodes
        self.store = store
        self.norm = float(round_config["clipping-norm"])
        self.current: list[logreg.FloatArray] = []
        self.round = Round()
        self.pending: tuple[int, logreg.FloatArray, Round] | None = None  # awaits evaluation

    def configure_fit(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, FitIns]]:
        self.current = [np.asarray(a, dtype=np.float64) for a in parameters_to_ndarrays(parameters)]
        return super().configure_fit(server_round, parameters, client_manager)

    def aggregate_fit(
        self,
        server_round: int,
        results: list[tuple[ClientProxy, FitRes]],
        failures: list[tuple[ClientProxy, FitRes] | BaseException],
    ) -> tuple[Parameters | None, dict[str, Scalar]]:
        if not results or len(results) < self.min_fit_clients:
            _LOGGER.error("round %d: %d sites answered", server_round, len(results))
            return None, {}
        taken = Round()
        for proxy, fitted in results:
            site = self.nodes.get(proxy.node_id)
            if site is None:
                _LOGGER.error(
                    "round %d: node %d is no site's; round refused", server_round, proxy.node_id
                )
                return None, {}
            said = fitted.metrics
            if said.get("site-id") != site:
                _LOGGER.warning(
                    "node %d of site %s said it was %r", proxy.node_id, site, said.get("site-id")
                )
            taken.sites.append((site, str(said.get("agent-id", ""))))
            for label in ("normal", "alarm"):
                count = said.get(f"{label}-labels", 0)
                taken.labels[label] += int(count) if isinstance(count, int | float) else 0
        # Every reply carries the same aggregate: the workflow's mean of the changes.
        change = parameters_to_ndarrays(results[0][1].parameters)
        size = float(np.sqrt(sum(float(np.sum(np.square(part))) for part in change)))
        if not size <= self.norm * NORM_SLACK:
            # Changes clipped to the norm cannot average to more: a node ran other code.
            _LOGGER.error(
                "round %d refused: the sites' mean change is %g long, more than clipped "
                "changes (%g) can make",
                server_round,
                size,
                self.norm,
            )
            return None, {}
        self.round = taken
        updated = [now + delta for now, delta in zip(self.current, change, strict=True)]
        return ndarrays_to_parameters(updated), {}

    def evaluate(
        self, server_round: int, parameters: Parameters
    ) -> tuple[float, dict[str, Scalar]] | None:
        """After each round's aggregation (and noise): the global model, kept for the sites'
        evaluation that follows."""
        if server_round == 0 or not self.round.sites:
            return None
        (mean,) = parameters_to_ndarrays(parameters)
        self.pending, self.round = (server_round, mean, self.round), Round()
        return None

    def configure_evaluate(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, EvaluateIns]]:
        asked = super().configure_evaluate(server_round, parameters, client_manager)
        if not asked:
            self._store(None)  # no site scores this round
        return asked

    def aggregate_evaluate(
        self,
        server_round: int,
        results: list[tuple[ClientProxy, EvaluateRes]],
        failures: list[tuple[ClientProxy, EvaluateRes] | BaseException],
    ) -> tuple[float | None, dict[str, Scalar]]:
        loss, metrics = super().aggregate_evaluate(server_round, results, failures)
        figures = {name: float(v) for name, v in metrics.items() if isinstance(v, int | float)}
        self._store({**figures, "sites": float(len(results))} if results else None)
        return loss, metrics

    def _store(self, evaluated: dict[str, float] | None) -> None:
        if self.pending is not None:
            number, mean, taken = self.pending
            self.pending = None
            version = self.store(number, mean, taken, evaluated)
            _LOGGER.info("round %d: global model version %d", number, version)


class AccountedDp(DifferentialPrivacyClientSideFixedClipping):
    """Flower's client-side fixed clipping DP (the noise on the aggregate) with Flower's RDP
    accountant composed once per released round."""

    def __init__(self, strategy: SecureSiteFedAvg, accountant: RdpAccountant, **kwargs: Any):
        super().__init__(strategy, **kwargs)
        self.accountant = accountant

    def _event(self) -> GaussianPrivacyEvent:
        return GaussianPrivacyEvent(
            noise_multiplier=self.noise_multiplier,
            sample_size=self.num_sampled_clients,
            population_size=self.accountant.config.population_size,
        )

    def configure_fit(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, FitIns]]:
        if self.accountant.config.max_epsilon is not None and self.accountant.would_exceed(
            self._event()
        ):
            spent = self.accountant.get_privacy_spent()
            raise PrivacyBudgetExhausted(
                f"round {server_round} would exceed max-epsilon (spent: {spent.epsilon})"
            )
        return super().configure_fit(server_round, parameters, client_manager)

    def aggregate_fit(
        self,
        server_round: int,
        results: list[tuple[ClientProxy, FitRes]],
        failures: list[tuple[ClientProxy, FitRes] | BaseException],
    ) -> tuple[Parameters | None, dict[str, Scalar]]:
        aggregated, metrics = super().aggregate_fit(server_round, results, failures)
        if aggregated is not None:
            self.accountant.compose(self._event())
        return aggregated, metrics


def run(
    grid: Grid,
    context: Context,
    *,
    strategy: SecureSiteFedAvg,
    dp: AccountedDp | None,
    clipping_norm: float,
    num_rounds: int,
    round_timeout: float,
) -> None:
    """``num_rounds`` SecAgg+ rounds (then the sites' evaluation, when the strategy asks)."""
    legacy = LegacyContext(
        context=context,
        config=ServerConfig(num_rounds=num_rounds, round_timeout=round_timeout),
        strategy=dp if dp is not None else strategy,
    )
    workflow = DefaultWorkflow(
        fit_workflow=SecAggPlusWorkflow(
            num_shares=1.0,
            reconstruction_threshold=RECONSTRUCTION_THRESHOLD,
            max_weight=MAX_WEIGHT,
            clipping_range=clipping_norm,
            timeout=round_timeout,
        )
    )
    workflow(grid, legacy)
