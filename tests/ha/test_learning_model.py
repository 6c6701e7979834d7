"""The online Bayesian logistic regression (custom_components/lan_guard/learning/model.py)."""

from __future__ import annotations

import copy
import json
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from custom_components.lan_guard.learning.features import (
    FEATURE_NAMES,
    FEATURE_VERSION,
    INDEX,
    N_FEATURES,
)
from custom_components.lan_guard.learning.model import (
    DOMAIN_PRIOR,
    LEVEL_PRIOR,
    MIN_EXPORT_LABELS,
    Assessment,
    ModelError,
    OnlineLogisticModel,
    level_prior_mean,
    prior_assessment,
)


def vector(level: int, **values: float) -> np.ndarray[Any, Any]:
    """A feature vector: bias, level, and the named features."""
    x = np.zeros(N_FEATURES)
    x[INDEX["bias"]] = 1.0
    x[INDEX["level"]] = level / 3
    for name, value in values.items():
        x[INDEX[name]] = value
    return x


SWEEP = vector(1, kind_arp_scan=1, log_targets=1, repeat_in_rhythm=1, repeat_regularity=1)
OWNER_SCAN = vector(2, kind_syn_scan=1, log_ports=1, other_port_share=0.97, vendor_computer=1)
PJL_QUERY = vector(3, kind_session=1, ransomware_port_share=1, vendor_computer=1)


def trained(labels: list[tuple[np.ndarray[Any, Any], str, int]], **kwargs: Any) -> Any:
    model = OnlineLogisticModel(**kwargs)
    for x, label, level in labels:
        model.learn(x, label, level)  # type: ignore[arg-type]
    return model


@pytest.mark.parametrize(
    ("level", "verdict"), [(0, "normal"), (1, "normal"), (2, "unsure"), (3, "alarm"), (7, "alarm")]
)
def test_level_prior(level: int, verdict: str) -> None:
    assessment = prior_assessment(level)
    assert assessment.verdict == verdict
    assert assessment.source == "prior"
    assert assessment.probability == LEVEL_PRIOR[min(level, 3)]
    assert OnlineLogisticModel().assess(vector(min(level, 3)), level) == assessment


def test_prior_mean_is_the_level_rule_plus_domain_facts() -> None:
    level_only = level_prior_mean()
    for level in (1, 2, 3):
        score = float(vector(level) @ level_only)
        assert 1 / (1 + np.exp(-score)) == pytest.approx(LEVEL_PRIOR[level])
    model = OnlineLogisticModel()
    for name, weight in DOMAIN_PRIOR.items():
        assert model.prior_mean[INDEX[name]] == pytest.approx(level_only[INDEX[name]] + weight)


@pytest.mark.parametrize(
    ("name", "x", "level", "verdict"),
    [
        ("routine sweep in its rhythm", SWEEP, 1, "normal"),
        (
            "a new device's first sweep",
            vector(1, kind_arp_scan=1, log_targets=1, source_new=1),
            1,
            "alarm",
        ),
        (
            "a known source's sweep out of rhythm",
            vector(1, kind_arp_scan=1, unvouched=1),
            1,
            "alarm",  # p 0.33: asked with the alarm buttons
        ),
        ("a slow sweep", vector(1, kind_arp_scan=1, slow_probe=1, unvouched=1), 1, "alarm"),
        ("a port scan nobody vouched for", vector(2, kind_syn_scan=1, unvouched=1), 2, "alarm"),
        (
            "the same scan, vouched for",
            vector(2, kind_syn_scan=1, behaviour_vouched=1, behaviour_normal_labels=0.3),
            2,
            "normal",
        ),
        ("telnet scan", vector(2, kind_syn_scan=1, telnet_port_share=1), 2, "alarm"),
        ("a known source's ARP claim spray", vector(2, kind_arp_spray=1), 2, "alarm"),
        ("a known source's forged sources", vector(2, kind_source_spray=1), 2, "alarm"),
        (
            "escalation in the incident",
            vector(2, kind_syn_scan=1, incident_escalation=1),
            2,
            "alarm",
        ),
    ],
)
def test_the_domain_prior_before_any_label(
    name: str, x: np.ndarray[Any, Any], level: int, verdict: str
) -> None:
    """What the prior mean says with the default cut-offs (the level gate switched off)."""
    assert OnlineLogisticModel(min_labels=0).assess(x, level).verdict == verdict, name


