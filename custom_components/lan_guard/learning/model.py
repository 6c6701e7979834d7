"""Online Bayesian logistic regression: a calibrated probability that an event is an alarm.

Why this model. Logistic regression with an L2 penalty is a Gaussian prior on the weights; we
keep the whole Gaussian (mean and precision matrix) instead of a point, and update it on each
label with one exact MAP step along the direction the new label informs plus a Laplace
(second-order) update of the precision. That gives what a home with 20 labels needs:

* The prior mean is the level rule plus documented security knowledge (:data:`DOMAIN_PRIOR`),
  so before any label the model already decides at least as well as the level rule, and the
  penalty pulls towards that knowledge, not towards "know nothing".
* The predictive probability is moderated by the weight uncertainty (MacKay's probit
  approximation), so an event unlike anything labelled gets a probability nearer the middle;
  the question policy (``policy.py``) asks the owner about those.
* Merging (federated averaging): the weights average by label count, each home's evidence
  (precision beyond the shared prior's) adds, so agreeing homes make a surer model; counts
  add exactly. See ``merge`` for why this rule.

Verdicts: ``p >= alarm_from`` alarm, else normal; the question policy may turn a normal verdict
close to the cut-off into a question (``unsure``). What decided is said with every verdict:
``prior`` while the model has learned no label (its own or imported), ``model`` after;
``rule`` is the level rule, used only when the classifier cannot judge an event.

Every model has a ``model_id`` (random, new on reset): an export carries it, so importing the
same home's model twice replaces the first import instead of counting its evidence twice.
The stored form (``to_dict``) and the export (``export``) hold the feature version, the id,
weights, precision and counts, never an event. A model of another feature version resets, with
a reason.

Export format (``MODEL_FORMAT`` 2; what a federated server exchanges), one JSON object:
``format``; ``feature_version`` (``features.FEATURE_VERSION``); ``features``, the feature names
in vector order (``features.FEATURE_NAMES``, ``N_FEATURES`` long); ``model_id``;
``prior_variance``; ``alarm_from``; ``weights``, the posterior mean (``N_FEATURES`` numbers in
that order); ``precision``, the posterior precision (``N_FEATURES`` x ``N_FEATURES``, the prior's
``1 / prior_variance`` on the diagonal included); ``labels``, ``{"normal": n, "alarm": n}``;
``correct``, the prequential hits. ``from_dict`` refuses any other format, feature version or
feature list.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt

from .features import FEATURE_NAMES, FEATURE_VERSION, INDEX, N_FEATURES

Verdict = Literal["normal", "alarm", "unsure"]
Label = Literal["normal", "alarm"]
DecidedBy = Literal["rule", "prior", "model"]
LABELS: Final[tuple[Label, ...]] = ("normal", "alarm")

MODEL_FORMAT: Final = 2
# Chosen on the development homes of benchmarks/classifier_eval.py by its ``--tune``: the most
# alarm recall after 20 labels with false alarms <= 1.5 %, benign pushes <= 1 a home-day and,
# before any label, at least the level rule's recall. Missing malware costs far more than a
# false alarm (which the owner's "normal" turns off for that source and shape), so an event is
# an alarm from a probability of 0.2.
DEFAULT_ALARM_FROM: Final = 0.2
DEFAULT_PRIOR_VARIANCE: Final = 0.1
# With fewer labels the precision matrix nearly gives single events away (one label adds
# g * x x^T to it, a scaled copy of that event's features), so export refuses.
MIN_EXPORT_LABELS: Final = 10

# Level prior: probability of "alarm" by level (0 is host_left, information only).
LEVEL_PRIOR: Final[Mapping[int, float]] = {0: 0.02, 1: 0.1, 2: 0.5, 3: 0.9}

FloatArray = npt.NDArray[np.float64]


class ModelError(ValueError):
    """A stored or imported model that cannot be used (the message says why)."""


@dataclass(frozen=True)
class Assessment:
    """A verdict, its probability of alarm, what decided it and on how many labels."""

    verdict: Verdict
    probability: float
    decided_by: DecidedBy
    labels: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe form that travels with the event."""
        return {
            "verdict": self.verdict,
            "probability": round(self.probability, 4),
            "decided_by": self.decided_by,
            "labels": self.labels,
        }


