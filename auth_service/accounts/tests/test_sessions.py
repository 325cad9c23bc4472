"""Refresh sessions: rotation, reuse detection, grace, expiry, logout and the sessions list."""

from __future__ import annotations

import logging
import time
import uuid

import jwt
import pytest
from django.conf import settings
from django_redis import get_redis_connection

from auth_service.accounts.tests.conftest import AuthApi, agent_of
from auth_service.accounts.tests.factories import UserFactory
from common.contracts import subjects
from common.contracts.sessions import session_key, user_sessions_key
from devstack.testing.envelopes import envelope

INVALID_REFRESH = envelope(401, "Invalid or expired refresh token", "unauthorized")


def refresh(auth: AuthApi, token: str) -> dict[str, str]:
    return auth(subjects.AUTH_REVALIDATE, {"refreshToken": token}, client={"ip": "10.0.0.2", "user_agent": "pytest"})


def refresh_error(auth: AuthApi, token: str) -> dict[str, object]:
    return auth.error(subjects.AUTH_REVALIDATE, {"refreshToken": token}).to_body()


def live(sid: str) -> bool:
    return bool(get_redis_connection("default").exists(session_key(sid)))


def test_refresh_rotates_within_the_same_family_and_keeps_its_expiry(auth: AuthApi) -> None:
    user = UserFactory()
    first = auth.login(user.email)

    second = refresh(auth, first["refreshToken"])

    assert second["sessionId"] == first["sessionId"]
    assert second["refreshToken"] != first["refreshToken"]
    assert second["refreshExpiresAt"] == first["refreshExpiresAt"]
    old = jwt.decode(first["refreshToken"], options={"verify_signature": False})
    new = jwt.decode(second["refreshToken"], options={"verify_signature": False})
    assert new["exp"] == old["exp"]
    assert (new["sub"], new["sid"], new["typ"]) == (str(user.id), first["sessionId"], "refresh")
    assert new["check"] != old["check"]
    _, claims = auth.decode_access(second["accessToken"])
    assert (claims["sub"], claims["sid"]) == (str(user.id), first["sessionId"])
    assert refresh(auth, second["refreshToken"])["sessionId"] == first["sessionId"]


def test_refresh_mints_tokens_with_the_current_roles(auth: AuthApi) -> None:
    user = UserFactory()
    first = auth.login(user.email)
    type(user).objects.filter(pk=user.pk).update(roles=["user", "admin"])

    _, claims = auth.decode_access(refresh(auth, first["refreshToken"])["accessToken"])

    assert claims["roles"] == ["user", "admin"]


def test_reusing_an_older_token_ends_the_whole_family_and_is_logged(
    auth: AuthApi, settings: object, caplog: pytest.LogCaptureFixture
) -> None:
    settings.REFRESH_REUSE_GRACE_SECONDS = 0  # type: ignore[attr-defined]
    user = UserFactory()
    other_device = auth.login(user.email)
    first = auth.login(user.email)
    second = refresh(auth, first["refreshToken"])

    with caplog.at_level(logging.WARNING):
        assert refresh_error(auth, first["refreshToken"]) == INVALID_REFRESH

    assert not live(first["sessionId"])
    assert refresh_error(auth, second["refreshToken"]) == INVALID_REFRESH
    warnings = [r for r in caplog.records if r.getMessage() == "refresh token reuse detected"]
    assert len(warnings) == 1
    assert warnings[0].sid == first["sessionId"]  # type: ignore[attr-defined]
    # Other devices keep their own family.
    assert live(other_device["sessionId"])


def test_the_grace_period_covers_only_the_immediately_previous_token(auth: AuthApi, settings: object) -> None:
    settings.REFRESH_REUSE_GRACE_SECONDS = 10  # type: ignore[attr-defined]
    user = UserFactory()
    t1 = auth.login(user.email)["refreshToken"]
    t2 = refresh(auth, t1)["refreshToken"]

    # A racing tab presents t1 again: within the grace it gets a fresh rotation, the family lives on.
    t3 = refresh(auth, t1)["refreshToken"]
    # Now t2 is the previous token (still in grace), and t1 is two steps back: reuse.
    t4 = refresh(auth, t2)["refreshToken"]
    assert refresh_error(auth, t1) == INVALID_REFRESH

    for token in (t2, t3, t4):
        assert refresh_error(auth, token) == INVALID_REFRESH


def test_two_rotations_back_is_reuse_even_within_the_grace(auth: AuthApi, settings: object) -> None:
    settings.REFRESH_REUSE_GRACE_SECONDS = 10  # type: ignore[attr-defined]
    user = UserFactory()
    login = auth.login(user.email)
    t2 = refresh(auth, login["refreshToken"])["refreshToken"]
    refresh(auth, t2)

    assert refresh_error(auth, login["refreshToken"]) == INVALID_REFRESH
    assert not live(login["sessionId"])


def test_the_grace_is_capped_at_thirty_seconds(auth: AuthApi, settings: object) -> None:
    settings.REFRESH_REUSE_GRACE_SECONDS = 3600  # type: ignore[attr-defined]
    user = UserFactory()
    login = auth.login(user.email)
    refresh(auth, login["refreshToken"])

    raw = get_redis_connection("default").hget(session_key(login["sessionId"]), "prev_until")
    assert raw is not None
    assert float(raw) - time.time() <= 30


