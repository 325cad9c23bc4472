"""Login through auth.login.user: tokens as SPEC §3, one generic 401, unverified 400, per-account throttle."""

from __future__ import annotations

import time
import uuid

import pytest
from django.conf import settings
from django_redis import get_redis_connection

from auth_service.accounts.tests.conftest import AuthApi
from auth_service.accounts.tests.factories import PASSWORD, UserFactory
from auth_service.accounts.throttle import login_attempt_keys
from common.contracts import subjects
from common.contracts.sessions import session_key, user_sessions_key
from common.outbox.models import OutboxEvent

INVALID = {"statusCode": 401, "error": "Unauthorized", "message": "Invalid credentials", "code": "unauthorized"}


def test_login_by_email_returns_an_rs256_access_token_verifiable_with_the_jwks(auth: AuthApi) -> None:
    user = UserFactory(roles=["user", "admin"])
    before = int(time.time())

    reply = auth.login(user.email.upper())

    assert set(reply) == {"accessToken", "refreshToken", "refreshExpiresAt", "sessionId"}
    header, claims = auth.decode_access(reply["accessToken"])
    assert header["alg"] == "RS256"
    assert header["typ"] == "at+jwt"
    assert header["kid"] in {key["kid"] for key in auth.jwks()["keys"]}
    assert set(claims) == {"iss", "aud", "sub", "sid", "roles", "ep", "amr", "jti", "iat", "exp"}
    assert (claims["iss"], claims["aud"], claims["sub"]) == (settings.JWT_ISSUER, settings.JWT_AUDIENCE, str(user.id))
    assert claims["sid"] == reply["sessionId"]
    assert claims["roles"] == ["user", "admin"]
    assert before <= claims["iat"] <= int(time.time())
    assert claims["exp"] - claims["iat"] == settings.ACCESS_TOKEN_TTL_SECONDS == 900
    redis = get_redis_connection("default")
    session = {k.decode(): v.decode() for k, v in redis.hgetall(session_key(reply["sessionId"])).items()}
    assert session["uid"] == str(user.id)
    assert (session["device"], session["ip"]) == ("pytest-agent", "10.0.0.1")
    assert len(session["check"]) == 64
    assert 0 < redis.ttl(session_key(reply["sessionId"])) <= settings.REFRESH_TOKEN_TTL_SECONDS
    assert redis.sismember(user_sessions_key(str(user.id)), reply["sessionId"])
    assert reply["refreshExpiresAt"].endswith("Z")
    assert OutboxEvent.objects.count() == 0


def test_login_by_username_ignores_case_and_opens_one_session_per_device(auth: AuthApi) -> None:
    user = UserFactory(username="CaseyJones")

    first = auth.login("caseyjones", user_agent="laptop")
    second = auth.login("CASEYJONES", user_agent="phone")

    assert first["sessionId"] != second["sessionId"]
    sessions = get_redis_connection("default").smembers(user_sessions_key(str(user.id)))
    assert {s.decode() for s in sessions} == {first["sessionId"], second["sessionId"]}


def test_bad_password_unknown_user_and_inactive_user_get_the_same_401(auth: AuthApi) -> None:
    active = UserFactory()
    inactive = UserFactory(is_active=False)
    unknown = f"nobody-{uuid.uuid4().hex}@example.com"
    auth.forget_slug(unknown)

    bad_password = auth.error(subjects.AUTH_LOGIN, {"slug": active.email, "password": "Wrong-Password-1"})
    no_account = auth.error(subjects.AUTH_LOGIN, {"slug": unknown, "password": PASSWORD})
    deactivated = auth.error(subjects.AUTH_LOGIN, {"slug": inactive.email, "password": PASSWORD})

    assert bad_password.to_body() == no_account.to_body() == deactivated.to_body() == INVALID
    assert bad_password.headers == no_account.headers == deactivated.headers == {}


