"""Evacuation mode of one agent: isolate appliances and the culprit, then restore service.

The state machine (persisted in a ``Store`` after every step, so an HA restart in the
middle loses nothing)::

    idle --start--> active --every culprit left--> (auto restore) --> idle
                      |                       \\--> culprit_left --owner confirms--> idle
                      \\--owner stops / false alarm / unload --> idle

Starting records each chosen appliance's state *before* touching anything (write-ahead),
then quarantines the culprit and turns the appliances off at the same time. Restoring lifts
the quarantine and reproduces exactly the recorded states of what was on. Whatever cannot
be undone stays in the record (the switch stays on) and raises a repair issue.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import voluptuous as vol
from homeassistant.components import network
from homeassistant.const import STATE_OFF, STATE_UNAVAILABLE, STATE_UNKNOWN
from homeassistant.core import CALLBACK_TYPE, Event, HomeAssistant, State, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.state import async_reproduce_state
from homeassistant.helpers.storage import Store
from homeassistant.helpers.translation import async_get_translations
from homeassistant.util import dt as dt_util

from . import evacuation_notify as notify
from .const import (
    APPLIANCE_TIMEOUT,
    BACKEND_AGENT,
    BACKEND_ENTITY,
    COMMAND_TIMEOUT,
    CONF_AGENT_ID,
    CONF_EVACUATION_LEVEL,
    CONF_EVACUATION_RESTORE,
    CONF_EVACUATION_TRIGGER,
    CONF_ISOLATE_ENTITIES,
    CONF_PROTECTED_HOSTS,
    CONF_QUARANTINE_BACKEND,
    CONF_QUARANTINE_BLOCK_STATE,
    CONF_QUARANTINE_ENTITIES,
    DEFAULT_EVACUATION_LEVEL,
    DOMAIN,
    EVACUATION_STORAGE_VERSION,
    EVENT_MOBILE_APP_NOTIFICATION_ACTION,
    RESTORE_AUTO,
    TRIGGER_LEVEL,
    TRIGGER_MANUAL,
    TRIGGER_VERDICT,
    Kind,
    Label,
)
from .models import LanGuardEvent, Verdict
from .payloads import parse_timestamp
from .quarantine import (
    AgentEnforcer,
    EntityBlocker,
    Outcome,
    ProtectedHosts,
    QuarantineBackend,
    interface_macs,
    parse_entity_map,
)
from .untrusted import DETAIL, inert, printable

if TYPE_CHECKING:
    from .coordinator import LanGuardConfigEntry, LanGuardCoordinator

_LOGGER = logging.getLogger(__name__)

# States that mean "not on": nothing to turn off, nothing to turn back on.
OFF_STATES = frozenset({STATE_OFF, STATE_UNAVAILABLE, STATE_UNKNOWN})
# How long a resumed evacuation waits for the MQTT subscription before re-asserting.
_RESUME_WAIT_S = 30.0
# Quarantine refusals that the next event of the same culprit would meet again.
_FINAL_REASONS = frozenset({"no_backend", "no_enforcer", "no_mapped_entity", "entity_missing"})
# Failures after which the command may still reach the agent (its ts stays valid 300 s).
_UNSURE_REASONS = frozenset({"timeout", "publish_failed"})
_KINDS = f"component.{DOMAIN}.entity.event.activity.state_attributes.event_type.state."


class Phase(StrEnum):
    """Where an evacuation stands."""

    IDLE = "idle"
    ACTIVE = "active"
    CULPRIT_LEFT = "culprit_left"  # every culprit left; waiting for the owner to confirm


class Reason(StrEnum):
    """Why evacuation started or ended (``common.evac_reason_<reason>``)."""

    EVENT = "event"
    VERDICT = "verdict"
    LABEL = "label"
    MANUAL = "manual"
    CULPRIT_LEFT = "culprit_left"
    OWNER = "owner"
    FALSE_ALARM = "false_alarm"
    UNLOAD = "unload"


def storage_key(entry_id: str) -> str:
    """The evacuation record's storage key of one agent."""
    return f"{DOMAIN}.evacuation.{entry_id}"