def rule_assessment(level: int) -> Assessment:
    """The level rule: 3 alarm, 2 unsure, 1 and 0 normal (when the classifier cannot judge)."""
    level = min(max(int(level), 0), 3)
    verdict: Verdict = "alarm" if level >= 3 else "unsure" if level == 2 else "normal"
    return Assessment(verdict, LEVEL_PRIOR[level], "rule")


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def level_prior_mean() -> FloatArray:
    """Weights whose logistic output is the level prior: bias + w * level/3 through
    logit(0.1) at level 1 and logit(0.9) at level 3 (so 0.5 at level 2)."""
    low, high = _logit(LEVEL_PRIOR[1]), _logit(LEVEL_PRIOR[3])
    slope = (high - low) / (2.0 / 3.0)
    mean = np.zeros(N_FEATURES, dtype=np.float64)
    mean[INDEX["level"]] = slope
    mean[INDEX["bias"]] = low - slope / 3.0
    return mean


# Security facts the prior knows before any label (logit change per unit of the feature), so a
# home's first malware is not judged by its level alone. Signs from domain knowledge, round
# magnitudes set by hand and checked on the benchmark's development homes only (never fitted);
# labels move them like any other weight.
DOMAIN_PRIOR: Final[Mapping[str, float]] = {
    # Mirai and its descendants brute-force telnet and a few exploit ports; no home device
    # probes them on others.
    "bot_port_share": 4.0,
    # Probing exactly the ports ransomware probes first.
    "ransomware_port_share": 1.5,
    # Answering for the router's address is a man-in-the-middle.
    "gateway": 3.0,
    # Many addresses from one sender, not its own: blinding the agent's tables, or hiding a
    # scan among forged sources. A router doing proxy ARP for many hosts is the rare exception.
    "kind_spray": 1.5,
    # Scanning slower than any home discovery tool is scanning meant to go unnoticed.
    "slow_probe": 3.0,
    # Cameras, thermostats, plugs and bulbs never scan; one that does is compromised.
    "quiet_class_scan": 3.5,
    # What changed about a source: a device the LAN has known for days that suddenly raises
    # its first event, its first event of a kind, activity at an hour it never kept, a sweep
    # larger than any it did before.
    "quiet_host_wakes": 1.5,
    "first_of_kind": 1.0,
    "new_hour": 1.0,
    "grown": 2.0,
    # Precursors come in order: a source that escalated within the hour, or within the
    # incident the agent is still reporting (sweep, then a port scan, then a session).
    "source_recent_level": 1.0,
    "incident_escalation": 1.0,
    "incident_steps": 1.0,
    # Scanning for minutes on end: bots and slow scans do, scheduled sweeps take seconds.
    "sustained": 2.0,
    # A known source doing what nobody vouched for, out of any rhythm of its own, is worth a
    # look; a steady rhythm of the very same shape is a scheduled job (a tracker, a monitor).
    "unvouched": 0.5,
    "routine": -1.5,
    # The owner's judgement carries over (the spam filter's known sender): fully for the same
    # shape of the same source, a little for its other shapes.
    "shape_vouched": -3.0,
    "shape_normal_labels": -1.0,
    "shape_alarm_labels": 3.0,
    "other_normal_labels": -0.5,
    "other_alarm_labels": 0.5,
    # Data a decoy received that speaks RTSP is a camera client (an NVR, a viewer app).
    "sample_rtsp": -1.0,
}


def prior_mean() -> FloatArray:
    """The prior's weights: the level rule plus DOMAIN_PRIOR."""
    mean = level_prior_mean()
    for name, weight in DOMAIN_PRIOR.items():
        mean[INDEX[name]] += weight
    return mean


def _inverse(matrix: FloatArray) -> FloatArray:
    """Inverse of a symmetric positive definite matrix, kept exactly symmetric."""
    inverse = np.asarray(np.linalg.inv(matrix), dtype=np.float64)
    return (inverse + inverse.T) / 2.0


def _sigmoid(z: FloatArray | float) -> Any:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=np.float64)))


def new_model_id() -> str:
    """A random model id (32 hex)."""
    return uuid.uuid4().hex


