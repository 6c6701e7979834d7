"""The evacuation state machine, pure: every input in every phase, and random lives of an
evacuation against a simulated world, where nothing isolated may ever be forgotten."""

from __future__ import annotations

import ast
import itertools
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from custom_components.lan_guard.allowlist import Allowlist
from custom_components.lan_guard.evacuation import machine
from custom_components.lan_guard.evacuation.machine import (
    Done,
    Input,
    Keep,
    Labelled,
    Left,
    Log,
    Notify,
    Policy,
    QuarantineListed,
    Results,
    Resume,
    Say,
    Sighting,
    StartByHand,
    Step,
    Stop,
    Threat,
    Trigger,
    Work,
    World,
    start_reason,
    step,
)
from custom_components.lan_guard.evacuation.protected import ProtectedHosts
from custom_components.lan_guard.evacuation.record import (
    Culprit,
    Host,
    Outcome,
    Phase,
    Reason,
    Record,
    Snapshot,
)

PACKAGE = Path(__file__).resolve().parents[2] / "custom_components" / "lan_guard" / "evacuation"
TV, LAMP = "switch.tv", "light.lamp"
MACS = ("02:00:00:00:00:01", "02:00:00:00:00:02", "02:00:00:00:00:03")
GATEWAY = "02:00:00:00:00:fe"  # protected
SINCE = "2026-11-25T21:00:05.000Z"
OUTCOMES = (
    Outcome(True),
    Outcome(False, "agent_refused", "nft failed"),
    Outcome(False, "timeout", "10"),
    Outcome(False, "agent_offline"),
)


def _world(**changes: object) -> World:
    protected = replace(ProtectedHosts.nothing(), gateway=Allowlist.parse([GATEWAY]))
    states = {TV: Snapshot("on", {"friendly_name": "TV"}), LAMP: Snapshot("off")}
    return replace(
        World(now="2026-11-25T21:00:08+00:00", states=states, protected=protected), **changes
    )  # type: ignore[arg-type]


def _sighting(mac: str = MACS[0], level: int = 2, verdict: str | None = None) -> Sighting:
    return Sighting("syn_scan", level, Host(mac, "192.168.1.23", "Pi", "laptop"), SINCE, verdict)


def _run(record: Record, event: Input, world: World, policy: Policy, ok: bool = True) -> list[Step]:
    """A step and the step of its results (all parts worked, or all failed)."""
    steps = [step(record, event, world, policy)]
    while (work := steps[-1].work) is not None:
        results = Results(
            off_failed=frozenset() if ok else frozenset(work.switch_off),
            on_failed=frozenset() if ok else frozenset(work.restore),
            outcomes={
                target.mac: Outcome(True) if ok else Outcome(False, "agent_refused")
                for target in (*work.quarantine, *work.release)
            },
        )
        steps.append(step(steps[-1].record, Done(work, results), world, policy))
        assert len(steps) < 4, "the results of work never ask for more work"
    return steps


# --------------------------------------------------------------------- every input, every phase


def _records() -> dict[str, Record]:
    """An evacuation in each phase, with culprits in each state."""
    appliances = {TV: Snapshot("on"), LAMP: Snapshot("off")}
    isolated = Culprit(
        MACS[0], "192.168.1.23", since=SINCE, quarantine=Outcome(True), in_force=True
    )
    isolated = replace(isolated, backend="agent")
    failed = Culprit(MACS[1], None, since=SINCE, quarantine=Outcome(False, "agent_refused"))
    left = replace(isolated, mac=MACS[2], left=True)
    active = Record(Phase.ACTIVE, Reason.EVENT, "t", {"kind": "syn_scan", "level": 2})
    return {
        "idle": Record(),
        "active_by_hand": replace(active, reason=Reason.MANUAL, appliances=appliances),
        "active": replace(
            active,
            culprits={c.mac: c for c in (isolated, failed, left)},
            appliances=appliances,
        ),
        "culprit_left": replace(
            active,
            phase=Phase.CULPRIT_LEFT,
            culprits={left.mac: left},
            appliances=appliances,
        ),
        "one_culprit": replace(active, culprits={isolated.mac: isolated}, appliances=appliances),
        "held": replace(active, culprits={isolated.mac: isolated}, hold=True),
    }


