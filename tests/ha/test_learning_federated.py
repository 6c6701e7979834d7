"""A global model as the prior (custom_components/lan_guard/learning/federated.py)."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from custom_components.lan_guard.learning import federated
from custom_components.lan_guard.learning.features import N_FEATURES
from custom_components.lan_guard.learning.model import ModelError, OnlineLogisticModel


def trained(labels: int, seed: int) -> OnlineLogisticModel:
    rng = np.random.default_rng(seed)
    model = OnlineLogisticModel()
    # The event's level is an argument of ``learn`` only in feature versions before 3.
    level = (2,) if "level" in inspect.signature(model.learn).parameters else ()
    for _ in range(labels):
        label = "alarm" if rng.random() < 0.3 else "normal"
        model.learn(np.abs(rng.normal(size=N_FEATURES)), label, *level)
    return model


def test_a_model_without_labels_of_its_own_becomes_the_global_model() -> None:
    fresh = OnlineLogisticModel()
    other = trained(30, seed=1)
    swapped = federated.replace_prior(
        fresh, federated.hand_set_prior(fresh), federated.prior_of(other.to_dict())
    )
    assert np.allclose(swapped.mean, other.mean) and np.allclose(swapped.precision, other.precision)
    assert swapped.labels == 0  # the home's own counts: the global model's labels are not its


def test_the_homes_own_evidence_survives_any_number_of_prior_swaps() -> None:
    own = trained(12, seed=2)
    hand = federated.hand_set_prior(own)
    first, second = (federated.prior_of(trained(40, seed).to_dict()) for seed in (3, 4))
    once = federated.replace_prior(own, hand, first)
    twice = federated.replace_prior(once, first, second)
    back = federated.replace_prior(twice, second, hand)
    assert np.allclose(back.mean, own.mean, atol=1e-8)
    assert np.allclose(back.precision, own.precision, atol=1e-8)
    assert back.labels == own.labels == once.labels  # the sensor's counts stay the home's
    assert back.model_id == own.model_id and back.alarm_from == own.alarm_from


def test_a_prior_of_another_size_is_refused() -> None:
    model = OnlineLogisticModel()
    with pytest.raises(ModelError, match="another size"):
        federated.replace_prior(model, federated.hand_set_prior(model), (np.zeros(3), np.eye(3)))
