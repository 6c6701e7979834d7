"""psoc.store on SQLite and PostgreSQL: idempotent ingest, incidents, facts, gaps, queries."""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import inspect

from psoc.db.engine import downgrade, upgrade
from psoc.ingest import decode as d
from psoc.store import KIND_BITS, Store, kinds_of
from psoc.topics import Where
from sensor_agent import contract
from tests.psoc import payloads as p

NOW = time.time()


def rec(site: str, agent: str, sub: str, payload: Any, now: float = NOW) -> d.Decoded:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return d.decode(Where(site, agent, sub), raw, None, now)


@pytest.fixture
def sites(store: Store) -> Store:
    store.add_site("s1", "Site one", "site-s1", NOW)
    store.add_site("s2", "Site two", "site-s2", NOW)
    return store


def test_migrations_create_every_table_and_go_back(store: Store) -> None:
    tables = set(inspect(store.engine).get_table_names())
    assert {
        "sites",
        "agents",
        "hosts",
        "incidents",
        "events",
        "users",
        "actions",
        "notifications",
    } <= tables
    indexes = {i["name"] for i in inspect(store.engine).get_indexes("incidents")}
    assert {"ix_incidents_queue", "ix_incidents_site"} <= indexes
    downgrade(store.engine, "base")
    assert "events" not in inspect(store.engine).get_table_names()
    upgrade(store.engine)
    assert "events" in inspect(store.engine).get_table_names()


def test_an_event_delivered_twice_is_stored_once_and_counted_once(sites: Store) -> None:
    incident = "a" * 32
    first = p.event(at=NOW - 5, level=1, kind="arp_scan", incident_id=incident)
    second = p.event(at=NOW - 3, level=2, kind="syn_scan", incident_id=incident)
    result = sites.ingest(
        [rec("s1", "pi-a", "event", first), rec("s1", "pi-a", "event", first)], NOW
    )
    assert (result.events_new, result.events_duplicate) == (1, 1)
    again = sites.ingest(
        [rec("s1", "pi-a", "event", first), rec("s1", "pi-a", "event", second)], NOW + 1
    )
    assert (again.events_new, again.events_duplicate) == (1, 1)
    [row] = sites.queue()
    assert row["events"] == 2 and row["level"] == 2
    assert kinds_of(row["kinds"]) == ["arp_scan", "syn_scan"]
    assert row["received_at"] == NOW  # first stored
    assert [e["level"] for e in sites.incident_events(row["id"])] == [1, 2]


def test_every_kind_of_the_agent_is_stored_and_old_masks_keep_their_meaning(
    sites: Store,
) -> None:
    incident = "c" * 32
    events = [
        rec("s1", "pi-a", "event", p.event(at=NOW - 20 + i, kind=kind, incident_id=incident))
        for i, kind in enumerate(contract.KINDS)
    ]
    assert sites.ingest(events, NOW).events_new == len(contract.KINDS)
    [row] = sites.queue()
    assert kinds_of(row["kinds"]) == list(contract.KINDS)
    # masks stored before the kinds list grew: the first kinds keep their bits
    assert kinds_of(0b1100_0011) == ["arp_scan", "syn_scan", "arp_spray", "source_spray"]
    assert max(KIND_BITS.values()) < 2**31  # the column is a signed 32-bit integer


def test_the_same_ids_at_another_site_are_another_sites_rows(sites: Store) -> None:
    event = p.event(at=NOW, level=3, kind="session", incident_id="b" * 32)
    sites.ingest([rec("s1", "pi-a", "event", event), rec("s2", "pi-a", "event", event)], NOW)
    assert sorted(r["site_id"] for r in sites.queue()) == ["s1", "s2"]
    assert [r["site_id"] for r in sites.queue(site_id="s2")] == ["s2"]