def test_expired_tampered_and_garbage_refresh_tokens_are_401(auth: AuthApi) -> None:
    user = UserFactory()
    login = auth.login(user.email)
    claims = jwt.decode(login["refreshToken"], options={"verify_signature": False})
    expired = jwt.encode({**claims, "exp": int(time.time()) - 5}, settings.REFRESH_TOKEN_SECRET, algorithm="HS256")
    tampered = jwt.encode(
        {**claims, "sub": str(uuid.uuid4())}, "another-secret-of-sufficient-length-0123456789", algorithm="HS256"
    )
    unsigned = jwt.encode(claims, None, algorithm="none")  # type: ignore[arg-type]
    head, body, signature = login["refreshToken"].split(".")
    flipped = f"{head}.{body}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}"

    for token in (expired, tampered, unsigned, flipped, "garbage", "", "a.b.c", "x" * 5000):
        assert auth.error(subjects.AUTH_REVALIDATE, {"refreshToken": token}).status == (
            400 if len(token) > 4096 else 401
        )
    assert live(login["sessionId"])


def test_a_refresh_token_without_its_session_is_401(auth: AuthApi) -> None:
    user = UserFactory()
    login = auth.login(user.email)
    get_redis_connection("default").delete(session_key(login["sessionId"]))

    assert refresh_error(auth, login["refreshToken"]) == INVALID_REFRESH


def test_refresh_for_a_deactivated_user_is_401_and_ends_the_session(auth: AuthApi) -> None:
    user = UserFactory()
    login = auth.login(user.email)
    type(user).objects.filter(pk=user.pk).update(is_active=False)

    assert refresh_error(auth, login["refreshToken"]) == INVALID_REFRESH
    assert not live(login["sessionId"])


def test_logout_ends_only_this_session(auth: AuthApi) -> None:
    user = UserFactory()
    laptop = auth.login(user.email)
    phone = auth.login(user.email)

    assert auth(subjects.AUTH_LOGOUT, {"refreshToken": laptop["refreshToken"], "all": False}) is None

    assert not live(laptop["sessionId"])
    assert live(phone["sessionId"])
    assert refresh_error(auth, laptop["refreshToken"]) == INVALID_REFRESH
    assert auth.error(subjects.AUTH_LOGOUT, {"refreshToken": laptop["refreshToken"]}).status == 401


def test_logout_all_ends_every_session_of_the_user(auth: AuthApi) -> None:
    user = UserFactory()
    other_user = UserFactory()
    laptop = auth.login(user.email)
    phone = auth.login(user.email)
    elsewhere = auth.login(other_user.email)

    assert auth(subjects.AUTH_LOGOUT, {"refreshToken": phone["refreshToken"], "all": True}) is None

    assert not live(laptop["sessionId"])
    assert not live(phone["sessionId"])
    assert live(elsewhere["sessionId"])
    assert get_redis_connection("default").exists(user_sessions_key(str(user.id))) == 0


def test_logout_with_a_garbage_token_is_401(auth: AuthApi) -> None:
    assert auth.error(subjects.AUTH_LOGOUT, {"refreshToken": "nope", "all": True}).status == 401
    assert auth.error(subjects.AUTH_LOGOUT, {"refreshToken": "nope", "all": "yes"}).fields == {
        "all": ["all must be a boolean"]
    }


def test_sessions_list_shows_the_callers_devices_and_marks_the_current_one(auth: AuthApi) -> None:
    user = UserFactory()
    laptop = auth.login(user.email, user_agent="Firefox on Linux")
    phone = auth.login(user.email, user_agent="Safari on iPhone " + "x" * 300)
    auth.login(UserFactory().email)

    sessions = auth(subjects.AUTH_SESSIONS_LIST, None, agent=agent_of(user, sid=phone["sessionId"]))

    assert [(s["id"], s["device"][:17], s["ip"], s["current"]) for s in sessions] == [
        (laptop["sessionId"], "Firefox on Linux", "10.0.0.1", False),
        (phone["sessionId"], "Safari on iPhone ", "10.0.0.1", True),
    ]
    assert len(sessions[1]["device"]) == 200
    assert set(sessions[0]) == {"id", "device", "ip", "createdAt", "lastUsedAt", "current"}
    assert sessions[0]["createdAt"].endswith("Z")


def test_sessions_end_ends_one_of_the_callers_sessions(auth: AuthApi) -> None:
    user = UserFactory()
    laptop = auth.login(user.email)
    phone = auth.login(user.email)

    auth(subjects.AUTH_SESSIONS_END, {"sessionId": laptop["sessionId"]}, agent=agent_of(user, sid=phone["sessionId"]))

    assert not live(laptop["sessionId"])
    assert live(phone["sessionId"])


def test_sessions_end_of_someone_elses_session_is_404_and_ends_nothing(auth: AuthApi) -> None:
    user = UserFactory()
    victim = UserFactory()
    theirs = auth.login(victim.email)

    err = auth.error(subjects.AUTH_SESSIONS_END, {"sessionId": theirs["sessionId"]}, agent=agent_of(user))
    unknown = auth.error(subjects.AUTH_SESSIONS_END, {"sessionId": str(uuid.uuid4())}, agent=agent_of(user))

    assert (err.status, err.message) == (404, "Session not found")
    assert unknown.to_body() == err.to_body()
    assert live(theirs["sessionId"])


def test_sessions_subjects_need_an_agent(auth: AuthApi) -> None:
    assert auth.error(subjects.AUTH_SESSIONS_LIST, None).status == 401
    assert auth.error(subjects.AUTH_SESSIONS_END, {"sessionId": "x"}).status == 401
