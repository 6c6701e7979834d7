"""Runs evacuation mode for one agent: feeds inputs to the state machine, performs its work.

Inputs come from the coordinator (events with their verdicts, the owner's labels, the agent's
hosts and quarantine payloads), from the owner (switch, actions, notification buttons) and
from the entry's life cycle: set-up resumes an evacuation (after an HA restart, a reload, an
options change), only removing or disabling the entry, or the owner, ends one.

One input at a time (a lock). For each step the record is saved *before* its work is done
(write-ahead), the work's results come back as ``Done``, every outcome is logged, and what
the owner should read goes to the logbook and the notifications. A step that breaks half-way
leaves a repair issue naming what may still be isolated.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

import voluptuous as vol
from homeassistant.components import network, persistent_notification
from homeassistant.config_entries import ConfigEntry
from homeassistant.const import EVENT_LOGBOOK_ENTRY
from homeassistant.core import CALLBACK_TYPE, Event, HomeAssistant, State, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.state import async_reproduce_state
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util

from ..const import (
    APPLIANCE_TIMEOUT,
    COMMAND_TIMEOUT,
    CONF_AGENT_ID,
    CONF_PROTECTED_HOSTS,
    CONF_QUARANTINE_BLOCK_STATE,
    CONF_QUARANTINE_ENTITIES,
    DOMAIN,
    EVACUATION_ACTION_PREFIX,
    EVACUATION_STORAGE_VERSION,
    EVENT_MOBILE_APP_NOTIFICATION_ACTION,
    ISSUE_EVACUATION_INCOMPLETE,
    Label,
)
from ..coordinator import LanGuardCoordinator
from ..models import LanGuardEvent
from ..notifications import async_notify_targets, inbox_url
from ..payloads import parse_timestamp
from ..untrusted import inert, printable
from . import machine
from .machine import (
    Choice,
    Done,
    Input,
    Keep,
    Labelled,
    Left,
    QuarantineListed,
    Results,
    Resume,
    Sighting,
    StartByHand,
    Step,
    Stop,
    Target,
    Threat,
    Work,
    World,
)
from .options import policy_from_options
from .protected import ProtectedHosts
from .quarantine import (
    AgentEnforcer,
    QuarantineBackend,
    build_backends,
    interface_macs,
    parse_entity_map,
)
from .record import OFF_STATES, Host, Outcome, Reason, Record, Snapshot
from .texts import Texts

_LOGGER = logging.getLogger(__name__)

# How long a resumed evacuation waits for the MQTT subscription before re-asserting.
_RESUME_WAIT_S = 30.0
# How long ending an evacuation of a removed entry waits to hear the agent again.
_AGENT_WAIT_S = 10.0


def storage_key(entry_id: str) -> str:
    """The evacuation record's storage key of one agent."""
    return f"{DOMAIN}.evacuation.{entry_id}"


def notification_id(entry_id: str) -> str:
    """One persistent notification per agent's evacuation; each step replaces the text."""
    return f"{DOMAIN}_evacuation_{entry_id}"


def issue_id(entry_id: str) -> str:
    """One repair issue per agent when isolation could not be undone."""
    return f"{ISSUE_EVACUATION_INCOMPLETE}_{entry_id}"


def action_id(choice: Choice, entry_id: str) -> str:
    """The action id of an evacuation button: ``LAN_GUARD_EVAC_<CHOICE>_<entry id>``."""
    return f"{EVACUATION_ACTION_PREFIX}{choice.value.upper()}_{entry_id}"


def parse_action(action: Any) -> tuple[Choice, str] | None:
    """(choice, config entry id) of an evacuation button, None for anything else."""
    if not isinstance(action, str) or not action.startswith(EVACUATION_ACTION_PREFIX):
        return None
    choice, _, entry_id = action.removeprefix(EVACUATION_ACTION_PREFIX).partition("_")
    if choice.lower() not in Choice.__members__.values() or not entry_id:
        return None
    return Choice(choice.lower()), entry_id


def sighting(event: LanGuardEvent) -> Sighting:
    """An event as the state machine sees it."""
    verdict = event.verdict
    return Sighting(
        kind=event.kind.value,
        level=event.level,
        host=Host.from_source(event.source),
        first_seen=event.payload["first_seen"],
        verdict=verdict.value if verdict is not None else None,
    )


