"""Federated learning, the home's side: contributed labels out, the global model in.

With the owner's consent (the option "contribute my labels to my provider's federated model",
off by default) each label the owner gives is sent to this agent's node as a training example:
the feature version, the feature vector the classifier took and the label, signed for the
agent's ``training/example`` topic, on the site's own broker (no bridge forwards
``training/#``). Nothing else: no address, name, time or evidence. The agent's node trains
the provider's model on them with Flower; "Delete contributed examples" asks it to forget them
all (``training/delete``).

The provider's global model arrives retained on ``site/global_model`` (bridged in from the
PSOC), signed with the site's key for this agent. A verified one that is newer than the one in
use becomes the classifier's prior (``Learner.use_global_prior``); one of another feature
version is refused with a clear message, kept for the sensor. Only a home that contributes uses
the global model: a home that opts out keeps learning on its own.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from homeassistant.components import mqtt
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers.json import json_dumps
from homeassistant.util import dt as dt_util

from .const import (
    CONF_CONTRIBUTE_LABELS,
    CONF_SIGNING_KEY,
    SUB_TRAINING_DELETE,
    SUB_TRAINING_EXAMPLE,
    TOPIC_SITE_GLOBAL_MODEL,
    Label,
)
from .coordinator import LanGuardCoordinator
from .intake import MAX_RETAINED_BYTES, PayloadRefused, loads
from .learner import Learner, ModelError
from .learning.features import FEATURE_VERSION
from .models import LanGuardEvent
from .signing import PayloadVerifier, SignatureError, sign, signing_key

_LOGGER = logging.getLogger(__name__)

_GLOBAL_FIELDS = ("version", "round", "run_id", "sites", "privacy", "model")


class Federation:
    """One agent's link to the federated model: examples out, global model in."""

    def __init__(
        self, hass: HomeAssistant, coordinator: LanGuardCoordinator, learner: Learner
    ) -> None:
        """Nothing is sent nor subscribed until ``async_start``."""
        self.hass = hass
        self.coordinator = coordinator
        self.learner = learner
        options = coordinator.entry.options
        self.contribute: bool = bool(options.get(CONF_CONTRIBUTE_LABELS, False))
        # Without a key nothing is sent nor received (``active`` is False).
        self._key = signing_key(options.get(CONF_SIGNING_KEY) or "")
        self._verifier = PayloadVerifier(self._key, coordinator.agent_id)
        self.contributed = 0
        self.refused: str | None = None  # why the last global model was not used
        self._unsubscribe: list[CALLBACK_TYPE] = []

    @property
    def active(self) -> bool:
        """Contributing needs the signing key: examples and the model are signed."""
        return self.contribute and bool(self._key)

    async def async_start(self) -> None:
        """Listen for labels and the global model (only when the owner contributes)."""
        if self.contribute and not self._key:
            self.refused = "contributing needs the shared signing key (options)"
            _LOGGER.warning("LAN Guard federation: %s", self.refused)
        if not self.active:
            return
        self._unsubscribe.append(self.coordinator.async_add_label_listener(self._async_label))
        self._unsubscribe.append(
            await mqtt.async_subscribe(
                self.hass,
                f"{self.coordinator.base_topic}/{TOPIC_SITE_GLOBAL_MODEL}",
                self._async_global_model,
                qos=1,
                encoding=None,
            )
        )

    @callback
    def async_stop(self) -> None:
        """Stop listening."""
        while self._unsubscribe:
            self._unsubscribe.pop()()

    async def _async_publish(self, sub: str, payload: dict[str, Any]) -> None:
        signed = sign(
            payload, self._key, dt_util.utcnow().timestamp(), self.coordinator.agent_id, sub
        )
        await mqtt.async_publish(
            self.hass, f"{self.coordinator.base_topic}/{sub}", json_dumps(signed), qos=1
        )

    async def _async_label(self, event: LanGuardEvent, label: Label) -> None:
        """The owner labelled an event: its features and the label to the agent's node."""
        features = self.learner.features_of(event.id)
        if features is None:
            _LOGGER.debug("Event %s is no longer cached: its label is not contributed", event.id)
            return
        await self._async_publish(
            SUB_TRAINING_EXAMPLE,
            {
                "schema": 1,
                "id": event.id[:64],
                "feature_version": FEATURE_VERSION,
                "features": features,
                "label": label.value,
            },
        )
        self.contributed += 1
        self.coordinator.async_update_listeners()

    async def async_delete_contributed(self) -> None:
        """Ask the agent's node to forget every example this home contributed."""
        await self._async_publish(SUB_TRAINING_DELETE, {"schema": 1, "id": secrets.token_hex(16)})
        self.contributed = 0
        self.coordinator.async_update_listeners()

    @callback
    def _async_global_model(self, msg: mqtt.ReceiveMessage) -> None:
        """A global model arrived: verify, check, use; every refusal is logged and shown."""
        try:
            payload = loads(msg.payload, MAX_RETAINED_BYTES)
            if not isinstance(payload, dict) or any(k not in payload for k in _GLOBAL_FIELDS):
                raise ModelError("not a global model payload")
            if payload.get("agent_id") != self.coordinator.agent_id:
                raise ModelError("a global model for another agent")
            # Retained and signed once by the PSOC: no freshness window, but never older
            # than the one accepted last (a replayed old model is refused).
            self._verifier.verify_retained(TOPIC_SITE_GLOBAL_MODEL, payload)
            current = self.learner.global_prior
            version = payload["version"]
            if not isinstance(version, int) or isinstance(version, bool):
                raise ModelError("the global model's version is not an integer")
            if current is not None and version <= int(current["version"]):
                return  # the one in use (a reconnect re-delivers it) or an older one
            self.learner.use_global_prior(payload)
        except (PayloadRefused, SignatureError, ModelError, KeyError, TypeError) as err:
            self.refused = str(err)
            _LOGGER.warning("LAN Guard global model refused: %s", err)
        else:
            self.refused = None
            _LOGGER.info("LAN Guard classifier: global model version %s in use", version)
        self.coordinator.async_update_listeners()
