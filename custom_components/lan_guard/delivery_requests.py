"""Delivery at run time: the tracker (``delivery.py``) fed with what arrives from one agent,
its replay requests sent, its next look timed, its lost events told to the owner.

The coordinator hands over events (``take``: process it or not), the agent's state, command
results and (re)subscriptions; everything else happens here. The tracker is stored with the
event history, so what was processed and what was lost survive restarts.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from homeassistant.core import CALLBACK_TYPE, HassJob, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.event import async_call_later
from homeassistant.util import dt as dt_util

from . import notifications
from .const import ACTION_REPLAY, CONF_AGENT_ID, DOMAIN
from .delivery import DeliveryTracker, Verdict
from .history import EventHistory

if TYPE_CHECKING:
    from homeassistant.config_entries import ConfigEntry

_LOGGER = logging.getLogger(__name__)

PublishCommand = Callable[[dict[str, Any]], Awaitable[None]]
"""Stamps, signs and publishes a command to the agent (the coordinator's)."""


def _now() -> float:
    return dt_util.utcnow().timestamp()


class DeliveryRequests:
    """Follows one agent's event numbers and asks it for what Home Assistant missed."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry,
        history: EventHistory,
        publish: PublishCommand,
        connected: Callable[[], bool],
    ) -> None:
        """Nothing is asked before the first (re)subscription or news from the agent."""
        self.hass = hass
        self.entry = entry
        self.history = history
        self._publish = publish
        self._connected = connected
        self._agent_id: str = entry.data[CONF_AGENT_ID]
        self._timer: CALLBACK_TYPE | None = None
        self._timer_at: float | None = None

    @property
    def tracker(self) -> DeliveryTracker:
        """The delivery state (it lives with the history, which stores it)."""
        return self.history.delivery

    # ------------------------------------------------------------------ what arrives

    @callback
    def take(self, event: dict[str, Any]) -> bool:
        """Whether to process an event that carries a seq (False: a duplicate, or from a
        store the agent replaced)."""
        epoch = self.tracker.epoch
        verdict = self.tracker.event(
            event["epoch"], event["seq"], _now(), known_id=event["id"] in self.history
        )
        self._log_new_store(epoch)
        if verdict is Verdict.NEW:
            return True
        _LOGGER.debug(
            "Dropped event %s (seq %d of %s): %s",
            event["id"],
            event["seq"],
            event["epoch"],
            verdict.value,
        )
        self.check()
        return False

    @callback
    def processed(self) -> None:
        """An event taken was processed (and stored with the history)."""
        self._report_gaps()
        self.check()

    @callback
    def state(self, state: dict[str, Any]) -> None:
        """The agent's state: the newest seq it created, the oldest it still keeps."""
        epoch = self.tracker.epoch
        self.tracker.state(state["epoch"], state["last_seq"], state["oldest_seq"], _now())
        self._log_new_store(epoch)
        self._changed()

    @callback
    def result(self, result: dict[str, Any]) -> None:
        """A command result: the answer to our replay request, or someone else's."""
        request = self.tracker.request
        if request is None or result["id"] != request.command_id:
            return
        if result["ok"] and "replay" in result:
            self.tracker.replay_answer(result["replay"], _now())
        else:
            _LOGGER.debug("Agent %s refused a replay: %s", self._agent_id, result["error"])
            self.tracker.replay_refused(_now())
        self._changed()

    @callback
    def resubscribed(self) -> None:
        """Home Assistant (re)subscribed to the agent's topics (a clean session)."""
        self.tracker.resubscribed(_now())
        self.check()

    # ------------------------------------------------------------------ asking

    @callback
    def check(self) -> None:
        """Ask the agent for missing events when it is time; come back when it may be."""
        now = _now()
        ask = self.tracker.want_replay(now)
        if ask is not None and self._connected():
            after_seq, through_seq = ask
            command: dict[str, Any] = {
                "id": uuid.uuid4().hex,
                "action": ACTION_REPLAY,
                "after_seq": after_seq,
            }
            if through_seq is not None:
                command["through_seq"] = through_seq
            self.tracker.asked(command["id"], after_seq, now)
            _LOGGER.debug("Asking agent %s for its events: %s", self._agent_id, command)
            self.entry.async_create_background_task(
                self.hass, self._async_send(command), f"{DOMAIN} replay {self._agent_id}"
            )
        self._schedule(self.tracker.next_check())

    async def _async_send(self, command: dict[str, Any]) -> None:
        try:
            await self._publish(command)
        except HomeAssistantError as err:  # asked again when the request times out
            _LOGGER.debug("Could not ask agent %s for a replay: %s", self._agent_id, err)

    @callback
    def cancel(self) -> None:
        """Stop timing (the entry unloads)."""
        if self._timer is not None:
            self._timer()
            self._timer = None
        self._timer_at = None

    def _schedule(self, when: float | None) -> None:
        if when == self._timer_at:
            return
        self.cancel()
        if when is not None:
            self._timer_at = when
            self._timer = async_call_later(
                self.hass,
                max(when - _now(), 0.0) + 0.05,
                HassJob(self._async_due, cancel_on_shutdown=True),
            )

    @callback
    def _async_due(self, _now_: datetime) -> None:
        self._timer, self._timer_at = None, None
        self.check()

    # ------------------------------------------------------------------ telling

    def _log_new_store(self, before: str | None) -> None:
        if before is not None and self.tracker.epoch != before:
            _LOGGER.warning(
                "Agent %s started a new event store (epoch %s after %s): its events are taken"
                " from seq 1; what the old store had not delivered cannot be fetched",
                self._agent_id,
                self.tracker.epoch,
                before,
            )

    def _changed(self) -> None:
        self.history.schedule_save()
        self._report_gaps()
        self.check()

    def _report_gaps(self) -> None:
        """Events gone for good: logged, counted (diagnostics), notified. Never silently."""
        gaps = self.tracker.take_gaps()
        if not gaps:
            return
        lost = self.tracker.lost
        for gap in gaps:
            _LOGGER.warning(
                "Agent %s: %d event(s) lost (seq %d to %d of store %s): the agent no longer"
                " had them when Home Assistant asked (%d lost in total)",
                self._agent_id,
                gap.count,
                gap.first,
                gap.last,
                gap.epoch,
                lost,
            )
        self.history.schedule_save()
        self.entry.async_create_task(
            self.hass,
            notifications.async_notify_lost(self.hass, self.entry, gaps, lost),
            f"{DOMAIN} lost events {self._agent_id}",
        )