class EvacuationStore:
    """The record in HA storage (``.storage/lan_guard.evacuation.<entry_id>``)."""

    def __init__(self, hass: HomeAssistant, entry_id: str) -> None:
        """Nothing is read until ``async_load``."""
        self._store: Store[dict[str, Any]] = Store(
            hass, EVACUATION_STORAGE_VERSION, storage_key(entry_id)
        )

    async def async_load(self) -> Record:
        """The stored record, or an idle one."""
        data = await self._store.async_load()
        return Record.from_dict(data) if data is not None else Record()

    async def async_save(self, record: Record) -> None:
        """Write now; an idle record is no record at all."""
        if record.active:
            await self._store.async_save(record.as_dict())
        else:
            await self._store.async_remove()


class EvacuationRunner:
    """Evacuation mode of one agent (one config entry)."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry,
        coordinator: LanGuardCoordinator,
        backends: dict[str, QuarantineBackend],
    ) -> None:
        """Read the policy from the options; nothing runs until ``async_setup``."""
        self.hass = hass
        self.entry = entry
        self.coordinator = coordinator
        self.policy = policy_from_options(entry.options)
        self.backends = backends
        self.record = Record()
        self._store = EvacuationStore(hass, entry.entry_id)
        self._protected_option: list[str] = list(entry.options.get(CONF_PROTECTED_HOSTS, []))
        self._lock = asyncio.Lock()
        self._listeners: list[CALLBACK_TYPE] = []
        self._unsubscribe: list[CALLBACK_TYPE] = []
        self._ha_ips: list[str] = []
        self._ha_macs: list[str] = []
        self._hosts_checked: object = None
        self._quarantine_checked: object = None
        self._closed = False

    @classmethod
    def from_entry(
        cls, hass: HomeAssistant, entry: ConfigEntry, coordinator: LanGuardCoordinator
    ) -> EvacuationRunner:
        """The runner an entry's options describe."""
        options = entry.options
        mapping = parse_entity_map(options.get(CONF_QUARANTINE_ENTITIES, []))
        block_state = options.get(CONF_QUARANTINE_BLOCK_STATE, "off")
        backends = build_backends(hass, coordinator, mapping, block_state, COMMAND_TIMEOUT)
        return cls(hass, entry, coordinator, backends)

    # ----------------------------------------------------------------- life cycle

    async def async_setup(self, *, follow: bool = True) -> None:
        """Load the record, learn HA's own addresses, follow the agent and the owner, and
        resume an evacuation that was running (HA restart, reload, options saved)."""
        self.record = await self._store.async_load()
        try:
            self._ha_ips = [str(ip) for ip in await network.async_get_enabled_source_ips(self.hass)]
        except HomeAssistantError as err:  # no address known: the options can protect it
            _LOGGER.warning("Could not read Home Assistant's own addresses: %s", err)
        # Its MACs too: a culprit can take over HA's IP, not its MAC as well.
        adapters = await network.async_get_adapters(self.hass)
        self._ha_macs = await self.hass.async_add_executor_job(
            interface_macs, [adapter["name"] for adapter in adapters]
        )
        if not follow:
            return
        coordinator = self.coordinator
        self._unsubscribe += [
            coordinator.async_add_event_listener(self._async_event),
            coordinator.async_add_label_listener(self._async_label),
            coordinator.async_add_listener(self._async_coordinator_updated),
            self.hass.bus.async_listen(
                EVENT_MOBILE_APP_NOTIFICATION_ACTION, self._async_notification_action
            ),
        ]
        if self.record.active:
            self.entry.async_create_background_task(
                self.hass, self._async_resume(), f"{DOMAIN} resume evacuation"
            )

    async def async_close(self) -> None:
        """Stop following (the entry unloads); the record stays, so set-up resumes it."""
        self._closed = True
        while self._unsubscribe:
            self._unsubscribe.pop()()
        async with self._lock:  # a step under way finishes first
            for backend in self.backends.values():
                backend.async_close()

    # ----------------------------------------------------------------- state for entities

    @property
    def active(self) -> bool:
        """Evacuation mode is on (including "culprit left, waiting for the owner")."""
        return self.record.active

    def attributes(self) -> dict[str, Any]:
        """What the switch shows."""
        record = self.record
        policy = self.policy
        return {
            "phase": record.phase.value,
            "reason": record.reason.value if record.reason else None,
            "started_at": record.started_at,
            "trigger_policy": policy.trigger.value,
            "restore_policy": "auto" if policy.auto_restore else "confirm",
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

    def protected(self) -> ProtectedHosts:
        """The hosts never isolated, as the agent and the options describe them now."""
        return ProtectedHosts.build(
            info=self.coordinator.info,
            ha_ips=self._ha_ips,
            ha_macs=self._ha_macs,
            protected=self._protected_option,
            allowlist=self.coordinator.allowlist,
        )

    # ----------------------------------------------------------------- the owner

    async def async_start(self, host: Host | None = None, reason: Reason = Reason.MANUAL) -> None:
        """Start evacuation by hand (or isolate one more host); ``Reason.PROVIDER``: at the
        request of the owner's provider."""
        await self.async_handle(StartByHand(host, reason))

    async def async_stop(self, reason: Reason = Reason.OWNER) -> None:
        """End evacuation: lift quarantines, restore the appliances."""
        await self.async_handle(Stop(reason))

    async def async_keep(self) -> None:
        """The owner says "keep isolated": no automatic restore for this evacuation."""
        await self.async_handle(Keep())

    # ----------------------------------------------------------------- steps

    async def async_handle(self, event: Input) -> None:
        """One input, and the results of its work, as one step at a time."""
        async with self._lock:
            if self._closed:  # the entry unloaded: the next set-up resumes from storage
                _LOGGER.debug("Evacuation of %s closed: %s ignored", self._agent, event)
                return
            pending: Input | None = event
            while pending is not None:
                pending = await self._async_step(pending)

    async def _async_step(self, event: Input) -> Input | None:
        before = self.record
        result = machine.step(before, event, self._world(), self.policy)
        _LOGGER.debug(
            "Evacuation of %s: %s in phase %s -> %s (%s)",
            self._agent,
            type(event).__name__,
            before.phase.value,
            result.record.phase.value,
            result.outcome,
        )
        self.record = result.record
        if result.record != before:
            await self._store.async_save(result.record)
        if result.record != before or result.effects:
            self._async_changed()
        await self._async_tell(result)
        if result.work is None:
            return None
        try:
            return Done(result.work, await self._async_perform(result.work))
        except Exception:
            _LOGGER.exception("An evacuation step of %s failed", self._agent)
            await self._async_broken()
            raise

    def _world(self) -> World:
        hass = self.hass
        wanted = {*self.policy.isolate, *self.record.appliances}
        states = {
            entity_id: Snapshot(state.state, dict(state.attributes))
            for entity_id in wanted
            if (state := hass.states.get(entity_id)) is not None
        }
        enforcer = self.backends.get("agent")
        return World(
            now=dt_util.utcnow().isoformat(),
            states=states,
            protected=self.protected(),
            allowlist=self.coordinator.allowlist,
            agent_listed=enforcer.listed() if isinstance(enforcer, AgentEnforcer) else None,
        )

    async def _async_perform(self, work: Work) -> Results:
        """Switch, quarantine and release at the same time; what each part achieved."""
        off, on, quarantined, released = await asyncio.gather(
            self._async_switch(list(work.switch_off), "turn_off"),
            self._async_reproduce(work.restore),
            asyncio.gather(*(self._async_backend(t, quarantine=True) for t in work.quarantine)),
            asyncio.gather(*(self._async_backend(t, quarantine=False) for t in work.release)),
        )
        outcomes = {
            target.mac: outcome
            for target, outcome in zip(
                (*work.quarantine, *work.release), (*quarantined, *released), strict=True
            )
        }
        return Results(frozenset(off), frozenset(on), outcomes)

    async def _async_backend(self, target: Target, *, quarantine: bool) -> Outcome:
        backend = self.backends.get(target.backend)
        if backend is None:  # "none", or a backend of a newer version
            return Outcome(False, "no_backend")
        try:
            if quarantine:
                outcome = await backend.async_quarantine(target.mac, target.ip)
            else:
                outcome = await backend.async_release(target.mac, target.ip)
        except Exception as err:  # a broken backend costs this host's outcome, not the step
            _LOGGER.exception("The %s backend failed on %s", target.backend, target.mac)
            return Outcome(False, "backend_failed", f"{type(err).__name__}: {err}")
        if not outcome.ok:
            _LOGGER.warning(
                "Could not %s %s (%s): %s %s",
                "quarantine" if quarantine else "release",
                target.mac,
                target.ip,
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

    async def _async_reproduce(self, entity_ids: tuple[str, ...]) -> list[str]:
        """Bring each entity back to its recorded state; the ones still off afterwards."""
        hass = self.hass
        snapshots = {
            e: self.record.appliances[e] for e in entity_ids if e in self.record.appliances
        }
        states = [
            State(entity_id, snap.state, dict(snap.attributes))
            for entity_id, snap in snapshots.items()
            if hass.states.get(entity_id) is not None
        ]
        if states:
            try:
                async with asyncio.timeout(APPLIANCE_TIMEOUT):
                    await async_reproduce_state(hass, states)
            except (HomeAssistantError, vol.Invalid, TimeoutError) as err:
                _LOGGER.warning("Could not restore every appliance at once: %s", err or "timeout")
        # A domain without reproduce_state (or one that failed) gets a plain turn_on.
        failed = set(await self._async_switch(self._still_off(entity_ids), "turn_on"))
        return [e for e in entity_ids if e in failed or e in self._still_off(entity_ids)]

    def _still_off(self, entity_ids: tuple[str, ...]) -> list[str]:
        return [
            entity_id
            for entity_id in entity_ids
            if (state := self.hass.states.get(entity_id)) is None or state.state in OFF_STATES
        ]

    async def _async_broken(self) -> None:
        """A step broke half-way: the owner must know what may still be isolated."""
        self._async_changed()
        texts = await Texts.async_load(self.hass)
        in_force = [c for c in self.record.culprits.values() if c.in_force or c.unsure]
        items = texts.issue_items(in_force, list(self.record.appliances), self._name)
        self._create_issue(items)

    # ----------------------------------------------------------------- telling the owner

    async def _async_tell(self, result: Step) -> None:
        if not result.effects:
            return
        texts = await Texts.async_load(self.hass)
        for effect in result.effects:
            match effect:
                case machine.Log(message):
                    self._log(texts.log(message, self._name, self._agent))
                case machine.Notify(message, buttons):
                    title, text = texts.notification(message, self._name, self._agent)
                    await self._async_notify(texts, title, text, buttons)
                case machine.RaiseIssue(culprits, appliances):
                    self._create_issue(texts.issue_items(culprits, appliances, self._name))
                case machine.ClearIssue():
                    ir.async_delete_issue(self.hass, DOMAIN, issue_id(self.entry.entry_id))

    async def _async_notify(
        self, texts: Texts, title: str, text: str, buttons: tuple[Choice, ...]
    ) -> None:
        """The persistent notification and every phone. The persistent one has no buttons:
        it links to the owner's inbox, which has them (and so does a tap on the phone's)."""
        entry_id = self.entry.entry_id
        inbox = texts("notify_inbox_link", url=inbox_url())
        persistent_notification.async_create(
            self.hass, f"{text}\n\n{inbox}", title, notification_id(entry_id)
        )
        data: dict[str, Any] = {
            "tag": notification_id(entry_id),
            "group": DOMAIN,
            "url": inbox_url(),
            "clickAction": inbox_url(),
        }
        if buttons:
            data["actions"] = [
                {"action": action_id(choice, entry_id), "title": texts(f"action_{choice.value}")}
                for choice in buttons
            ]
        await async_notify_targets(self.hass, self.entry, title, text, data, about="evacuation")

    def _log(self, message: str) -> None:
        """A logbook entry (the logbook integration records ``logbook_entry`` events)."""
        data = {"name": "LAN Guard", "message": message, "domain": DOMAIN}
        if (entity_id := self._entity_id()) is not None:
            data["entity_id"] = entity_id
        self.hass.bus.async_fire(EVENT_LOGBOOK_ENTRY, data)

    def _create_issue(self, items: str) -> None:
        ir.async_create_issue(
            self.hass,
            DOMAIN,
            issue_id(self.entry.entry_id),
            is_fixable=False,
            is_persistent=True,
            severity=ir.IssueSeverity.ERROR,
            translation_key=ISSUE_EVACUATION_INCOMPLETE,
            translation_placeholders={"agent": self._agent, "items": items},
        )

    # ----------------------------------------------------------------- inputs from outside

    @callback
    def _async_changed(self) -> None:
        for update in list(self._listeners):
            update()

    def _schedule(self, event: Input, what: str) -> None:
        self._background(self.async_handle(event), what)

    def _background(self, job: Coroutine[Any, Any, None], what: str) -> None:
        # Not started eagerly: the event that asks for it is fully accepted first (entities,
        # bus event), then evacuation acts on it.
        self.entry.async_create_task(
            self.hass, job, f"{DOMAIN} evacuation {what}", eager_start=False
        )

    async def _async_resume(self) -> None:
        """After a restart or reload: isolation is re-asserted once the agent is heard (its
        retained status and quarantine come right after the subscription), or after a while."""
        try:
            async with asyncio.timeout(_RESUME_WAIT_S):
                await self.coordinator.subscribed.wait()
        except TimeoutError:
            _LOGGER.warning("Resuming evacuation before the agent's topics are subscribed")
        if not await self.coordinator.async_wait_online(_RESUME_WAIT_S):
            _LOGGER.warning("Resuming evacuation while the agent %s is offline", self._agent)
        await self.async_handle(Resume())

    @callback
    def _async_event(self, event: LanGuardEvent) -> None:
        seen = sighting(event)
        if not seen.is_threat:
            culprit = self.record.culprits.get(seen.host.mac)
            if culprit is not None and not culprit.left:
                self._schedule(Left(seen.host.mac), "left")
            return
        self._schedule(Threat(seen), "event")

    async def _async_label(self, event: LanGuardEvent, label: Label) -> None:
        await self.async_handle(Labelled(label.value, sighting(event)))

    @callback
    def _async_coordinator_updated(self) -> None:
        """Compare the agent's retained hosts and quarantine with the record."""
        if not self.record.active:
            return
        coordinator = self.coordinator
        if (
            payload := coordinator.quarantine
        ) is not None and payload is not self._quarantine_checked:
            self._quarantine_checked = payload
            macs = frozenset(host["mac"] for host in payload["hosts"])
            self._schedule(QuarantineListed(macs), "quarantine listed")
        if (hosts := coordinator.hosts) is not None and hosts is not self._hosts_checked:
            self._hosts_checked = hosts
            for host in hosts["hosts"]:
                culprit = self.record.culprits.get(host["mac"])
                if culprit is None or culprit.left or host["present"]:
                    continue
                left = Left(culprit.mac, parse_timestamp(host["last_seen"]))
                self._schedule(left, "left")

    async def _async_notification_action(self, ha_event: Event) -> None:
        parsed = parse_action(ha_event.data.get("action"))
        if parsed is None or parsed[1] != self.entry.entry_id:
            return
        if parsed[0] is Choice.RESTORE:
            await self.async_stop(Reason.OWNER)
        else:
            await self.async_keep()

    # ----------------------------------------------------------------- helpers

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


async def async_end_for_removed_entry(hass: HomeAssistant, entry: ConfigEntry) -> None:
    """The entry was deleted: undo an evacuation it leaves behind, then forget it.

    The entry is already unloaded, so the agent is listened to again just long enough to
    lift the quarantine; whatever cannot be undone stays listed in the repair issue.
    """
    store = EvacuationStore(hass, entry.entry_id)
    if not (await store.async_load()).active:
        await store.async_save(Record())
        return
    coordinator = LanGuardCoordinator(hass, entry)
    runner = EvacuationRunner.from_entry(hass, entry, coordinator)
    try:
        await coordinator.async_start()
        await coordinator.async_wait_online(_AGENT_WAIT_S)
    except HomeAssistantError as err:  # MQTT is gone too: what needs the agent stays
        _LOGGER.warning("Cannot reach the agent %s to lift its quarantine: %s", runner._agent, err)
    try:
        await runner.async_setup(follow=False)
        await runner.async_stop(Reason.REMOVED)
    finally:
        await runner.async_close()
        await coordinator.async_stop()
    # Nothing would ever resume it: the repair issue names what is left, if anything.
    await store.async_save(Record())
