"""CommandHandler: every refusal path, signatures, replay, protected hosts, valid results."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from ipaddress import IPv4Network
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensor_agent import signing
from sensor_agent.commands import CommandHandler, ProtectedHosts, build_command_handler
from sensor_agent.enforcer import (
    EnforcerError,
    EnforcerKind,
    EnforcerSettings,
    NoEnforcer,
    QuarantinedHost,
)
from sensor_agent.redelivery import RedeliveryRefused
from tests.contract import validate

KEY = b"shared-secret"
NOW = 1_795_000_000.0
CULPRIT_MAC = "02:00:00:00:00:66"
CULPRIT_IP = "198.18.4.66"


class RecordingEnforcer:
    """Fake enforcer: records calls, keeps a listing, can be told to fail."""

    kind: EnforcerKind = "nftables"

    def __init__(self, fail: Exception | None = None) -> None:
        self.calls: list[tuple[str, str, str | None]] = []
        self.fail = fail
        self._hosts: dict[str, QuarantinedHost] = {}

    def quarantine(self, mac: str, ip: str | None, command_id: str) -> None:
        self.calls.append(("quarantine", mac, ip))
        if self.fail is not None:
            raise self.fail
        self._hosts[mac] = QuarantinedHost(mac, ip, NOW, command_id)

    def release(self, mac: str) -> bool:
        self.calls.append(("release", mac, None))
        if self.fail is not None:
            raise self.fail
        return self._hosts.pop(mac, None) is not None

    def hosts(self) -> list[QuarantinedHost]:
        return list(self._hosts.values())

    def close(self) -> None:
        self._hosts.clear()


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


PROTECTED = ProtectedHosts.build(
    gateway_ip="198.18.4.1",
    gateway_mac="02:00:00:00:00:01",
    node_ips=["198.18.4.2"],
    node_macs=["02:00:00:00:00:02"],
    allowlist=["02:00:00:00:00:AA", "198.18.4.200"],
    subnet=IPv4Network("198.18.4.0/24"),
)


def make(
    key: bytes | None = None, enforcer: Any = None, **kwargs: Any
) -> tuple[CommandHandler, RecordingEnforcer, list[dict[str, Any]], Clock]:
    enforcer = enforcer if enforcer is not None else RecordingEnforcer()
    published: list[dict[str, Any]] = []
    clock = Clock()
    handler = CommandHandler(
        enforcer,
        agent_id="router-1",
        protected=PROTECTED,
        key=key,
        on_change=kwargs.pop("on_change", published.append),
        clock=clock,
        **kwargs,
    )
    return handler, enforcer, published, clock


def command(
    action: str = "quarantine",
    mac: str = CULPRIT_MAC,
    ip: str | None = CULPRIT_IP,
    command_id: str = "c0ffee01",
    ts: float = NOW,
) -> dict[str, Any]:
    return {"id": command_id, "action": action, "mac": mac, "ip": ip, "ts": ts}


def hand_signed(
    payload: dict[str, Any],
    key: bytes = KEY,
    agent_id: str | None = "router-1",
    topic: str = "command",
) -> dict[str, Any]:
    """Signed the way schema/common.schema.json specifies it, independently of
    sensor_agent.signing: format 2 for ``agent_id``'s ``topic``; format 1 when ``agent_id``
    is None."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    signed = canonical if agent_id is None else f"lan-guard/2\n{agent_id}\n{topic}\n{canonical}"
    sig = hmac.new(key, signed.encode("utf-8"), hashlib.sha256).hexdigest()
    return {**payload, "sig": sig}


def send(handler: CommandHandler, payload: Any) -> dict[str, Any]:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    result = handler(raw)
    validate("command_result", result)
    return result


# ---------------------------------------------------------------- happy paths


def test_quarantine_applies_answers_and_publishes_state() -> None:
    handler, enforcer, published, _ = make()
    result = send(handler, command())
    assert result == {
        "id": "c0ffee01",
        "ok": True,
        "error": None,
        "action": "quarantine",
        "mac": CULPRIT_MAC,
    }
    assert enforcer.calls == [("quarantine", CULPRIT_MAC, CULPRIT_IP)]
    assert len(published) == 1
    validate("quarantine", published[0])
    assert published[0]["hosts"] == [
        {
            "mac": CULPRIT_MAC,
            "ip": CULPRIT_IP,
            "since": "2026-11-18T11:06:40.000Z",
            "command_id": "c0ffee01",
        }
    ]
    assert published[0]["agent_id"] == "router-1"
    assert published[0]["enforcer"] == "nftables"