def test_queue_is_by_level_then_age_and_closing_hides(sites: Store) -> None:
    sites.ingest([rec("s1", "pi-a", "event", p.event(at=NOW, level=1))], NOW)
    sites.ingest(
        [rec("s1", "pi-a", "event", p.event(at=NOW, level=3, mac="02:00:00:00:00:01"))], NOW + 1
    )
    sites.ingest(
        [rec("s2", "pi-b", "event", p.event("pi-b", at=NOW, level=3, mac="02:00:00:00:00:02"))],
        NOW + 2,
    )
    queue = sites.queue()
    assert [(r["level"], r["received_at"]) for r in queue] == [(3, NOW + 1), (3, NOW + 2), (1, NOW)]
    sites.act(queue[0]["id"], "alice", "close", NOW + 3, status="closed", closed_at=NOW + 3)
    assert len(sites.queue()) == 2
    assert sites.incident_row(queue[0]["id"])["responded_at"] == NOW + 3  # type: ignore[index]
    [entry] = sites.audit(incident=queue[0]["id"])
    assert (entry["actor"], entry["action"]) == ("alice", "close")


def test_newer_state_wins_and_an_old_copy_does_not_overwrite_it(sites: Store) -> None:
    sites.ingest([rec("s1", "pi-a", "state", p.state(at=NOW, level=2))], NOW)
    sites.ingest([rec("s1", "pi-a", "state", p.state(at=NOW - 60, level=0))], NOW + 1)
    [agent] = sites.agents("s1")
    assert agent["level"] == 2 and agent["state_ts"] == pytest.approx(NOW, abs=0.01)
    sites.ingest([rec("s1", "pi-a", "status", b"offline")], NOW + 2)
    assert sites.agents("s1")[0]["status"] == "offline"
    [overview] = sites.sites_overview("s1")
    assert overview["agents"] == 1 and overview["agents_online"] == 0


def test_hosts_inventory_is_upserted(sites: Store) -> None:
    host = {
        "mac": "02:00:00:00:00:09",
        "ip": "192.0.2.9",
        "vendor": None,
        "hostname": "tv",
        "first_seen": p.iso(NOW),
        "last_seen": p.iso(NOW),
        "present": True,
    }
    hosts = {"schema": 1, "agent_id": "pi-a", "hosts": [host], "updated_at": p.iso(NOW)}
    sites.ingest([rec("s1", "pi-a", "hosts", hosts)], NOW)
    later = {**hosts, "hosts": [{**host, "present": False}], "updated_at": p.iso(NOW + 5)}
    sites.ingest([rec("s1", "pi-a", "hosts", later)], NOW + 5)
    from sqlalchemy import select

    from psoc.db.models import Host

    with sites.engine.connect() as conn:
        assert conn.execute(select(Host.present, Host.hostname)).all() == [(False, "tv")]


