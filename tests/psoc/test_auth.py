"""psoc.console.auth: argon2 hashes, roles, CSRF comparison, login throttling."""

from __future__ import annotations

import pytest

from psoc.console import auth


def test_passwords_are_argon2_hashed_and_checked() -> None:
    hashed = auth.hash_password("correct horse battery")
    assert hashed.startswith("$argon2id$")
    assert auth.check_password(hashed, "correct horse battery")
    assert not auth.check_password(hashed, "wrong horse battery")
    assert not auth.check_password(None, "correct horse battery")  # unknown user
    assert not auth.check_password("not a hash", "x")
    with pytest.raises(ValueError):
        auth.hash_password("short")


def test_roles() -> None:
    customer = auth.Principal(1, "c", "customer", "home-a")
    viewer = auth.Principal(2, "v", "viewer", None)
    assert customer.may_see("home-a") and not customer.may_see("home-b")
    assert not customer.operator and not customer.responder
    assert viewer.may_see("home-b") and viewer.operator and not viewer.responder
    assert auth.Principal(3, "r", "responder", None).responder


def test_csrf_tokens_must_match_exactly() -> None:
    token = auth.new_csrf_token()
    assert auth.csrf_ok(token, token)
    assert not auth.csrf_ok(token, token[:-1])
    assert not auth.csrf_ok("", "")
    assert not auth.csrf_ok(None, token)
    assert not auth.csrf_ok(token, None)


def test_login_throttle() -> None:
    throttle = auth.LoginThrottle(attempts=3, window_s=60, max_names=2)
    for _ in range(3):
        throttle.failed("alice", 0)
    assert throttle.blocked("alice", 1) and not throttle.blocked("bob", 1)
    assert not throttle.blocked("alice", 61)
    throttle.failed("bob", 2)
    throttle.failed("carol", 2)  # bounded: the oldest name is forgotten
    assert len(throttle._failures) <= 2
    throttle.succeeded("bob")
    assert not throttle.blocked("bob", 3)