def test_quarantine_by_mac_only() -> None:
    handler, enforcer, _, _ = make()
    payload = command()
    del payload["ip"]
    assert send(handler, payload)["ok"] is True
    assert enforcer.calls == [("quarantine", CULPRIT_MAC, None)]


def test_release_lifts_and_publishes_empty_state() -> None:
    handler, enforcer, published, _ = make()
    send(handler, command())
    result = send(handler, command("release", command_id="c0ffee02"))
    assert result["ok"] is True
    assert result["action"] == "release"
    assert enforcer.calls[-1] == ("release", CULPRIT_MAC, None)
    assert published[-1]["hosts"] == []
    validate("quarantine", published[-1])


def test_release_of_unknown_host_is_ok_and_publishes_nothing() -> None:
    handler, _, published, _ = make()
    assert send(handler, command("release"))["ok"] is True
    assert published == []


def test_state_payload_at_start_is_valid_and_empty() -> None:
    handler, _, _, _ = make()
    state = handler.state_payload()
    validate("quarantine", state)
    assert state["hosts"] == []


# ---------------------------------------------------------------- malformed input


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"{not json", "not JSON"),
        (b"\xff\xfe\x00", "not JSON"),
        (b"", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'"quarantine"', "not a JSON object"),
    ],
)
def test_unparseable_command_is_answered_with_empty_id(raw: bytes, fragment: str) -> None:
    handler, enforcer, published, _ = make()
    result = send(handler, raw)
    assert result["id"] == ""
    assert result["ok"] is False
    assert fragment in result["error"]
    assert "action" not in result
    assert enforcer.calls == []
    assert published == []


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"action": "shutdown"}, "unknown action"),
        ({"mac": "02:00:00:00:00:6G"}, "mac must be"),
        ({"mac": "02:00:00:00:00:AA"}, "mac must be"),
        ({"mac": 42}, "mac"),
        ({"ip": "198.18.4.300"}, "not an IPv4 address"),
        ({"ip": 3232235777}, "IPv4 address as a string"),
        ({"ts": "now"}, "unix time"),
        ({"ts": True}, "unix time"),
        ({"sig": "XYZ"}, "sig must be"),
        ({"extra": 1}, "extra keys not allowed"),
    ],
)
def test_invalid_field_is_refused_with_the_commands_id(
    change: dict[str, Any], fragment: str
) -> None:
    handler, enforcer, _, _ = make()
    result = send(handler, {**command(), **change})
    assert result["id"] == "c0ffee01"
    assert result["ok"] is False
    assert result["error"].startswith("invalid command:")
    assert fragment in result["error"]
    assert enforcer.calls == []


@pytest.mark.parametrize("missing", ["id", "action", "mac", "ts"])
def test_missing_required_field_is_refused(missing: str) -> None:
    handler, enforcer, _, _ = make()
    payload = command()
    del payload[missing]
    result = send(handler, payload)
    assert result["ok"] is False
    assert f"required key not provided @ data['{missing}']" in result["error"]
    assert result["id"] == ("" if missing == "id" else "c0ffee01")
    assert enforcer.calls == []