def test_site_channel_consent_evacuation_verdict_and_labels(sites: Store) -> None:
    event = p.event(at=NOW, level=3, kind="session")
    sites.ingest([rec("s1", "pi-a", "event", event)], NOW)
    [incident] = sites.queue()
    consent = {
        "schema": 1,
        "agent_id": "pi-a",
        "may_see": True,
        "may_evacuate": True,
        "updated_at": p.iso(NOW),
    }
    verdict = {
        "schema": 1,
        "id": "v1",
        "agent_id": "pi-a",
        "event_id": event["id"],
        "verdict": "alarm",
        "probability": 0.97,
        "decided_by": "model",
    }
    label = {
        "schema": 1,
        "id": "l1",
        "agent_id": "pi-a",
        "event_id": event["id"],
        "label": "alarm",
        "by": "owner",
        "labelled_at": p.iso(NOW),
    }
    evac = {
        "schema": 1,
        "agent_id": "pi-a",
        "active": True,
        "started_by": "provider",
        "reason": "SOC",
        "culprits": [{"mac": event["source"]["mac"], "ip": event["source"]["ip"]}],
        "updated_at": p.iso(NOW + 1),
    }
    records = [
        rec("s1", "pi-a", sub, body)
        for sub, body in (
            ("site/consent", consent),
            ("site/verdict", verdict),
            ("site/label", label),
            ("site/evacuation", evac),
        )
    ]
    sites.ingest(records, NOW + 1)
    row = sites.incident_row(incident["id"])
    assert row is not None
    assert (row["verdict"], row["probability"], row["customer_label"], row["isolation"]) == (
        "alarm",
        0.97,
        "alarm",
        "active",
    )
    [site] = sites.sites_overview("s1")
    assert site["may_evacuate"] is True and site["evacuation"]["active"] is True
    stopped = {**evac, "active": False, "culprits": [], "updated_at": p.iso(NOW + 10)}
    sites.ingest([rec("s1", "pi-a", "site/evacuation", stopped)], NOW + 10)
    row = sites.incident_row(incident["id"])
    assert row is not None and (row["isolation"], row["restored_at"]) == ("restored", NOW + 10)
    actions = [a["action"] for a in sites.audit(site_id="s1")]
    assert actions.count("site_evacuation") == 2 and "customer_label" in actions
    # a verdict on an event the PSOC does not have is refused and counted, not lost silently
    unknown = {**verdict, "event_id": "f" * 32}
    assert sites.ingest([rec("s1", "pi-a", "site/verdict", unknown)], NOW).rejected == Counter(
        {("s1", "unknown_event"): 1}
    )


def test_one_batch_with_an_event_its_verdict_and_states_of_several_agents(sites: Store) -> None:
    event = p.event("pi-a", at=NOW, level=3, kind="session", seq=1)
    verdict = {
        "schema": 1,
        "id": "v1",
        "agent_id": "pi-a",
        "event_id": event["id"],
        "verdict": "alarm",
        "probability": 0.9,
        "decided_by": "model",
    }
    states = [  # two for pi-a in one batch, the newer first: it wins
        ("pi-a", p.state("pi-a", at=NOW + 2, level=3, last_seq=1, oldest_seq=1)),
        ("pi-a", p.state("pi-a", at=NOW + 1, level=1, last_seq=1)),
        ("pi-b", p.state("pi-b", at=NOW + 1, level=2, last_seq=7)),
    ]
    result = sites.ingest(
        [
            rec("s1", "pi-a", "event", event),
            rec("s1", "pi-a", "site/verdict", verdict),
            *(rec("s1", agent, "state", body) for agent, body in states),
        ],
        NOW + 3,
    )
    assert result.events_new == 1 and not result.rejected
    [incident] = sites.queue()
    assert (incident["verdict"], incident["level"]) == ("alarm", 3)
    agents = {a["agent_id"]: a for a in sites.agents("s1")}
    assert (agents["pi-a"]["level"], agents["pi-a"]["last_seq"]) == (3, 1)
    assert (agents["pi-a"]["oldest_seq"], agents["pi-a"]["state_ts"]) == (1, pytest.approx(NOW + 2))
    assert (agents["pi-b"]["level"], agents["pi-b"]["last_seq"]) == (2, 7)
    # a site is last seen when its agents were
    [site] = sites.sites_overview("s1")
    assert site["last_seen_at"] == NOW + 3 and site["agents"] == 2
    assert sites.sites_overview("s2")[0]["last_seen_at"] is None


