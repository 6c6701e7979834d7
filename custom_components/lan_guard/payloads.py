"""Validation of the agents' MQTT payloads: the JSON Schema contract in ``schema/``, as voluptuous.

The contract tests in ``tests/ha/test_payloads.py`` validate the same payloads with these
schemas and with ``jsonschema`` against ``schema/*.json`` and expect the same answer, so the
two cannot drift. JSON Schema rules that voluptuous does not spell the same way are written
out here: an integer is any whole number but never a boolean, a pattern's ``$`` is an end
of string (ECMA 262), and ``date-time`` is RFC 3339 in UTC.
"""

from __future__ import annotations

import calendar
import ipaddress
import json
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final, TypeAlias

import voluptuous as vol

from .const import Kind

Validator: TypeAlias = Callable[[Any], Any]

_MAC = re.compile(r"[0-9a-f]{2}(?::[0-9a-f]{2}){5}")
_HEX32 = re.compile(r"[0-9a-f]{32}")
_IPV6 = re.compile(r"[0-9a-f:.]{2,45}")  # RFC 5952 text: lower case, no zone
_HEX64 = re.compile(r"[0-9a-f]{64}")
_AGENT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_COMMAND_ID = re.compile(r"[A-Za-z0-9_-]+")
# The contract's own pattern (RFC 3339 in UTC); no calendar check, as in the contract.
_TIMESTAMP = re.compile(
    r"([0-9]{4})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"T([01][0-9]|2[0-3]):([0-5][0-9]):([0-5][0-9]|60)(?:\.([0-9]+))?(?:Z|[+-]00:00)"
)

SCHEMA_VERSION: Final = 1
MAX_SEQ: Final = 2**53 - 1  # the largest integer every JSON reader keeps exact


def parse_timestamp(value: str) -> datetime:
    """An already validated contract timestamp as an aware UTC datetime."""
    match = _TIMESTAMP.fullmatch(value)
    if match is None:
        raise ValueError(f"not an ISO 8601 UTC timestamp: {value!r}")
    year, month, day, hour, minute, second = (int(group) for group in match.groups()[:6])
    micro = int((match.group(7) or "0")[:6].ljust(6, "0"))
    # The pattern lets through a leap second and days such as 31 February: clamp them.
    day = min(day, calendar.monthrange(year, month)[1])
    return datetime(year, month, day, hour, minute, min(second, 59), micro, tzinfo=UTC)