@pytest.mark.parametrize("bad_id", ["", "has space", "x" * 65, 7, None])
def test_unusable_id_gives_empty_result_id(bad_id: Any) -> None:
    handler, enforcer, _, _ = make()
    result = send(handler, {**command(), "id": bad_id})
    assert result["id"] == ""
    assert result["ok"] is False
    assert enforcer.calls == []


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 60_000,
        b'{"id": "c0ffee01", "x": ' + b"[" * 30_000 + b"]" * 30_000 + b"}",
        b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
        json.dumps({**command(), "deep": [[[[[[[[[[1]]]]]]]]]]}).encode(),
    ],
    ids=["brackets", "deep-field", "deep-objects", "nine-levels"],
)
def test_deep_nesting_is_a_clean_refusal(raw: bytes, caplog: pytest.LogCaptureFixture) -> None:
    handler, enforcer, _, _ = make(key=KEY)
    assert len(raw) < 65_536
    with caplog.at_level(logging.WARNING):
        result = send(handler, raw)
    assert result == {
        "id": "",
        "ok": False,
        "error": "malformed command: nested deeper than 8 levels",
    }
    assert enforcer.calls == []
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_brackets_inside_strings_are_no_nesting() -> None:
    handler, _, _, _ = make()
    result = send(handler, {**command(), "id": "c0ffee01", "x": '[[[[[[[[[[[[{{{{{{{{\\"[['})
    assert "extra keys not allowed" in result["error"]  # parsed: refused for its shape


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(
    payload=st.dictionaries(
        st.sampled_from(["id", "action", "mac", "ip", "ts", "sig", "x"]), JSONISH, max_size=7
    ),
    depth=st.integers(min_value=0, max_value=40),
)
def test_any_nested_object_gets_a_valid_answer_and_logs_no_error(
    payload: dict[str, Any], depth: int
) -> None:
    handler, enforcer, _, _ = make(key=KEY)
    raw = b"[" * depth + json.dumps(payload).encode() + b"]" * depth
    logger = logging.getLogger("sensor_agent.commands")
    errors: list[logging.LogRecord] = []
    catcher = logging.Handler(logging.ERROR)
    catcher.emit = errors.append  # type: ignore[method-assign]
    logger.addHandler(catcher)
    try:
        result = handler(raw)
    finally:
        logger.removeHandler(catcher)
    validate("command_result", result)
    assert result["ok"] is False  # unsigned or malformed: never applied
    assert enforcer.calls == [] and errors == []


@settings(max_examples=200, deadline=None)
@given(raw=st.binary(max_size=200))
def test_any_bytes_get_a_valid_answer(raw: bytes) -> None:
    handler, _, _, _ = make(key=KEY)
    validate("command_result", handler(raw))


@settings(max_examples=200, deadline=None)
@given(
    payload=st.dictionaries(
        st.sampled_from(["id", "action", "mac", "ip", "ts", "sig", "x"]),
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(),
            st.floats(),
            st.text(max_size=70),
            st.sampled_from(["quarantine", "release", CULPRIT_MAC, CULPRIT_IP, "c0ffee"]),
        ),
    )
)
def test_any_object_gets_a_valid_answer(payload: dict[str, Any]) -> None:
    handler, _, _, _ = make(key=KEY)
    validate("command_result", handler(json.dumps(payload).encode()))


# ---------------------------------------------------------------- signature, freshness, replay


def test_signed_command_is_accepted() -> None:
    handler, enforcer, _, _ = make(key=KEY)
    result = send(handler, hand_signed(command()))
    assert result["ok"] is True, result
    assert enforcer.calls == [("quarantine", CULPRIT_MAC, CULPRIT_IP)]


def test_command_signed_by_the_signing_module_is_accepted() -> None:
    handler, _, _, _ = make(key=KEY)
    signed = signing.sign(command(), KEY, NOW, agent_id="router-1", topic="command")
    assert send(handler, signed)["ok"] is True


@pytest.mark.parametrize(
    ("agent_id", "topic"), [("router-2", "command"), ("router-1", "event"), ("router-1", "state")]
)
def test_a_command_signed_for_another_agent_or_topic_is_refused_with_the_reason(
    agent_id: str, topic: str
) -> None:
    """Agents may share the key: a command for router-2 must not move router-1's firewall."""
    handler, enforcer, _, _ = make(key=KEY)
    result = send(handler, hand_signed(command(), agent_id=agent_id, topic=topic))
    assert result["ok"] is False
    assert result["error"].startswith(
        "refused: bad signature: not signed with this key for agent 'router-1', topic 'command'"
    )
    assert "meant for another agent or topic" in result["error"]
    assert enforcer.calls == []


def test_a_format_1_command_is_refused_unless_legacy_signatures_are_enabled() -> None:
    handler, enforcer, _, _ = make(key=KEY)
    result = send(handler, hand_signed(command(), agent_id=None))
    assert result["ok"] is False
    assert "format 1, which names neither the agent nor the topic" in result["error"]
    assert enforcer.calls == []
    legacy, enforcer, _, _ = make(key=KEY, accept_legacy=True)
    assert send(legacy, hand_signed(command(), agent_id=None))["ok"] is True
    assert send(legacy, hand_signed(command(command_id="c0ffee02")))["ok"] is True
    assert len(enforcer.calls) == 2


def test_unsigned_command_is_refused_when_a_key_is_set() -> None:
    handler, enforcer, published, _ = make(key=KEY)
    result = send(handler, command())
    assert result["ok"] is False
    assert "missing signature" in result["error"]
    assert result["id"] == "c0ffee01"
    assert result["action"] == "quarantine"
    assert enforcer.calls == []
    assert published == []