class OnlineLogisticModel:
    """Gaussian posterior over logistic-regression weights, updated one label at a time."""

    def __init__(
        self,
        *,
        prior_variance: float = DEFAULT_PRIOR_VARIANCE,
        alarm_from: float = DEFAULT_ALARM_FROM,
        model_id: str | None = None,
    ) -> None:
        if not 0.0 < alarm_from < 1.0:
            raise ModelError("alarm_from must lie strictly between 0 and 1")
        if prior_variance <= 0.0:
            raise ModelError("prior_variance must be positive")
        self.prior_variance = float(prior_variance)
        self.alarm_from = float(alarm_from)
        self.model_id = model_id or new_model_id()
        self.prior_mean = prior_mean()
        self.prior_precision = np.eye(N_FEATURES) / self.prior_variance
        self.mean = self.prior_mean.copy()
        self.precision = self.prior_precision.copy()
        self._covariance = np.eye(N_FEATURES) * self.prior_variance
        self.label_counts: dict[Label, int] = {"normal": 0, "alarm": 0}
        self.correct = 0  # prequential: labels the model had right before learning them

    # -- prediction ---------------------------------------------------------------------
    @property
    def labels(self) -> int:
        """How many labels the model has learned."""
        return sum(self.label_counts.values())

    @property
    def accuracy(self) -> float | None:
        """Prequential accuracy: each label scored before it was learned (None before any)."""
        return self.correct / self.labels if self.labels else None

    @property
    def decided_by(self) -> DecidedBy:
        """``prior`` until the model has learned a label, ``model`` after."""
        return "model" if self.labels else "prior"

    def probabilities(self, features: FloatArray) -> FloatArray:
        """Calibrated P(alarm) of each row of a (n, N_FEATURES) array (or of one vector)."""
        x = np.atleast_2d(np.asarray(features, dtype=np.float64))
        score = x @ self.mean
        variance = np.einsum("ij,jk,ik->i", x, self._covariance, x)
        moderated = score / np.sqrt(1.0 + math.pi * np.maximum(variance, 0.0) / 8.0)
        return np.asarray(_sigmoid(moderated), dtype=np.float64)

    def probability(self, features: FloatArray) -> float:
        """Calibrated P(alarm) of one feature vector."""
        return float(self.probabilities(features)[0])

    def verdict_of(self, probability: float) -> Verdict:
        """Alarm from the cut-off, normal below it."""
        return "alarm" if probability >= self.alarm_from else "normal"

    def assess(self, features: FloatArray) -> Assessment:
        """The verdict for an event's features."""
        probability = self.probability(features)
        return Assessment(self.verdict_of(probability), probability, self.decided_by, self.labels)

    # -- learning -----------------------------------------------------------------------
    def learn(self, features: FloatArray, label: Label) -> bool:
        """Score the label with the current probability (prequential), then learn it.
        Returns whether the probability was on the right side of 0.5."""
        if label not in LABELS:
            raise ModelError(f"label must be 'normal' or 'alarm', not {label!r}")
        x = np.asarray(features, dtype=np.float64)
        if x.shape != (N_FEATURES,) or not np.all(np.isfinite(x)):
            raise ModelError(f"features must be {N_FEATURES} finite numbers")
        target = 1.0 if label == "alarm" else 0.0
        right = (self.probability(x) >= 0.5) == (target == 1.0)
        self.correct += int(right)
        self.label_counts[label] += 1

        # Exact MAP of (current Gaussian) x (this label's likelihood): the new mean moves
        # along covariance @ x by c, where c = target - sigmoid(score + c * spread); the
        # left side grows and the right side shrinks in c, so bisection on (target-1, target).
        direction = self._covariance @ x
        spread = float(x @ direction)
        score = float(x @ self.mean)
        low, high = target - 1.0, target
        for _ in range(60):
            middle = 0.5 * (low + high)
            if middle - (target - float(_sigmoid(score + middle * spread))) > 0.0:
                high = middle
            else:
                low = middle
        step = 0.5 * (low + high)
        self.mean = self.mean + step * direction
        p = float(_sigmoid(score + step * spread))
        curvature = p * (1.0 - p)
        self.precision = self.precision + curvature * np.outer(x, x)
        # Sherman-Morrison: the covariance of precision + g x x^T without a new inverse.
        self._covariance = self._covariance - np.outer(direction, direction) * (
            curvature / (1.0 + curvature * spread)
        )
        return right

    # -- merging ------------------------------------------------------------------------
    def merge(self, other: OnlineLogisticModel) -> OnlineLogisticModel:
        """A model holding both models' evidence; counts add (the id is this model's).

        The weights are the label-count-weighted average of the two (federated averaging:
        a model with no label changes nothing, two equal models give the same weights). The
        evidence of each (its precision beyond the shared prior's, ``P - P0``) adds, so the
        merged model is surer where the homes learned, which the moderated probability uses.
        Logistic-regression weights average only approximately; chosen on the development
        homes over the exact product of the Laplace posteriors, which overshoots when many
        homes' one-pass online posteriors are combined, and over precision-weighted means."""
        if not np.allclose(self.prior_precision, other.prior_precision) or not np.allclose(
            self.prior_mean, other.prior_mean
        ):
            raise ModelError("models with different priors cannot be merged")
        merged = self.blank(model_id=self.model_id)
        total = self.labels + other.labels
        share = 0.5 if total == 0 else self.labels / total
        merged.mean = share * self.mean + (1.0 - share) * other.mean
        merged.precision = self.precision + other.precision - self.prior_precision
        merged._covariance = _inverse(merged.precision)
        for label in LABELS:
            merged.label_counts[label] = self.label_counts[label] + other.label_counts[label]
        merged.correct = self.correct + other.correct
        return merged

    def blank(self, *, model_id: str | None = None) -> OnlineLogisticModel:
        """A model with the same settings and nothing learned (a new id unless given)."""
        return OnlineLogisticModel(
            prior_variance=self.prior_variance, alarm_from=self.alarm_from, model_id=model_id
        )

    def copy(self) -> OnlineLogisticModel:
        """An independent copy (same id)."""
        twin = self.blank(model_id=self.model_id)
        twin.mean, twin.precision = self.mean.copy(), self.precision.copy()
        twin._covariance = self._covariance.copy()
        twin.label_counts, twin.correct = dict(self.label_counts), self.correct
        return twin

    # -- persistence --------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-safe state: feature version, id, settings, weights, precision, counts."""
        return {
            "format": MODEL_FORMAT,
            "feature_version": FEATURE_VERSION,
            "features": list(FEATURE_NAMES),
            "model_id": self.model_id,
            "prior_variance": self.prior_variance,
            "alarm_from": self.alarm_from,
            "weights": [float(v) for v in self.mean],
            "precision": [[float(v) for v in row] for row in self.precision],
            "labels": dict(self.label_counts),
            "correct": self.correct,
        }

    def export(self) -> dict[str, Any]:
        """What may leave the home: id, weights, precision and counts (no event, no source)."""
        if self.labels < MIN_EXPORT_LABELS:
            raise ModelError(
                f"export needs at least {MIN_EXPORT_LABELS} labels ({self.labels} so far): "
                "with fewer, the statistics come too close to single events"
            )
        return self.to_dict()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OnlineLogisticModel:
        """Rebuild a model; raises ModelError saying why when it cannot be used (another
        feature version, another format, malformed or non-finite numbers)."""
        if not isinstance(data, Mapping):
            raise ModelError("a model must be a JSON object")
        if data.get("format") != MODEL_FORMAT:
            raise ModelError(f"model format {data.get('format')!r}, expected {MODEL_FORMAT}")
        if data.get("feature_version") != FEATURE_VERSION or data.get("features") != list(
            FEATURE_NAMES
        ):
            raise ModelError(
                f"model of feature version {data.get('feature_version')!r}, "
                f"this version uses {FEATURE_VERSION}"
            )
        model_id = data.get("model_id")
        if not isinstance(model_id, str) or not 1 <= len(model_id) <= 64:
            raise ModelError("model_id must be a string of 1 to 64 characters")
        try:
            model = cls(
                prior_variance=float(data["prior_variance"]),
                alarm_from=float(data["alarm_from"]),
                model_id=model_id,
            )
            mean = np.asarray(data["weights"], dtype=np.float64)
            precision = np.asarray(data["precision"], dtype=np.float64)
            counts: dict[Label, int] = {label: int(data["labels"][label]) for label in LABELS}
            correct = int(data["correct"])
        except (KeyError, TypeError, ValueError) as err:
            raise ModelError(f"malformed model: {err}") from err
        if mean.shape != (N_FEATURES,) or precision.shape != (N_FEATURES, N_FEATURES):
            raise ModelError("weights or precision of the wrong shape")
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(precision))):
            raise ModelError("weights or precision not finite")
        if min(counts.values()) < 0 or not 0 <= correct <= sum(counts.values()):
            raise ModelError("impossible label counts")
        try:
            covariance = _inverse(precision)
            np.linalg.cholesky(precision)
        except np.linalg.LinAlgError as err:
            raise ModelError("precision is not positive definite") from err
        model.mean, model.precision, model._covariance = mean, precision, covariance
        model.label_counts = counts
        model.correct = correct
        return model
