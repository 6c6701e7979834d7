"""The Flower ClientApp (sensor_agent/federation/client_app.py) called as its SuperNode calls
it, in both of the PSOC's formats: the message strategies' and secure aggregation's legacy
one. The run through Flower's processes is in tests/ha/test_federation_e2e.py."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, Metadata, RecordDict
from flwr.app.message.message import make_message
from flwr.common import EvaluateIns, FitIns, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS
from flwr.compat.common import recorddict_compat as compat

from sensor_agent.federation import client_app, logreg
from sensor_agent.federation.examples import Example, ExampleStore

DIMENSION = 3
MEAN = np.array([-1.0, 0.5, 0.0])
PRECISION = np.eye(DIMENSION) * 2.0
VERSION = 7


@pytest.fixture
def context(tmp_path: Path) -> Context:
    """A node of site s1 whose store holds four examples of the federation's version (and
    one of another version, which it must not train)."""
    store = ExampleStore(tmp_path / "examples.sqlite")
    rows = [([1, 1, 0], True), ([1, 0, 1], False), ([1, 1, 1], True), ([1, 0, 0], False)]
    now = time.time()
    for i, (features, alarm) in enumerate(rows):
        store.add(Example(f"e{i}", VERSION, [float(v) for v in features], alarm), now + i)
    store.add(Example("old", VERSION - 1, [1.0, 1.0, 1.0], True), now)
    store.close()
    config: dict[str, bool | float | int | str] = {
        "examples-db": str(tmp_path / "examples.sqlite"),
        "site-id": "s1",
        "agent-id": "pi-1",
        "min-examples": 2,
    }
    return Context(run_id=1, node_id=5, node_config=config, state=RecordDict(), run_config={})


def request(kind: str, content: RecordDict) -> Message:
    metadata = Metadata(
        run_id=1,
        message_id="m",
        src_node_id=0,
        dst_node_id=5,
        reply_to_message_id="",
        group_id="1",
        created_at=time.time(),
        ttl=60.0,
        message_type=kind,
    )
    return make_message(metadata, content)


def settings(**extra: float) -> dict[str, bool | bytes | float | int | str]:
    return {"feature-version": VERSION, "precision-floor": 1.0, "alarm-from": 0.5, **extra}


FIXED = {"prior-precision": [float(v) for v in PRECISION.ravel()]}


def expected() -> logreg.Posterior:
    examples = [([1, 1, 0], True), ([1, 0, 1], False), ([1, 1, 1], True), ([1, 0, 0], False)]
    return logreg.train(MEAN, PRECISION, ((np.array(x, float), y) for x, y in examples))


def test_training_returns_the_model_its_examples_make_and_their_counts(context: Context) -> None:
    content = RecordDict(
        {"arrays": ArrayRecord([MEAN, PRECISION]), "config": ConfigRecord(settings())}
    )
    reply = client_app.train(request("train", content), context)
    mean, precision = reply.content["arrays"].to_numpy_ndarrays()  # type: ignore[union-attr]
    assert np.allclose(mean, expected().mean) and np.allclose(precision, expected().precision)
    metrics = reply.content["metrics"]
    assert metrics["num-examples"] == 4 and metrics["sites"] == 1  # type: ignore[index]
    assert (metrics["alarm-labels"], metrics["normal-labels"]) == (2, 2)  # type: ignore[index]
    assert dict(reply.content["site"]) == {"site-id": "s1", "agent-id": "pi-1"}  # type: ignore[arg-type]


def test_with_dp_training_shares_the_weights_only_under_the_runs_fixed_precision(
    context: Context,
) -> None:
    config = ConfigRecord({**settings(), **FIXED})
    content = RecordDict({"arrays": ArrayRecord([MEAN]), "config": config})
    reply = client_app.train(request("train", content), context)
    (mean,) = reply.content["arrays"].to_numpy_ndarrays()  # type: ignore[union-attr]
    assert np.allclose(mean, expected().mean)  # learnt from the fixed precision


def legacy_train(**extra: float) -> Message:
    """What a SecAgg+ round's train message holds for the ClientApp: the weights, and the
    run's fixed precision in the config."""
    fitins = FitIns(ndarrays_to_parameters([MEAN]), {**settings(**extra), **FIXED})  # type: ignore[dict-item]
    return request("train", compat.fitins_to_recorddict(fitins, True))


def test_under_secure_aggregation_training_returns_its_weights_change_clipped_one_weight(
    context: Context,
) -> None:
    change = expected().mean - MEAN
    size = float(np.linalg.norm(change))
    for norm in (size / 4, size * 4):  # clipped, and short enough already
        reply = client_app.train(legacy_train(**{"clipping-norm": norm}), context)
        fitted = compat.recorddict_to_fitres(reply.content, keep_input=True)
        (sent,) = parameters_to_ndarrays(fitted.parameters)
        assert np.allclose(sent, change * min(1.0, norm / size))
        assert fitted.num_examples == 1  # every site weighs the same
        assert fitted.metrics == {
            "alarm-labels": 2,
            "normal-labels": 2,
            "site-id": "s1",
            "agent-id": "pi-1",
        }


def test_a_secure_round_without_a_clipping_norm_is_refused(context: Context) -> None:
    # Without it no quantization range holds the change: nothing is sent.
    with pytest.raises(ValueError, match="clipping norm"):
        client_app.train(legacy_train(), context)


def test_evaluation_sends_figures_only_in_both_formats(context: Context) -> None:
    posterior = logreg.Posterior.of(MEAN, PRECISION)
    xs = np.array([[1, 1, 0], [1, 0, 1], [1, 1, 1], [1, 0, 0]], dtype=float)
    truth = logreg.evaluate(posterior, xs, np.array([True, False, True, False]), 0.5)
    content = RecordDict(
        {"arrays": ArrayRecord([MEAN, PRECISION]), "config": ConfigRecord(settings())}
    )
    reply = client_app.evaluate(request("evaluate", content), context)
    assert list(reply.content) == ["metrics"]
    assert reply.content["metrics"]["accuracy"] == truth.accuracy  # type: ignore[index]
    evaluateins = EvaluateIns(ndarrays_to_parameters([MEAN]), {**settings(), **FIXED})  # type: ignore[dict-item]
    legacy = request("evaluate", compat.evaluateins_to_recorddict(evaluateins, True))
    scored = compat.recorddict_to_evaluateres(client_app.evaluate(legacy, context).content)
    assert scored.loss == pytest.approx(truth.log_loss) and scored.num_examples == 4
    assert scored.metrics["alarm-recall"] == truth.alarm_recall
    assert not reply.content.array_records


def test_a_site_with_too_few_examples_declines(context: Context) -> None:
    context.node_config["min-examples"] = 5
    with pytest.raises(client_app.NotEnoughExamples, match="4 examples of feature version 7"):
        client_app.train(legacy_train(**{"clipping-norm": 1.0}), context)


def test_only_the_secagg_protocols_messages_go_to_flowers_mod(context: Context) -> None:
    passed: list[Message] = []

    def call_next(message: Message, _: Context) -> Message:
        passed.append(message)
        return message

    plain = request("train", RecordDict({"arrays": ArrayRecord([MEAN, PRECISION])}))
    assert client_app.secure_aggregation_mod(plain, context, call_next) is plain
    # A SecAgg+ message goes to Flower's mod, which checks the protocol's stage itself.
    secagg = request("train", RecordDict({RECORD_KEY_CONFIGS: ConfigRecord({"stage": "unmask"})}))
    with pytest.raises(ValueError, match="stage"):
        client_app.secure_aggregation_mod(secagg, context, call_next)
    assert passed == [plain]