def test_unknown_user_costs_a_hash_like_a_known_one(auth: AuthApi) -> None:
    user = UserFactory()
    unknown = f"ghost{uuid.uuid4().hex[:12]}"
    auth.forget_slug(unknown)
    auth.error(subjects.AUTH_LOGIN, {"slug": unknown, "password": PASSWORD})  # warm-up: dummy hash computed once

    def timed(slug: str) -> float:
        started = time.perf_counter()
        auth.error(subjects.AUTH_LOGIN, {"slug": slug, "password": "Wrong-Password-1"})
        return time.perf_counter() - started

    known = min(timed(user.email) for _ in range(3))
    ghost = min(timed(unknown) for _ in range(3))
    assert ghost > known * 0.5
    assert known > ghost * 0.5


def test_unverified_user_gets_400_only_after_a_correct_password(auth: AuthApi) -> None:
    user = UserFactory(is_verified=False)

    wrong = auth.error(subjects.AUTH_LOGIN, {"slug": user.email, "password": "Wrong-Password-1"})
    right = auth.error(subjects.AUTH_LOGIN, {"slug": user.email, "password": PASSWORD})

    assert wrong.to_body() == INVALID
    assert (right.status, right.message) == (400, "Account not verified: enter the code sent to your e-mail address")
    assert get_redis_connection("default").scard(user_sessions_key(str(user.id))) == 0


def test_more_than_ten_failures_for_one_account_are_429_with_retry_after(auth: AuthApi) -> None:
    user = UserFactory()

    for _ in range(10):
        assert auth.error(subjects.AUTH_LOGIN, {"slug": user.email, "password": "Wrong-Password-1"}).status == 401
    # The username shares the account's budget, and a correct password does not get through either.
    throttled = auth.error(subjects.AUTH_LOGIN, {"slug": user.username, "password": PASSWORD})

    assert throttled.status == 429
    assert throttled.message == "Too many failed login attempts, try again later"
    retry_after = int(throttled.headers["Retry-After"])
    assert 0 < retry_after <= 15 * 60
    assert get_redis_connection("default").scard(user_sessions_key(str(user.id))) == 0


def test_the_throttle_window_expires(auth: AuthApi) -> None:
    user = UserFactory()
    for _ in range(10):
        auth.error(subjects.AUTH_LOGIN, {"slug": user.email, "password": "Wrong-Password-1"})
    assert auth.error(subjects.AUTH_LOGIN, {"slug": user.email, "password": PASSWORD}).status == 429

    # The window is a TTL: when it runs out, the source may try again (never a permanent lock-out).
    keys = login_attempt_keys(user_id=str(user.id), slug="", ip=None)
    get_redis_connection("default").pexpire(keys.source_key, 1)
    time.sleep(0.01)

    assert "accessToken" in auth(subjects.AUTH_LOGIN, {"slug": user.email, "password": PASSWORD})


def test_unknown_accounts_are_throttled_alike(auth: AuthApi) -> None:
    slug = f"ghost{uuid.uuid4().hex[:12]}"
    auth.forget_slug(slug)

    statuses = [auth.error(subjects.AUTH_LOGIN, {"slug": slug, "password": PASSWORD}).status for _ in range(11)]

    assert statuses == [401] * 10 + [429]


def test_a_successful_login_resets_the_sources_failure_count(auth: AuthApi) -> None:
    user = UserFactory()
    for _ in range(9):
        auth.error(subjects.AUTH_LOGIN, {"slug": user.email, "password": "Wrong-Password-1"})

    auth(subjects.AUTH_LOGIN, {"slug": user.email, "password": PASSWORD})

    keys = login_attempt_keys(user_id=str(user.id), slug="", ip=None)
    redis = get_redis_connection("default")
    assert redis.get(keys.source_key) is None
    # The account keeps the nine failures; the success took back only its own reservation.
    assert redis.get(keys.account_key) == b"9"


@pytest.mark.parametrize(
    ("data", "fields"),
    [
        ({"slug": "someone"}, {"password": ["password is required"]}),
        ({"slug": "someone", "password": "x", "remember": True}, {"remember": ["property remember should not exist"]}),
        ({"slug": ["a"], "password": "x"}, {"slug": ["slug must be a string"]}),
    ],
)
def test_login_payload_shape_is_checked(auth: AuthApi, data: dict[str, object], fields: dict[str, list[str]]) -> None:
    err = auth.error(subjects.AUTH_LOGIN, data)

    assert (err.status, err.fields) == (400, fields)