def test_the_prior_decides_until_enough_labels() -> None:
    model = OnlineLogisticModel(min_labels=3)
    for _ in range(2):
        model.learn(OWNER_SCAN, "normal", 2)
        assert model.uses_prior
        assert model.assess(OWNER_SCAN, 2).source == "prior"
    model.learn(OWNER_SCAN, "normal", 2)
    assessment = model.assess(OWNER_SCAN, 2)
    assert assessment.source == "model"
    assert assessment.as_dict() == {
        "verdict": assessment.verdict,
        "probability": round(assessment.probability, 4),
        "source": "model",
    }


def test_labels_flip_verdicts() -> None:
    model = OnlineLogisticModel()
    assert model.blank().assess(PJL_QUERY, 3).verdict == "alarm"
    for _ in range(50):  # the prior is firm about data on a ransomware port: without the
        # behaviour features (a vouched behaviour turns at once) it takes a few dozen labels
        model.learn(PJL_QUERY, "normal", 3)  # the family PC's printer software, says the owner
        model.learn(OWNER_SCAN, "normal", 2)
    assert model.assess(PJL_QUERY, 3).verdict == "normal"
    assert model.assess(OWNER_SCAN, 2).verdict == "normal"
    telnet = vector(2, kind_syn_scan=1, telnet_port_share=1, vendor_camera=1)
    assert model.assess(telnet, 2).verdict == "alarm"  # what was not taught keeps the prior

    slow = vector(1, kind_arp_scan=1, log_targets=0.4, vendor_unknown=1)
    assert model.assess(slow, 1).verdict == "normal"
    for _ in range(30):  # the owner tells a slow scan from the tracker's sweeps (the prior
        # variance is small, so one kind of event needs a few dozen labels to turn around)
        model.learn(slow, "alarm", 1)
        model.learn(SWEEP, "normal", 1)
    assert model.assess(slow, 1).verdict == "alarm"
    assert model.assess(SWEEP, 1).verdict == "normal"


def test_prequential_accuracy_scores_before_learning() -> None:
    model = OnlineLogisticModel(min_labels=2)
    assert model.accuracy is None
    assert model.learn(SWEEP, "normal", 1) is True  # prior 0.1: right
    assert model.learn(PJL_QUERY, "normal", 3) is False  # prior 0.9: wrong
    assert model.labels == 2
    assert model.label_counts == {"normal": 2, "alarm": 0}
    assert model.accuracy == pytest.approx(0.5)
    model.learn(PJL_QUERY, "normal", 3)
    assert model.correct in {1, 2}
    assert model.accuracy == pytest.approx(model.correct / 3)


def test_cut_offs() -> None:
    model = OnlineLogisticModel(normal_below=0.25, alarm_from=0.8)
    assert model.verdict_of(0.2499) == "normal"
    assert model.verdict_of(0.25) == "unsure"
    assert model.verdict_of(0.7999) == "unsure"
    assert model.verdict_of(0.8) == "alarm"
    for bad in ({"normal_below": 0.8, "alarm_from": 0.2}, {"normal_below": 0.0}):
        with pytest.raises(ModelError, match="cut-offs"):
            OnlineLogisticModel(**bad)  # type: ignore[arg-type]
    with pytest.raises(ModelError, match="prior_variance"):
        OnlineLogisticModel(prior_variance=0)


def test_bad_labels_and_features_are_refused() -> None:
    model = OnlineLogisticModel()
    with pytest.raises(ModelError, match="label"):
        model.learn(SWEEP, "maybe", 1)  # type: ignore[arg-type]
    with pytest.raises(ModelError, match="finite"):
        model.learn(np.full(N_FEATURES, np.nan), "normal", 1)
    with pytest.raises(ModelError, match="finite"):
        model.learn(np.ones(3), "normal", 1)
    assert model.labels == 0


