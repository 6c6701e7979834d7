"""Evacuation mode as a pure state machine: ``step(record, input, world, policy) -> Step``.

No Home Assistant and no I/O here. A step returns the new record, the messages for the owner
(``Log``, ``Notify``, the repair issue) and at most one piece of ``Work`` (switch appliances,
quarantine or release hosts). The runner saves the record *before* it performs the work
(write-ahead: the appliances' prior states are stored before anything is switched off), then
feeds the results back as a ``Done`` input, whose step says what to tell the owner.

Phases::

    idle ──start──▶ active ──every culprit left──▶ culprit_left ──owner restores──▶ idle
                     │  ▲                              │
                     │  └─────── a culprit is back ────┘
                     └── owner stops, false alarm, entry removed ──▶ idle (restore)

With the automatic restore policy (and no "keep isolated"), active goes to idle directly
when every culprit has left. Every input has a defined outcome in every phase (``Step.outcome``,
logged by the runner); those the owner should see also come with a logbook line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeAlias

from ..allowlist import Allowlist
from .protected import ProtectedHosts
from .record import Culprit, Host, Outcome, Phase, Reason, Record, Snapshot

# Failures after which the quarantine may be in force all the same: a command that may
# still reach the agent (its ts stays valid 300 s), a backend that broke half-way.
UNSURE_REASONS = frozenset({"timeout", "publish_failed", "backend_failed"})
BACKEND_NONE = "none"


class Trigger(StrEnum):
    """What starts evacuation by itself (the options' start policy)."""

    LEVEL = "level"
    VERDICT = "verdict"
    MANUAL = "manual"


class Choice(StrEnum):
    """The buttons of an evacuation notification."""

    RESTORE = "restore"
    KEEP = "keep"


class Say(StrEnum):
    """What the owner is told: ``common.log_<say>`` / ``common.evac_<say>_title|message``."""

    DETECTED = "detected"
    ISOLATED = "isolated"
    CULPRIT = "culprit"
    STARTED = "started"
    CULPRIT_ADDED = "culprit_added"
    CULPRIT_BACK = "culprit_back"
    CULPRIT_ISOLATED = "culprit_isolated"
    LEFT = "left"
    LEFT_RESTORING = "left_restoring"
    LEFT_ASK = "left_ask"
    RESTORED = "restored"
    INCOMPLETE = "incomplete"
    RESUMED = "resumed"
    REQUARANTINED = "requarantined"
    KEPT = "kept"
    ALARM_CONFIRMED = "alarm_confirmed"
    ALARM_AFTER_LEFT = "alarm_after_left"
    ALARM_NOT_ADDED = "alarm_not_added"
    RELEASED = "released"
    RELEASE_FAILED = "release_failed"
    ALREADY_ON = "already_on"
    ALREADY_ISOLATED = "already_isolated"
    NOT_RUNNING = "not_running"


# --------------------------------------------------------------------- what a step sees


@dataclass(frozen=True, slots=True)
class Policy:
    """The owner's evacuation options."""

    trigger: Trigger = Trigger.LEVEL
    level: int = 2
    auto_restore: bool = True
    isolate: tuple[str, ...] = ()
    backend: str = "agent"


@dataclass(frozen=True, slots=True)
class World:
    """What the runner knows of the world at the time of a step."""

    now: str = ""
    # Current states of the appliances to isolate and of those recorded (absent: no entity).
    states: Mapping[str, Snapshot] = field(default_factory=dict)
    protected: ProtectedHosts = field(default_factory=ProtectedHosts.nothing)
    allowlist: Allowlist = field(default_factory=lambda: Allowlist.parse([]))
    # MACs the agent's retained quarantine payload lists (None: not known).
    agent_listed: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class Sighting:
    """An accepted agent event, as evacuation sees it."""

    kind: str
    level: int
    host: Host
    first_seen: str | None = None
    verdict: str | None = None  # normal / alarm / unsure; None without a classifier

    @property
    def is_threat(self) -> bool:
        """False for information-only events (a host that left)."""
        return self.kind != "host_left"


# --------------------------------------------------------------------- inputs


@dataclass(frozen=True, slots=True)
class Threat:
    """An accepted threat event (with its verdict)."""

    sighting: Sighting


@dataclass(frozen=True, slots=True)
class Left:
    """A host left: the agent's ``host_left`` event, or its inventory says it is absent."""

    mac: str
    # The inventory's last_seen; an inventory older than the culprit's scan says nothing.
    last_seen: datetime | None = None


@dataclass(frozen=True, slots=True)
class Labelled:
    """The owner labelled an event ``normal`` or ``alarm``."""

    label: str
    sighting: Sighting


@dataclass(frozen=True, slots=True)
class StartByHand:
    """The switch or the ``start_evacuation`` action (optionally with a host to quarantine);
    ``reason`` PROVIDER: the owner's provider asked (the owner allowed it to)."""

    host: Host | None = None
    reason: Reason = Reason.MANUAL


@dataclass(frozen=True, slots=True)
class Stop:
    """The owner ends evacuation (switch, action, "Restore" button), or the entry goes."""

    reason: Reason = Reason.OWNER


@dataclass(frozen=True, slots=True)
class Keep:
    """The owner's "keep isolated" button."""


@dataclass(frozen=True, slots=True)
class Resume:
    """The entry was set up again (HA restart, reload, options saved): re-assert isolation."""


@dataclass(frozen=True, slots=True)
class QuarantineListed:
    """The agent's retained quarantine payload changed: these MACs are isolated."""

    macs: frozenset[str]


class Intent(StrEnum):
    """Why work was asked for, so its results are understood."""

    START = "start"
    ADD = "add"
    RETRY = "retry"
    BACK = "back"
    RESTORE = "restore"
    RELEASE = "release"
    RESUME = "resume"
    REQUARANTINE = "requarantine"


@dataclass(frozen=True, slots=True)
class Target:
    """A host to quarantine or release, and with which backend."""

    mac: str
    ip: str | None
    backend: str


@dataclass(frozen=True, slots=True)
class Work:
    """I/O for the runner: all parts at once, then ``Done`` with the results."""

    intent: Intent
    reason: Reason | None = None
    mac: str | None = None  # the culprit concerned (add, retry, back, release)
    switch_off: tuple[str, ...] = ()
    restore: tuple[str, ...] = ()  # back to the recorded snapshot
    quarantine: tuple[Target, ...] = ()
    release: tuple[Target, ...] = ()


@dataclass(frozen=True, slots=True)
class Results:
    """What the work did."""

    off_failed: frozenset[str] = frozenset()
    on_failed: frozenset[str] = frozenset()  # still off after the restore
    outcomes: Mapping[str, Outcome] = field(default_factory=dict)  # per MAC


@dataclass(frozen=True, slots=True)
class Done:
    """The runner performed ``work``."""

    work: Work
    results: Results = field(default_factory=Results)


Input: TypeAlias = (
    Threat | Left | Labelled | StartByHand | Stop | Keep | Resume | QuarantineListed | Done
)


# --------------------------------------------------------------------- effects


@dataclass(frozen=True, slots=True)
class Message:
    """Something to tell the owner; ``texts.py`` renders it in their language."""

    say: Say
    reason: Reason | None = None
    event: Mapping[str, Any] | None = None
    culprits: tuple[Culprit, ...] = ()
    appliances: tuple[str, ...] = ()  # isolated or restored
    failed: tuple[str, ...] = ()  # could not be switched
    kept: tuple[Culprit, ...] = ()  # still quarantined: the release failed


@dataclass(frozen=True, slots=True)
class Log:
    """A logbook line."""

    message: Message


@dataclass(frozen=True, slots=True)
class Notify:
    """The evacuation notification (persistent and phones), replacing the previous one."""

    message: Message
    buttons: tuple[Choice, ...] = ()


@dataclass(frozen=True, slots=True)
class RaiseIssue:
    """Something stays isolated that could not be undone (a repair issue lists it)."""

    culprits: tuple[Culprit, ...]
    appliances: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ClearIssue:
    """Everything is undone."""


Effect: TypeAlias = Log | Notify | RaiseIssue | ClearIssue


@dataclass(frozen=True, slots=True)
class Step:
    """The result of one input: the new record, what to say, what to do, and why."""

    record: Record
    outcome: str
    effects: tuple[Effect, ...] = ()
    work: Work | None = None


_BUTTONS = (Choice.RESTORE, Choice.KEEP)


# --------------------------------------------------------------------- the transition


def start_reason(policy: Policy, allowlist: Allowlist, sighting: Sighting) -> Reason | None:
    """The start policy: why ``sighting`` evacuates, or None."""
    if policy.trigger is Trigger.MANUAL or not sighting.is_threat:
        return None
    if allowlist.contains({"mac": sighting.host.mac, "ip": sighting.host.ip}):
        return None
    if policy.trigger is Trigger.VERDICT and sighting.verdict is not None:
        return Reason.VERDICT if sighting.verdict == "alarm" else None
    # Level policy, and the verdict policy while no classifier gives verdicts.
    return Reason.EVENT if sighting.level >= policy.level else None


def step(record: Record, event: Input, world: World, policy: Policy) -> Step:
    """The one transition function: every input, in every phase."""
    match event:
        case Threat(sighting):
            return _threat(record, sighting, world, policy)
        case Left():
            return _left(record, event, world, policy)
        case Labelled(label, sighting):
            return _labelled(record, label, sighting, world, policy)
        case StartByHand(host, reason):
            if not record.active:
                return _start(reason, host, None, world, policy)
            if host is None:
                return _say(record, "already_on", Say.ALREADY_ON)
            return _known_or_new(record, reason, Culprit.of(host, None), world, policy)
        case Stop(reason):
            if not record.active and reason is Reason.REMOVED:
                return _quiet(record, "not_running")  # nothing to undo; nobody asked
            if not record.active:
                return _say(record, "not_running", Say.NOT_RUNNING)
            return _restore(record, reason, world, policy)
        case Keep():
            if not record.active:
                return _say(record, "not_running", Say.NOT_RUNNING)
            return _say(replace(record, hold=True), "held", Say.KEPT)
        case Resume():
            return _resume(record, world, policy)
        case QuarantineListed(macs):
            return _listed(record, macs, world, policy)
        case Done(work, results):
            return _done(record, work, results, world, policy)
    raise TypeError(f"not an evacuation input: {event!r}")  # pragma: no cover - typing


def _say(record: Record, outcome: str, say: Say, **fields: Any) -> Step:
    return Step(record, outcome, (Log(Message(say, **fields)),))


def _quiet(record: Record, outcome: str) -> Step:
    """Nothing to do and nothing the owner needs to read (the runner logs the outcome)."""
    return Step(record, outcome)


def _with(record: Record, culprit: Culprit, **changes: Any) -> Record:
    return replace(record, culprits={**record.culprits, culprit.mac: culprit}, **changes)


def _plan(culprit: Culprit, world: World, policy: Policy) -> tuple[Culprit, Target | None]:
    """Refuse a protected host (or no backend) at once; otherwise a quarantine to send."""
    refusal = world.protected.reason(culprit.mac, culprit.ip)
    if refusal is not None:
        return replace(culprit, quarantine=Outcome(False, f"protected_{refusal}")), None
    if policy.backend == BACKEND_NONE:
        return replace(culprit, quarantine=Outcome(False, "no_backend")), None
    return culprit, Target(culprit.mac, culprit.ip, policy.backend)


def _apply(culprit: Culprit, outcome: Outcome, backend: str) -> Culprit:
    # A quarantine that was in force may still be, whatever a later attempt says (the agent
    # offline, say): it is released all the same on restore.
    maybe = culprit.in_force or culprit.unsure or outcome.reason in UNSURE_REASONS
    return replace(
        culprit,
        quarantine=outcome,
        in_force=outcome.ok,
        unsure=not outcome.ok and maybe,
        backend=backend,
    )


def _threat(record: Record, sighting: Sighting, world: World, policy: Policy) -> Step:
    if not sighting.is_threat:
        return _quiet(record, "not_a_threat")
    known = record.culprits.get(sighting.host.mac)
    reason = start_reason(policy, world.allowlist, sighting)
    if not record.active:
        if reason is None:
            return _quiet(record, "not_triggered")
        return _start(reason, sighting.host, sighting, world, policy)
    if known is None and reason is None:
        return _quiet(record, "not_triggered")
    # A known culprit's event is proof it is present, whatever the start policy says.
    fresh = Culprit.of(sighting.host, sighting.first_seen)
    return _known_or_new(record, reason or Reason.EVENT, fresh, world, policy, quiet=True)


def _known_or_new(
    record: Record,
    reason: Reason,
    fresh: Culprit,
    world: World,
    policy: Policy,
    *,
    quiet: bool = False,
) -> Step:
    """A host to isolate during an evacuation: a new culprit, one back, or one to retry."""
    known = record.culprits.get(fresh.mac)
    if known is None:
        culprit, target = _plan(fresh, world, policy)
        intent = Intent.ADD
    elif known.left:
        # Back after leaving; DHCP may have given it another address.
        culprit, target = _plan(
            replace(known, left=False, ip=fresh.ip or known.ip, since=fresh.since or known.since),
            world,
            policy,
        )
        intent = Intent.BACK
    elif known.in_force:
        if quiet:
            return _quiet(record, "already_isolated")
        return _say(record, "already_isolated", Say.ALREADY_ISOLATED, culprits=(known,))
    elif quiet and known.quarantine is not None and known.quarantine.final:
        return _quiet(record, "cannot_isolate")
    else:
        # A transient failure: an event retries quietly unless it works; the owner asking
        # again (action, label) hears the outcome whatever it is.
        culprit, target = _plan(replace(known, ip=fresh.ip or known.ip), world, policy)
        intent = Intent.RETRY if quiet else Intent.ADD
    work = Work(intent, reason, culprit.mac, quarantine=(target,) if target else ())
    return Step(_with(record, culprit, phase=Phase.ACTIVE), intent.value, work=work)


def _start(
    reason: Reason,
    host: Host | None,
    sighting: Sighting | None,
    world: World,
    policy: Policy,
) -> Step:
    # Write-ahead: the prior states are in the record before anything is switched off.
    appliances = {
        entity_id: world.states[entity_id]
        for entity_id in policy.isolate
        if entity_id in world.states
    }
    culprits: dict[str, Culprit] = {}
    targets: tuple[Target, ...] = ()
    if host is not None:
        culprit, target = _plan(
            Culprit.of(host, sighting.first_seen if sighting else None), world, policy
        )
        culprits[culprit.mac] = culprit
        targets = (target,) if target else ()
    started = Record(
        phase=Phase.ACTIVE,
        reason=reason,
        started_at=world.now,
        event={"kind": sighting.kind, "level": sighting.level} if sighting else None,
        culprits=culprits,
        appliances=appliances,
    )
    work = Work(
        Intent.START,
        reason,
        host.mac if host else None,
        switch_off=tuple(entity_id for entity_id, snap in appliances.items() if snap.on),
        quarantine=targets,
    )
    return Step(started, "started", work=work)


def _left(record: Record, event: Left, world: World, policy: Policy) -> Step:
    if not record.active:
        return _quiet(record, "not_running")
    culprit = record.culprits.get(event.mac)
    if culprit is None:
        return _quiet(record, "not_a_culprit")
    if culprit.left:
        return _quiet(record, "already_left")
    since = _parse(culprit.since)
    if event.last_seen is not None and since is not None and event.last_seen < since:
        return _quiet(record, "inventory_older_than_the_culprit")
    left = replace(culprit, left=True)
    said = (Log(Message(Say.LEFT, culprits=(left,))),)
    return _after_leaving(_with(record, left), left, said, world, policy)


def _after_leaving(
    record: Record, culprit: Culprit, said: tuple[Effect, ...], world: World, policy: Policy
) -> Step:
    """A culprit is gone: wait for the others, restore at once, or ask the owner."""
    if not all(item.left for item in record.culprits.values()):
        return Step(record, "others_remain", said)
    if record.hold or not policy.auto_restore:
        asking = Notify(Message(Say.LEFT_ASK, culprits=(culprit,)), (Choice.RESTORE,))
        return Step(replace(record, phase=Phase.CULPRIT_LEFT), "ask_owner", (*said, asking))
    restoring = Notify(Message(Say.LEFT_RESTORING, culprits=(culprit,)))
    restore = _restore(record, Reason.CULPRIT_LEFT, world, policy)
    return replace(restore, effects=(*said, restoring), outcome="restore_automatically")


def _labelled(record: Record, label: str, sighting: Sighting, world: World, policy: Policy) -> Step:
    if not sighting.is_threat:
        return _quiet(record, "not_a_threat")
    culprit = record.culprits.get(sighting.host.mac)
    if label == "alarm":
        if culprit is None:
            if policy.trigger is Trigger.MANUAL:
                # Only the owner's switch or action starts or widens evacuation.
                if record.active:
                    named = (Culprit.of(sighting.host, None),)
                    return _say(record, "alarm_not_added", Say.ALARM_NOT_ADDED, culprits=named)
                return _quiet(record, "manual_policy")
            if not record.active:
                return _start(Reason.LABEL, sighting.host, sighting, world, policy)
            return _known_or_new(
                record, Reason.LABEL, Culprit.of(sighting.host, None), world, policy
            )
        if culprit.left:
            # The label does not bring the culprit back: no host_left would follow.
            said = Log(Message(Say.ALARM_AFTER_LEFT, culprits=(culprit,)))
            if record.phase is Phase.CULPRIT_LEFT:
                asking = Notify(Message(Say.LEFT_ASK, culprits=(culprit,)), (Choice.RESTORE,))
                return Step(record, "alarm_after_left", (said, asking))
            return Step(record, "alarm_after_left", (said,))
        if culprit.in_force:
            return _say(record, "alarm_confirmed", Say.ALARM_CONFIRMED, culprits=(culprit,))
        return _known_or_new(record, Reason.LABEL, culprit, world, policy)
    if culprit is None:
        return _quiet(record, "not_a_culprit")
    if len(record.culprits) == 1:
        return _restore(record, Reason.FALSE_ALARM, world, policy)
    # One of several culprits was a false alarm: let it go, keep the others isolated.
    targets = _releases([culprit], world, policy)
    work = Work(Intent.RELEASE, Reason.FALSE_ALARM, culprit.mac, release=targets)
    return Step(record, "release_one", work=work)


def _releases(culprits: list[Culprit], world: World, policy: Policy) -> tuple[Target, ...]:
    """Release whatever may be in force (release is idempotent on the agent)."""
    listed = world.agent_listed or frozenset()
    return tuple(
        Target(c.mac, c.ip, c.backend or ("agent" if c.mac in listed else policy.backend))
        for c in culprits
        if c.in_force or c.unsure or c.mac in listed
    )


def _restore(record: Record, reason: Reason, world: World, policy: Policy) -> Step:
    """Lift quarantines and restore appliances; ``Done`` decides what happened."""
    targets = _releases(list(record.culprits.values()), world, policy)
    work = Work(
        Intent.RESTORE,
        reason,
        restore=tuple(entity_id for entity_id, snap in record.appliances.items() if snap.on),
        release=targets,
    )
    return Step(record, "restore", work=work)


def _resume(record: Record, world: World, policy: Policy) -> Step:
    if not record.active:
        return _quiet(record, "not_running")
    turn_off = tuple(
        entity_id
        for entity_id, snap in record.appliances.items()
        if snap.on and entity_id in world.states and world.states[entity_id].on
    )
    targets: list[Target] = []
    listed = world.agent_listed or frozenset()
    for culprit in record.culprits.values():
        if _backend(culprit, policy) == "agent" and culprit.mac in listed:
            continue  # the agent says it still isolates it
        if culprit.in_force or not culprit.left:
            # Re-assert with the backend that quarantined it (the agent may have restarted
            # too); a host protected since is left as recorded, and released on restore.
            backend = replace(policy, backend=_backend(culprit, policy))
            if (target := _plan(culprit, world, backend)[1]) is not None:
                targets.append(target)
    work = Work(Intent.RESUME, switch_off=turn_off, quarantine=tuple(targets))
    return Step(record, "resume", work=work)


def _backend(culprit: Culprit, policy: Policy) -> str:
    return culprit.backend or policy.backend


def _listed(record: Record, macs: frozenset[str], world: World, policy: Policy) -> Step:
    if not record.active:
        return _quiet(record, "not_running")
    lost = [
        culprit
        for culprit in record.culprits.values()
        if (culprit.in_force or culprit.unsure)
        and _backend(culprit, policy) == "agent"
        and culprit.mac not in macs
    ]
    if not lost:
        return _quiet(record, "quarantine_as_recorded")
    targets = tuple(Target(c.mac, c.ip, "agent") for c in lost)
    return Step(record, "quarantine_lost", work=Work(Intent.REQUARANTINE, quarantine=targets))


# --------------------------------------------------------------------- results


def _done(record: Record, work: Work, results: Results, world: World, policy: Policy) -> Step:
    culprits = dict(record.culprits)
    for target in work.quarantine:
        if target.mac in culprits and target.mac in results.outcomes:
            outcome = results.outcomes[target.mac]
            culprits[target.mac] = _apply(culprits[target.mac], outcome, target.backend)
    record = replace(record, culprits=culprits)
    match work.intent:
        case Intent.START:
            return _started(record, work, results)
        case Intent.ADD | Intent.BACK | Intent.RETRY:
            culprit = record.culprits.get(work.mac or "")
            if culprit is None:  # pragma: no cover - the work named a recorded culprit
                return _quiet(record, "culprit_gone")
            if work.intent is Intent.RETRY and not culprit.in_force:
                return _quiet(record, "retry_failed")  # the owner was told the first time
            say = {
                Intent.ADD: Say.CULPRIT_ADDED,
                Intent.BACK: Say.CULPRIT_BACK,
                Intent.RETRY: Say.CULPRIT_ISOLATED,
            }[work.intent]
            message = Message(say, culprits=(culprit,))
            return Step(
                record,
                f"{work.intent.value}_done",
                (Log(Message(Say.CULPRIT, culprits=(culprit,))), Notify(message, _BUTTONS)),
            )
        case Intent.RESTORE:
            return _restored(record, work, results)
        case Intent.RELEASE:
            return _released(record, work, results, world, policy)
        case Intent.RESUME:
            message = Message(Say.RESUMED, culprits=tuple(record.culprits.values()))
            return Step(record, "resumed", (Log(message),))
        case Intent.REQUARANTINE:
            again = tuple(culprits[t.mac] for t in work.quarantine if t.mac in culprits)
            message = Message(Say.REQUARANTINED, culprits=again)
            return Step(record, "requarantined", (Log(message), Notify(message)))
    raise TypeError(f"unknown intent {work.intent!r}")  # pragma: no cover - typing


def _started(record: Record, work: Work, results: Results) -> Step:
    isolated = tuple(e for e in work.switch_off if e not in results.off_failed)
    failed = tuple(e for e in work.switch_off if e in results.off_failed)
    culprits = tuple(record.culprits.values())
    effects: list[Effect] = [
        Log(Message(Say.DETECTED, reason=record.reason, event=record.event)),
        Log(Message(Say.ISOLATED, appliances=isolated)),
        *(Log(Message(Say.CULPRIT, culprits=(culprit,))) for culprit in culprits),
        Notify(
            Message(
                Say.STARTED,
                reason=record.reason,
                event=record.event,
                culprits=culprits,
                appliances=isolated,
                failed=failed,
            ),
            _BUTTONS,
        ),
    ]
    return Step(record, "isolated", tuple(effects))


def _restored(record: Record, work: Work, results: Results) -> Step:
    released = [target.mac for target in work.release]
    outcomes = results.outcomes
    lifted = tuple(
        record.culprits[mac]
        for mac in released
        if mac in record.culprits and outcomes.get(mac, Outcome(False)).ok
    )
    kept = tuple(
        replace(record.culprits[mac], quarantine=outcomes.get(mac) or Outcome(False, "no_backend"))
        for mac in released
        if mac in record.culprits and not outcomes.get(mac, Outcome(False)).ok
    )
    restored = tuple(e for e in work.restore if e not in results.on_failed)
    failed = tuple(e for e in work.restore if e in results.on_failed)
    if kept or failed:
        remaining = replace(
            record,
            phase=Phase.ACTIVE,
            culprits={culprit.mac: culprit for culprit in kept},
            appliances={e: record.appliances[e] for e in failed},
        )
        message = Message(
            Say.INCOMPLETE,
            reason=work.reason,
            culprits=lifted,
            appliances=restored,
            failed=failed,
            kept=kept,
        )
        effects: tuple[Effect, ...] = (RaiseIssue(kept, failed), Log(message), Notify(message))
        return Step(remaining, "restore_incomplete", effects)
    message = Message(Say.RESTORED, reason=work.reason, culprits=lifted, appliances=restored)
    return Step(Record(), "restored", (ClearIssue(), Log(message), Notify(message)))


def _released(record: Record, work: Work, results: Results, world: World, policy: Policy) -> Step:
    culprit = record.culprits.get(work.mac or "")
    if culprit is None:  # pragma: no cover - the work named a recorded culprit
        return _quiet(record, "culprit_gone")
    outcome = results.outcomes.get(culprit.mac)
    if work.release and (outcome is None or not outcome.ok):
        kept = replace(culprit, quarantine=outcome or Outcome(False, "no_backend"))
        message = Message(Say.RELEASE_FAILED, culprits=(kept,))
        return Step(_with(record, kept), "release_failed", (Log(message), Notify(message)))
    remaining = {mac: c for mac, c in record.culprits.items() if mac != culprit.mac}
    record = replace(record, culprits=remaining)
    said = (Log(Message(Say.RELEASED, culprits=(culprit,))),)
    return _after_leaving(record, culprit, said, world, policy)


def _parse(timestamp: str | None) -> datetime | None:
    if timestamp is None:
        return None
    try:
        return datetime.fromisoformat(timestamp)
    except ValueError:  # a leap second or an impossible day: no judgement from it
        return None