def test_request_results_update_the_request_and_unknown_ones_are_refused(sites: Store) -> None:
    sites.ingest([rec("s1", "pi-a", "event", p.event(at=NOW, level=3))], NOW)
    [incident] = sites.queue()
    sites.request(
        incident["id"], "request_isolation", "bob", NOW + 1, request_id="r1", detail="isolate"
    )
    result = {
        "id": "r1",
        "ok": False,
        "outcome": "refused",
        "error": "the customer has not allowed it",
        "agent_id": "pi-a",
    }
    sites.ingest([rec("s1", "pi-a", "site/request/result", result)], NOW + 2)
    row = sites.incident_row(incident["id"])
    assert row is not None and row["isolation"] == "refused" and row["responded_at"] == NOW + 1
    sent = [a for a in sites.audit(incident=incident["id"]) if a["action"] == "request_isolation"]
    assert sent[0]["result"] == "refused" and sent[0]["result_at"] == NOW + 2
    # another site cannot answer it: refused and counted, the rest of the batch is stored
    other = sites.ingest(
        [
            rec("s2", "pi-a", "site/request/result", result),
            rec("s2", "pi-a", "event", p.event(at=NOW, level=1)),
        ],
        NOW + 3,
    )
    assert other.rejected == Counter({("s2", "unknown_request"): 1}) and other.events_new == 1


def test_gaps_are_asked_for_once_then_counted_lost_when_gone(sites: Store) -> None:
    events = [p.event(at=NOW, level=1, seq=n) for n in (1, 2, 5)]
    sites.ingest([rec("s1", "pi-a", "event", e) for e in events], NOW)
    requests, lost = sites.check_gaps(NOW)
    assert requests == [] and not lost  # within the grace time: events may be on their way
    assert sites.agents("s1")[0]["gap_since"] == NOW
    requests, _ = sites.check_gaps(NOW + 5)
    assert sites.agents("s1")[0]["seq_done"] == 2
    # only the hole: 3 and 4 (5 is stored)
    assert [(r.site_id, r.agent_id, r.after_seq, r.through_seq) for r in requests] == [
        ("s1", "pi-a", 2, 4)
    ]
    [asked] = [a for a in sites.audit(site_id="s1") if a["action"] == "replay_requested"]
    assert asked["request_id"] == requests[0].command_id
    assert sites.check_gaps(NOW + 6)[0] == []  # not again before the retry time
    # the agent no longer keeps 3 and 4: counted, and seq_done moves over them
    sites.ingest(
        [rec("s1", "pi-a", "state", p.state(at=NOW + 7, last_seq=5, oldest_seq=5))], NOW + 7
    )
    requests, lost = sites.check_gaps(NOW + 8)
    assert requests == [] and lost == Counter({("s1", "events_lost"): 2})
    agent = sites.agents("s1")[0]
    assert (agent["seq_done"], agent["events_lost"]) == (5, 2)
    assert any(a["action"] == "events_lost" for a in sites.audit(site_id="s1"))


NEW_STORE = "0123456789abcdef0123456789abcdef"


def test_a_wiped_agent_store_restarts_the_sequence_without_a_false_gap(sites: Store) -> None:
    sites.ingest([rec("s1", "pi-a", "event", p.event(at=NOW, seq=n)) for n in (1, 2, 3)], NOW)
    sites.check_gaps(NOW)
    wiped = p.state(at=NOW + 1, epoch=NEW_STORE, last_seq=1, oldest_seq=1)
    sites.ingest([rec("s1", "pi-a", "state", wiped)], NOW + 1)
    sites.ingest([rec("s1", "pi-a", "event", p.event(at=NOW + 1, seq=1, epoch=NEW_STORE))], NOW + 2)
    requests, lost = sites.check_gaps(NOW + 10)
    assert requests == [] and not lost
    assert sites.agents("s1")[0]["seq_done"] == 1
    assert any(a["action"] == "sequence_reset" for a in sites.audit(site_id="s1"))


