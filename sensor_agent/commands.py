"""Commands from MQTT (quarantine, release, replay): check them, apply them, answer every one.

``CommandHandler`` is the callable ``MqttSink`` gives each ``<prefix>/<agent_id>/command``
payload to; what it returns is published on ``.../command/result``
(schema/command_result.schema.json). The steps, each refusing with a clear reason:

1. parse JSON, nested at most ``MAX_NESTING`` deep (too malformed to carry an id -> result
   with id ``""``);
2. shape (the rules of schema/command.schema.json, with voluptuous);
3. with a shared key (``sensor_agent.signing``): signature present and valid for *this*
   agent's ``command`` topic (a command signed for another agent sharing the key is
   refused), ``ts`` within 300 s of the agent's clock, ``id`` never accepted before;
4. quarantine only: only one host's addresses (never a broadcast, multicast or zero MAC;
   never a network, broadcast, multicast, link-local, loopback, unspecified or reserved IP,
   nor one outside the agent's subnet), never the gateway (its MAC too, once resolved), the
   node itself, an allowlisted MAC/IP, or an ``ip`` the agent's hosts inventory binds to
   another established host (a forged sender IP must not cut off an innocent host);
5. the enforcer (quarantine, release) or the event store (replay: ``replay``, see
   ``sensor_agent.redelivery``); a failure becomes the result's error.

After a change of the quarantine state ``on_change`` receives the new retained
``quarantine`` payload, to be re-published.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import voluptuous as vol

from sensor_agent import safejson, signing
from sensor_agent.contract import ACTION_REPLAY, ACTIONS, TOPIC_COMMAND
from sensor_agent.enforcer import (
    Enforcer,
    EnforcerError,
    EnforcerSettings,
    build_enforcer,
    quarantine_payload,
)
from sensor_agent.redelivery import RedeliveryRefused

_LOGGER = logging.getLogger(__name__)

_ERROR_MAX = 512
# A command is one flat object; 8 levels leave room for any later field and refuse, cleanly,
# the deep nesting that would make the JSON decoder recurse.
MAX_NESTING = 8
_ID_PATTERN = r"^[A-Za-z0-9_-]+$"
_MAC_PATTERN = r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$"
_MAC_RE = re.compile(_MAC_PATTERN)


def _ipv4_or_null(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise vol.Invalid("expected an IPv4 address as a string")
    try:
        ipaddress.IPv4Address(value)
    except ValueError as err:
        raise vol.Invalid(f"{value!r} is not an IPv4 address") from err
    return value


def _unix_time(value: Any) -> float:
    # bool is an int in Python but not a number in JSON Schema.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise vol.Invalid("expected a unix time (number)")
    return float(value)


_COMMAND_ID = vol.All(
    str, vol.Length(min=1, max=64), vol.Match(_ID_PATTERN, msg="id must be 1-64 of A-Z a-z 0-9 _ -")
)

MAX_SEQ = 2**53 - 1  # the largest integer every JSON reader keeps exact


def _seq(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEQ:
        raise vol.Invalid(f"expected an event seq (integer 0..{MAX_SEQ})")
    return value


_COMMON = {
    vol.Required("id"): _COMMAND_ID,
    vol.Required("action"): vol.In(ACTIONS, msg="unknown action"),
    vol.Required("ts"): _unix_time,
    vol.Optional("sig"): vol.All(
        str, vol.Match(r"^[0-9a-f]{64}$", msg="sig must be 64 lower-case hex digits")
    ),
}
_HOST_COMMAND = vol.Schema(
    {
        **_COMMON,
        vol.Required("mac"): vol.All(
            str, vol.Match(_MAC_PATTERN, msg="mac must be lower-case aa:bb:cc:dd:ee:ff")
        ),
        vol.Optional("ip"): _ipv4_or_null,
    },
    extra=vol.PREVENT_EXTRA,
)
_REPLAY_COMMAND = vol.Schema(
    {
        **_COMMON,
        vol.Required("after_seq"): _seq,
        vol.Optional("through_seq"): vol.All(_seq, vol.Range(min=1)),
    },
    extra=vol.PREVENT_EXTRA,
)


def _command_shape(payload: Any) -> Any:
    """quarantine/release name a host; replay names the last event seq the sender has."""
    if isinstance(payload, dict) and payload.get("action") == ACTION_REPLAY:
        return _REPLAY_COMMAND(payload)
    return _HOST_COMMAND(payload)


COMMAND_SCHEMA = vol.Schema(_command_shape)


def _normalise_mac(mac: str) -> str:
    return mac.strip().lower().replace("-", ":")


@dataclass(frozen=True)
class ProtectedHosts:
    """Hosts a quarantine must never touch: the gateway, this node, the allowlist."""

    gateway_ips: frozenset[str] = frozenset()
    gateway_macs: frozenset[str] = frozenset()
    node_ips: frozenset[str] = frozenset()
    node_macs: frozenset[str] = frozenset()
    allow_ips: frozenset[str] = frozenset()
    allow_macs: frozenset[str] = frozenset()
    # The LAN the agent is on: a quarantine names one host of it (None: not known).
    subnet: ipaddress.IPv4Network | None = None

    @classmethod
    def build(
        cls,
        *,
        gateway_ip: str | None = None,
        gateway_mac: str | None = None,
        node_ips: Iterable[str] = (),
        node_macs: Iterable[str] = (),
        allowlist: Iterable[str] = (),
        subnet: ipaddress.IPv4Network | None = None,
    ) -> ProtectedHosts:
        """``allowlist`` mixes MACs and IPs; anything else is a ``ValueError``."""
        allow_ips: set[str] = set()
        allow_macs: set[str] = set()
        for entry in allowlist:
            try:
                allow_ips.add(str(ipaddress.IPv4Address(entry.strip())))
            except ValueError:
                mac = _normalise_mac(entry)
                if _MAC_RE.match(mac) is None:
                    raise ValueError(f"allowlist entry {entry!r} is not a MAC or IPv4") from None
                allow_macs.add(mac)
        return cls(
            gateway_ips=frozenset([gateway_ip] if gateway_ip else []),
            gateway_macs=frozenset([_normalise_mac(gateway_mac)] if gateway_mac else []),
            node_ips=frozenset(node_ips),
            node_macs=frozenset(_normalise_mac(m) for m in node_macs),
            allow_ips=frozenset(allow_ips),
            allow_macs=frozenset(allow_macs),
            subnet=subnet,
        )

    def reason(self, mac: str, ip: str | None) -> str | None:
        """Why quarantining ``mac``/``ip`` is refused, or ``None`` when it is allowed."""
        refusal = self._not_one_host(mac, ip)
        if refusal is not None:
            return refusal
        if mac in self.gateway_macs or (ip is not None and ip in self.gateway_ips):
            return f"refused: {ip if ip in self.gateway_ips else mac} is the gateway"
        if mac in self.node_macs or (ip is not None and ip in self.node_ips):
            return f"refused: {ip if ip in self.node_ips else mac} is this agent's own node"
        if mac in self.allow_macs or (ip is not None and ip in self.allow_ips):
            return f"refused: {ip if ip in self.allow_ips else mac} is on the allowlist"
        return None

    def _not_one_host(self, mac: str, ip: str | None) -> str | None:
        """Why ``mac``/``ip`` are not the addresses of one host of the agent's LAN (a rule
        for them would cut off many hosts, or none the agent can see), or ``None``."""
        if mac == "00:00:00:00:00:00":
            return f"refused: {mac} is not a host's MAC"
        if int(mac[:2], 16) & 1:
            return f"refused: {mac} is a broadcast/multicast MAC"
        if ip is None:
            return None
        address = ipaddress.IPv4Address(ip)
        if address.is_loopback:
            return f"refused: {ip} is a loopback address"
        if address.is_link_local:
            return f"refused: {ip} is a link-local address"
        if address.is_multicast or address.is_unspecified or address.is_reserved:
            return f"refused: {ip} is not a unicast host address"
        subnet = self.subnet
        if subnet is None:
            return None
        if address not in subnet:
            return f"refused: {ip} is outside this agent's subnet {subnet}"
        if subnet.prefixlen <= 30 and address == subnet.network_address:  # /31, /32: hosts
            return f"refused: {ip} is the network address of {subnet}"
        if subnet.prefixlen <= 30 and address == subnet.broadcast_address:
            return f"refused: {ip} is the broadcast address of {subnet}"
        return None


@dataclass
class CommandHandler:
    """``handler(raw_bytes) -> command_result payload``; never raises."""

    enforcer: Enforcer
    agent_id: str
    protected: ProtectedHosts = field(default_factory=ProtectedHosts)
    key: bytes | None = None
    on_change: Callable[[dict[str, Any]], None] | None = None
    # Looked up per command (both learnt while running): the gateway's MAC, and the MAC the
    # agent's hosts inventory binds an IP to.
    gateway_mac: Callable[[], str | None] | None = None
    host_mac: Callable[[str], str | None] | None = None
    clock: Callable[[], float] = time.time
    max_skew_s: float = signing.MAX_SKEW_S
    # Commands signed in format 1 (no agent id, no topic): only when explicitly configured.
    accept_legacy: bool = False
    # Re-publishes kept events after a seq (up to another, optionally); returns the result's
    # ``replay`` object or raises ``RedeliveryRefused`` (``sensor_agent.redelivery``). None:
    # this agent keeps no events.
    replay: Callable[[int, int | None], dict[str, Any]] | None = None
    # True: the lookups above come later, through wire() (the MQTT sink that delivers commands
    # starts before the pipeline that learns them). A quarantine arriving earlier waits for
    # them up to ``wire_timeout_s``, else is refused: never checked without them.
    learns: bool = False
    wire_timeout_s: float = 5.0
    _verifier: signing.Verifier | None = field(default=None, init=False, repr=False)
    _wired: threading.Event = field(default_factory=threading.Event, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.key is not None:
            self._verifier = signing.Verifier(
                self.key,
                agent_id=self.agent_id,
                topic=TOPIC_COMMAND,
                max_skew_s=self.max_skew_s,
                accept_legacy=self.accept_legacy,
            )
        if not self.learns:
            self._wired.set()

    def wire(
        self,
        *,
        gateway_mac: Callable[[], str | None],
        host_mac: Callable[[str], str | None],
        on_change: Callable[[dict[str, Any]], None],
    ) -> None:
        """The lookups of what the agent learns, and where a new quarantine state goes."""
        self.gateway_mac = gateway_mac
        self.host_mac = host_mac
        self.on_change = on_change
        self._wired.set()

    def __call__(self, raw: bytes) -> dict[str, Any]:
        try:
            return self._handle(raw)
        except Exception as err:  # a bug here must not take the MQTT thread down
            _LOGGER.exception("command handler failed")
            return _result("", False, f"internal error: {type(err).__name__}: {err}")

    def state_payload(self) -> dict[str, Any]:
        """The retained ``quarantine`` payload now (publish it at start, too)."""
        return quarantine_payload(self.agent_id, self.enforcer, self.clock())

    def _handle(self, raw: bytes) -> dict[str, Any]:
        try:
            payload = safejson.loads(raw, max_depth=MAX_NESTING)
        except safejson.TooDeep as err:
            return _result("", False, f"malformed command: {err}")
        except (UnicodeDecodeError, ValueError) as err:
            return _result("", False, f"malformed command: not JSON ({err})")
        if not isinstance(payload, dict):
            return _result("", False, "malformed command: not a JSON object")
        command_id = _usable_id(payload.get("id"))
        try:
            command = COMMAND_SCHEMA(payload)
        except vol.MultipleInvalid as err:
            problems = "; ".join(sorted(str(e) for e in err.errors))
            return _result(command_id, False, f"invalid command: {problems}")
        action: str = command["action"]
        if action == ACTION_REPLAY:
            return self._replay(
                payload, command_id, command["after_seq"], command.get("through_seq")
            )
        mac: str = command["mac"]
        ip: str | None = command.get("ip")

        refusal = self._authenticity_problem(payload)
        if refusal is None and action == "quarantine":
            refusal = self.protected.reason(mac, ip)
            waits = refusal is None and self.enforcer.kind != "none"  # (none refuses anyway)
            if waits and not self._wired.wait(self.wire_timeout_s):
                refusal = "refused: the agent is starting (it cannot check the target yet)"
            refusal = refusal or self._learnt_refusal(mac, ip)
        if refusal is not None:
            _LOGGER.warning("command %s (%s %s) refused: %s", command_id, action, mac, refusal)
            return _result(command_id, False, refusal, action, mac)

        try:
            if action == "quarantine":
                self.enforcer.quarantine(mac, ip, command_id)
                changed = True
            else:
                changed = self.enforcer.release(mac)
        except EnforcerError as err:
            _LOGGER.error("command %s (%s %s) failed: %s", command_id, action, mac, err)
            return _result(command_id, False, str(err), action, mac)
        _LOGGER.info("command %s: %s %s (ip %s) done", command_id, action, mac, ip)
        if changed:
            self._publish_state()
        return _result(command_id, True, None, action, mac)

    def _replay(
        self,
        payload: Mapping[str, Any],
        command_id: str,
        after_seq: int,
        through_seq: int | None,
    ) -> dict[str, Any]:
        """Re-publish the kept events after ``after_seq`` (signed afresh by the sink)."""
        refusal = self._authenticity_problem(payload)
        if refusal is None and self.replay is None:
            refusal = "refused: this agent keeps no events to replay (it publishes no MQTT)"
        if refusal is None and self.replay is not None:
            try:
                answer = self.replay(after_seq, through_seq)
            except RedeliveryRefused as err:
                refusal = f"refused: {err}"
            else:
                _LOGGER.info(
                    "command %s: replay after seq %d: %d event(s)",
                    command_id,
                    after_seq,
                    answer["count"],
                )
                return {**_result(command_id, True, None, ACTION_REPLAY), "replay": answer}
        _LOGGER.warning("command %s (replay after %d) refused: %s", command_id, after_seq, refusal)
        return _result(command_id, False, refusal, ACTION_REPLAY)

    def _learnt_refusal(self, mac: str, ip: str | None) -> str | None:
        """Refusals from what the agent learnt: the gateway's MAC, the IP's owner."""
        gateway_mac = self.gateway_mac() if self.gateway_mac is not None else None
        if gateway_mac is not None and mac == gateway_mac:
            return f"refused: {mac} is the gateway"
        owner = self.host_mac(ip) if self.host_mac is not None and ip is not None else None
        if owner is not None and owner != mac:
            return f"refused: {ip} belongs to {owner} in the agent's hosts inventory, not {mac}"
        return None

    def _authenticity_problem(self, payload: Mapping[str, Any]) -> str | None:
        """Signature, freshness and replay, when a shared key is configured."""
        if self._verifier is None:
            return None
        try:
            self._verifier.verify(payload, self.clock())
        except signing.SignatureError as err:
            return f"refused: {err}"
        return None

    def _publish_state(self) -> None:
        if self.on_change is None:
            return
        try:
            self.on_change(self.state_payload())
        except Exception:  # publishing is the caller's business; the rule is in force
            _LOGGER.exception("could not hand over the new quarantine state")


def _usable_id(value: Any) -> str:
    """The command's id for the result if it is a valid one, else ``""``."""
    try:
        return str(_COMMAND_ID(value))
    except vol.Invalid:
        return ""