def _inputs() -> dict[str, Input]:
    events: dict[str, Input] = {}
    named = {
        "isolated": MACS[0],
        "failed": MACS[1],
        "left": MACS[2],
        "new": "02:00:00:00:00:09",
        "gateway": GATEWAY,
    }
    for name, mac in named.items():
        for level in (1, 3):
            events[f"threat_{name}_level{level}"] = Threat(_sighting(mac, level))
        events[f"alarm_{name}"] = Labelled("alarm", _sighting(mac))
        events[f"normal_{name}"] = Labelled("normal", _sighting(mac))
        events[f"left_{name}"] = Left(mac)
        events[f"by_hand_{name}"] = StartByHand(Host(mac, "192.168.1.50"))
    events["stale_inventory"] = Left(MACS[0], datetime(2020, 1, 1, tzinfo=UTC))
    host_left = Sighting("host_left", 0, Host(MACS[0]))
    events["host_left_threat"] = Threat(host_left)
    events["host_left_label"] = Labelled("alarm", host_left)
    events["by_hand"] = StartByHand()
    events["stop"] = Stop()
    events["entry_removed"] = Stop(Reason.REMOVED)
    events["keep"] = Keep()
    events["resume"] = Resume()
    events["listed_none"] = QuarantineListed(frozenset())
    events["listed_all"] = QuarantineListed(frozenset(MACS))
    return events


POLICIES = [
    Policy(trigger, 2, auto_restore, (TV, LAMP), backend)
    for trigger, auto_restore, backend in itertools.product(
        Trigger, (True, False), ("agent", "none")
    )
]
_OWNER = (Stop, Keep, StartByHand)


@pytest.mark.parametrize("record_name", list(_records()))
def test_every_input_in_every_phase_has_a_defined_outcome(record_name: str) -> None:
    record = _records()[record_name]
    world = _world(agent_listed=frozenset({MACS[0]}))
    for (name, event), policy, ok in itertools.product(_inputs().items(), POLICIES, (True, False)):
        steps = _run(record, event, world, policy, ok)
        assert all(s.outcome for s in steps), name
        final = steps[-1].record
        assert record == _records()[record_name]  # the input record is never changed
        if final.phase is Phase.IDLE:
            assert final == Record(), name
        if final.phase is Phase.CULPRIT_LEFT:
            assert all(c.left for c in final.culprits.values()), name
        said = [e for s in steps for e in s.effects if isinstance(e, Log | Notify)]
        # The owner acted on evacuation: the logbook says what came of it.
        if isinstance(event, _OWNER) and event != Stop(Reason.REMOVED):
            assert any(isinstance(e, Log) for e in said), (record_name, name, policy)
        # A label about a culprit is answered in the logbook too.
        sighting = event.sighting if isinstance(event, Labelled) else None
        if sighting and sighting.is_threat and sighting.host.mac in record.culprits:
            assert any(isinstance(e, Log) for e in said), (record_name, name, policy)


def test_alarm_after_the_culprit_left_stays_and_asks_again() -> None:
    """The notification asks "Normal or Alarm?" after the culprit left: "Alarm" must not
    re-isolate a host that is gone (no host_left would ever end it)."""
    record = _records()["culprit_left"]
    result = step(record, Labelled("alarm", _sighting(MACS[2])), _world(), POLICIES[0])
    assert result.record == record
    assert result.work is None
    assert result.outcome == "alarm_after_left"
    log, notify = result.effects
    assert isinstance(log, Log) and log.message.say is Say.ALARM_AFTER_LEFT
    assert isinstance(notify, Notify) and notify.message.say is Say.LEFT_ASK
    assert notify.buttons == (machine.Choice.RESTORE,)


def test_a_false_alarm_among_several_culprits_releases_only_that_one() -> None:
    record = _records()["active"]
    world = _world()
    steps = _run(record, Labelled("normal", _sighting(MACS[0])), world, POLICIES[0])
    assert [t.mac for t in steps[0].work.release] == [MACS[0]]  # type: ignore[union-attr]
    final = steps[-1].record
    assert MACS[0] not in final.culprits
    assert final.phase is Phase.ACTIVE  # the culprit still present stays isolated
    assert final.appliances == record.appliances