def test_a_new_event_store_is_told_by_its_epoch_even_past_the_old_numbers(sites: Store) -> None:
    """A replaced store that has already numbered more events than the old one had is not
    taken for the old one going on; its events that came before its state count, and late
    events of the old store move nothing."""
    sites.ingest([rec("s1", "pi-a", "event", p.event(at=NOW, seq=n)) for n in (1, 2, 3)], NOW)
    sites.check_gaps(NOW)
    early = [p.event(at=NOW + 1, seq=n, epoch=NEW_STORE) for n in range(1, 6)]
    sites.ingest([rec("s1", "pi-a", "event", e) for e in early], NOW + 1)
    assert sites.agents("s1")[0]["last_seq"] == 3  # not the new store's numbers
    state = p.state(at=NOW + 2, epoch=NEW_STORE, last_seq=6, oldest_seq=1)
    sites.ingest([rec("s1", "pi-a", "state", state)], NOW + 2)
    sites.ingest([rec("s1", "pi-a", "event", p.event(at=NOW, seq=9))], NOW + 3)  # old store, late
    sites.ingest([rec("s1", "pi-a", "event", p.event(at=NOW + 3, seq=6, epoch=NEW_STORE))], NOW + 3)
    requests, lost = sites.check_gaps(NOW + 10)
    assert requests == [] and not lost
    agent = sites.agents("s1")[0]
    assert (agent["epoch"], agent["seq_done"], agent["last_seq"]) == (NEW_STORE, 6, 6)
    [reset] = [a for a in sites.audit(site_id="s1") if a["action"] == "sequence_reset"]
    assert "a new event store" in reset["detail"]


def test_counters_add_up(sites: Store) -> None:
    sites.count(Counter({("s1", "bad_signature"): 2}))
    sites.count(Counter({("s1", "bad_signature"): 1, ("s2", "not_json"): 1}))
    assert sites.counters() == {("s1", "bad_signature"): 3, ("s2", "not_json"): 1}


def test_figures_and_retention(sites: Store) -> None:
    sites.ingest([rec("s1", "pi-a", "event", p.event(at=NOW - 10, level=2))], NOW)
    [incident] = sites.queue()
    sites.act(incident["id"], "bob", "acknowledge", NOW + 4, status="acknowledged")
    sites.act(incident["id"], "bob", "close", NOW + 30, status="closed", closed_at=NOW + 30)
    figures = sites.figures()
    assert figures[None]["incidents"] == 1
    assert figures["s1"]["detect"] == pytest.approx(
        12, abs=0.01
    )  # first frame 2 s before detection
    assert (figures["s1"]["respond"], figures["s1"]["restore"]) == (4, 30)
    assert sites.prune(NOW + 86_400 * 100, events_days=90, incidents_days=30) == (1, 1)
    assert sites.queue(include_closed=True) == []
    assert len(sites.audit()) == 2  # the audit log stays


def test_users_and_roles(sites: Store) -> None:
    sites.add_user("alice", "hash", "admin", NOW)
    sites.add_user("carol", "hash", "customer", NOW, site_id="s1")
    with pytest.raises(ValueError, match="customer"):
        sites.add_user("dave", "hash", "customer", NOW)
    with pytest.raises(ValueError, match="role"):
        sites.add_user("eve", "hash", "root", NOW)
    user = sites.user(username="carol")
    assert user is not None and user["site_id"] == "s1" and user["role"] == "customer"


def test_commits_the_live_feed_shows_are_announced(sites: Store) -> None:
    changes = sites.changes()
    try:
        if not changes.pushed:  # SQLite: nothing is announced, the console polls
            t0 = time.monotonic()
            changes.wait(5.0)
            assert time.monotonic() - t0 < 4.0
            return
        changes.wait(0.1)  # listening from here on; nothing committed yet
        t0 = time.monotonic()
        changes.wait(0.3)
        assert time.monotonic() - t0 >= 0.25
        sites.ingest([rec("s1", "pi-a", "event", p.event(at=NOW))], NOW)
        t0 = time.monotonic()
        changes.wait(5.0)  # committed while nobody waited: kept, returns at once
        assert time.monotonic() - t0 < 4.0
        sites.log("alice", "login", NOW)  # an audit entry too
        t0 = time.monotonic()
        changes.wait(5.0)
        assert time.monotonic() - t0 < 4.0
    finally:
        changes.close()
