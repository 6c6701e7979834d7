"""The verdict classifier inside Home Assistant: one per agent, kept in HA storage.

It is the coordinator's ``EventClassifier`` (models.py): ``assess`` gives each event its
verdict before anything else sees it, ``async_learn`` learns the owner's labels (the
``label_event`` action and the notification buttons). The learning itself is the pure
``learning`` package; this module adds storage (``.storage/lan_guard.<entry_id>.classifier``,
written shortly after changes and on unload) in the home's time zone. A stored state of another
feature version, or a broken one, starts afresh and the reason is logged.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from homeassistant.core import HomeAssistant
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util

from .const import DOMAIN, SAVE_DELAY, Label
from .learning import federated
from .learning.classifier import Classifier
from .learning.features import FEATURE_VERSION
from .learning.model import ModelError, prior_assessment
from .models import LanGuardEvent

_LOGGER = logging.getLogger(__name__)

LEARNER_STORAGE_VERSION = 1


class Learner:
    """Verdicts for one agent's events, learned from the owner's labels, persisted."""

    def __init__(self, hass: HomeAssistant, entry_id: str) -> None:
        """Nothing is read until ``async_load``; until then the level prior decides."""
        self._store: Store[dict[str, Any]] = Store(
            hass,
            LEARNER_STORAGE_VERSION,
            f"{DOMAIN}.{entry_id}.classifier",
            private=True,
            atomic_writes=True,
        )
        self.classifier = Classifier(tz=dt_util.get_default_time_zone())
        self.reset_reason: str | None = None
        # The federation's global model in use as the prior (its version, round, sites,
        # privacy, weights, precision), or None: the hand-set prior.
        self.global_prior: dict[str, Any] | None = None

    async def async_load(self) -> None:
        """Restore the stored model, source history and recent features."""
        stored = await self._store.async_load()
        if stored is None:
            return
        self.classifier, self.reset_reason = Classifier.from_dict(
            stored, tz=dt_util.get_default_time_zone()
        )
        global_prior = stored.get("global_prior")
        if self.reset_reason is None and isinstance(global_prior, dict):
            self.global_prior = global_prior
        elif self.reset_reason is None and global_prior is not None:
            self.reset_reason = "stored global model malformed: the hand-set prior is used"
        if self.reset_reason is not None:
            _LOGGER.warning("LAN Guard classifier: %s", self.reset_reason)
            self._schedule_save()

    # -- EventClassifier (models.py) ---------------------------------------------------------
    def assess(self, event: LanGuardEvent) -> dict[str, Any]:
        """The verdict of a new event: verdict, probability, what decided it. Should the
        classifier fail on an event, the level prior decides and the error is logged: the
        event itself goes on (it is never lost to the classifier)."""
        try:
            assessment = self.classifier.assess(event.payload)
        except (ArithmeticError, KeyError, TypeError, ValueError):
            _LOGGER.exception("LAN Guard classifier failed on event %s; level rule used", event.id)
            assessment = prior_assessment(event.level)
        self._schedule_save()
        return {**assessment.as_dict(), "feature_version": FEATURE_VERSION}

    async def async_learn(self, event: LanGuardEvent, label: Label) -> None:
        """Learn the owner's label of an event (it was assessed when it arrived)."""
        right = self.classifier.learn(event.id, label.value, event.payload)
        _LOGGER.debug(
            "Learned %s for event %s (the model had it %s)",
            label.value,
            event.id,
            "right" if right else "wrong",
        )
        self._schedule_save()

    # -- what the sensor and the actions use ---------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Label counts, prequential accuracy, and the prior: hand-set or the global model."""
        prior = "hand-set" if self.global_prior is None else "global model"
        return {**self.classifier.stats(), "prior": prior}

    def features_of(self, event_id: str) -> list[float] | None:
        """The feature vector the classifier took for a recent event (None: forgotten)."""
        return self.classifier.features_of(event_id)

    def reset(self) -> None:
        """Forget what the model learned (the source history stays; a global model in use
        stays the prior)."""
        self.classifier.reset_model()
        if self.global_prior is not None:
            model = self.classifier.model
            self.classifier.model = federated.replace_prior(
                model,
                federated.hand_set_prior(model),
                _arrays(self.global_prior),
                global_model=True,
            )
        self._schedule_save()

    def use_global_prior(self, payload: dict[str, Any]) -> None:
        """Make a (verified) global model the prior under the owner's own labels. Raises
        ModelError saying why it cannot be used: another feature version above all (the
        federation trains what the sites' integrations compute; a site on another version
        keeps its own prior until both match)."""
        model = payload["model"]
        version = model.get("feature_version") if isinstance(model, dict) else None
        if version != FEATURE_VERSION:
            raise ModelError(
                f"global model of feature version {version!r}, this integration computes "
                f"feature version {FEATURE_VERSION}: not used (the hand-set prior stays)"
            )
        new = federated.prior_of(model)
        current = self.classifier.model
        old = (
            _arrays(self.global_prior)
            if self.global_prior is not None
            else federated.hand_set_prior(current)
        )
        self.classifier.model = federated.replace_prior(current, old, new, global_model=True)
        self.global_prior = {
            key: payload[key] for key in ("version", "round", "run_id", "sites", "privacy")
        } | {"weights": new[0].tolist(), "precision": new[1].tolist()}
        self._schedule_save()

    def export(self) -> dict[str, Any]:
        """Weights and counts only (raises ModelError with too few labels)."""
        return self.classifier.model.export()

    def merge(self, exported: dict[str, Any]) -> None:
        """Merge another home's exported model (raises ModelError when it does not fit)."""
        self.classifier.merge(exported)
        self._schedule_save()

    # -- storage -------------------------------------------------------------------------
    def _to_dict(self) -> dict[str, Any]:
        return {**self.classifier.to_dict(), "global_prior": self.global_prior}

    def _schedule_save(self) -> None:
        self._store.async_delay_save(self._to_dict, SAVE_DELAY)

    async def async_flush(self) -> None:
        """Write now (on unload)."""
        await self._store.async_save(self._to_dict())

    async def async_remove(self) -> None:
        """Delete the stored state (the entry was removed)."""
        await self._store.async_remove()


def _arrays(prior: dict[str, Any]) -> federated.Prior:
    """The mean and precision of a stored global prior."""
    return (
        np.asarray(prior["weights"], dtype=np.float64),
        np.asarray(prior["precision"], dtype=np.float64),
    )


__all__ = ["Learner", "ModelError"]