def test_a_returning_culprit_is_isolated_whatever_the_start_policy() -> None:
    record = _records()["culprit_left"]
    manual = replace(POLICIES[0], trigger=Trigger.MANUAL)
    steps = _run(record, Threat(_sighting(MACS[2], level=1)), _world(), manual)
    assert steps[0].work is not None and steps[0].work.quarantine
    final = steps[-1].record
    assert final.phase is Phase.ACTIVE and not final.culprits[MACS[2]].left
    assert final.culprits[MACS[2]].in_force


def test_the_start_policy() -> None:
    allowlist = Allowlist.parse(["192.168.1.23"])
    level = Policy(Trigger.LEVEL, 2)
    verdict = Policy(Trigger.VERDICT, 2)
    nobody = Allowlist.parse([])
    assert start_reason(level, nobody, _sighting(level=2)) is Reason.EVENT
    assert start_reason(level, nobody, _sighting(level=1)) is None
    assert start_reason(level, allowlist, _sighting(level=3)) is None
    assert start_reason(verdict, nobody, _sighting(level=1, verdict="alarm")) is Reason.VERDICT
    assert start_reason(verdict, nobody, _sighting(level=3, verdict="unsure")) is None
    assert start_reason(verdict, nobody, _sighting(level=3)) is Reason.EVENT  # no classifier
    assert start_reason(Policy(Trigger.MANUAL), nobody, _sighting(level=3)) is None


def test_the_providers_start_and_stop_say_so() -> None:
    policy = Policy(Trigger.MANUAL, 2, True, (TV,), "agent")
    started = _run(Record(), StartByHand(Host(MACS[0]), Reason.PROVIDER), _world(), policy)
    record = started[-1].record
    assert (record.phase, record.reason) == (Phase.ACTIVE, Reason.PROVIDER)
    assert MACS[0] in record.culprits and TV in record.appliances
    ended = _run(record, Stop(Reason.PROVIDER), _world(), policy)
    assert not ended[-1].record.active
    said = [e.message for s in ended for e in s.effects if isinstance(e, Notify)]
    assert said and said[-1].reason is Reason.PROVIDER


def test_records_round_trip_and_read_older_ones() -> None:
    for record in _records().values():
        assert Record.from_dict(record.as_dict()) == record
    older = _records()["active"].as_dict()
    older["reason"] = "unload"  # a reason that no longer exists
    for culprit in older["culprits"]:
        del culprit["backend"], culprit["unsure"]
    read = Record.from_dict(older)
    assert read.reason is None
    assert all(c.backend is None and not c.unsure for c in read.culprits.values())


def test_the_state_machine_needs_no_home_assistant() -> None:
    """Only the standard library and the package's other pure modules."""
    pure = {"allowlist", "protected", "record"}
    for name in ("machine.py", "record.py", "protected.py"):
        tree = ast.parse((PACKAGE / name).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("homeassistant") for a in node.names), name
            elif isinstance(node, ast.ImportFrom):
                module = node.module or ""
                assert not module.startswith("homeassistant"), name
                assert node.level == 0 or module in pure, (name, module)


# --------------------------------------------------------------------- random lives


@dataclass
class Simulated:
    """The world the runner acts on: appliances, and what backends isolate."""

    states: dict[str, str] = field(default_factory=lambda: {TV: "on", LAMP: "off"})
    isolated: set[str] = field(default_factory=set)  # may be isolated (ok or no answer)
    switched_off: set[str] = field(default_factory=set)  # off because of us


macs = st.sampled_from((*MACS, GATEWAY))


