"""Sessions bound to the user's credential epoch: logins racing a credential change, role changes, grace replays
and the admin console's sessions (issue: login and session hardening)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.hashers import check_password
from django.test import Client
from django_redis import get_redis_connection

from auth_service.accounts.models import User
from auth_service.accounts.services import login, recovery, sessions, users
from auth_service.accounts.sessions import credential_epoch_get, session_store_list
from auth_service.accounts.tests.conftest import AuthApi, agent_of, mailed_recovery_token
from auth_service.accounts.tests.factories import PASSWORD, UserFactory
from auth_service.audit.models import SecurityEvent
from common.contracts import subjects
from common.contracts.sessions import session_key, user_epoch_key

NEW_PASSWORD = "Brand-New-Secret-42"
INVALID_CREDENTIALS = (401, "Invalid credentials")


def refresh(auth: AuthApi, token: str) -> dict[str, Any]:
    return auth(subjects.AUTH_REVALIDATE, {"refreshToken": token}, client={"ip": "10.0.0.2", "user_agent": "pytest"})


def session_field(sid: str, name: str) -> str | None:
    value = get_redis_connection("default").hget(session_key(sid), name)
    return value.decode() if isinstance(value, bytes) else value


def during_the_password_check(monkeypatch: pytest.MonkeyPatch, change: Callable[[], object]) -> None:
    """Run `change` (committed) after the login has read the user's row and while it verifies the password."""

    def racing(password: str, encoded: str, setter: Any = None) -> bool:
        correct = check_password(password, encoded, setter=setter)
        change()
        return correct

    monkeypatch.setattr(login, "check_password", racing)