@pytest.mark.parametrize(
    "tamper",
    [
        lambda p: {**p, "mac": "02:00:00:00:00:67"},
        lambda p: {**p, "action": "release"},
        lambda p: {**p, "ts": p["ts"] + 1},
        lambda p: {**p, "sig": "0" * 64},
        lambda p: hand_signed({k: v for k, v in p.items() if k != "sig"}, key=b"wrong key"),
    ],
)
def test_bad_signature_is_refused(tamper: Any) -> None:
    handler, enforcer, _, _ = make(key=KEY)
    result = send(handler, tamper(hand_signed(command())))
    assert result["ok"] is False
    assert "bad signature" in result["error"]
    assert enforcer.calls == []


@pytest.mark.parametrize("offset", [-301.0, 301.0, -10_000.0])
def test_stale_or_future_command_is_refused(offset: float) -> None:
    handler, enforcer, _, _ = make(key=KEY)
    result = send(handler, hand_signed(command(ts=NOW + offset)))
    assert result["ok"] is False
    assert "stale" in result["error"]
    assert enforcer.calls == []


def test_freshness_limit_is_inclusive_at_300_s() -> None:
    handler, _, _, _ = make(key=KEY)
    assert send(handler, hand_signed(command(ts=NOW - 300.0)))["ok"] is True


def test_replayed_command_is_refused() -> None:
    handler, enforcer, _, clock = make(key=KEY)
    signed = hand_signed(command())
    assert send(handler, signed)["ok"] is True
    clock.now += 5
    again = send(handler, signed)
    assert again["ok"] is False
    assert "replayed" in again["error"]
    assert len(enforcer.calls) == 1


def test_replay_after_the_window_is_refused_as_stale() -> None:
    handler, enforcer, _, clock = make(key=KEY)
    signed = hand_signed(command())
    send(handler, signed)
    clock.now += 301
    again = send(handler, signed)
    assert again["ok"] is False
    assert "stale" in again["error"]
    assert len(enforcer.calls) == 1


def test_bad_signature_does_not_burn_the_id() -> None:
    handler, _, _, _ = make(key=KEY)
    forged = {**hand_signed(command()), "sig": "1" * 64}
    assert send(handler, forged)["ok"] is False
    assert send(handler, hand_signed(command()))["ok"] is True


def test_without_a_key_signatures_are_not_required() -> None:
    handler, _, _, _ = make(key=None)
    assert send(handler, command(ts=0))["ok"] is True


# ---------------------------------------------------------------- protected hosts


@pytest.mark.parametrize(
    ("mac", "ip", "fragment"),
    [
        ("02:00:00:00:00:01", "198.18.4.99", "is the gateway"),
        (CULPRIT_MAC, "198.18.4.1", "198.18.4.1 is the gateway"),
        ("02:00:00:00:00:02", CULPRIT_IP, "this agent's own node"),
        (CULPRIT_MAC, "198.18.4.2", "198.18.4.2 is this agent's own node"),
        ("02:00:00:00:00:aa", CULPRIT_IP, "on the allowlist"),
        (CULPRIT_MAC, "198.18.4.200", "198.18.4.200 is on the allowlist"),
        ("ff:ff:ff:ff:ff:ff", None, "broadcast/multicast MAC"),
        ("01:00:5e:00:00:fb", None, "broadcast/multicast MAC"),
        ("33:33:00:00:00:01", None, "broadcast/multicast MAC"),
        ("00:00:00:00:00:00", None, "not a host's MAC"),
        (CULPRIT_MAC, "224.0.0.251", "not a unicast host address"),
        (CULPRIT_MAC, "255.255.255.255", "not a unicast host address"),
        (CULPRIT_MAC, "0.0.0.0", "not a unicast host address"),
        (CULPRIT_MAC, "127.0.0.1", "loopback"),
        (CULPRIT_MAC, "169.254.10.20", "169.254.10.20 is a link-local address"),
        (CULPRIT_MAC, "240.0.0.1", "not a unicast host address"),
        (CULPRIT_MAC, "198.18.4.0", "198.18.4.0 is the network address of 198.18.4.0/24"),
        (CULPRIT_MAC, "198.18.4.255", "198.18.4.255 is the broadcast address of 198.18.4.0/24"),
        (CULPRIT_MAC, "198.18.5.66", "198.18.5.66 is outside this agent's subnet 198.18.4.0/24"),
        (CULPRIT_MAC, "8.8.8.8", "outside this agent's subnet"),
        ("03:00:00:00:00:66", CULPRIT_IP, "broadcast/multicast MAC"),
    ],
)
def test_protected_host_is_never_quarantined(mac: str, ip: str | None, fragment: str) -> None:
    handler, enforcer, published, _ = make(key=KEY)
    result = send(handler, hand_signed(command(mac=mac, ip=ip)))
    assert result["ok"] is False
    assert result["error"].startswith("refused:")
    assert fragment in result["error"]
    assert result["mac"] == mac
    assert enforcer.calls == []
    assert published == []


