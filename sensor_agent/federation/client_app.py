"""The Flower ClientApp the agent node's SuperNode runs: trains the shared model on local examples.

The server sends the global model as two arrays, the weights' mean and precision (the
integration's model, :mod:`.logreg`), and a config: the feature version it trains, the verdict
cut-off and the precision floor (below which no precision may fall; it is mended before use).
When updates are clipped (differential privacy, secure aggregation) it sends the weights only
and the run's fixed precision (``prior-precision``, the initial model's) in the config: the
clipping norm and the noise then apply to the weights, not to a matrix of thousands of
numbers that would drown them. Training learns this site's examples of that feature version
from the global model and returns the new arrays (the same ones it got) with counts; evaluation
scores the global model on the same examples and returns the figures only. Neither sends an
example. A site with fewer than ``min-examples`` examples declines (an error reply the server
counts as a failure): with a handful of labels the precision matrix comes too close to the
examples themselves.

With secure aggregation (SecAgg+, the PSOC's ``--secure-aggregation``) the server speaks
Flower's legacy message format and Flower's ``secaggplus_mod`` masks the reply: training then
returns the *change* it made to the global weights, clipped to the round's ``clipping-norm``
(each number of a vector that short lies in [-norm, norm], the range SecAgg+ quantizes), one
weight per site, and the PSOC learns only the sum of the sites' changes. The mod acts only
on the messages of that protocol; the same app answers both kinds of run.

Node config (``flower-supernode --node-config``, written by ``lan-guard-agent federate``):
``examples-db`` (the store's path), ``site-id``, ``agent-id`` and ``min-examples``.
"""

from __future__ import annotations

import time

import numpy as np
import numpy.typing as npt
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.client.mod import secaggplus_mod
from flwr.clientapp import ClientApp
from flwr.clientapp.typing import ClientAppCallable
from flwr.common import Code, EvaluateRes, FitRes, Scalar, Status, ndarrays_to_parameters
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS
from flwr.compat.common import recorddict_compat as compat
from flwr.supercore.differential_privacy import clip_inputs_inplace

from sensor_agent.federation import logreg
from sensor_agent.federation.examples import ExampleStore

DEFAULT_MIN_EXAMPLES = 10

# The legacy format's records (Flower's compat layer), which the SecAgg+ workflow speaks.
LEGACY_TRAIN = ("fitins.parameters", "fitins.config")
LEGACY_EVALUATE = ("evaluateins.parameters", "evaluateins.config")


def secure_aggregation_mod(
    message: Message, context: Context, call_next: ClientAppCallable
) -> Message:
    """Flower's SecAgg+ client for the messages of that protocol; anything else passes."""
    if RECORD_KEY_CONFIGS in message.content.config_records:
        return secaggplus_mod(message, context, call_next)
    return call_next(message, context)


app = ClientApp(mods=[secure_aggregation_mod])


class NotEnoughExamples(RuntimeError):
    """This site has too few examples of the feature version to take part."""


def _number(values: ConfigRecord | dict[str, object], key: str, default: float) -> float:
    """A number from a config record (anything else, or nothing, is the default)."""
    value = values.get(key, default)
    return (
        float(value) if isinstance(value, int | float) and not isinstance(value, bool) else default
    )


def _global_model(message: Message) -> tuple[logreg.Posterior, ConfigRecord, bool]:
    """The global model the server sent, its settings, and whether it sent the weights only
    (its precision is then the run's fixed ``prior-precision``, in the settings)."""
    arrays = message.content.array_records
    config = message.content.config_records
    for names in (LEGACY_TRAIN, LEGACY_EVALUATE):
        if names[0] in arrays:  # a secure aggregation run: Flower's legacy format
            sent = arrays[names[0]].to_numpy_ndarrays()
            settings = config.get(names[1], ConfigRecord())
            break
    else:
        sent = next(iter(arrays.values())).to_numpy_ndarrays()
        settings = next(iter(config.values())) if config else ConfigRecord()
    mean = sent[0]
    weights_only = len(sent) == 1
    if weights_only:
        fixed = settings.get("prior-precision", [])
        precision = np.asarray(fixed if isinstance(fixed, list) else [], dtype=np.float64)
        precision = (
            precision.reshape(len(mean), -1) if precision.size == mean.size**2 else precision
        )
    else:
        precision = sent[1]
    floor = _number(settings, "precision-floor", 0.0)
    posterior = logreg.Posterior.of(mean, logreg.mend_precision(precision, floor))
    return posterior, settings, weights_only