def test_a_login_that_read_the_old_hash_before_a_reset_opens_no_session(
    auth: AuthApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = UserFactory()
    auth(subjects.AUTH_RECOVER, {"slug": user.email})
    token = mailed_recovery_token()
    during_the_password_check(monkeypatch, lambda: recovery.password_reset(recovery_token=token, password=NEW_PASSWORD))

    err = auth.error(subjects.AUTH_LOGIN, {"slug": user.email, "password": PASSWORD})

    assert (err.status, err.message) == INVALID_CREDENTIALS
    assert session_store_list(str(user.id)) == []
    monkeypatch.undo()
    assert "accessToken" in auth.login(user.email, NEW_PASSWORD)
    assert auth.error(subjects.AUTH_LOGIN, {"slug": user.email, "password": PASSWORD}).status == 401


def test_a_login_racing_a_deactivation_or_a_role_change_opens_no_session(
    auth: AuthApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    boss = UserFactory(roles=["sys_admin"])
    demoted, deactivated = UserFactory(roles=["admin"]), UserFactory()
    changes: dict[str, Callable[[], object]] = {
        demoted.email: lambda: users.user_update(
            agent_id=str(boss.id), user_id=str(demoted.id), changes={"roles": ["user"]}
        ),
        deactivated.email: lambda: users.user_deactivate(agent_id=str(boss.id), user_id=str(deactivated.id)),
    }
    for email, change in changes.items():
        during_the_password_check(monkeypatch, change)
        assert (auth.error(subjects.AUTH_LOGIN, {"slug": email, "password": PASSWORD}).status) == 401, email
        monkeypatch.undo()
    assert session_store_list(str(demoted.id)) == session_store_list(str(deactivated.id)) == []
    _, claims = auth.decode_access(auth.login(demoted.email)["accessToken"])
    assert claims["roles"] == ["user"]


def test_a_session_behind_the_users_epoch_is_refused_and_ended_on_refresh(auth: AuthApi) -> None:
    user = UserFactory()
    login = auth.login(user.email)
    # As if its login had slipped past a credential change: the session still carries the older epoch.
    get_redis_connection("default").incr(user_epoch_key(str(user.id)))

    assert refresh_error_status(auth, login["refreshToken"]) == 401
    assert session_field(login["sessionId"], "uid") is None
    assert SecurityEvent.objects.filter(kind="refresh", outcome="failure", reason="stale_epoch").exists()


def refresh_error_status(auth: AuthApi, token: str) -> int:
    return auth.error(subjects.AUTH_REVALIDATE, {"refreshToken": token}).status


def test_a_role_change_keeps_the_sessions_but_not_the_tokens_issued_before_it(auth: AuthApi) -> None:
    boss = UserFactory(roles=["sys_admin"])
    admin = UserFactory(roles=["admin"])
    laptop, phone = auth.login(admin.email), auth.login(admin.email)
    _, before = auth.decode_access(laptop["accessToken"])

    auth(subjects.AUTH_USER_UPDATE, {"id": str(admin.id), "changes": {"roles": ["user"]}}, agent=agent_of(boss))

    epoch = credential_epoch_get(str(admin.id))
    assert epoch > before["ep"]
    for opened in (laptop, phone):
        # The session goes on under the new epoch; tokens below it are refused (the gateway compares `ep`).
        assert (session_field(opened["sessionId"], "ep"), session_field(opened["sessionId"], "tmin")) == (
            str(epoch),
            str(epoch),
        )
        _, claims = auth.decode_access(refresh(auth, opened["refreshToken"])["accessToken"])
        assert (claims["roles"], claims["ep"]) == (["user"], epoch)


def test_an_own_password_change_keeps_this_sessions_tokens(auth: AuthApi) -> None:
    user = UserFactory()
    here, there = auth.login(user.email), auth.login(user.email)
    _, claims = auth.decode_access(here["accessToken"])

    auth(
        subjects.AUTH_USER_UPDATE,
        {"id": str(user.id), "changes": {"password": NEW_PASSWORD, "oldPassword": PASSWORD}},
        agent=agent_of(user, sid=here["sessionId"]),
    )

    assert session_field(there["sessionId"], "uid") is None
    assert session_field(here["sessionId"], "ep") == str(credential_epoch_get(str(user.id)))
    assert int(session_field(here["sessionId"], "tmin") or 0) <= claims["ep"]


def test_two_refreshes_racing_on_one_token_get_the_same_tokens_and_the_grace_use_is_recorded(auth: AuthApi) -> None:
    user = UserFactory()
    login = auth.login(user.email)

    first = refresh(auth, login["refreshToken"])
    second = refresh(auth, login["refreshToken"])  # the other tab, or a thief, within the grace period

    assert second == first
    assert refresh(auth, first["refreshToken"])["sessionId"] == login["sessionId"]
    grace = SecurityEvent.objects.filter(kind="refresh_grace", user_id=user.id)
    assert [event.detail for event in grace] == [{"sid": login["sessionId"]}]
    assert SecurityEvent.objects.filter(kind="refresh", outcome="success", user_id=user.id).count() == 2


def test_the_grace_replay_is_sealed_for_the_holder_of_the_previous_token(auth: AuthApi) -> None:
    user = UserFactory()
    login = auth.login(user.email)
    first = refresh(auth, login["refreshToken"])

    sealed = session_field(login["sessionId"], "replay") or ""

    assert sealed and first["refreshToken"] not in sealed and first["accessToken"] not in sealed


@pytest.mark.parametrize("how", ["end all sessions", "password reset"])
def test_ending_all_sessions_ends_the_admin_console_session_too(auth: AuthApi, settings: Any, how: str) -> None:
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
    boss = UserFactory(roles=["sys_admin"])
    console = Client()
    console.force_login(User.objects.get(pk=boss.pk))
    assert console.get("/admin/accounts/user/").status_code == 200

    if how == "end all sessions":
        sessions.session_end_all(user_id=str(boss.id), agent_id=str(UserFactory(roles=["sys_admin"]).id))
    else:
        auth(subjects.AUTH_RECOVER, {"slug": boss.email})
        recovery.password_reset(recovery_token=mailed_recovery_token(), password=NEW_PASSWORD)

    response = console.get("/admin/accounts/user/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