def _integer(minimum: int | None = None, maximum: int | None = None) -> Validator:
    def validate(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise vol.Invalid("expected an integer")
        if isinstance(value, float) and not value.is_integer():
            raise vol.Invalid("expected an integer")
        number = int(value)
        if minimum is not None and number < minimum:
            raise vol.Invalid(f"must be at least {minimum}")
        if maximum is not None and number > maximum:
            raise vol.Invalid(f"must be at most {maximum}")
        return number

    return validate


def _number(minimum: float | None = None) -> Validator:
    def validate(value: Any) -> float | int:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise vol.Invalid("expected a number")
        if isinstance(value, float) and not math.isfinite(value):
            raise vol.Invalid("expected a finite number")
        if minimum is not None and value < minimum:
            raise vol.Invalid(f"must be at least {minimum:g}")
        return value

    return validate


def _string(
    pattern: re.Pattern[str] | None = None, min_length: int = 0, max_length: int | None = None
) -> Validator:
    def validate(value: Any) -> str:
        if not isinstance(value, str):
            raise vol.Invalid("expected a string")
        if len(value) < min_length or (max_length is not None and len(value) > max_length):
            raise vol.Invalid(f"length must be {min_length}..{max_length or 'any'}")
        if pattern is not None and pattern.fullmatch(value) is None:
            raise vol.Invalid("has the wrong format")
        return value

    return validate


def _ipv4(value: Any) -> str:
    if not isinstance(value, str):
        raise vol.Invalid("expected an IPv4 address")
    try:
        ipaddress.IPv4Address(value)
    except ValueError as err:
        raise vol.Invalid("expected an IPv4 address") from err
    return value


def _ipv6(value: Any) -> str:
    if not isinstance(value, str) or _IPV6.fullmatch(value) is None:
        raise vol.Invalid("expected an IPv6 address")
    try:
        ipaddress.IPv6Address(value)
    except ValueError as err:
        raise vol.Invalid("expected an IPv6 address") from err
    return value


def _ip(value: Any) -> str:
    """An IPv4 or an IPv6 address."""
    try:
        return _ipv4(value)
    except vol.Invalid:
        return _ipv6(value)


def _timestamp(value: Any) -> str:
    if not isinstance(value, str):
        raise vol.Invalid("expected a timestamp")
    try:
        parse_timestamp(value)
    except ValueError as err:
        raise vol.Invalid("expected an ISO 8601 UTC timestamp ending in Z") from err
    return value


def _const(expected: int) -> Validator:
    check = _integer()

    def validate(value: Any) -> int:
        if check(value) != expected:
            raise vol.Invalid(f"must be {expected}")
        return expected

    return validate


def _one_of(*choices: str) -> Validator:
    def validate(value: Any) -> str:
        if not isinstance(value, str) or value not in choices:
            raise vol.Invalid(f"must be one of {', '.join(choices)}")
        return value

    return validate


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise vol.Invalid("expected true or false")
    return value


def _array(item: Validator, max_items: int | None = None, unique: bool = False) -> Validator:
    def validate(value: Any) -> list[Any]:
        if not isinstance(value, list):
            raise vol.Invalid("expected an array")
        if max_items is not None and len(value) > max_items:
            raise vol.Invalid(f"at most {max_items} items")
        items = [item(entry) for entry in value]
        if unique and len({json.dumps(entry, sort_keys=True) for entry in value}) < len(value):
            raise vol.Invalid("items must be unique")
        return items

    return validate


def _or_null(validator: Validator) -> Validator:
    def validate(value: Any) -> Any:
        return None if value is None else validator(value)

    return validate


MAC = _string(_MAC)
EVENT_ID = _string(_HEX32)
AGENT_ID = _string(_AGENT_ID)
PORT = _integer(0, 65535)
LEVEL = _integer(0, 3)
KIND = _one_of(*(kind.value for kind in Kind))
TEXT_OR_NULL = _or_null(_string(max_length=255))
NON_NEGATIVE = _integer(0)
TS = _number()
SIG = _string(_HEX64)
TECHNIQUES = ("null", "fin", "xmas", "ack", "maimon", "odd", "udp")
DISCOVERY = _array(_one_of("mdns", "ssdp", "wsd", "netbios", "snmp", "echonet"), unique=True)
SEQ = _integer(1, MAX_SEQ)
EPOCH = _string(_HEX32)

_HOST_FIELDS: dict[Any, Validator] = {
    vol.Required("mac"): MAC,
    vol.Required("ip"): _or_null(_ipv4),
    vol.Required("vendor"): TEXT_OR_NULL,
    vol.Required("hostname"): TEXT_OR_NULL,
    vol.Optional("ipv6"): _array(_ipv6, max_items=8),
}
HOST = vol.Schema(_HOST_FIELDS, extra=vol.ALLOW_EXTRA)
_SIGNATURE_FIELDS: dict[Any, Validator] = {vol.Optional("ts"): TS, vol.Optional("sig"): SIG}


def _sig_needs_ts(payload: dict[str, Any]) -> dict[str, Any]:
    if "sig" in payload and "ts" not in payload:
        raise vol.Invalid("'sig' needs 'ts'", path=["ts"])
    return payload


def _signed(fields: dict[Any, Validator]) -> Validator:
    """An object schema with the optional signature fields (``sig`` requires ``ts``)."""
    return vol.All(vol.Schema({**fields, **_SIGNATURE_FIELDS}), _sig_needs_ts)


EVIDENCE = vol.Schema(
    {
        vol.Optional("targets"): _array(_ip, max_items=64),
        vol.Optional("target_count"): NON_NEGATIVE,
        vol.Optional("ports"): _array(PORT, max_items=256),
        vol.Optional("packets"): NON_NEGATIVE,
        vol.Optional("bytes"): NON_NEGATIVE,
        vol.Optional("rate"): _number(0),
        vol.Optional("window_s"): _number(0),
        vol.Optional("port"): PORT,
        vol.Optional("sample"): _string(max_length=256),
        vol.Optional("handshakes"): NON_NEGATIVE,
        vol.Optional("ip"): _ip,
        vol.Optional("old_mac"): MAC,
        vol.Optional("new_mac"): MAC,
        vol.Optional("is_gateway"): _boolean,
        vol.Optional("scope"): _one_of("source", "total"),
        vol.Optional("silent_s"): _number(0),
        # kinds list version 2
        vol.Optional("addresses"): _array(_ipv4, max_items=64),
        vol.Optional("address_count"): NON_NEGATIVE,
        vol.Optional("forged"): NON_NEGATIVE,
        # kinds list version 3
        vol.Optional("protocol"): _one_of("tcp", "udp"),
        vol.Optional("techniques"): _array(_one_of(*TECHNIQUES), max_items=8),
        vol.Optional("forged_ips"): _array(_ip, max_items=16),
        vol.Optional("via_gateway"): _boolean,
        vol.Optional("source_ips"): _array(_ip, max_items=16),
        vol.Optional("slow"): _boolean,
        vol.Optional("horizon_s"): _number(0),
        vol.Optional("multicast"): NON_NEGATIVE,
        vol.Optional("claimed"): _array(_ip, max_items=64),
        vol.Optional("router_lifetime"): _integer(0, 65535),
        vol.Optional("prefixes"): _array(_ipv6, max_items=4),
        vol.Optional("client_count"): NON_NEGATIVE,
        vol.Optional("client_macs"): _array(MAC, max_items=16),
        vol.Optional("server_ip"): _ip,
        vol.Optional("routers"): _array(_ipv4, max_items=4),
        vol.Optional("dns"): _array(_ipv4, max_items=4),
        vol.Optional("offered_ip"): _ipv4,
        vol.Optional("services"): _array(_string(max_length=8), max_items=8),
        vol.Optional("epcs"): _array(_integer(0, 255), max_items=64),
        vol.Optional("objects"): _array(_string(max_length=64), max_items=64),
        vol.Optional("decoy"): _boolean,
        vol.Optional("discovery"): DISCOVERY,
    },
    extra=vol.ALLOW_EXTRA,
)


def _event(delivery: type[vol.Marker]) -> Validator:
    return _signed(
        {
            vol.Required("schema"): _const(SCHEMA_VERSION),
            vol.Required("id"): EVENT_ID,
            vol.Required("incident_id"): EVENT_ID,
            vol.Required("agent_id"): AGENT_ID,
            delivery("seq"): SEQ,
            delivery("epoch"): EPOCH,
            vol.Required("kind"): KIND,
            vol.Required("level"): LEVEL,
            vol.Required("source"): HOST,
            vol.Required("first_seen"): _timestamp,
            vol.Required("last_seen"): _timestamp,
            vol.Required("detected_at"): _timestamp,
            vol.Required("evidence"): EVIDENCE,
        }
    )


EVENT = _event(vol.Required)
# Agents before 0.2 (signature format 1) send no seq, epoch, last_seq nor oldest_seq: while
# the owner accepts legacy signatures, their payloads are taken without (and not tracked).
LEGACY_EVENT = _event(vol.Optional)

INFO = _signed(
    {
        vol.Required("schema"): _const(SCHEMA_VERSION),
        vol.Required("agent_id"): AGENT_ID,
        vol.Required("version"): _string(),
        vol.Required("interface"): _string(),
        vol.Required("node"): vol.Schema(
            {vol.Required("ip"): _or_null(_ipv4), vol.Required("mac"): _or_null(MAC)}
        ),
        vol.Optional("gateway"): _or_null(_ipv4),
        vol.Optional("gateway_mac"): _or_null(MAC),
        vol.Required("decoy_ports"): _array(PORT),
        vol.Optional("decoy_errors"): _array(
            vol.Schema(
                {vol.Required("port"): PORT, vol.Required("error"): _string()},
                extra=vol.ALLOW_EXTRA,
            )
        ),
        vol.Required("capabilities"): _array(
            _one_of("detect", "decoys", "hosts", "signing", "enforcer"), unique=True
        ),
        vol.Required("started_at"): _timestamp,
    }
)


def _state(delivery: type[vol.Marker]) -> Validator:
    return _signed(
        {
            vol.Required("schema"): _const(SCHEMA_VERSION),
            vol.Required("agent_id"): AGENT_ID,
            delivery("epoch"): EPOCH,
            delivery("last_seq"): _integer(0, MAX_SEQ),
            delivery("oldest_seq"): _integer(1, MAX_SEQ + 1),
            vol.Required("level"): LEVEL,
            vol.Required("incidents"): _array(
                vol.Schema(
                    {
                        vol.Required("incident_id"): EVENT_ID,
                        vol.Required("source"): HOST,
                        vol.Required("level"): LEVEL,
                        vol.Required("kinds"): _array(KIND, unique=True),
                        vol.Required("first_seen"): _timestamp,
                        vol.Required("last_seen"): _timestamp,
                        vol.Required("events"): _integer(1),
                    }
                )
            ),
            vol.Required("counters"): vol.Schema(
                {
                    vol.Required("frames"): NON_NEGATIVE,
                    vol.Required("events"): NON_NEGATIVE,
                    vol.Required("parse_errors"): NON_NEGATIVE,
                    vol.Required("kernel_drops"): NON_NEGATIVE,
                    vol.Required("outbox_dropped"): NON_NEGATIVE,
                    str: NON_NEGATIVE,
                }
            ),
            vol.Required("updated_at"): _timestamp,
        }
    )


STATE = _state(vol.Required)
LEGACY_STATE = _state(vol.Optional)

HOSTS = _signed(
    {
        vol.Required("schema"): _const(SCHEMA_VERSION),
        vol.Required("agent_id"): AGENT_ID,
        vol.Required("hosts"): _array(
            vol.Schema(
                {
                    **_HOST_FIELDS,
                    vol.Required("first_seen"): _timestamp,
                    vol.Required("last_seen"): _timestamp,
                    vol.Required("present"): _boolean,
                    vol.Optional("discovery"): DISCOVERY,
                }
            )
        ),
        vol.Optional("truncated"): _boolean,
        vol.Required("updated_at"): _timestamp,
    }
)

QUARANTINE = _signed(
    {
        vol.Required("schema"): _const(SCHEMA_VERSION),
        vol.Required("agent_id"): AGENT_ID,
        vol.Required("enforcer"): _one_of("nftables", "none"),
        vol.Required("hosts"): _array(
            vol.Schema(
                {
                    vol.Required("mac"): MAC,
                    vol.Required("ip"): _or_null(_ipv4),
                    vol.Required("since"): _timestamp,
                    vol.Required("command_id"): _string(min_length=1, max_length=64),
                }
            )
        ),
        vol.Required("updated_at"): _timestamp,
    }
)

_COMMAND_FIELDS: dict[Any, Validator] = {
    vol.Required("id"): _string(_COMMAND_ID, min_length=1, max_length=64),
    vol.Required("action"): _one_of("quarantine", "release", "replay"),
    vol.Required("ts"): TS,
    vol.Optional("sig"): SIG,
}
_HOST_COMMAND = vol.Schema(
    {**_COMMAND_FIELDS, vol.Required("mac"): MAC, vol.Optional("ip"): _or_null(_ipv4)}
)
_REPLAY_COMMAND = vol.Schema(
    {
        **_COMMAND_FIELDS,
        vol.Required("after_seq"): _integer(0, MAX_SEQ),
        vol.Optional("through_seq"): SEQ,
    }
)


def COMMAND(payload: Any) -> Any:
    """quarantine/release name a host; replay names the last seq the sender has."""
    if isinstance(payload, dict) and payload.get("action") == "replay":
        return _REPLAY_COMMAND(payload)
    return _HOST_COMMAND(payload)


REPLAY_ANSWER = vol.Schema(
    {
        vol.Required("epoch"): EPOCH,
        vol.Required("after_seq"): _integer(0, MAX_SEQ),
        vol.Required("count"): NON_NEGATIVE,
        vol.Required("first_seq"): _or_null(SEQ),
        vol.Required("through_seq"): _or_null(SEQ),
        vol.Required("last_seq"): _integer(0, MAX_SEQ),
        vol.Required("gap"): _or_null(
            vol.Schema({vol.Required("first_seq"): SEQ, vol.Required("last_seq"): SEQ})
        ),
    }
)

COMMAND_RESULT = _signed(
    {
        vol.Required("id"): _string(max_length=64),
        vol.Required("ok"): _boolean,
        vol.Required("error"): _or_null(_string(max_length=512)),
        vol.Optional("action"): _one_of("quarantine", "release", "replay"),
        vol.Optional("mac"): MAC,
        vol.Optional("replay"): REPLAY_ANSWER,
    }
)

STATUS = _one_of("online", "offline")

# The site channel's payloads from the owner's provider (``schema/site/``): always signed.
_SITE_ID = _string(_AGENT_ID)
_OPERATOR = _string(min_length=1, max_length=80)
_SITE_SIGNATURE: dict[Any, Validator] = {vol.Required("ts"): TS, vol.Required("sig"): SIG}

SITE_REQUEST = vol.Schema(
    {
        vol.Required("schema"): _const(SCHEMA_VERSION),
        vol.Required("id"): _SITE_ID,
        vol.Required("agent_id"): AGENT_ID,
        vol.Required("action"): _one_of("start_evacuation", "stop_evacuation"),
        vol.Required("incident_id"): EVENT_ID,
        vol.Required("culprit"): _or_null(
            vol.Schema({vol.Required("mac"): MAC, vol.Required("ip"): _or_null(_ipv4)})
        ),
        vol.Required("reason"): _string(max_length=512),
        vol.Required("operator"): _OPERATOR,
        **_SITE_SIGNATURE,
    }
)

SITE_PROVIDER_LABEL = vol.Schema(
    {
        vol.Required("schema"): _const(SCHEMA_VERSION),
        vol.Required("id"): _SITE_ID,
        vol.Required("agent_id"): AGENT_ID,
        vol.Required("event_id"): EVENT_ID,
        vol.Required("label"): _one_of("normal", "alarm"),
        vol.Required("operator"): _OPERATOR,
        **_SITE_SIGNATURE,
    }
)

SCHEMAS: Final[dict[str, Validator]] = {
    "event": EVENT,
    "info": INFO,
    "state": STATE,
    "hosts": HOSTS,
    "quarantine": QUARANTINE,
    "command": COMMAND,
    "command_result": COMMAND_RESULT,
    "status": STATUS,
    "site_request": SITE_REQUEST,
    "site_provider_label": SITE_PROVIDER_LABEL,
}


LEGACY_SCHEMAS: Final[dict[str, Validator]] = {
    **SCHEMAS,
    "event": LEGACY_EVENT,
    "state": LEGACY_STATE,
}


def validate(name: str, payload: Any, legacy: bool = False) -> Any:
    """``payload`` checked against the contract ``name`` (``legacy``: as agents before 0.2
    send it); ``vol.Invalid`` says what is wrong."""
    return (LEGACY_SCHEMAS if legacy else SCHEMAS)[name](payload)


def describe(err: vol.Invalid) -> str:
    """A short readable reason, with the path of the offending field."""
    path = ".".join(str(part) for part in err.path)
    return f"{err.msg} at '{path}'" if path else err.msg