def test_calibration_on_data_from_a_known_logistic_model() -> None:
    rng = np.random.default_rng(7)
    true_weights = rng.normal(0, 0.5, N_FEATURES)
    true_weights[INDEX["bias"]] = -0.5

    def sample(n: int) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        x = rng.uniform(-1, 1, (n, N_FEATURES))
        x[:, INDEX["bias"]] = 1.0
        p = 1 / (1 + np.exp(-(x @ true_weights)))
        return x, (rng.uniform(size=n) < p).astype(float)

    model = OnlineLogisticModel(prior_variance=1.0, min_labels=0)
    x_train, y_train = sample(1500)
    for x, y in zip(x_train, y_train, strict=True):
        model.learn(x, "alarm" if y else "normal", 2)
    x_test, y_test = sample(4000)
    p = model.probabilities(x_test)
    assert np.all((p >= 0) & (p <= 1))
    # Reliability: in each probability decile, the predicted mean matches the observed rate.
    bins = np.clip((p * 10).astype(int), 0, 9)
    for b in range(10):
        chosen = bins == b
        if chosen.sum() >= 100:
            assert abs(p[chosen].mean() - y_test[chosen].mean()) < 0.1
    brier = float(np.mean((p - y_test) ** 2))
    assert brier < float(np.mean((y_test.mean() - y_test) ** 2)) - 0.05  # beats the base rate
    assert model.accuracy is not None and model.accuracy > 0.7


def test_uncertainty_moderates_the_probability() -> None:
    model = OnlineLogisticModel(min_labels=0)
    for _ in range(50):
        model.learn(SWEEP, "normal", 1)
    novel = vector(1, kind_arp_scan=1, vendor_camera=1, time_sin=1, since_last=1)
    certain = model.probability(SWEEP)
    assert certain < 0.05
    assert model.probability(novel) > certain  # unseen directions stay closer to the middle
    assert model.probability(SWEEP) == pytest.approx(model.probabilities(SWEEP[None, :])[0])


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    features=arrays(np.float64, N_FEATURES, elements=st.floats(-1, 2)),
    labels=st.lists(st.sampled_from(["normal", "alarm"]), max_size=12),
)
def test_probabilities_stay_in_the_unit_interval(
    features: np.ndarray[Any, Any], labels: list[str]
) -> None:
    model = OnlineLogisticModel(min_labels=0)
    for label in labels:
        model.learn(features, label, 2)  # type: ignore[arg-type]
    probability = model.probability(features)
    assert 0.0 <= probability <= 1.0
    assert np.all(np.isfinite(model.mean))
    assert np.all(np.linalg.eigvalsh(model.precision) > 0)


def test_round_trip_through_json() -> None:
    model = trained([(OWNER_SCAN, "normal", 2)] * 6 + [(PJL_QUERY, "alarm", 3)] * 2)
    stored = json.loads(json.dumps(model.to_dict()))
    restored = OnlineLogisticModel.from_dict(stored)
    for x in (SWEEP, OWNER_SCAN, PJL_QUERY):
        assert restored.probability(x) == pytest.approx(model.probability(x))
    assert restored.label_counts == model.label_counts
    assert restored.correct == model.correct
    assert restored.to_dict() == stored
    assert stored["feature_version"] == FEATURE_VERSION
    assert stored["features"] == list(FEATURE_NAMES)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"feature_version": FEATURE_VERSION + 1}, "feature version"),
        ({"features": ["bias"]}, "feature version"),
        ({"format": 99}, "format"),
        ({"weights": [0.0] * 3}, "shape"),
        ({"weights": [float("inf")] * N_FEATURES}, "finite"),
        ({"precision": [[0.0] * N_FEATURES] * N_FEATURES}, "positive definite"),
        ({"labels": {"normal": -1, "alarm": 0}}, "impossible"),
        ({"correct": 99}, "impossible"),
        ({"prior_variance": "wide"}, "malformed"),
        ({"labels": None}, "malformed"),
    ],
)
def test_unusable_stored_models_are_refused_with_a_reason(
    change: dict[str, Any], reason: str
) -> None:
    stored = {**OnlineLogisticModel().to_dict(), **change}
    with pytest.raises(ModelError, match=reason):
        OnlineLogisticModel.from_dict(stored)
    with pytest.raises(ModelError, match="object"):
        OnlineLogisticModel.from_dict([1, 2])  # type: ignore[arg-type]


