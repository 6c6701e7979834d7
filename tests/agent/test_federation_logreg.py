"""The logistic regression on plain arrays (sensor_agent/federation/logreg.py)."""

from __future__ import annotations

import numpy as np
import pytest

from sensor_agent.federation import logreg

rng = np.random.default_rng(7)


def data(n: int, dim: int = 4) -> tuple[np.ndarray, np.ndarray]:
    xs = rng.normal(size=(n, dim))
    xs[:, 0] = 1.0  # a bias feature, as the classifier's vectors have
    truth = np.array([0.0, 3.0, -2.0, 0.0][:dim])
    return xs, (xs @ truth) > 0


def test_training_learns_the_direction_the_labels_point_to() -> None:
    xs, ys = data(200)
    trained = logreg.train(np.zeros(4), np.eye(4) * 10.0, zip(xs, ys, strict=True))
    assert trained.mean[1] > 0.5 and trained.mean[2] < -0.3
    figures = logreg.evaluate(trained, xs, ys, alarm_from=0.5)
    assert figures.examples == 200 and figures.accuracy > 0.9
    assert figures.alarm_recall > 0.85 and figures.false_alarm_rate < 0.15


def test_each_label_adds_its_curvature_to_the_precision_and_keeps_the_covariance_its_inverse() -> (
    None
):
    xs, ys = data(30)
    trained = logreg.train(np.zeros(4), np.eye(4) * 10.0, zip(xs, ys, strict=True))
    assert np.allclose(trained.covariance @ trained.precision, np.eye(4), atol=1e-8)
    assert np.all(np.linalg.eigvalsh(trained.precision) >= 10.0 - 1e-9)


def test_no_examples_leave_the_model_as_it_came() -> None:
    mean, precision = np.array([1.0, -1.0]), np.array([[4.0, 1.0], [1.0, 3.0]])
    same = logreg.train(mean, precision, [])
    assert np.array_equal(same.mean, mean) and np.array_equal(same.precision, precision)


@pytest.mark.parametrize(
    ("mean", "precision", "why"),
    [
        (np.zeros(3), np.eye(2), "square matrix"),
        (np.zeros(2), np.array([[1.0, 0.0], [0.0, -1.0]]), "positive definite"),
        (np.array([np.nan, 0.0]), np.eye(2), "not finite"),
    ],
)
def test_no_gaussian_from_wrong_arrays(mean: np.ndarray, precision: np.ndarray, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        logreg.Posterior.of(mean, precision)


def test_an_example_of_another_length_or_not_finite_is_refused() -> None:
    with pytest.raises(ValueError, match="2 finite numbers"):
        logreg.train(np.zeros(2), np.eye(2), [(np.zeros(3), True)])
    with pytest.raises(ValueError, match="2 finite numbers"):
        logreg.train(np.zeros(2), np.eye(2), [(np.array([np.inf, 0.0]), True)])


def test_mending_lifts_noisy_precision_back_above_the_floor() -> None:
    noisy = np.array([[10.0, 12.0], [11.0, 10.0]])  # not symmetric, an eigenvalue below 0
    mended = logreg.mend_precision(noisy, floor=10.0)
    assert np.allclose(mended, mended.T)
    assert np.linalg.eigvalsh(mended).min() >= 10.0 - 1e-9
    healthy = np.array([[20.0, 1.0], [1.0, 15.0]])
    assert np.allclose(logreg.mend_precision(healthy, floor=10.0), healthy)


def test_evaluation_counts_at_the_cut_off() -> None:
    posterior = logreg.Posterior.of(np.array([10.0]), np.eye(1) * 1e6)  # sure: p = sigmoid(10x)
    xs = np.array([[1.0], [-1.0], [1.0], [-1.0]])
    alarms = np.array([True, False, False, True])
    figures = logreg.evaluate(posterior, xs, alarms, alarm_from=0.5)
    assert (figures.accuracy, figures.alarm_recall, figures.false_alarm_rate) == (0.5, 0.5, 0.5)
    assert logreg.evaluate(posterior, np.zeros((0, 1)), np.zeros(0, dtype=bool), 0.5).examples == 0