@dataclass(slots=True)
class Culprit:
    """A host quarantined (or refused) during an evacuation."""

    mac: str
    ip: str | None
    vendor: str | None = None
    hostname: str | None = None
    since: str | None = None  # the event's first_seen (agent clock), to judge "left"
    quarantine: dict[str, Any] | None = None  # the last Outcome
    in_force: bool = False
    left: bool = False
    # A quarantine that timed out (or whose publish failed) may be in force all the same.
    unsure: bool = False

    @classmethod
    def from_source(cls, source: dict[str, Any], since: str | None) -> Culprit:
        """From an event's ``source`` (or the service's mac/ip)."""
        return cls(
            source["mac"], source.get("ip"), source.get("vendor"), source.get("hostname"), since
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (storage, attributes)."""
        return {
            "mac": self.mac,
            "ip": self.ip,
            "vendor": self.vendor,
            "hostname": self.hostname,
            "since": self.since,
            "quarantine": self.quarantine,
            "in_force": self.in_force,
            "left": self.left,
            "unsure": self.unsure,
        }


@dataclass(slots=True)
class Evacuation:
    """The persisted record of the current evacuation (``phase`` idle: none)."""

    phase: Phase = Phase.IDLE
    reason: str | None = None
    started_at: str | None = None
    event: dict[str, Any] | None = None
    culprits: dict[str, Culprit] = field(default_factory=dict)
    # entity id -> {"state", "attributes"} as it was before evacuation touched it.
    appliances: dict[str, dict[str, Any]] = field(default_factory=dict)
    hold: bool = False  # the owner said "keep isolated": no automatic restore

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form kept in storage."""
        return {
            "phase": self.phase.value,
            "reason": self.reason,
            "started_at": self.started_at,
            "event": self.event,
            "culprits": [culprit.as_dict() for culprit in self.culprits.values()],
            "appliances": self.appliances,
            "hold": self.hold,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Evacuation:
        """Inverse of ``as_dict``."""
        culprits = [Culprit(**item) for item in data.get("culprits", [])]
        return cls(
            phase=Phase(data["phase"]),
            reason=data.get("reason"),
            started_at=data.get("started_at"),
            event=data.get("event"),
            culprits={culprit.mac: culprit for culprit in culprits},
            appliances=dict(data.get("appliances", {})),
            hold=bool(data.get("hold", False)),
        )


def _backend(
    hass: HomeAssistant, coordinator: LanGuardCoordinator, options: Any
) -> QuarantineBackend | None:
    kind = options.get(CONF_QUARANTINE_BACKEND, BACKEND_AGENT)
    if kind == BACKEND_AGENT:
        return AgentEnforcer(coordinator, COMMAND_TIMEOUT)
    if kind == BACKEND_ENTITY:
        mapping = parse_entity_map(options.get(CONF_QUARANTINE_ENTITIES, []))
        return EntityBlocker(hass, mapping, options.get(CONF_QUARANTINE_BLOCK_STATE, STATE_OFF))
    return None


class EvacuationManager:
    """Runs evacuation mode for one agent (one config entry)."""

    def __init__(
        self, hass: HomeAssistant, entry: LanGuardConfigEntry, coordinator: LanGuardCoordinator
    ) -> None:
        """Read the policy from the options; nothing runs until ``async_setup``."""
        self.hass = hass
        self.entry = entry
        self.coordinator = coordinator
        options = entry.options
        self.trigger: str = options.get(CONF_EVACUATION_TRIGGER, TRIGGER_LEVEL)
        self.level = int(options.get(CONF_EVACUATION_LEVEL, DEFAULT_EVACUATION_LEVEL))
        self.restore_policy: str = options.get(CONF_EVACUATION_RESTORE, RESTORE_AUTO)
        self.isolate: list[str] = list(options.get(CONF_ISOLATE_ENTITIES, []))
        self._protected_option: list[str] = list(options.get(CONF_PROTECTED_HOSTS, []))
        self.backend = _backend(hass, coordinator, options)
        self.record = Evacuation()
        self._store: Store[dict[str, Any]] = Store(
            hass, EVACUATION_STORAGE_VERSION, storage_key(entry.entry_id)
        )
        self._lock = asyncio.Lock()
        self._listeners: list[CALLBACK_TYPE] = []
        self._unsubscribe: list[CALLBACK_TYPE] = []
        self._ha_ips: list[str] = []
        self._ha_macs: list[str] = []
        self._hosts_checked: object = None
        self._quarantine_checked: object = None
        self._closing = False

    # ----------------------------------------------------------------- life cycle

    async def async_setup(self) -> None:
        """Load the record, follow the agent, and resume an evacuation cut by a restart."""
        if (data := await self._store.async_load()) is not None:
            self.record = Evacuation.from_dict(data)
        try:
            self._ha_ips = [str(ip) for ip in await network.async_get_enabled_source_ips(self.hass)]
        except HomeAssistantError as err:  # no address known: the options can protect it
            _LOGGER.warning("Could not read Home Assistant's own addresses: %s", err)
        # Its MACs too: a culprit can take over HA's IP, not its MAC as well.
        adapters = await network.async_get_adapters(self.hass)
        self._ha_macs = await self.hass.async_add_executor_job(
            interface_macs, [adapter["name"] for adapter in adapters]
        )
        coordinator = self.coordinator
        self._unsubscribe += [
            coordinator.async_add_event_listener(self._async_event),
            coordinator.async_add_label_listener(self._async_label),
            coordinator.async_add_listener(self._async_coordinator_updated),
            self.hass.bus.async_listen(
                EVENT_MOBILE_APP_NOTIFICATION_ACTION, self._async_notification_action
            ),
        ]
        if self.record.phase is not Phase.IDLE:
            self.entry.async_create_background_task(
                self.hass, self._async_resume(), f"{DOMAIN} resume evacuation"
            )

    async def async_unload(self) -> None:
        """Undo the isolation (the entry unloads); what cannot be undone raises an issue."""
        self._closing = True
        while self._unsubscribe:
            self._unsubscribe.pop()()
        async with self._transition():
            if self.record.phase is not Phase.IDLE:
                await self._async_restore(Reason.UNLOAD)
        if self.backend is not None:
            self.backend.async_close()

    # ----------------------------------------------------------------- state for entities

    @property
    def active(self) -> bool:
        """Evacuation mode is on (including "culprit left, waiting for the owner")."""
        return self.record.phase is not Phase.IDLE

    def attributes(self) -> dict[str, Any]:
        """What the switch shows."""
        record = self.record
        return {
            "phase": record.phase.value,
            "reason": record.reason,
            "started_at": record.started_at,
            "trigger_policy": self.trigger,
            "restore_policy": self.restore_policy,
            "hold": record.hold,
            "isolated": sorted(record.appliances),
            "culprits": [
                {key: value for key, value in culprit.as_dict().items() if key != "since"}
                for culprit in record.culprits.values()
            ],
        }

    @callback
    def async_add_listener(self, update: CALLBACK_TYPE) -> CALLBACK_TYPE:
        """Call ``update`` after every change."""
        self._listeners.append(update)
        return lambda: self._listeners.remove(update)

    @callback
    def _async_changed(self) -> None:
        for update in list(self._listeners):
            update()

    def protected(self) -> ProtectedHosts:
        """The hosts never isolated, as the agent and the options describe them now."""
        return ProtectedHosts.build(
            info=self.coordinator.info,
            ha_ips=self._ha_ips,
            ha_macs=self._ha_macs,
            protected=self._protected_option,
            allowlist=self.coordinator.allowlist,
        )

    # ----------------------------------------------------------------- transitions

    @asynccontextmanager
    async def _transition(self) -> AsyncIterator[None]:
        """One step at a time; a step that breaks half-way leaves a repair issue behind."""
        async with self._lock:
            try:
                yield
            except Exception:
                _LOGGER.exception("An evacuation step of %s failed", self._agent)
                self._async_changed()
                if self.active:
                    texts = await notify.Texts.async_load(self.hass)
                    items = ", ".join(
                        [
                            texts("evac_still_quarantined", culprit=_who(culprit))
                            for culprit in self.record.culprits.values()
                            if culprit.in_force
                        ]
                        + [self._name(entity_id) for entity_id in self.record.appliances]
                    )
                    notify.create_incomplete_issue(self.hass, self.entry, items or texts("none"))
                raise

    async def async_start(
        self,
        reason: Reason,
        source: dict[str, Any] | None = None,
        event: LanGuardEvent | None = None,
    ) -> None:
        """Enter evacuation mode (or add a culprit to the one running)."""
        async with self._transition():
            if self._closing:
                return
            await self._async_start(reason, source, event)

    async def async_stop(self, reason: Reason = Reason.OWNER) -> None:
        """The owner ends evacuation: lift quarantine, restore appliances."""
        async with self._transition():
            if self.record.phase is not Phase.IDLE:
                await self._async_restore(reason)

    async def async_culprit_left(self, mac: str) -> None:
        """The agent reports the culprit gone: restore (auto) or ask the owner (confirm)."""
        async with self._transition():
            record = self.record
            culprit = record.culprits.get(mac)
            if self._closing or record.phase is Phase.IDLE or culprit is None or culprit.left:
                return
            culprit.left = True
            texts = await notify.Texts.async_load(self.hass)
            message = texts("log_removed", culprit=_who(culprit))
            notify.log_entry(self.hass, message, self._entity_id())
            if not all(item.left for item in record.culprits.values()):
                await self._async_save()
                self._async_changed()
                return
            if self.restore_policy == RESTORE_AUTO and not record.hold:
                await notify.async_notify(
                    self.hass,
                    self.entry,
                    texts("evac_left_title"),
                    texts("evac_left_auto_message", culprit=_who(culprit), agent=self._agent),
                )
                await self._async_restore(Reason.CULPRIT_LEFT)
                return
            record.phase = Phase.CULPRIT_LEFT
            await self._async_save()
            self._async_changed()
            await notify.async_notify(
                self.hass,
                self.entry,
                texts("evac_left_title"),
                texts("evac_left_message", culprit=_who(culprit), agent=self._agent),
                [(notify.Choice.RESTORE, texts("action_restore"))],
            )

    async def async_keep(self) -> None:
        """The owner says "keep isolated": no automatic restore for this evacuation."""
        async with self._transition():
            if self.record.phase is Phase.IDLE:
                return
            self.record.hold = True
            await self._async_save()
            self._async_changed()

    # ----------------------------------------------------------------- start

    async def _async_start(
        self, reason: Reason, source: dict[str, Any] | None, event: LanGuardEvent | None
    ) -> None:
        record = self.record
        new = record.phase is Phase.IDLE
        again = False
        culprit: Culprit | None = None
        if source is not None:
            culprit = record.culprits.get(source["mac"])
            if culprit is None:
                since = event.payload["first_seen"] if event is not None else None
                culprit = Culprit.from_source(source, since)
                record.culprits[culprit.mac] = culprit
            elif not culprit.left and (culprit.in_force or _final(culprit.quarantine)):
                culprit = None  # isolated already, or never to be: nothing new
            else:  # back after leaving, or a transient failure to retry
                again = True
                culprit.left = False
                culprit.ip = source.get("ip") or culprit.ip  # DHCP may have moved it
        if not new and culprit is None:
            return
        to_turn_off: list[str] = []
        if new:
            record.phase, record.reason = Phase.ACTIVE, reason.value
            record.started_at = dt_util.utcnow().isoformat()
            record.event = event.event_data() if event is not None else None
            record.hold = False
            # Write-ahead: the prior states are known before anything is switched off.
            for entity_id in self.isolate:
                if (state := self.hass.states.get(entity_id)) is None:
                    continue
                record.appliances[entity_id] = {
                    "state": state.state,
                    "attributes": dict(state.attributes),
                }
                if state.state not in OFF_STATES:
                    to_turn_off.append(entity_id)
        record.phase = Phase.ACTIVE

        async def isolate() -> list[str]:
            await self._async_save()
            return await self._async_switch(to_turn_off, "turn_off")

        quarantine = self._async_quarantine(culprit) if culprit is not None else _nothing()
        failed, _ = await asyncio.gather(isolate(), quarantine)
        await self._async_save()
        self._async_changed()
        if again and culprit is not None and not culprit.in_force:
            return  # a retry that failed again: the owner was told the first time
        await self._async_tell_started(
            new, reason, culprit, to_turn_off, failed=failed, again=again
        )

    async def _async_quarantine(self, culprit: Culprit) -> Outcome:
        refusal = self.protected().reason(culprit.mac, culprit.ip)
        if refusal is not None:
            outcome = Outcome(False, f"protected_{refusal}")
        elif self.backend is None:
            outcome = Outcome(False, "no_backend")
        else:
            outcome = await self.backend.async_quarantine(culprit.mac, culprit.ip)
        culprit.quarantine = outcome.as_dict()
        culprit.in_force = outcome.ok
        culprit.unsure = not outcome.ok and (culprit.unsure or outcome.reason in _UNSURE_REASONS)
        if not outcome.ok:
            _LOGGER.warning(
                "Culprit %s (%s) not quarantined: %s %s",
                culprit.mac,
                culprit.ip,
                outcome.reason,
                printable(outcome.detail),
            )
        return outcome

    async def _async_switch(self, entity_ids: list[str], service: str) -> list[str]:
        """Call ``<domain>.<service>`` on each entity at once; the ones that failed."""

        async def call(entity_id: str) -> str | None:
            try:
                async with asyncio.timeout(APPLIANCE_TIMEOUT):
                    await self.hass.services.async_call(
                        entity_id.partition(".")[0],
                        service,
                        {"entity_id": entity_id},
                        blocking=True,
                    )
            except (HomeAssistantError, vol.Invalid, TimeoutError) as err:
                _LOGGER.warning("Could not %s %s: %s", service, entity_id, err or "timeout")
                return entity_id
            return None

        results = await asyncio.gather(*(call(entity_id) for entity_id in entity_ids))
        return [entity_id for entity_id in results if entity_id is not None]

    async def _async_tell_started(
        self,
        new: bool,
        reason: Reason,
        culprit: Culprit | None,
        turned_off: list[str],
        *,
        failed: list[str],
        again: bool,
    ) -> None:
        texts = await notify.Texts.async_load(self.hass)
        entity_id = self._entity_id()
        culprit_text = self._culprit_text(texts, culprit) if culprit else texts("evac_no_culprit")
        if new:
            isolated = [self._name(item) for item in turned_off if item not in failed]
            event_text = await self._async_event_text(texts)
            detected = texts(f"evac_reason_{reason.value}", event=event_text)
            notify.log_entry(self.hass, texts("log_detected", reason=detected), entity_id)
            notify.log_entry(
                self.hass,
                texts("log_isolated", appliances=", ".join(isolated) or texts("none")),
                entity_id,
            )
            lines = [
                texts("evac_started_message", agent=self._agent, reason=detected),
                texts("evac_isolated", appliances=", ".join(isolated) or texts("none")),
            ]
            if failed:
                names = ", ".join(self._name(item) for item in failed)
                lines.append(texts("evac_not_isolated", appliances=names))
            title = texts("evac_started_title")
        else:
            key = "evac_culprit_again_message" if again else "evac_culprit_added_message"
            lines = [texts(key, agent=self._agent)]
            title = texts("evac_culprit_added_title")
        lines.append(culprit_text)
        if culprit is not None:
            notify.log_entry(self.hass, texts("log_culprit", culprit=culprit_text), entity_id)
        await notify.async_notify(
            self.hass,
            self.entry,
            title,
            "\n".join(lines),
            [
                (notify.Choice.RESTORE, texts("action_restore")),
                (notify.Choice.KEEP, texts("action_keep")),
            ],
        )

    # ----------------------------------------------------------------- restore

    async def _async_restore(self, reason: Reason) -> None:
        """Lift quarantines and restore appliances; keep (and report) what cannot be undone."""
        record = self.record
        hass = self.hass
        # Release whatever may be in force: release is idempotent on the agent.
        listed = self._agent_quarantined()
        in_force = [
            culprit
            for culprit in record.culprits.values()
            if culprit.in_force or culprit.unsure or culprit.mac in listed
        ]
        outcomes = await asyncio.gather(*(self._async_release(culprit) for culprit in in_force))
        lifted = [c for c, outcome in zip(in_force, outcomes, strict=True) if outcome.ok]
        kept = [c for c, outcome in zip(in_force, outcomes, strict=True) if not outcome.ok]
        to_restore = {
            entity_id: snapshot
            for entity_id, snapshot in record.appliances.items()
            if snapshot["state"] not in OFF_STATES
        }
        failed = await self._async_reproduce(to_restore)
        texts = await notify.Texts.async_load(hass)
        restored = [self._name(entity_id) for entity_id in to_restore if entity_id not in failed]
        who = ", ".join(_who(culprit) for culprit in lifted) or texts("none")
        what = ", ".join(restored) or texts("none")
        entity_id = self._entity_id()
        if kept or failed:
            record.culprits = {culprit.mac: culprit for culprit in kept}
            record.appliances = {item: record.appliances[item] for item in failed}
            record.phase = Phase.ACTIVE
            await self._async_save()
            items = ", ".join(
                [texts("evac_still_quarantined", culprit=_who(culprit)) for culprit in kept]
                + [self._name(item) for item in failed]
            )
            notify.create_incomplete_issue(hass, self.entry, items)
            message = texts("evac_incomplete_message", items=items, lifted=who, restored=what)
            notify.log_entry(hass, message, entity_id)
            self._async_changed()
            await notify.async_notify(hass, self.entry, texts("evac_incomplete_title"), message)
            return
        self.record = Evacuation()
        await self._store.async_remove()
        notify.delete_incomplete_issue(hass, self.entry)
        message = texts(
            "evac_restored_message",
            reason=texts(f"evac_reason_{reason.value}", event=""),
            lifted=who,
            restored=what,
        )
        notify.log_entry(hass, texts("log_restored", lifted=who, restored=what), entity_id)
        self._async_changed()
        await notify.async_notify(hass, self.entry, texts("evac_restored_title"), message)

    def _agent_quarantined(self) -> set[str]:
        """The MACs the agent's retained quarantine payload lists (agent backend only)."""
        payload = self.coordinator.quarantine
        if not isinstance(self.backend, AgentEnforcer) or payload is None:
            return set()
        return {host["mac"] for host in payload["hosts"]}

    async def _async_release(self, culprit: Culprit) -> Outcome:
        if self.backend is None:  # the backend was switched off since: nothing to call
            outcome = Outcome(False, "no_backend")
        else:
            outcome = await self.backend.async_release(culprit.mac, culprit.ip)
        if not outcome.ok:
            culprit.quarantine = outcome.as_dict()
        return outcome

    async def _async_reproduce(self, snapshots: dict[str, dict[str, Any]]) -> list[str]:
        """Bring each entity back to its recorded state; the ones still off afterwards."""
        hass = self.hass
        states = [
            State(entity_id, snapshot["state"], snapshot["attributes"])
            for entity_id, snapshot in snapshots.items()
            if hass.states.get(entity_id) is not None
        ]
        try:
            async with asyncio.timeout(APPLIANCE_TIMEOUT):
                await async_reproduce_state(hass, states)
        except (HomeAssistantError, vol.Invalid, TimeoutError) as err:
            _LOGGER.warning("Could not restore every appliance at once: %s", err or "timeout")
        # A domain without reproduce_state (or one that failed) gets a plain turn_on.
        still_off = [
            entity_id
            for entity_id in snapshots
            if (state := hass.states.get(entity_id)) is None or state.state in OFF_STATES
        ]
        failed = set(await self._async_switch(still_off, "turn_on"))
        return [
            entity_id
            for entity_id in snapshots
            if entity_id in failed
            or (state := hass.states.get(entity_id)) is None
            or state.state in OFF_STATES
        ]

    async def _async_resume(self) -> None:
        """After a restart: isolation is re-asserted (appliances off, culprits quarantined)."""
        try:
            async with asyncio.timeout(_RESUME_WAIT_S):
                await self.coordinator.subscribed.wait()
        except TimeoutError:
            _LOGGER.warning("Resuming evacuation before the agent's topics are subscribed")
        async with self._transition():
            record = self.record
            if self._closing or record.phase is Phase.IDLE:
                return
            turn_off = [
                entity_id
                for entity_id, snapshot in record.appliances.items()
                if snapshot["state"] not in OFF_STATES
                and (state := self.hass.states.get(entity_id)) is not None
                and state.state not in OFF_STATES
            ]
            culprits = [c for c in record.culprits.values() if c.in_force or not c.left]
            await asyncio.gather(
                self._async_switch(turn_off, "turn_off"),
                *(self._async_quarantine(culprit) for culprit in culprits),
            )
            await self._async_save()
            self._async_changed()
            texts = await notify.Texts.async_load(self.hass)
            message = texts(
                "log_resumed",
                culprits=", ".join(self._culprit_text(texts, c) for c in culprits) or texts("none"),
            )
            notify.log_entry(self.hass, message, self._entity_id())

    # ----------------------------------------------------------------- what triggers it

    def should_start(self, event: LanGuardEvent) -> Reason | None:
        """The start policy: the reason to evacuate on ``event``, or None."""
        if self.trigger == TRIGGER_MANUAL or not event.is_threat:
            return None
        if self.coordinator.allowlist.contains(event.source):
            return None
        if self.trigger == TRIGGER_VERDICT and (verdict := event.verdict) is not None:
            return Reason.VERDICT if verdict is Verdict.ALARM else None
        # Level policy, and the verdict policy while no classifier gives verdicts.
        return Reason.EVENT if event.level >= self.level else None

    @callback
    def _async_event(self, event: LanGuardEvent) -> None:
        if event.kind is Kind.HOST_LEFT:
            if event.source["mac"] in self.record.culprits:
                self._schedule(self.async_culprit_left(event.source["mac"]), "left")
            return
        if (reason := self.should_start(event)) is not None:
            self._schedule(self.async_start(reason, event.source, event), "start")

    async def _async_label(self, event: LanGuardEvent, label: Label) -> None:
        """An owner's label: "alarm" evacuates (unless manual only), "normal" ends it."""
        if self._closing or not event.is_threat:
            return
        if label is Label.ALARM and self.trigger != TRIGGER_MANUAL:
            await self.async_start(Reason.LABEL, event.source, event)
        elif label is Label.NORMAL and event.source["mac"] in self.record.culprits:
            await self.async_stop(Reason.FALSE_ALARM)

    @callback
    def _async_coordinator_updated(self) -> None:
        """Compare the agent's retained hosts and quarantine with the record."""
        self._check_quarantine()
        self._check_hosts()

    @callback
    def _check_quarantine(self) -> None:
        """The agent no longer isolates a culprit in force (say it restarted): isolate again."""
        payload = self.coordinator.quarantine
        if payload is None or payload is self._quarantine_checked or not self.active:
            return
        self._quarantine_checked = payload
        if self._lost_culprits():
            self._schedule(self._async_requarantine(), "requarantine")

    def _lost_culprits(self) -> list[Culprit]:
        """Culprits recorded in force that the agent's retained quarantine does not list."""
        payload = self.coordinator.quarantine
        if not isinstance(self.backend, AgentEnforcer) or payload is None:
            return []
        listed = self._agent_quarantined()
        return [c for c in self.record.culprits.values() if c.in_force and c.mac not in listed]

    async def _async_requarantine(self) -> None:
        async with self._transition():
            # Checked again under the lock: a release may have run in between.
            lost = self._lost_culprits() if self.active and not self._closing else []
            if not lost:
                return
            _LOGGER.warning(
                "The agent %s no longer quarantines %s; quarantining again",
                self._agent,
                ", ".join(culprit.mac for culprit in lost),
            )
            await asyncio.gather(*(self._async_quarantine(culprit) for culprit in lost))
            await self._async_save()
            self._async_changed()
            texts = await notify.Texts.async_load(self.hass)
            message = texts(
                "evac_requarantine_message",
                agent=self._agent,
                culprits="\n".join(self._culprit_text(texts, culprit) for culprit in lost),
            )
            notify.log_entry(self.hass, message, self._entity_id())
            await notify.async_notify(
                self.hass, self.entry, texts("evac_requarantine_title"), message
            )

    @callback
    def _check_hosts(self) -> None:
        """The agent's hosts inventory says a culprit is no longer present."""
        hosts = self.coordinator.hosts
        if hosts is None or hosts is self._hosts_checked or not self.active:
            return
        self._hosts_checked = hosts
        for host in hosts["hosts"]:
            culprit = self.record.culprits.get(host["mac"])
            if culprit is None or culprit.left or host["present"]:
                continue
            # An inventory older than the culprit's scan says nothing about it leaving.
            if culprit.since is not None and parse_timestamp(host["last_seen"]) < parse_timestamp(
                culprit.since
            ):
                continue
            self._schedule(self.async_culprit_left(culprit.mac), "left")

    async def _async_notification_action(self, ha_event: Event) -> None:
        parsed = notify.parse_action(ha_event.data.get("action"))
        if parsed is None or parsed[1] != self.entry.entry_id:
            return
        if parsed[0] is notify.Choice.RESTORE:
            await self.async_stop(Reason.OWNER)
        else:
            await self.async_keep()

    def _schedule(self, job: Coroutine[Any, Any, None], what: str) -> None:
        self.entry.async_create_task(self.hass, job, f"{DOMAIN} evacuation {what}")

    # ----------------------------------------------------------------- helpers

    async def _async_save(self) -> None:
        await self._store.async_save(self.record.as_dict())

    @property
    def _agent(self) -> str:
        return str(self.entry.data[CONF_AGENT_ID])

    def _entity_id(self) -> str | None:
        return er.async_get(self.hass).async_get_entity_id(
            "switch", DOMAIN, f"{self.coordinator.agent_id}-evacuation_mode"
        )

    def _name(self, entity_id: str) -> str:
        # A friendly name may come from the device itself (discovery): inert, as the agent's.
        state = self.hass.states.get(entity_id)
        return f"{inert(state.name)} ({entity_id})" if state is not None else entity_id

    async def _async_event_text(self, texts: notify.Texts) -> str:
        event = self.record.event
        if event is None:
            return ""
        kinds = await async_kind_names(self.hass)
        kind = kinds.get(event["kind"], event["kind"])
        return texts("evac_event", kind=kind, level=event["level"])

    def _culprit_text(self, texts: notify.Texts, culprit: Culprit) -> str:
        outcome = culprit.quarantine or {"ok": False, "reason": "no_backend", "detail": None}
        if outcome["ok"]:
            state = texts("quarantine_ok", backend=self.backend.name if self.backend else "")
        else:
            # The detail may be the agent's own words (its refusal): inert like its reports.
            detail = inert(outcome.get("detail"), DETAIL)
            state = texts(f"quarantine_{outcome['reason']}", detail=detail)
        unknown = texts("unknown")
        return texts(
            "evac_culprit",
            mac=inert(culprit.mac),
            ip=inert(culprit.ip) or unknown,
            vendor=inert(culprit.vendor) or unknown,
            hostname=inert(culprit.hostname) or unknown,
            quarantine=state,
        )


def _final(outcome: dict[str, Any] | None) -> bool:
    """A quarantine refusal that retrying cannot change (protected host, nothing to use)."""
    reason = str((outcome or {}).get("reason"))
    return reason.startswith("protected_") or reason in _FINAL_REASONS


def _who(culprit: Culprit) -> str:
    mac = inert(culprit.mac)
    return f"{mac} ({inert(culprit.ip)})" if culprit.ip else mac


async def _nothing() -> None:
    return None


async def async_remove_store(hass: HomeAssistant, entry_id: str) -> None:
    """The agent was removed: forget its evacuation record."""
    store: Store[dict[str, Any]] = Store(hass, EVACUATION_STORAGE_VERSION, storage_key(entry_id))
    await store.async_remove()


async def async_kind_names(hass: HomeAssistant) -> dict[str, str]:
    """Translated event kind names (``kind`` -> text)."""
    names = await async_get_translations(hass, hass.config.language, "entity", [DOMAIN])
    return {
        key.removeprefix(_KINDS): value for key, value in names.items() if key.startswith(_KINDS)
    }
