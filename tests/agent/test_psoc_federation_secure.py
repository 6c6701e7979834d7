"""Secure aggregation's strategy and DP accounting (psoc/federation/secure.py), fed replies as
Flower's SecAgg+ workflow hands them over (every reply's parameters are the aggregate). Tested
where Flower is installed, like test_psoc_federation_server_app.py; the whole protocol runs in
tests/ha/test_federation_e2e.py."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytest
from flwr.common import Code, EvaluateRes, FitRes, Parameters, Status, ndarrays_to_parameters
from flwr.common import parameters_to_ndarrays as arrays
from flwr.server.client_manager import SimpleClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.compat.grid_client_proxy import GridClientProxy
from flwr.serverapp.exception import PrivacyBudgetExhausted
from flwr.supercore.privacy_accounting import (
    NeighboringRelation,
    PrivacyConfig,
    SamplingMethod,
)
from flwr.supercore.privacy_accounting.rdp_accountant import RdpAccountant

from psoc.federation import secure

NODES = {11: "A", 22: "B", 33: "C"}
CURRENT = [np.array([1.0, -1.0, 0.0])]  # the global weights (SecAgg+ sums their changes)
CHANGE = [np.array([0.5, 0.25, -1.0])]  # the workflow's mean of the sites' changes


class Stored:
    def __init__(self) -> None:
        self.rounds: list[tuple[int, Any, secure.Round, dict[str, float] | None]] = []

    def __call__(
        self, number: int, mean: Any, taken: secure.Round, evaluated: dict[str, float] | None
    ) -> int:
        self.rounds.append((number, mean, taken, evaluated))
        return len(self.rounds)


def manager() -> SimpleClientManager:
    nodes = SimpleClientManager()
    for node in NODES:
        nodes.register(GridClientProxy(node, None, 1))  # type: ignore[arg-type]
    return nodes


def strategy(stored: Stored, evaluate: float = 0.0) -> secure.SecureSiteFedAvg:
    made = secure.SecureSiteFedAvg(
        NODES,
        stored,
        {"clipping-norm": 2.0},
        fraction_fit=1e-9,
        fraction_evaluate=evaluate,
        min_fit_clients=3,
        min_evaluate_clients=3,
        min_available_clients=3,
        initial_parameters=ndarrays_to_parameters(CURRENT),
    )
    made.configure_fit(1, ndarrays_to_parameters(CURRENT), manager())
    return made


def replies(*sites: tuple[int, str], change: Any = CHANGE) -> list[tuple[ClientProxy, FitRes]]:
    aggregate = ndarrays_to_parameters(change)
    return [
        (
            GridClientProxy(node, None, 1),  # type: ignore[arg-type]
            FitRes(
                Status(Code.OK, ""),
                aggregate,
                1,
                {"site-id": said, "agent-id": f"pi-{node}", "alarm-labels": 2, "normal-labels": 5},
            ),
        )
        for node, said in sites
    ]


def test_each_round_asks_exactly_min_sites_for_their_clipped_change() -> None:
    made = strategy(Stored())
    asked = made.configure_fit(1, ndarrays_to_parameters(CURRENT), manager())
    assert len(asked) == 3
    assert all(fitins.config["clipping-norm"] == 2.0 for _, fitins in asked)


def test_the_global_model_moves_by_the_mean_change_and_is_stored_with_who_took_part(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    stored = Stored()
    made = strategy(stored)
    new, _ = made.aggregate_fit(1, replies((11, "A"), (22, "A"), (33, "C")), [])
    assert new is not None
    (mean,) = arrays(new)
    assert np.allclose(mean, CURRENT[0] + CHANGE[0])
    assert "node 22 of site B said it was 'A'" in caplog.text  # the registration decides
    assert made.evaluate(0, new) is None  # the initial model is not a round
    assert made.evaluate(1, new) is None and not stored.rounds  # kept for the evaluation
    assert made.configure_evaluate(1, new, manager()) == []  # none asked: stored as it is
    ((number, weights, taken, evaluated),) = stored.rounds
    assert number == 1 and np.allclose(weights, CURRENT[0] + CHANGE[0]) and evaluated is None
    assert taken.sites == [("A", "pi-11"), ("B", "pi-22"), ("C", "pi-33")]
    assert taken.labels == {"alarm": 6, "normal": 15}
    made.evaluate(2, new)
    made.configure_evaluate(2, new, manager())
    assert len(stored.rounds) == 1  # nothing new to store


def test_a_round_is_stored_with_the_sites_evaluation_weighted_by_their_examples() -> None:
    stored = Stored()
    made = strategy(stored, evaluate=1.0)
    new, _ = made.aggregate_fit(1, replies((11, "A"), (22, "B"), (33, "C")), [])
    assert new is not None
    made.evaluate(1, new)
    assert len(made.configure_evaluate(1, new, manager())) == 3
    scored = [
        (GridClientProxy(node, None, 1), EvaluateRes(Status(Code.OK, ""), loss, n, {"accuracy": a}))  # type: ignore[arg-type]
        for node, loss, n, a in ((11, 0.2, 10, 0.9), (22, 0.4, 30, 0.7), (33, 0.3, 0, 0.0))
    ]
    made.aggregate_evaluate(1, scored, [])
    ((_, _, _, evaluated),) = stored.rounds
    assert evaluated == pytest.approx({"accuracy": 0.75, "sites": 3.0})
    assert secure.weighted_metrics([]) == {}


def test_a_round_with_a_node_of_no_site_or_too_few_sites_is_refused(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stored = Stored()
    made = strategy(stored)
    assert made.aggregate_fit(4, replies((11, "A"), (22, "B"), (44, "A")), []) == (None, {})
    assert "round 4: node 44 is no site's" in caplog.text
    assert made.aggregate_fit(5, replies((11, "A"), (22, "B")), []) == (None, {})
    assert made.evaluate(5, ndarrays_to_parameters(CURRENT)) is None
    made.configure_evaluate(5, ndarrays_to_parameters(CURRENT), manager())
    assert not stored.rounds


def test_a_mean_change_longer_than_clipped_changes_can_make_is_refused(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # SecAgg+ sums whatever a node sends; honest changes of norm <= 2 average to <= 2.
    made = strategy(Stored())
    forged = [np.array([1.5, 1.0, 1.0])]  # length 2.06
    assert made.aggregate_fit(6, replies((11, "A"), (22, "B"), (33, "C"), change=forged), []) == (
        None,
        {},
    )
    assert "round 6 refused: the sites' mean change is 2.06" in caplog.text
    edge = [np.array([1.2, 1.13, 1.13])]  # 1.9989: accepted
    new, _ = made.aggregate_fit(7, replies((11, "A"), (22, "B"), (33, "C"), change=edge), [])
    assert new is not None


def accountant(max_epsilon: float | None) -> RdpAccountant:
    return RdpAccountant(
        PrivacyConfig(
            target_delta=1e-5,
            population_size=3,
            neighboring_relation=NeighboringRelation.ADD_OR_REMOVE_ONE,
            sampling_method=SamplingMethod.NO_AMPLIFICATION,
            max_epsilon=max_epsilon,
        )
    )


def dp(stored: Stored, max_epsilon: float | None = None) -> secure.AccountedDp:
    return secure.AccountedDp(
        strategy(stored),
        accountant(max_epsilon),
        noise_multiplier=1.0,
        clipping_norm=2.0,
        num_sampled_clients=3,
    )


def test_dp_noises_the_aggregate_and_counts_each_release_once() -> None:
    wrapped = dp(Stored())
    wrapped.configure_fit(1, ndarrays_to_parameters(CURRENT), manager())
    noised, _ = wrapped.aggregate_fit(1, replies((11, "A"), (22, "B"), (33, "C")), [])
    assert isinstance(noised, Parameters)
    assert not np.allclose(arrays(noised)[0], CURRENT[0] + CHANGE[0])  # stddev 2/3
    spent = wrapped.accountant.get_privacy_spent()
    assert spent.num_releases == 1 and spent.epsilon > 0
    # A round that produced nothing released nothing.
    assert wrapped.aggregate_fit(2, [], [RuntimeError("gone")]) == (None, {})
    assert wrapped.accountant.get_privacy_spent().num_releases == 1


def test_a_round_past_the_budget_is_refused_before_any_site_is_asked() -> None:
    wrapped = dp(Stored(), max_epsilon=0.01)
    with pytest.raises(PrivacyBudgetExhausted, match="max-epsilon"):
        wrapped.configure_fit(1, ndarrays_to_parameters(CURRENT), SimpleClientManager())
