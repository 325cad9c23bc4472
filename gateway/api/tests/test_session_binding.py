"""Access tokens and CSRF values bound to their session, the session bound to its user and credential epoch."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
from django.test import Client
from django_redis import get_redis_connection

from common.contracts.sessions import session_key, user_epoch_key
from devstack.testing.stack import RunningStack
from gateway.api.csrf import csrf_token_is_valid, new_csrf_token
from gateway.api.tests.e2e import (
    CSRF_COOKIE,
    NEW_PASSWORD,
    PASSWORD,
    REFRESH_COOKIE,
    Account,
    Api,
    logged_in,
    registered,
)
from gateway.api.tests.tokens import Signer

LOG_LEVEL = "/api/admin/log-level?service=gateway"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def owned_session() -> Iterator[tuple[str, str]]:
    """(user id, sid) of a live session written as the auth service writes it, under the user's epoch 0."""
    redis = get_redis_connection("default")
    user_id, sid = str(uuid.uuid4()), str(uuid.uuid4())
    redis.hset(session_key(sid), mapping={"uid": user_id, "ep": "0", "tmin": "0"})
    redis.expire(session_key(sid), 300)
    yield user_id, sid
    redis.delete(session_key(sid), user_epoch_key(user_id))


def status(token: str) -> int:
    return Client().get(LOG_LEVEL, headers=bearer(token)).status_code


def test_a_token_naming_another_user_than_its_sessions_is_refused(
    trusted: Signer, owned_session: tuple[str, str]
) -> None:
    user_id, sid = owned_session
    assert status(trusted.token(sub=user_id, sid=sid, roles=["sys_admin"])) == 200
    # With the signing key, one's own live session must not unlock another account.
    assert status(trusted.token(sub=str(uuid.uuid4()), sid=sid, roles=["sys_admin"])) == 401


def test_a_token_below_its_sessions_epoch_or_a_session_behind_its_users_is_refused(
    trusted: Signer, owned_session: tuple[str, str]
) -> None:
    user_id, sid = owned_session
    redis = get_redis_connection("default")
    old, new = (trusted.token(sub=user_id, sid=sid, roles=["sys_admin"], ep=ep) for ep in (0, 1))
    redis.hset(session_key(sid), mapping={"ep": "1", "tmin": "1"})
    assert status(old) == status(new) == 401  # the session is ahead of the user's epoch (0): not of this epoch

    redis.set(user_epoch_key(user_id), 1)
    assert (status(old), status(new)) == (401, 200)
    assert status(trusted.token(sub=user_id, sid=sid, roles=["sys_admin"], ep="1")) == 401  # not an integer


def test_a_csrf_value_is_bound_to_its_session_and_expires() -> None:
    sid, other = str(uuid.uuid4()), str(uuid.uuid4())
    value = new_csrf_token(sid)
    assert csrf_token_is_valid(value, value, sid=sid)
    assert not csrf_token_is_valid(value, value, sid=other)
    assert not csrf_token_is_valid(value, value, sid="")
    week_ago = time.time() - 8 * 24 * 3600
    stale = new_csrf_token(sid, now=week_ago)
    assert not csrf_token_is_valid(stale, stale, sid=sid)
    assert not csrf_token_is_valid(stale, stale, sid=sid, now=time.time() + 3600 * 24 * 365)


# --- through the whole stack ----------------------------------------------------------------------------------------


@pytest.mark.e2e
def test_a_planted_refresh_cookie_of_another_session_fails_csrf(stack: RunningStack) -> None:
    victim, attacker = logged_in(registered(stack)), logged_in(registered(stack))
    # A sibling subdomain can set a cookie for path /api/auth: it plants the attacker's own (genuine) session.
    victim.client.cookies[REFRESH_COOKIE] = attacker.cookie(REFRESH_COOKIE) or ""

    response = victim.post("/api/auth/revalidate-credentials", bearer=False)

    assert response.status_code == 403
    assert response.json()["code"] == "csrf_failed"
    assert attacker.refresh().status_code == 200


@pytest.mark.e2e
def test_a_csrf_value_does_not_survive_logout(stack: RunningStack) -> None:
    account = registered(stack)
    api = logged_in(account)
    old_csrf = api.csrf_cookie or ""
    assert api.post("/api/auth/logout", bearer=False).status_code == 200
    api.login(account.email, PASSWORD)

    api.client.cookies[CSRF_COOKIE] = old_csrf
    response = api.patch(f"/api/user/{api.user_id}", {"name": "Renamed Person"})

    assert response.status_code == 403
    assert response.json()["code"] == "csrf_failed"


@pytest.mark.e2e
def test_a_demoted_sys_admin_loses_the_gateway_only_routes_at_once(stack: RunningStack, sys_admin: Api) -> None:
    account = registered(stack)
    promoted = logged_in(account)
    assert sys_admin.patch(f"/api/user/{promoted.user_id}", {"roles": ["sys_admin"]}).status_code == 200
    assert promoted.refresh().status_code == 200
    assert promoted.get(LOG_LEVEL).status_code == 200

    assert sys_admin.patch(f"/api/user/{promoted.user_id}", {"roles": ["user"]}).status_code == 200

    assert promoted.get(LOG_LEVEL).status_code == 401  # the access token still says sys_admin: refused
    assert promoted.refresh().status_code == 200  # the session goes on, with the new roles
    assert promoted.get(LOG_LEVEL).status_code == 403


@pytest.mark.e2e
def test_an_own_password_change_keeps_this_access_token_and_ends_the_other_devices(stack: RunningStack) -> None:
    account: Account = registered(stack)
    here, there = logged_in(account), logged_in(account)

    response = here.patch(f"/api/user/{here.user_id}", {"password": NEW_PASSWORD, "oldPassword": PASSWORD})

    assert response.status_code == 200, response.content
    assert here.get(f"/api/user/{here.user_id}").status_code == 200
    assert there.get(f"/api/user/{there.user_id}").status_code == 401
