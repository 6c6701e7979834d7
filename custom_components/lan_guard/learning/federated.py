"""A global model as the home's prior: the federation's knowledge under the owner's own labels.

The model is a Gaussian over the weights. What the home's own labels added to it is the
difference between the model and the prior it started from (in natural parameters: precision
``P`` and ``P @ mean``); swapping the prior keeps exactly that difference:

    P'     = P - P_old + P_new
    P' m'  = P m - P_old m_old + P_new m_new

So the hand-set prior (the level rule and the domain knowledge) gives way to the global model
once one arrives, a newer global model replaces the older one, and the owner's labels are never
counted twice nor lost. Works on the models' stored form, so this module needs nothing of the
model's inside.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from .model import ModelError, OnlineLogisticModel

FloatArray = npt.NDArray[np.float64]
Prior = tuple[FloatArray, FloatArray]  # mean, precision


def prior_of(model: Mapping[str, Any]) -> Prior:
    """The mean and precision of a model in stored form (a global model as a prior)."""
    checked = OnlineLogisticModel.from_dict(model)  # feature version, shapes, positive definite
    return checked.mean.copy(), checked.precision.copy()


def hand_set_prior(model: OnlineLogisticModel) -> Prior:
    """The prior every fresh model starts from (the level rule plus domain knowledge)."""
    return model.blank().mean.copy(), model.blank().precision.copy()


def replace_prior(model: OnlineLogisticModel, old: Prior, new: Prior) -> OnlineLogisticModel:
    """``model`` with its prior ``old`` swapped for ``new``, keeping the home's own evidence
    and label counts; raises ModelError when the result is no model (a prior of another
    size). The model decides with the new prior from the next event on (a prior decides from
    the first event, before any label of this home)."""
    (old_mean, old_precision), (new_mean, new_precision) = old, new
    if new_mean.shape != model.mean.shape or new_precision.shape != model.precision.shape:
        raise ModelError("a prior of another size than the model")
    precision = model.precision - old_precision + new_precision
    information = model.precision @ model.mean - old_precision @ old_mean
    information += new_precision @ new_mean
    try:
        mean = np.linalg.solve(precision, information)
    except np.linalg.LinAlgError as err:
        raise ModelError("the prior cannot be replaced: singular precision") from err
    data = model.to_dict()
    data["weights"] = [float(v) for v in mean]
    data["precision"] = [[float(v) for v in row] for row in (precision + precision.T) / 2.0]
    return OnlineLogisticModel.from_dict(data)
