"""The verdict classifier inside Home Assistant: one per agent, kept in HA storage.

It is the coordinator's ``EventClassifier`` (models.py): ``assess`` gives each event its
verdict before anything else sees it (asking the owner about the few events whose answer
teaches most, within the daily question budget), ``async_learn`` learns the owner's labels (the
``label_event`` action and the notification buttons) and ``async_learn_id`` the answer to a
notification whose event the event history no longer holds. The learning itself is the pure
``learning`` package; this module adds storage (``.storage/lan_guard.<entry_id>.classifier``,
written shortly after changes and on unload), the home's time zone and the agent's hosts
inventory (how long each device has been on the LAN). A stored state of another feature
version, or a broken one, starts afresh and the reason is logged.

For the notification code (``notifications.IncidentNotifier``), ``notified`` gives the push
decision of an event (``learning.policy.PushPolicy``: one push per incident, one per escalated
level, silent updates), ``shown`` keeps the event a notification shows answerable, and
``expired_questions`` lists the questions to withdraw quietly (``withdrawn`` when their
notification went).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from homeassistant.core import HomeAssistant
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util

from .const import DOMAIN, SAVE_DELAY, Label
from .learning import federated
from .learning.classifier import MODEL_RESET, Classifier
from .learning.features import FEATURE_VERSION
from .learning.model import ModelError, rule_assessment
from .learning.policy import DEFAULT_QUESTIONS_PER_DAY, Push, PushPolicy, QuestionPolicy
from .models import LanGuardEvent

_LOGGER = logging.getLogger(__name__)

LEARNER_STORAGE_VERSION = 1

HostsSource = Callable[[], Mapping[str, Any] | None]


class Learner:
    """Verdicts for one agent's events, learned from the owner's labels, persisted."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry_id: str,
        *,
        hosts: HostsSource | None = None,
        questions_per_day: int = DEFAULT_QUESTIONS_PER_DAY,
    ) -> None:
        """Nothing is read until ``async_load``; until then a fresh model decides.
        ``hosts`` returns the agent's latest retained hosts payload (or None)."""
        self._store: Store[dict[str, Any]] = Store(
            hass,
            LEARNER_STORAGE_VERSION,
            f"{DOMAIN}.{entry_id}.classifier",
            private=True,
            atomic_writes=True,
        )
        self._hosts = hosts or (lambda: None)
        self._hosts_seen: Mapping[str, Any] | None = None
        self._questions_per_day = questions_per_day
        self.classifier = Classifier(
            tz=dt_util.get_default_time_zone(), questions=self._question_policy()
        )
        self.pushes = PushPolicy()
        self.reset_reason: str | None = None
        # The federation's global model in use as the prior (its version, round, sites,
        # privacy, weights, precision), or None: the hand-set prior.
        self.global_prior: dict[str, Any] | None = None

    def _question_policy(self) -> QuestionPolicy:
        return QuestionPolicy(per_day=self._questions_per_day)

    async def async_load(self) -> None:
        """Restore the stored model, source history, kept features and push state."""
        stored = await self._store.async_load()
        if stored is None:
            return
        self.classifier, self.reset_reason = Classifier.from_dict(
            stored, tz=dt_util.get_default_time_zone(), questions=self._question_policy()
        )
        try:
            self.pushes = PushPolicy.from_dict(stored["pushes"])
        except (KeyError, TypeError, ValueError):
            self.pushes = PushPolicy()
        self._load_global_prior(stored)
        if self.reset_reason is not None:
            _LOGGER.warning("LAN Guard classifier: %s", self.reset_reason)
            self._schedule_save()

    def _load_global_prior(self, stored: Mapping[str, Any]) -> None:
        """The global model in use, if any. It is the prior of the stored own model (of this
        feature version only); should that model have started afresh, it becomes its prior
        again. A malformed one cannot be taken out of the own model: the model starts afresh
        on the hand-set prior, and the reason is logged."""
        global_prior = stored.get("global_prior")
        if global_prior is None or stored.get("feature_version") != FEATURE_VERSION:
            return
        reasons = [self.reset_reason] if self.reset_reason else []
        try:
            if not isinstance(global_prior, dict):
                raise TypeError("not an object")
            if MODEL_RESET in (self.reset_reason or ""):
                self.classifier.replace_prior(
                    federated.hand_set_prior(self.classifier.own), _arrays(global_prior)
                )
            else:
                federated.replace_prior(  # the same checks, the result unused
                    self.classifier.own, _arrays(global_prior), _arrays(global_prior)
                )
        except (KeyError, TypeError, ValueError) as err:
            self.classifier.reset_model()
            reasons.append(
                f"stored global model malformed ({err}): the model starts afresh on the "
                "hand-set prior"
            )
            self.reset_reason = "; ".join(reasons)
            return
        self.global_prior = global_prior

    # -- EventClassifier (models.py) ---------------------------------------------------------
    def assess(self, event: LanGuardEvent) -> dict[str, Any]:
        """The verdict of a new event: verdict, probability, what decided it and on how many
        labels. Should the classifier fail on an event, the level rule decides and the error
        is logged: the event itself goes on (it is never lost to the classifier)."""
        try:
            self._observe_hosts()
            assessment = self.classifier.assess(event.payload)
        except (ArithmeticError, KeyError, TypeError, ValueError):
            _LOGGER.exception("LAN Guard classifier failed on event %s; level rule used", event.id)
            assessment = rule_assessment(event.level)
        self._schedule_save()
        return {**assessment.as_dict(), "feature_version": FEATURE_VERSION}

    def _observe_hosts(self) -> None:
        """Learn from the agent's latest hosts payload when it changed (when devices joined)."""
        payload = self._hosts()
        if payload is None or payload is self._hosts_seen:
            return
        self._hosts_seen = payload
        hosts = payload.get("hosts")
        if isinstance(hosts, list):
            self.classifier.history.observe_hosts(h for h in hosts if isinstance(h, Mapping))

    async def async_learn(self, event: LanGuardEvent, label: Label) -> None:
        """Learn the owner's label of an event (it was assessed when it arrived); the same
        answer again changes nothing, a different one replaces it."""
        right = self.classifier.learn(event.id, label.value, event.payload)
        self._log_learned(event.id, label, right)
        self._schedule_save()

    async def async_learn_id(self, event_id: str, label: Label) -> bool:
        """Learn the answer to a notification whose event the event history no longer holds,
        from the features kept for it. False when this classifier does not know the event (it
        came too late even for those, or it is another agent's)."""
        try:
            right = self.classifier.learn(event_id, label.value)
        except KeyError:
            return False
        self._log_learned(event_id, label, right)
        self._schedule_save()
        return True

    def can_learn(self, event_id: str) -> bool:
        """Whether a label of ``event_id`` can be learned without the event itself."""
        return self.classifier.can_learn(event_id)

    @staticmethod
    def _log_learned(event_id: str, label: Label, right: bool | None) -> None:
        if right is None:
            _LOGGER.debug("Event %s was already labelled %s", event_id, label.value)
            return
        _LOGGER.debug(
            "Learned %s for event %s (the model had it %s)",
            label.value,
            event_id,
            "right" if right else "wrong",
        )

    # -- what the notification code uses ---------------------------------------------------
    def notified(self, event: LanGuardEvent, verdict: str) -> Push:
        """The push decision for an event judged ``verdict`` (the classifier's, or the notify
        level's while the level rule decides): push with sound, update silently, or nothing;
        an event its incident's notification carries stays answerable."""
        push = self.pushes.decide(
            event.incident_id, verdict, event.level, event.received_at.timestamp()
        )
        if push.action != "none":
            self.classifier.keep(event.id)
        self._schedule_save()
        return push

    def shown(self, event_id: str) -> None:
        """A notification shows ``event_id`` with its buttons: keep it answerable."""
        if self.classifier.keep(event_id):
            self._schedule_save()

    def withdrawn(self, incident_id: str) -> None:
        """The incident's notification was withdrawn: its next alarm pushes afresh."""
        self.pushes.withdraw(incident_id)
        self._schedule_save()

    def expired_questions(self) -> list[str]:
        """Event ids of questions nobody answered in time (to withdraw quietly)."""
        gone = self.classifier.questions.expire(dt_util.utcnow().timestamp())
        if gone:
            self._schedule_save()
        return gone

    # -- what the sensor and the actions use ---------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Label counts, prequential accuracy, imports, what decides, and the prior:
        hand-set or the global model."""
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
            self.classifier.replace_prior(
                federated.hand_set_prior(self.classifier.own), _arrays(self.global_prior)
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
        old = (
            _arrays(self.global_prior)
            if self.global_prior is not None
            else federated.hand_set_prior(self.classifier.own)
        )
        self.classifier.replace_prior(old, new)
        self.global_prior = {
            key: payload[key] for key in ("version", "round", "run_id", "sites", "privacy")
        } | {"weights": new[0].tolist(), "precision": new[1].tolist()}
        self._schedule_save()

    def export(self) -> dict[str, Any]:
        """This home's own model: id, weights and counts (raises ModelError with too few
        labels)."""
        return self.classifier.export()

    def merge(self, exported: dict[str, Any]) -> bool:
        """Import another home's exported model; False when that very model was imported
        already (nothing changes). Raises ModelError when it does not fit."""
        changed = self.classifier.merge(exported)
        if changed:
            self._schedule_save()
        return changed

    # -- storage -------------------------------------------------------------------------
    def _data(self) -> dict[str, Any]:
        return {
            **self.classifier.to_dict(),
            "pushes": self.pushes.to_dict(),
            "global_prior": self.global_prior,
        }

    def _schedule_save(self) -> None:
        self._store.async_delay_save(self._data, SAVE_DELAY)

    async def async_flush(self) -> None:
        """Write now (on unload)."""
        await self._store.async_save(self._data())

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