def _local_examples(
    context: Context, settings: ConfigRecord, dimension: int
) -> tuple[logreg.FloatArray, npt.NDArray[np.bool_]]:
    version = int(_number(settings, "feature-version", 0))
    store = ExampleStore(str(context.node_config["examples-db"]))
    try:
        xs, ys = store.arrays(version, dimension, time.time())
    finally:
        store.close()
    needed = int(_number(dict(context.node_config), "min-examples", DEFAULT_MIN_EXAMPLES))
    if len(ys) < needed:
        raise NotEnoughExamples(
            f"{len(ys)} examples of feature version {version} here, {needed} needed to take part"
        )
    return xs, ys


def _site(context: Context) -> ConfigRecord:
    """Who answered: the PSOC sends the round's model back to the sites that took part."""
    return ConfigRecord(
        {
            "site-id": str(context.node_config.get("site-id", "")),
            "agent-id": str(context.node_config.get("agent-id", "")),
        }
    )


def _secure_change(
    posterior: logreg.Posterior, trained: logreg.Posterior, settings: ConfigRecord
) -> list[logreg.FloatArray]:
    """What a secure aggregation run sums: the change to the global weights, clipped (by
    Flower's function) to the round's norm, which is also the range SecAgg+ quantizes."""
    norm = _number(settings, "clipping-norm", 0.0)
    if not norm > 0.0:
        raise ValueError("a secure aggregation round without a clipping norm")
    change = [trained.mean - posterior.mean]
    clip_inputs_inplace(change, norm)
    return change


@app.train()
def train(message: Message, context: Context) -> Message:
    """Learn the local examples from the global model; return the new mean and precision
    (with secure aggregation: the clipped change, see the module's docstring)."""
    posterior, settings, weights_only = _global_model(message)
    xs, ys = _local_examples(context, settings, posterior.dimension)
    trained = logreg.train(posterior.mean, posterior.precision, zip(xs, ys, strict=True))
    counts = {"alarm-labels": int(ys.sum()), "normal-labels": int((~ys).sum())}
    if LEGACY_TRAIN[0] in message.content.array_records:
        # One weight per site: what the PSOC's differential privacy needs.
        fitted = FitRes(
            Status(Code.OK, ""),
            ndarrays_to_parameters(_secure_change(posterior, trained, settings)),
            1,
            {
                **counts,
                "site-id": str(context.node_config.get("site-id", "")),
                "agent-id": str(context.node_config.get("agent-id", "")),
            },
        )
        return Message(content=compat.fitres_to_recorddict(fitted, False), reply_to=message)
    metrics = MetricRecord(
        {
            # FedAvg's weights: by examples, or one per site (what per-site differential
            # privacy needs, and what its accountant checks).
            "num-examples": len(ys),
            "sites": 1,
            **counts,
        }
    )
    sent = [trained.mean] if weights_only else [trained.mean, trained.precision]
    content = RecordDict(
        {
            "arrays": ArrayRecord(sent),
            "metrics": metrics,
            "site": _site(context),
        }
    )
    return Message(content=content, reply_to=message)


@app.evaluate()
def evaluate(message: Message, context: Context) -> Message:
    """Score the global model on the local examples: the figures leave, the examples do not."""
    posterior, settings, _ = _global_model(message)
    xs, ys = _local_examples(context, settings, posterior.dimension)
    alarm_from = _number(settings, "alarm-from", 0.5)
    figures = logreg.evaluate(posterior, xs, ys, alarm_from)
    scores: dict[str, Scalar] = {
        "accuracy": figures.accuracy,
        "log-loss": figures.log_loss,
        "alarm-recall": figures.alarm_recall,
        "false-alarm-rate": figures.false_alarm_rate,
    }
    if LEGACY_EVALUATE[0] in message.content.array_records:
        scored = EvaluateRes(Status(Code.OK, ""), figures.log_loss, figures.examples, scores)
        return Message(content=compat.evaluateres_to_recorddict(scored), reply_to=message)
    metrics = MetricRecord(
        {
            "num-examples": figures.examples,
            "sites": 1,
            "accuracy": figures.accuracy,
            "log-loss": figures.log_loss,
            "alarm-recall": figures.alarm_recall,
            "false-alarm-rate": figures.false_alarm_rate,
        }
    )
    return Message(content=RecordDict({"metrics": metrics}), reply_to=message)
