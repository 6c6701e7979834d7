"""The classifier's logistic regression on plain arrays: training the agent can import.

The integration's model (``custom_components/lan_guard/learning/model.py``, which the agent
cannot import: it is Home Assistant's package) keeps a Gaussian over the weights, a mean and a
precision matrix, and learns one label at a time with an exact MAP step along the direction the
label informs plus a Laplace update of the precision. This module repeats exactly that update on
plain arrays, so a Flower client trains the very model the integration runs; the test of this
module checks that both give the same weights, precision and probabilities on the same data.
The integration keeps its own copy because it also owns the prior, the verdict cut-offs and the
stored form; change the update in both places or in neither.

Dimensions come from the data (the feature vector's length for the feature version in use),
never from a constant here, so a new feature version needs no change in this module.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

_BISECTION_STEPS = 60


def sigmoid(z: FloatArray | float) -> FloatArray:
    """The logistic function, written with tanh so that it never overflows."""
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=np.float64))))


@dataclass
class Posterior:
    """A Gaussian over the weights: ``mean`` and ``precision`` (its inverse, ``covariance``)."""

    mean: FloatArray
    precision: FloatArray
    covariance: FloatArray

    @classmethod
    def of(cls, mean: FloatArray, precision: FloatArray) -> Posterior:
        """The posterior with this mean and precision (raises ``ValueError`` on shapes or
        numbers that make no Gaussian: non-finite, not symmetric positive definite)."""
        mean = np.asarray(mean, dtype=np.float64).copy()
        precision = np.asarray(precision, dtype=np.float64).copy()
        n = mean.shape[0] if mean.ndim == 1 else -1
        if n < 1 or precision.shape != (n, n):
            raise ValueError("mean must be a vector and precision a square matrix of its length")
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(precision))):
            raise ValueError("mean or precision not finite")
        precision = (precision + precision.T) / 2.0
        try:
            np.linalg.cholesky(precision)
            covariance = np.asarray(np.linalg.inv(precision), dtype=np.float64)
        except np.linalg.LinAlgError as err:
            raise ValueError("precision is not positive definite") from err
        return cls(mean, precision, (covariance + covariance.T) / 2.0)

    @property
    def dimension(self) -> int:
        return int(self.mean.shape[0])

    def learn(self, x: FloatArray, alarm: bool) -> None:
        """Learn one label: exact MAP of (this Gaussian) x (the label's likelihood) along
        ``covariance @ x``, then the Laplace curvature added to the precision."""
        target = 1.0 if alarm else 0.0
        direction = self.covariance @ x
        spread = float(x @ direction)
        score = float(x @ self.mean)
        # c = target - sigmoid(score + c * spread): the left side grows and the right side
        # shrinks in c, so bisection on (target - 1, target) finds the one root.
        low, high = target - 1.0, target
        for _ in range(_BISECTION_STEPS):
            middle = 0.5 * (low + high)
            if middle - (target - float(sigmoid(score + middle * spread))) > 0.0:
                high = middle
            else:
                low = middle
        step = 0.5 * (low + high)
        self.mean = self.mean + step * direction
        p = float(sigmoid(score + step * spread))
        curvature = p * (1.0 - p)
        self.precision = self.precision + curvature * np.outer(x, x)
        # Sherman-Morrison: the covariance of precision + g x x^T without a new inverse.
        self.covariance = self.covariance - np.outer(direction, direction) * (
            curvature / (1.0 + curvature * spread)
        )

    def probabilities(self, xs: FloatArray) -> FloatArray:
        """P(alarm) of each row, moderated by the weights' uncertainty (MacKay's probit
        approximation), as the integration computes it."""
        x = np.atleast_2d(np.asarray(xs, dtype=np.float64))
        score = x @ self.mean
        variance = np.einsum("ij,jk,ik->i", x, self.covariance, x)
        moderated = score / np.sqrt(1.0 + math.pi * np.maximum(variance, 0.0) / 8.0)
        return sigmoid(moderated)


def train(
    mean: FloatArray, precision: FloatArray, examples: Iterable[tuple[FloatArray, bool]]
) -> Posterior:
    """The posterior after learning ``examples`` (vector, is-alarm) in order, from the given
    mean and precision (the global model the server sent)."""
    posterior = Posterior.of(mean, precision)
    for x, alarm in examples:
        vector = np.asarray(x, dtype=np.float64)
        if vector.shape != (posterior.dimension,) or not np.all(np.isfinite(vector)):
            raise ValueError(f"an example must be {posterior.dimension} finite numbers")
        posterior.learn(vector, alarm)
    return posterior


@dataclass(frozen=True)
class Metrics:
    """How a model does on labelled examples (computed where the examples are)."""

    examples: int
    accuracy: float
    log_loss: float
    alarm_recall: float
    false_alarm_rate: float

    def as_dict(self) -> dict[str, float]:
        return {
            "examples": float(self.examples),
            "accuracy": self.accuracy,
            "log_loss": self.log_loss,
            "alarm_recall": self.alarm_recall,
            "false_alarm_rate": self.false_alarm_rate,
        }


def evaluate(
    posterior: Posterior, xs: FloatArray, alarms: npt.NDArray[np.bool_], alarm_from: float
) -> Metrics:
    """Accuracy and log loss at 0.5, recall and false alarms at the verdict cut-off."""
    n = len(alarms)
    if n == 0:
        return Metrics(0, 0.0, 0.0, 0.0, 0.0)
    p = np.clip(posterior.probabilities(xs), 1e-9, 1.0 - 1e-9)
    truth = np.asarray(alarms, dtype=bool)
    accuracy = float(np.mean((p >= 0.5) == truth))
    log_loss = float(-np.mean(np.where(truth, np.log(p), np.log(1.0 - p))))
    flagged = p >= alarm_from
    positives, negatives = int(truth.sum()), int((~truth).sum())
    recall = float((flagged & truth).sum() / positives) if positives else 0.0
    false_alarms = float((flagged & ~truth).sum() / negatives) if negatives else 0.0
    return Metrics(n, accuracy, log_loss, recall, false_alarms)


def mend_precision(precision: FloatArray, floor: float) -> FloatArray:
    """The nearest symmetric matrix with every eigenvalue at least ``floor`` (> 0 makes it
    positive definite): the noise of differential privacy may leave a precision matrix that
    no Gaussian has; ``floor`` is the prior's smallest precision, below which no evidence
    can take a model."""
    symmetric = (np.asarray(precision, dtype=np.float64) + np.asarray(precision).T) / 2.0
    if floor <= 0.0:
        return symmetric
    values, vectors = np.linalg.eigh(symmetric)
    mended = (vectors * np.maximum(values, floor)) @ vectors.T
    return np.asarray((mended + mended.T) / 2.0, dtype=np.float64)
