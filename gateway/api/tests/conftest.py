"""Fixtures of the gateway's own tests: local signing keys trusted in place of the JWKS, and live Redis sessions."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
from django_redis import get_redis_connection

from common.contracts.sessions import session_key
from devstack.testing.stack import RunningStack
from gateway.api import access_tokens
from gateway.api.tests.e2e import Account, Api, logged_in, registered, seeded
from gateway.api.tests.live import serving
from gateway.api.tests.tokens import TEST_SUBJECT, Signer


@pytest.fixture(scope="session")
def signer() -> Signer:
    return Signer()


@pytest.fixture
def trusted(signer: Signer, monkeypatch: pytest.MonkeyPatch) -> Signer:
    """The gateway trusts `signer`'s key as if the auth service published it."""
    return signer.trusted_by(access_tokens, monkeypatch)


@pytest.fixture
def live_session() -> Iterator[Callable[[], str]]:
    """Factory: a session id whose `sess:<sid>` exists in Redis (as the auth service would write it)."""
    created: list[str] = []
    redis = get_redis_connection("default")

    def make() -> str:
        sid = uuid.uuid4().hex
        redis.hset(session_key(sid), mapping={"uid": TEST_SUBJECT})
        redis.expire(session_key(sid), 300)
        created.append(sid)
        return sid

    yield make
    if created:
        redis.delete(*(session_key(sid) for sid in created))


# --- end-to-end: the whole stack (gateway/conftest.py starts it once per session) --------------------------------


@pytest.fixture
def stack(services: RunningStack) -> RunningStack:
    return services


@pytest.fixture
def live_gateway(services: RunningStack) -> Iterator[str]:
    """This process's gateway, pointed at the stack, over real HTTP: its base URL."""
    with serving() as url:
        yield url


@pytest.fixture
def sys_admin(services: RunningStack) -> Api:
    return logged_in(seeded("sys_admin"))


@pytest.fixture
def admin(services: RunningStack) -> Api:
    return logged_in(seeded("admin"))


@pytest.fixture
def guest(services: RunningStack) -> Api:
    return logged_in(seeded("guest"))


@pytest.fixture
def member(services: RunningStack) -> tuple[Api, Account]:
    """A fresh verified `user`, logged in: safe to log out, deactivate, delete or deny."""
    account = registered(services)
    return logged_in(account), account
