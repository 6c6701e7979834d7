"""The agent's training (sensor_agent/federation/logreg.py) is the integration's model's.

The integration's ``OnlineLogisticModel`` and the agent's ``logreg`` each hold the update (the
agent cannot import the integration); on the same prior and the same labels, both must give
the same weights, precision and probabilities.
"""

from __future__ import annotations

import inspect

import numpy as np

from custom_components.lan_guard.learning.features import N_FEATURES
from custom_components.lan_guard.learning.model import OnlineLogisticModel
from sensor_agent.federation import logreg


def test_the_agent_trains_exactly_what_the_integration_learns() -> None:
    rng = np.random.default_rng(3)
    xs = np.abs(rng.normal(size=(40, N_FEATURES)))
    labels = [bool(v) for v in rng.random(40) < 0.4]
    model = OnlineLogisticModel()
    start_mean, start_precision = model.mean.copy(), model.precision.copy()
    # The event's level is an argument of ``learn`` only in feature versions before 3, which
    # learn nothing from it beyond the features.
    level = (2,) if "level" in inspect.signature(model.learn).parameters else ()
    for x, alarm in zip(xs, labels, strict=True):
        model.learn(x, "alarm" if alarm else "normal", *level)
    trained = logreg.train(start_mean, start_precision, zip(xs, labels, strict=True))
    assert np.allclose(trained.mean, model.mean, rtol=1e-9, atol=1e-9)
    assert np.allclose(trained.precision, model.precision, rtol=1e-9, atol=1e-9)
    probe = np.abs(rng.normal(size=(10, N_FEATURES)))
    assert np.allclose(trained.probabilities(probe), model.probabilities(probe), atol=1e-8)