def test_export_holds_weights_and_counts_only() -> None:
    model = OnlineLogisticModel()
    with pytest.raises(ModelError, match=f"at least {MIN_EXPORT_LABELS} labels"):
        model.export()
    for _ in range(MIN_EXPORT_LABELS):
        model.learn(OWNER_SCAN, "normal", 2)
    exported = model.export()
    assert set(exported) == {
        "format",
        "feature_version",
        "features",
        "prior_variance",
        "normal_below",
        "alarm_from",
        "min_labels",
        "weights",
        "precision",
        "labels",
        "correct",
    }
    text = json.dumps(exported)
    for event_field in ("mac", "ip", "vendor", "hostname", "incident", "sample", "detected_at"):
        assert f'"{event_field}"' not in text


def test_merge_adds_evidence_and_counts() -> None:
    home_a = trained([(OWNER_SCAN, "normal", 2)] * 20)
    home_b = trained([(PJL_QUERY, "normal", 3)] * 50)
    merged = home_a.merge(home_b)
    assert merged.label_counts == {"normal": 70, "alarm": 0}
    assert merged.correct == home_a.correct + home_b.correct
    prior = home_a.prior_precision
    np.testing.assert_allclose(
        merged.precision - prior, (home_a.precision - prior) + (home_b.precision - prior)
    )
    # What each home taught holds in the merge (far from the prior's firm "alarm" on PJL).
    assert merged.assess(OWNER_SCAN, 2).verdict == home_a.assess(OWNER_SCAN, 2).verdict == "normal"
    assert home_b.assess(PJL_QUERY, 3).verdict == "normal"
    fresh = OnlineLogisticModel().probability(PJL_QUERY)
    assert merged.probability(PJL_QUERY) < fresh - 0.5
    assert merged.probability(PJL_QUERY) < 0.5  # more likely normal, as home B taught
    # Symmetric, and merging with an empty model changes nothing.
    np.testing.assert_allclose(merged.mean, home_b.merge(home_a).mean)
    alone = home_a.merge(home_a.blank())
    np.testing.assert_allclose(alone.mean, home_a.mean, atol=1e-9)
    np.testing.assert_allclose(alone.precision, home_a.precision)


def test_merge_of_agreeing_homes_is_surer() -> None:
    home_a = trained([(OWNER_SCAN, "normal", 2)] * 4 + [(SWEEP, "alarm", 1)] * 2)
    home_b = trained([(OWNER_SCAN, "normal", 2)] * 4 + [(SWEEP, "alarm", 1)] * 2)
    merged = home_a.merge(home_b)
    np.testing.assert_allclose(merged.mean, home_a.mean, atol=1e-9)
    for x in (OWNER_SCAN, SWEEP):  # the same weights, less doubt: further from the middle
        assert abs(merged.probability(x) - 0.5) > abs(home_a.probability(x) - 0.5)
    assert merged.label_counts == {"normal": 8, "alarm": 4}


def test_merge_weights_homes_by_their_labels() -> None:
    small = trained([(OWNER_SCAN, "normal", 2)] * 5)
    large = trained([(PJL_QUERY, "normal", 3)] * 15)
    np.testing.assert_allclose(
        small.merge(large).mean, 0.25 * small.mean + 0.75 * large.mean, atol=1e-12
    )


def test_merge_refuses_another_prior() -> None:
    with pytest.raises(ModelError, match="priors"):
        OnlineLogisticModel().merge(OnlineLogisticModel(prior_variance=3.0))
    other = OnlineLogisticModel()
    other.prior_mean = other.prior_mean + 1
    with pytest.raises(ModelError, match="priors"):
        OnlineLogisticModel().merge(other)


def test_blank_keeps_settings_only() -> None:
    model = trained([(OWNER_SCAN, "normal", 2)] * 3, alarm_from=0.9, min_labels=2)
    blank = model.blank()
    assert blank.labels == 0
    assert (blank.alarm_from, blank.min_labels) == (0.9, 2)
    np.testing.assert_array_equal(blank.mean, model.prior_mean)
    assert isinstance(blank.assess(OWNER_SCAN, 2), Assessment)
    assert copy.deepcopy(model).probability(SWEEP) == model.probability(SWEEP)