@pytest.mark.parametrize(
    ("subnet", "ip", "ok"),
    [
        ("198.18.4.0/31", "198.18.4.0", True),  # RFC 3021: both addresses are hosts
        ("198.18.4.1/32", "198.18.4.1", True),
        ("198.18.4.0/30", "198.18.4.3", False),
        ("198.18.4.0/30", "198.18.4.2", True),
        (None, "198.18.77.1", True),  # no subnet known: only the address classes
        (None, "169.254.1.1", False),
    ],
)
def test_the_subnets_own_hosts_are_the_ones_that_can_be_quarantined(
    subnet: str | None, ip: str, ok: bool
) -> None:
    protected = ProtectedHosts.build(subnet=IPv4Network(subnet) if subnet else None)
    assert (protected.reason(CULPRIT_MAC, ip) is None) is ok


def test_release_of_a_protected_host_is_allowed() -> None:
    handler, enforcer, _, _ = make()
    assert send(handler, command("release", mac="02:00:00:00:00:01"))["ok"] is True
    assert enforcer.calls == [("release", "02:00:00:00:00:01", None)]


def test_allowlist_accepts_any_mac_spelling_and_rejects_junk() -> None:
    protected = ProtectedHosts.build(allowlist=["02-00-00-00-00-AB", " 198.18.4.7 "])
    assert protected.allow_macs == {"02:00:00:00:00:ab"}
    assert protected.allow_ips == {"198.18.4.7"}
    with pytest.raises(ValueError, match="not a MAC or IPv4"):
        ProtectedHosts.build(allowlist=["printer"])


# ---------------------------------------------------------------- enforcer failures


def test_enforcer_error_becomes_the_results_error() -> None:
    enforcer = RecordingEnforcer(fail=EnforcerError("nftables: Operation not permitted"))
    handler, _, published, _ = make(enforcer=enforcer)
    result = send(handler, command())
    assert result == {
        "id": "c0ffee01",
        "ok": False,
        "error": "nftables: Operation not permitted",
        "action": "quarantine",
        "mac": CULPRIT_MAC,
    }
    assert published == []


def test_long_enforcer_error_is_cut_to_the_contracts_limit() -> None:
    enforcer = RecordingEnforcer(fail=EnforcerError("x" * 2000))
    handler, _, _, _ = make(enforcer=enforcer)
    assert len(send(handler, command())["error"]) == 512


def test_no_enforcer_answers_every_command_with_a_clear_error() -> None:
    handler, _, published, _ = make(enforcer=NoEnforcer())
    for action in ("quarantine", "release"):
        result = send(handler, command(action))
        assert result["ok"] is False
        assert "no enforcer" in result["error"]
    state = handler.state_payload()
    validate("quarantine", state)
    assert state["enforcer"] == "none"
    assert published == []


def test_unexpected_enforcer_bug_is_answered_not_raised() -> None:
    handler, _, _, _ = make(enforcer=RecordingEnforcer(fail=RuntimeError("boom")))
    result = send(handler, command())
    assert result["ok"] is False
    assert "internal error: RuntimeError: boom" in result["error"]


def test_failing_state_callback_does_not_spoil_the_result() -> None:
    def explode(_: dict[str, Any]) -> None:
        raise OSError("broker gone")

    handler, enforcer, _, _ = make(on_change=explode)
    assert send(handler, command())["ok"] is True
    assert enforcer.hosts()[0].mac == CULPRIT_MAC


# ---------------------------------------------------------------- wiring from settings