class EvacuationLife(RuleBasedStateMachine):
    """Random inputs with random results; after each, nothing isolated is forgotten."""

    @initialize(
        trigger=st.sampled_from(Trigger),
        auto_restore=st.booleans(),
        backend=st.sampled_from(("agent", "entity", "none")),
    )
    def start(self, trigger: Trigger, auto_restore: bool, backend: str) -> None:
        self.policy = Policy(trigger, 2, auto_restore, (TV, LAMP), backend)
        self.record = Record()
        self.sim = Simulated()
        self.outcomes: list[Outcome] = []
        self.appliances_fail = False

    def _world(self, listed: bool) -> World:
        states = {entity: Snapshot(state) for entity, state in self.sim.states.items()}
        return _world(states=states, agent_listed=frozenset(self.sim.isolated) if listed else None)

    def _feed(self, event: Input, listed: bool = False) -> None:
        world = self._world(listed)
        result = step(self.record, event, world, self.policy)
        assert result.outcome
        while True:
            self.record = result.record
            if result.work is None:
                return
            results = self._perform(result.work)
            result = step(self.record, Done(result.work, results), world, self.policy)
            assert result.work is None or isinstance(result.work, Work)

    def _perform(self, work: Work) -> Results:
        sim = self.sim
        off_failed = set()
        for entity in work.switch_off:
            if self.appliances_fail:
                off_failed.add(entity)
            elif sim.states[entity] == "on":
                sim.states[entity] = "off"
                sim.switched_off.add(entity)
        on_failed = set()
        for entity in work.restore:
            if self.appliances_fail:
                on_failed.add(entity)
            else:
                sim.states[entity] = self.record.appliances[entity].state
                sim.switched_off.discard(entity)
        outcomes = {}
        for target in work.quarantine:
            outcome = self.outcomes.pop() if self.outcomes else Outcome(True)
            if target.backend == "none":
                outcome = Outcome(False, "no_backend")
            if outcome.ok or outcome.reason == "timeout":
                sim.isolated.add(target.mac)  # a late answer may have isolated it
            outcomes[target.mac] = outcome
        for target in work.release:
            outcome = self.outcomes.pop() if self.outcomes else Outcome(True)
            if target.backend == "none":
                outcome = Outcome(False, "no_backend")
            if outcome.ok:
                sim.isolated.discard(target.mac)
            outcomes[target.mac] = outcome
        return Results(frozenset(off_failed), frozenset(on_failed), outcomes)

    @rule(outcomes=st.lists(st.sampled_from(OUTCOMES), max_size=3), fail=st.booleans())
    def next_results(self, outcomes: list[Outcome], fail: bool) -> None:
        self.outcomes = outcomes
        self.appliances_fail = fail

    @rule(mac=macs, level=st.integers(1, 3), verdict=st.sampled_from((None, "alarm", "normal")))
    def threat(self, mac: str, level: int, verdict: str | None) -> None:
        self._feed(Threat(_sighting(mac, level, verdict)))

    @rule(mac=macs, stale=st.booleans())
    def left(self, mac: str, stale: bool) -> None:
        self._feed(Left(mac, datetime(2020, 1, 1, tzinfo=UTC) if stale else None))

    @rule(mac=macs, label=st.sampled_from(("alarm", "normal")))
    def label(self, mac: str, label: str) -> None:
        self._feed(Labelled(label, _sighting(mac)))

    @rule(mac=st.none() | macs)
    def by_hand(self, mac: str | None) -> None:
        self._feed(StartByHand(Host(mac) if mac else None))

    @rule(listed=st.booleans())
    def stop(self, listed: bool) -> None:
        self._feed(Stop(), listed)

    @rule()
    def keep(self) -> None:
        self._feed(Keep())

    @rule(listed=st.booleans())
    def resume(self, listed: bool) -> None:
        self._feed(Resume(), listed)

    @rule()
    def agent_restarts(self) -> None:
        """The agent loses its nftables table and says so in its retained payload."""
        if self.policy.backend == "agent":
            self.sim.isolated.clear()
            self._feed(QuarantineListed(frozenset()), listed=True)

    @invariant()
    def nothing_isolated_is_forgotten(self) -> None:
        record = self.record
        for mac in self.sim.isolated:
            culprit = record.culprits.get(mac)
            assert culprit is not None, f"{mac} may be isolated and is not recorded"
            assert culprit.in_force or culprit.unsure, f"{mac} would not be released"
        assert self.sim.switched_off <= set(record.appliances), "an appliance would stay off"
        assert not record.culprits.get(GATEWAY, Culprit(GATEWAY, None)).in_force

    @invariant()
    def phases_say_what_they_mean(self) -> None:
        record = self.record
        if record.phase is Phase.IDLE:
            assert record == Record()
        if record.phase is Phase.CULPRIT_LEFT:
            assert all(c.left for c in record.culprits.values())


EvacuationLife.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_random_lives_never_forget_what_is_isolated = EvacuationLife.TestCase