def _result(
    command_id: str,
    ok: bool,
    error: str | None,
    action: str | None = None,
    mac: str | None = None,
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "id": command_id,
        "ok": ok,
        "error": None if error is None else error[:_ERROR_MAX],
    }
    if action is not None:
        result["action"] = action
    if mac is not None:
        result["mac"] = mac
    return result


def build_command_handler(
    settings: EnforcerSettings,
    *,
    agent_id: str,
    node_ips: Iterable[str],
    node_macs: Iterable[str],
    key: bytes | None,
    accept_legacy: bool = False,
    replay: Callable[[int, int | None], dict[str, Any]] | None = None,
    nft: Sequence[str] = ("nft",),
    subnet: ipaddress.IPv4Network | None = None,
    learns: bool = False,
) -> CommandHandler:
    """The agent's handler with its enforcer started (a ``NoEnforcer`` if it cannot start).

    Wiring (the caller owns the sink; the event store is shared, see ``cli._mqtt``)::

        outbox = mqtt_settings.open_outbox()
        handler = build_command_handler(settings, agent_id=..., node_ips=[ip],
                                        node_macs=[mac], key=shared_key, learns=True,
                                        replay=Redelivery(outbox))
        # commands may come now:
        sink = MqttSink(mqtt_settings, command_handler=handler, outbox=outbox)
        pipeline = Pipeline(..., [sink, ...])
        handler.wire(gateway_mac=..., host_mac=...,  # from the pipeline: now they are checked
                     on_change=lambda state: sink.retained("quarantine", state))
        sink.retained("quarantine", handler.state_payload())
        ...
        handler.enforcer.close()  # at shutdown: lifts every quarantine
    """
    enforcer = build_enforcer(
        settings.kind,
        family=settings.family,
        gateway=settings.gateway_ip,
        allowed_services=settings.allowed_services,
        nft=nft,
    )
    protected = ProtectedHosts.build(
        gateway_ip=settings.gateway_ip,
        gateway_mac=settings.gateway_mac,
        node_ips=node_ips,
        node_macs=node_macs,
        allowlist=settings.allowlist,
        subnet=subnet,
    )
    return CommandHandler(
        enforcer,
        agent_id=agent_id,
        protected=protected,
        key=key,
        accept_legacy=accept_legacy,
        replay=replay,
        learns=learns,
    )
