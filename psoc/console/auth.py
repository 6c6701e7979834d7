"""Accounts, roles, CSRF tokens and login throttling for the console (pure but for argon2).

Roles: ``viewer`` reads every site, incident, figure and the audit log; ``responder`` also
acts on incidents (acknowledge, assign, label, request isolation, close, mark the customer
notified); ``admin`` may do what a responder does (accounts are managed on the command line);
``customer`` reads only its own site, and acts on nothing.
"""

from __future__ import annotations

import hmac
import secrets
from collections import deque
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_HASHER = PasswordHasher()
# verified against when the user does not exist, so timing does not tell names apart
_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))

OPERATORS = frozenset({"viewer", "responder", "admin"})
RESPONDERS = frozenset({"responder", "admin"})
MIN_PASSWORD = 10


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"use at least {MIN_PASSWORD} characters")
    return _HASHER.hash(password)


def check_password(stored_hash: str | None, password: str) -> bool:
    """True if ``password`` matches; the same work is done for an unknown user."""
    try:
        return _HASHER.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    return _HASHER.check_needs_rehash(stored_hash)


@dataclass(frozen=True)
class Principal:
    """The logged-in user, as the console sees them."""

    id: int
    username: str
    role: str
    site_id: str | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Principal:
        return cls(row["id"], row["username"], row["role"], row["site_id"])

    @property
    def operator(self) -> bool:
        return self.role in OPERATORS

    @property
    def responder(self) -> bool:
        return self.role in RESPONDERS

    def may_see(self, site_id: str) -> bool:
        return self.operator or (self.role == "customer" and self.site_id == site_id)


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def csrf_ok(session_token: object, form_token: object) -> bool:
    return (
        isinstance(session_token, str)
        and isinstance(form_token, str)
        and bool(session_token)
        and hmac.compare_digest(session_token.encode(), form_token.encode())
    )


class LoginThrottle:
    """At most ``attempts`` failed logins per name in ``window_s``; bounded memory."""

    def __init__(self, attempts: int = 5, window_s: float = 60.0, max_names: int = 10_000) -> None:
        self.attempts = attempts
        self.window_s = window_s
        self.max_names = max_names
        self._failures: dict[str, deque[float]] = {}

    def blocked(self, name: str, now: float) -> bool:
        recent = self._failures.get(name)
        if not recent:
            return False
        while recent and recent[0] < now - self.window_s:
            recent.popleft()
        return len(recent) >= self.attempts

    def failed(self, name: str, now: float) -> None:
        if name not in self._failures and len(self._failures) >= self.max_names:
            self._failures.pop(next(iter(self._failures)))  # the oldest name goes
        self._failures.setdefault(name, deque(maxlen=self.attempts)).append(now)

    def succeeded(self, name: str) -> None:
        self._failures.pop(name, None)
