"""Bounded intake of an agent's MQTT payloads: size, shape and dates checked before trust.

Anyone who can publish on the agent's topics can send anything. These bounds keep one
message from raising out of the MQTT callback (a JSON nested 10,000 deep), from blocking
Home Assistant's event loop (100,000 hosts), from filling memory and storage (a 5 MB string,
a 4,000-digit number), from making storage and entity states unsaveable (HA's JSON writer
stops at 255 levels) and from keeping an incident open forever (an event dated 9999). Each
broken bound is a ``BadPayload`` reason, counted and shown in diagnostics like every other
refusal. The contract's own payloads stay far inside them (see the numbers below).

``decode`` is pure and thread-safe: the coordinator runs it on the event loop for the small
payloads and in a worker thread for big retained ones (``OFF_LOOP_BYTES``).
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import accumulate, count
from typing import Any, Final

import voluptuous as vol

from .const import BadPayload
from .payloads import describe, parse_timestamp, validate

KIB: Final = 1024
# Events and command results: the largest the agent makes (64 targets, 256 ports, a
# 256-character sample) is under 4 KiB; 16 KiB also keeps an event entity's attributes
# within what the recorder stores.
MAX_LIVE_BYTES: Final = 16 * KIB
# Info, state, hosts, quarantine: 4,096 open incidents are about 1.3 MiB of state.
MAX_RETAINED_BYTES: Final = 2048 * KIB
MAX_BYTES: Final = {
    "event": MAX_LIVE_BYTES,
    "command_result": MAX_LIVE_BYTES,
    "info": MAX_RETAINED_BYTES,
    "state": MAX_RETAINED_BYTES,
    "hosts": MAX_RETAINED_BYTES,
    "quarantine": MAX_RETAINED_BYTES,
    "status": 64,  # online or offline (not JSON)
    # The provider's requests and labels: a 512-character reason is the most they carry.
    "site_request": 4 * KIB,
    "site_provider_label": 4 * KIB,
}
# Retained payloads above this are decoded in a worker thread: validating 512 hosts takes
# about 10 ms, 4,096 incidents over 100 ms, too long to hold the event loop. Nothing larger
# than an event is decoded on the loop (a hostile 16 KiB costs under 3 ms), and events keep
# their order there.
OFF_LOOP_BYTES: Final = MAX_LIVE_BYTES
# The contract nests 4 levels (state.incidents[].source); room for a newer agent's extras.
MAX_DEPTH: Final = 16
# Characters of one string or key; the contract's longest is 512 (a command's error).
MAX_STRING: Final = 1024
# Items of one array or members of one object: the agent's default hosts.max_hosts and
# detectors.*.max_sources.
MAX_ITEMS: Final = 4096
# Integers and decimals are exact in every JSON reader (HA's frontend included) up to 2**53.
MAX_NUMBER: Final = 2**53
# As far ahead of Home Assistant's clock as a signed payload's ``ts`` may be.
MAX_AHEAD: Final = timedelta(seconds=300)
# The contract's timestamps per payload (dotted paths; a list on the way is walked item by item).
TIMESTAMPS: Final[dict[str, tuple[str, ...]]] = {
    "event": ("first_seen", "last_seen", "detected_at"),
    "info": ("started_at",),
    "state": ("updated_at", "incidents.first_seen", "incidents.last_seen"),
    "hosts": ("updated_at", "hosts.first_seen", "hosts.last_seen"),
    "quarantine": ("updated_at", "hosts.since"),
}

# A JSON string (valid JSON only: anything else fails to decode anyway).
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEPS = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")
_SURROGATE = re.compile("[\ud800-\udfff]")


class PayloadRefused(ValueError):
    """A payload broke a bound (or is not JSON); ``reason`` is what diagnostics count."""

    def __init__(self, reason: BadPayload, detail: str) -> None:
        """Keep the machine-readable reason next to the readable detail."""
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Decoded:
    """A payload within the bounds and the contract."""

    sent: Any  # as decoded: what a signature covers (validation coerces, e.g. 2.0 -> 2)
    payload: Any  # as validated


@dataclass(frozen=True, slots=True)
class Refused:
    """Why a payload was refused."""

    reason: BadPayload
    detail: str


def decode(
    name: str, raw: bytes | bytearray | str, now: datetime, *, legacy: bool = False
) -> Decoded | Refused:
    """``raw`` decoded within the bounds, checked against the contract ``name`` (``legacy``:
    as agents before 0.2 send it) and dated no later than ``now`` plus ``MAX_AHEAD``. Never
    raises for anything ``raw`` contains."""
    try:
        sent = loads(raw, MAX_BYTES[name])
        payload = validate(name, sent, legacy=legacy)
        check_dates(name, payload, now)
    except PayloadRefused as err:
        return Refused(err.reason, str(err))
    except vol.Invalid as err:
        return Refused(BadPayload.SCHEMA, describe(err))
    return Decoded(sent, payload)


def loads(raw: bytes | bytearray | str, max_bytes: int) -> Any:
    """JSON within the bounds; ``PayloadRefused`` names the broken one (``not_json`` for bad
    UTF-8, bad JSON, NaN or Infinity, which JSON does not have)."""
    data = raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)
    if len(data) > max_bytes:
        raise PayloadRefused(
            BadPayload.TOO_LARGE, f"{len(data)} bytes (limit {max_bytes // KIB} KiB)"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise PayloadRefused(BadPayload.NOT_JSON, f"not UTF-8: {err.reason}") from err
    # Before the decoder, which recurses once per level (RecursionError at about 1,000).
    _check_depth(text)
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except PayloadRefused:
        raise
    except json.JSONDecodeError as err:
        raise PayloadRefused(BadPayload.NOT_JSON, str(err)) from err
    except ValueError as err:  # an integer of more than 4,300 digits
        raise PayloadRefused(BadPayload.BAD_NUMBER, "an integer beyond ±2**53") from err
    _check_shape(value)
    return value


def check_dates(name: str, payload: Any, now: datetime) -> None:
    """``PayloadRefused`` (``future``) when a contract timestamp is beyond ``now + MAX_AHEAD``:
    a date far ahead would keep an incident open, and the threat on, until that date."""
    latest = now + MAX_AHEAD
    for path in TIMESTAMPS.get(name, ()):
        for value in _at(payload, path.split(".")):
            if isinstance(value, str) and parse_timestamp(value) > latest:
                ahead = (parse_timestamp(value) - now).total_seconds()
                raise PayloadRefused(
                    BadPayload.FUTURE,
                    f"{path} is {ahead:.0f} s ahead of Home Assistant's clock "
                    f"(limit {MAX_AHEAD.total_seconds():.0f} s): check the agent's clock",
                )


def _at(node: Any, path: list[str]) -> Iterator[Any]:
    """The values at ``path`` (lists on the way are walked item by item)."""
    if isinstance(node, list):
        for item in node:
            yield from _at(item, path)
    elif not path:
        yield node
    elif isinstance(node, dict) and path[0] in node:
        yield from _at(node[path[0]], path[1:])


def _check_depth(text: str) -> None:
    """Refuse nesting beyond ``MAX_DEPTH`` without recursing: drop the strings, keep the
    brackets, and take the deepest running count (C iterators all the way: no Python loop)."""
    structure = _NOT_BRACKET.sub("", _STRING.sub("", text)).encode("ascii")
    # An opening bracket counts 2, a closing one 0: the running sum less the position is
    # the depth after each bracket.
    depths = map(operator.sub, accumulate(structure.translate(_STEPS)), count(1))
    if max(depths, default=0) > MAX_DEPTH:
        raise PayloadRefused(BadPayload.TOO_DEEP, f"nested deeper than {MAX_DEPTH} levels")


def _check_shape(value: Any) -> None:
    """Strings, keys, numbers, arrays and objects within their bounds (iterative; the depth
    is already bounded). Numbers are checked here rather than in the decoder's hooks, which
    would cost a Python call per number."""
    stack = [value]
    while stack:
        node = stack.pop()
        kind = type(node)
        if kind is str:
            if len(node) > MAX_STRING:
                raise PayloadRefused(
                    BadPayload.TOO_LONG, f"a string of {len(node)} characters (limit {MAX_STRING})"
                )
            # "\ud800" decodes to half a character, which no UTF-8 writer (storage) accepts.
            if not node.isascii() and _SURROGATE.search(node):
                raise PayloadRefused(BadPayload.NOT_JSON, "a string with half a surrogate pair")
        elif kind is int or kind is float:
            # 1e400 decodes to infinity; NaN and Infinity themselves never get here.
            if not abs(node) <= MAX_NUMBER:
                raise PayloadRefused(BadPayload.BAD_NUMBER, f"{_number(node)} beyond ±2**53")
        elif kind is list:
            if len(node) > MAX_ITEMS:
                raise PayloadRefused(
                    BadPayload.TOO_MANY, f"an array of {len(node)} items (limit {MAX_ITEMS})"
                )
            stack.extend(node)
        elif kind is dict:
            if len(node) > MAX_ITEMS:
                raise PayloadRefused(
                    BadPayload.TOO_MANY, f"an object of {len(node)} members (limit {MAX_ITEMS})"
                )
            stack.extend(node)  # the keys
            stack.extend(node.values())


def _no_constant(name: str) -> Any:
    raise PayloadRefused(BadPayload.NOT_JSON, f"{name} is not valid JSON")


def _number(number: int | float) -> str:
    if isinstance(number, float):
        return repr(number)
    # Never str() of a huge integer: beyond 4,300 digits that raises.
    return f"an integer of {len(hex(number)) - 2} hex digits"