def test_build_from_settings_protects_gateway_node_and_allowlist() -> None:
    settings = EnforcerSettings(
        kind="none",
        gateway_ip="198.18.4.1",
        gateway_mac="02:00:00:00:00:01",
        allowlist=("198.18.4.9",),
    )
    handler = build_command_handler(
        settings,
        agent_id="node-1",
        node_ips=["198.18.4.2"],
        node_macs=["02:00:00:00:00:02"],
        key=KEY,
    )
    assert handler.enforcer.kind == "none"
    assert handler.protected.gateway_ips == {"198.18.4.1"}
    assert handler.protected.gateway_macs == {"02:00:00:00:00:01"}
    assert handler.protected.node_ips == {"198.18.4.2"}
    assert handler.protected.allow_ips == {"198.18.4.9"}
    signed = signing.sign(command(), KEY, handler.clock(), agent_id="node-1", topic="command")
    result = handler(json.dumps(signed).encode())
    validate("command_result", result)
    assert result["ok"] is False
    assert "no enforcer" in result["error"]


def test_build_with_nftables_that_cannot_start_answers_why() -> None:
    handler = build_command_handler(
        EnforcerSettings(kind="nftables"),
        agent_id="node-1",
        node_ips=[],
        node_macs=[],
        key=None,
        nft=["/nonexistent/nft"],
    )
    result = handler(json.dumps(command()).encode())
    validate("command_result", result)
    assert result["ok"] is False
    assert "nftables enforcer failed to start" in result["error"]
    assert handler.state_payload()["enforcer"] == "none"


# ---------------------------------------------------------------- replay


def replay_command(after_seq: Any = 41, command_id: str = "r1", **extra: Any) -> dict[str, Any]:
    return {"id": command_id, "action": "replay", "after_seq": after_seq, "ts": NOW, **extra}


class FakeReplay:
    def __init__(self, refuse: str | None = None) -> None:
        self.calls: list[tuple[int, int | None]] = []
        self.refuse = refuse

    def __call__(self, after_seq: int, through_seq: int | None = None) -> dict[str, Any]:
        self.calls.append((after_seq, through_seq))
        if self.refuse is not None:
            raise RedeliveryRefused(self.refuse)
        return {
            "epoch": "3f9c2e71a4b85d06c1e7f2a9b3d4e5f6",
            "after_seq": after_seq,
            "count": 2,
            "first_seq": after_seq + 1,
            "through_seq": after_seq + 2,
            "last_seq": after_seq + 2,
            "gap": None,
        }


def test_a_signed_replay_goes_to_the_event_store_and_says_what_comes() -> None:
    replay = FakeReplay()
    handler, enforcer, published, _ = make(key=KEY, replay=replay)
    result = send(handler, hand_signed(replay_command()))
    assert result == {
        "id": "r1",
        "ok": True,
        "error": None,
        "action": "replay",
        "replay": replay(41),
    }
    assert send(handler, hand_signed(replay_command(command_id="r2", through_seq=50)))["ok"]
    assert replay.calls == [(41, None), (41, None), (41, 50)]
    assert (enforcer.calls, published) == ([], [])


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (replay_command(), "missing signature"),
        (hand_signed(replay_command(), agent_id="router-2"), "bad signature"),
        (hand_signed(replay_command(after_seq=-1)), "invalid command"),
        (hand_signed(replay_command(after_seq=True)), "invalid command"),
        (hand_signed(replay_command(mac=CULPRIT_MAC)), "invalid command"),
        (hand_signed({**replay_command(), "action": "quarantine"}), "invalid command"),
        (hand_signed(replay_command(through_seq=0)), "invalid command"),
    ],
)
def test_a_replay_that_is_unsigned_misdirected_or_malformed_never_reaches_the_store(
    payload: dict[str, Any], why: str
) -> None:
    replay = FakeReplay()
    handler, _, _, _ = make(key=KEY, replay=replay)
    result = send(handler, payload)
    assert result["ok"] is False
    assert why in result["error"]
    assert replay.calls == []


def test_a_replay_is_refused_with_the_reason_when_rate_limited_or_nothing_is_kept() -> None:
    handler, _, _, _ = make(key=KEY, replay=FakeReplay(refuse="too many replay requests"))
    limited = send(handler, hand_signed(replay_command()))
    assert (limited["ok"], limited["error"]) == (False, "refused: too many replay requests")
    handler, _, _, _ = make(key=KEY)
    result = send(handler, hand_signed(replay_command()))
    assert result["ok"] is False
    assert "keeps no events to replay" in result["error"]
