"""The login's mfaToken in real Redis: single use, a budget of wrong attempts, expiry, nothing usable stored."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django_redis import get_redis_connection

from auth_service.accounts.crypto import token_digest
from auth_service.accounts.mfa_tokens import (
    METHOD_RECOVERY_CODE,
    METHOD_TOTP,
    mfa_token_consume,
    mfa_token_failure,
    mfa_token_issue,
    mfa_token_restore,
)

PREFIX = "authsvc:mfa-token:"


@pytest.fixture
def issued(settings: Any) -> Iterator[list[str]]:
    settings.MFA_TOKEN_TTL_SECONDS = 300
    settings.MFA_TOKEN_MAX_FAILURES = 5
    tokens: list[str] = []
    yield tokens
    for token in tokens:
        mfa_token_consume(token)


def _issue(tokens: list[str], **overrides: Any) -> str:
    args: dict[str, Any] = {
        "user_id": str(uuid.uuid4()),
        "epoch": 3,
        "methods": [METHOD_TOTP, METHOD_RECOVERY_CODE],
        "ip": "10.0.0.1",
        "user_agent": "pytest-agent",
    }
    token = mfa_token_issue(**{**args, **overrides})
    tokens.append(token)
    return token


def test_a_token_holds_the_pending_login_and_is_single_use(issued: list[str]) -> None:
    user_id = str(uuid.uuid4())
    token = _issue(issued, user_id=user_id)

    state = mfa_token_consume(token)

    assert state is not None
    assert (state.user_id, state.epoch, state.ip, state.user_agent) == (user_id, 3, "10.0.0.1", "pytest-agent")
    assert (state.methods, state.amr, state.failures, state.attempts_left) == (
        ("totp", "recovery_code"),
        ("pwd",),
        0,
        5,
    )
    assert 295 <= state.expires_at - time.time() <= 300
    assert mfa_token_consume(token) is None


def test_redis_keeps_only_a_digest_of_the_token_and_expires_it(issued: list[str]) -> None:
    token = _issue(issued)
    redis = get_redis_connection("default")
    key = f"{PREFIX}{token_digest(token)}"

    value = redis.get(key)

    assert value is not None
    assert token not in value.decode()
    assert 295 <= redis.ttl(key) <= 300
    assert not list(redis.scan_iter(match=f"*{token}*", count=1000))


def test_parallel_uses_of_one_token_let_exactly_one_through(issued: list[str]) -> None:
    token = _issue(issued)

    with ThreadPoolExecutor(max_workers=8) as pool:
        states = list(pool.map(lambda _: mfa_token_consume(token), range(8)))

    assert sum(state is not None for state in states) == 1


def test_each_wrong_code_costs_an_attempt_and_the_fifth_kills_the_token(issued: list[str]) -> None:
    token = _issue(issued)
    lefts = []
    for _ in range(5):
        state = mfa_token_consume(token)
        assert state is not None
        lefts.append(mfa_token_failure(token, state))

    assert lefts == [4, 3, 2, 1, 0]
    assert mfa_token_consume(token) is None


def test_a_token_put_back_keeps_its_expiry_and_count(issued: list[str]) -> None:
    token = _issue(issued)
    first = mfa_token_consume(token)
    assert first is not None
    mfa_token_failure(token, first)
    second = mfa_token_consume(token)
    assert second is not None

    mfa_token_restore(token, second)
    third = mfa_token_consume(token)

    assert third is not None
    assert (third.failures, third.expires_at) == (1, first.expires_at)


def test_an_expired_token_is_refused(issued: list[str], settings: Any) -> None:
    settings.MFA_TOKEN_TTL_SECONDS = 1
    token = _issue(issued)

    time.sleep(1.2)

    assert mfa_token_consume(token) is None


@pytest.mark.parametrize("garbage", ["", "x" * 129, "not-a-token"])
def test_unknown_or_malformed_tokens_are_refused(garbage: str) -> None:
    assert mfa_token_consume(garbage) is None
