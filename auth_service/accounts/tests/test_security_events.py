"""The security log: each kind is written by the service that acts, with the caller's context, and never a secret."""

from __future__ import annotations

import io
import re
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from django_redis import get_redis_connection

from auth_service.accounts.models import SigningKey, User
from auth_service.accounts.services.signing_keys import signing_key_revoke
from auth_service.accounts.tests.conftest import AuthApi, agent_of, mailed_code, mailed_recovery_token
from auth_service.accounts.tests.factories import PASSWORD, UserFactory
from auth_service.accounts.tests.mfa_support import code_at, enrol
from auth_service.audit.crypto import identifier_digest
from auth_service.audit.models import SecurityEvent
from common.conf.context import request_id_var
from common.contracts import subjects
from common.contracts.oauth import client_key

Kind = SecurityEvent.Kind
NEW_PASSWORD = "Brand-New-Secret-42"
CLIENT = {"ip": "203.0.113.7", "user_agent": "audit-agent/1.0 " + "x" * 300}


@pytest.fixture
def request_id() -> Iterator[str]:
    """The id the caller (the gateway) sends as X-Request-Id: the bridge puts it in context for the log."""
    rid = f"audit-{uuid.uuid4().hex}"
    token = request_id_var.set(rid)
    yield rid
    request_id_var.reset(token)


def rows(kind: str) -> list[tuple[str, str, uuid.UUID | None, uuid.UUID | None]]:
    """(outcome, reason, user id, actor id) of each event of `kind`, oldest first."""
    events = SecurityEvent.objects.filter(kind=kind).order_by("id")
    return [(e.outcome, e.reason, e.user_id, e.actor_id) for e in events]


def login(auth: AuthApi, slug: str, password: str = PASSWORD) -> dict[str, Any]:
    return auth(subjects.AUTH_LOGIN, {"slug": slug, "password": password}, client=CLIENT)


def test_a_login_is_recorded_with_the_callers_ip_user_agent_and_request_id(auth: AuthApi, request_id: str) -> None:
    user = UserFactory()

    reply = login(auth, user.email)

    event = SecurityEvent.objects.get(kind=Kind.LOGIN)
    assert (event.kind, event.outcome, event.user_id, event.actor_id) == (Kind.LOGIN, "success", user.id, None)
    assert (event.ip, event.request_id) == ("203.0.113.7", request_id)
    assert event.user_agent == CLIENT["user_agent"][:200]
    assert event.detail == {"sid": reply["sessionId"]}
    assert event.identifier_digest == ""


def test_each_kind_of_login_failure_is_recorded_and_an_unknown_account_only_as_a_keyed_hash(auth: AuthApi) -> None:
    user = UserFactory()
    inactive = UserFactory(is_active=False)
    unverified = UserFactory(is_verified=False)
    unknown = f"Nobody-{uuid.uuid4().hex[:8]}@Example.com"
    auth.forget_slug(unknown)

    auth.error(subjects.AUTH_LOGIN, {"slug": user.email, "password": "Wrong-Password-1"})
    auth.error(subjects.AUTH_LOGIN, {"slug": unknown, "password": PASSWORD})
    auth.error(subjects.AUTH_LOGIN, {"slug": inactive.email, "password": PASSWORD})
    auth.error(subjects.AUTH_LOGIN, {"slug": unverified.email, "password": PASSWORD})
    for _ in range(9):
        auth.error(subjects.AUTH_LOGIN, {"slug": unknown, "password": PASSWORD})
    assert auth.error(subjects.AUTH_LOGIN, {"slug": unknown, "password": PASSWORD}).status == 429

    assert rows(Kind.LOGIN) == [
        ("failure", "bad_password", user.id, None),
        ("failure", "unknown_account", None, None),
        ("failure", "inactive", inactive.id, None),
        ("failure", "unverified", unverified.id, None),
        *[("failure", "unknown_account", None, None)] * 9,
        ("failure", "throttled", None, None),
    ]
    unknown_events = SecurityEvent.objects.filter(user_id__isnull=True)
    assert {e.identifier_digest for e in unknown_events} == {identifier_digest(unknown)}
    assert identifier_digest(unknown) == identifier_digest(unknown.lower())
    assert not SecurityEvent.objects.exclude(user_id__isnull=True).exclude(identifier_digest="").exists()
    assert unknown.lower() not in dump(SecurityEvent.objects.all())


def test_admin_console_logins_are_recorded_and_share_the_failure_budget(auth: AuthApi, settings: Any) -> None:
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
    boss, member = UserFactory(roles=["sys_admin"]), UserFactory()
    unknown = "nobody-at-all@example.com"
    auth.forget_slug(unknown)

    def admin_login(email: str, password: str = PASSWORD) -> int:
        response = Client().post("/admin/login/?next=/admin/", {"username": email, "password": password})
        return response.status_code

    assert admin_login(boss.email.upper()) == 302
    assert admin_login(member.email) == 200  # the right password, but not staff: the same generic refusal
    assert admin_login(unknown) == 200
    for _ in range(10):
        assert admin_login(boss.email, "Wrong-Password-1") == 200
    assert admin_login(boss.email) == 200  # the budget is spent: even the right password waits

    events = SecurityEvent.objects.filter(kind=Kind.LOGIN).order_by("id")
    assert [(e.outcome, e.reason, e.user_id) for e in events] == [
        ("success", "", boss.id),
        ("failure", "not_staff", member.id),
        ("failure", "unknown_account", None),
        *[("failure", "bad_password", boss.id)] * 10,
        ("failure", "throttled", boss.id),
    ]
    assert {e.detail["via"] for e in events} == {"admin"}
    assert {e.ip for e in events} == {"127.0.0.1"}
    assert events[2].identifier_digest == identifier_digest(unknown)


def test_refresh_logout_and_reuse_are_recorded(auth: AuthApi, settings: Any) -> None:
    settings.REFRESH_REUSE_GRACE_SECONDS = 0
    user = UserFactory()
    first = login(auth, user.email)
    second = auth(subjects.AUTH_REVALIDATE, {"refreshToken": first["refreshToken"]})
    other = login(auth, user.email)

    auth.error(subjects.AUTH_REVALIDATE, {"refreshToken": first["refreshToken"]})  # older than the current one
    auth.error(subjects.AUTH_REVALIDATE, {"refreshToken": "not.a.token"})
    auth.error(subjects.AUTH_LOGOUT, {"refreshToken": second["refreshToken"]})  # its family was just ended
    auth(subjects.AUTH_LOGOUT, {"refreshToken": other["refreshToken"], "all": True})

    assert rows(Kind.REFRESH) == [("success", "", user.id, None), ("failure", "invalid_token", None, None)]
    assert rows(Kind.REFRESH_REUSE) == [("failure", "refresh", user.id, None)]
    assert rows(Kind.LOGOUT) == [("failure", "session_ended", user.id, None), ("success", "", user.id, None)]
    assert SecurityEvent.objects.get(kind=Kind.REFRESH_REUSE).detail == {"sid": first["sessionId"]}
    assert SecurityEvent.objects.get(kind=Kind.LOGOUT, outcome="success").detail == {
        "sid": other["sessionId"],
        "all": True,
    }


def test_ending_a_session_is_recorded_and_so_is_a_try_on_someone_elses(auth: AuthApi) -> None:
    user, stranger = UserFactory(), UserFactory()
    mine = login(auth, user.email)
    theirs = login(auth, stranger.email)

    auth(subjects.AUTH_SESSIONS_END, {"sessionId": mine["sessionId"]}, agent=agent_of(user))
    auth.error(subjects.AUTH_SESSIONS_END, {"sessionId": theirs["sessionId"]}, agent=agent_of(user))

    assert rows(Kind.SESSION_ENDED) == [("success", "", user.id, user.id), ("failure", "not_found", user.id, user.id)]


def test_deny_access_deactivation_reactivation_and_deletion_are_recorded_with_their_actor(auth: AuthApi) -> None:
    boss, admin = UserFactory(roles=["sys_admin"]), UserFactory(roles=["admin"])
    victim, member = UserFactory(), UserFactory()

    auth.error(subjects.AUTH_DENY_ACCESS, {"userId": str(victim.id)}, agent=agent_of(admin))
    auth(subjects.AUTH_DENY_ACCESS, {"userId": str(victim.id)}, agent=agent_of(boss))
    auth(subjects.AUTH_USER_DEACTIVATE, {"id": str(member.id)}, agent=agent_of(admin))
    auth(subjects.AUTH_USER_DELETE, {"id": str(member.id)}, agent=agent_of(boss))
    auth.error(subjects.AUTH_USER_DELETE, {"id": str(boss.id)}, agent=agent_of(boss))

    assert rows(Kind.ACCESS_DENIED) == [
        ("failure", "forbidden", victim.id, admin.id),
        ("success", "", victim.id, boss.id),
    ]
    assert rows(Kind.USER_DEACTIVATED) == [("success", "", member.id, admin.id)]
    assert rows(Kind.USER_DELETED) == [
        ("success", "", member.id, boss.id),
        ("failure", "bad_request", boss.id, boss.id),
    ]


def test_password_recovery_is_recorded_from_request_to_reset(auth: AuthApi) -> None:
    user = UserFactory()
    unknown = f"ghost{uuid.uuid4().hex[:10]}"

    auth(subjects.AUTH_RECOVER, {"slug": unknown})
    auth(subjects.AUTH_RECOVER, {"slug": user.username})
    token = mailed_recovery_token()
    auth.error(subjects.AUTH_RESET_PASSWORD, {"recoveryToken": token, "password": "weak"})
    auth(subjects.AUTH_RESET_PASSWORD, {"recoveryToken": token, "password": NEW_PASSWORD})
    auth.error(subjects.AUTH_RESET_PASSWORD, {"recoveryToken": token, "password": NEW_PASSWORD})
    auth.error(subjects.AUTH_RESET_PASSWORD, {"recoveryToken": "made-up-token", "password": NEW_PASSWORD})

    assert rows(Kind.PASSWORD_RESET_REQUESTED) == [
        ("failure", "unknown_account", None, None),
        ("success", "", user.id, None),
    ]
    requested = SecurityEvent.objects.filter(kind=Kind.PASSWORD_RESET_REQUESTED).order_by("id")
    assert [e.identifier_digest for e in requested] == [identifier_digest(unknown), ""]
    assert rows(Kind.PASSWORD_RESET) == [
        ("failure", "validation_failed", user.id, None),
        ("success", "", user.id, None),
        ("failure", "spent_token", user.id, None),
        ("failure", "invalid_token", None, None),
    ]


def test_role_and_password_changes_are_recorded_and_so_are_refusals(auth: AuthApi) -> None:
    boss, admin, user = UserFactory(roles=["sys_admin"]), UserFactory(roles=["admin"]), UserFactory()

    auth(subjects.AUTH_USER_UPDATE, {"id": str(user.id), "changes": {"roles": ["admin"]}}, agent=agent_of(boss))
    auth.error(subjects.AUTH_USER_UPDATE, {"id": str(boss.id), "changes": {"roles": ["user"]}}, agent=agent_of(admin))
    change = {"password": NEW_PASSWORD, "oldPassword": PASSWORD}
    auth(subjects.AUTH_USER_UPDATE, {"id": str(admin.id), "changes": change}, agent=agent_of(admin))
    wrong_old = {"password": "Another-Secret-43", "oldPassword": "Not-The-Password-1"}
    auth.error(subjects.AUTH_USER_UPDATE, {"id": str(admin.id), "changes": wrong_old}, agent=agent_of(admin))
    auth(subjects.AUTH_USER_UPDATE, {"id": str(admin.id), "changes": {"name": "Renamed Admin"}}, agent=agent_of(admin))

    assert rows(Kind.ROLES_CHANGED) == [("success", "", user.id, boss.id), ("failure", "forbidden", boss.id, admin.id)]
    assert SecurityEvent.objects.get(kind=Kind.ROLES_CHANGED, outcome="success").detail == {
        "from": ["user"],
        "to": ["admin"],
    }
    assert rows(Kind.PASSWORD_CHANGED) == [
        ("success", "", admin.id, admin.id),
        ("failure", "validation_failed", admin.id, admin.id),
    ]
    assert SecurityEvent.objects.count() == 4  # a rename is not a security event


def admin_client(user: User) -> Client:
    user.refresh_from_db()  # the admin session is bound to the current password hash
    client = Client()
    client.force_login(user)
    return client


def test_key_rotation_is_recorded_from_the_command_and_from_the_admin(settings: Any, db: None) -> None:
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
    call_command("rotate_keys", "--if-missing", stdout=io.StringIO())
    call_command("rotate_keys", stdout=io.StringIO())
    boss = UserFactory(roles=["sys_admin"])
    key = SigningKey.objects.filter(state="active").get()

    response = admin_client(boss).post(
        "/admin/accounts/signingkey/", {"action": "rotate", "_selected_action": [str(key.pk)]}
    )

    assert response.status_code == 302
    assert rows(Kind.KEY_ROTATED) == [
        ("success", "first_key", None, None),
        ("success", "rotated", None, None),
        ("success", "rotated", None, boss.id),
    ]
    first, second, third = SecurityEvent.objects.filter(kind=Kind.KEY_ROTATED).order_by("id")
    assert second.detail["retired_kid"] == first.detail["kid"]
    assert third.detail["retired_kid"] == second.detail["kid"]
    assert third.ip == "127.0.0.1"  # the admin's request context


def _service_account_flows(auth: AuthApi) -> list[str]:
    """A service account created, used, refused, rotated, disabled and enabled (by command and NATS subject only:
    the accounts app sits below the clients app); returns its secrets and tokens."""
    out = io.StringIO()
    call_command("create_client", "audited", "--scope", "users:read", "--shell", stdout=out, stderr=io.StringIO())
    client_id, secret = re.findall(r"CLIENT_(?:ID|SECRET)=(\S+)", out.getvalue())
    issued = auth(subjects.AUTH_OAUTH_TOKEN, {"clientId": client_id, "clientSecret": secret})["accessToken"]
    auth.error(subjects.AUTH_OAUTH_TOKEN, {"clientId": client_id, "clientSecret": "Wrong-Client-Secret-1"})
    rotated = io.StringIO()
    call_command("rotate_client_secret", client_id, stdout=rotated)
    call_command("disable_client", client_id, stdout=io.StringIO())
    call_command("disable_client", client_id, "--enable", stdout=io.StringIO())
    get_redis_connection("default").delete(client_key(client_id))
    new_secret = re.findall(r"client_secret: (\S+)", rotated.getvalue())
    return [secret, issued, "Wrong-Client-Secret-1", *new_secret]


def test_every_kind_is_recorded_and_no_event_holds_a_secret(auth: AuthApi, settings: Any) -> None:
    """One pass through every flow, collecting each password, code and token that went by."""
    settings.REFRESH_REUSE_GRACE_SECONDS = 0
    boss = UserFactory(roles=["sys_admin"])
    secrets: list[str] = [PASSWORD, NEW_PASSWORD]
    auth(
        subjects.AUTH_SIGNUP,
        {"name": "Fresh Person", "username": "freshperson", "email": "fresh@example.com", "password": PASSWORD},
    )
    secrets.append(mailed_code())
    auth(subjects.AUTH_VERIFY_ACCOUNT, {"email": "fresh@example.com", "code": secrets[-1]})
    fresh = User.objects.get(email="fresh@example.com")
    unknown = "unknown-person@example.com"
    auth.forget_slug(unknown)
    auth.error(subjects.AUTH_LOGIN, {"slug": unknown, "password": "Typed-By-Mistake-9"})
    secrets += ["Typed-By-Mistake-9", unknown]
    first = login(auth, fresh.email)
    second = auth(subjects.AUTH_REVALIDATE, {"refreshToken": first["refreshToken"]})
    auth.error(subjects.AUTH_REVALIDATE, {"refreshToken": first["refreshToken"]})
    third = login(auth, fresh.email)
    secrets += [first["refreshToken"], first["accessToken"], second["refreshToken"], second["accessToken"]]
    secrets += [third["refreshToken"], third["accessToken"]]
    fourth = login(auth, fresh.email)
    auth(subjects.AUTH_SESSIONS_END, {"sessionId": fourth["sessionId"]}, agent=agent_of(fresh))
    auth(subjects.AUTH_LOGOUT, {"refreshToken": third["refreshToken"]})
    auth(subjects.AUTH_RECOVER, {"slug": fresh.email})
    secrets.append(mailed_recovery_token())
    auth(subjects.AUTH_RESET_PASSWORD, {"recoveryToken": secrets[-1], "password": NEW_PASSWORD})
    auth(subjects.AUTH_USER_UPDATE, {"id": str(fresh.id), "changes": {"roles": ["guest"]}}, agent=agent_of(boss))
    change = {"password": "Third-Secret-Word-7", "oldPassword": PASSWORD}
    auth(subjects.AUTH_USER_UPDATE, {"id": str(boss.id), "changes": change}, agent=agent_of(boss))
    secrets.append("Third-Secret-Word-7")
    auth(subjects.AUTH_DENY_ACCESS, {"userId": str(fresh.id)}, agent=agent_of(boss))
    auth(subjects.AUTH_USER_CREATE, {**new_user("other"), "password": PASSWORD}, agent=agent_of(boss))
    other = User.objects.get(username="other0user")
    auth(subjects.AUTH_USER_DEACTIVATE, {"id": str(other.id)}, agent=agent_of(boss))
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
    admin_client(boss).post("/admin/accounts/user/", {"action": "reactivate_users", "_selected_action": [other.pk]})
    auth(subjects.AUTH_USER_DELETE, {"id": str(other.id)}, agent=agent_of(boss))
    call_command("rotate_keys", stdout=io.StringIO())
    settings.REFRESH_REUSE_GRACE_SECONDS = 10
    racing = login(auth, boss.email, "Third-Secret-Word-7")
    rotated = auth(subjects.AUTH_REVALIDATE, {"refreshToken": racing["refreshToken"]})
    auth(subjects.AUTH_REVALIDATE, {"refreshToken": racing["refreshToken"]})  # the grace replay
    secrets += [racing["refreshToken"], racing["accessToken"], rotated["refreshToken"], rotated["accessToken"]]
    signing_key_revoke(kid=SigningKey.objects.get(state="retired").kid)
    secrets += _service_account_flows(auth)
    secrets += _second_factor_flows(auth, boss)

    assert set(SecurityEvent.objects.values_list("kind", flat=True)) == set(Kind.values)
    blob = dump(SecurityEvent.objects.all())
    assert [secret for secret in secrets if secret in blob or secret.lower() in blob] == []


def test_purge_expired_drops_events_older_than_the_retention(settings: Any, db: None) -> None:
    settings.SECURITY_EVENT_RETENTION_DAYS = 90
    now = timezone.now()
    old = SecurityEvent.objects.create(kind=Kind.LOGIN, outcome="success", created_at=now - timedelta(days=91))
    kept = SecurityEvent.objects.create(kind=Kind.LOGIN, outcome="success", created_at=now - timedelta(days=89))
    output = io.StringIO()

    call_command("purge_expired", stdout=output)

    assert output.getvalue() == "verification_codes: 0, recovery_tokens: 0, signing_keys: 0, security_events: 1\n"
    assert list(SecurityEvent.objects.values_list("pk", flat=True)) == [kept.pk]
    assert old.pk != kept.pk


def _second_factor_flows(auth: AuthApi, boss: User) -> list[str]:
    """Enrol, fail and pass the second step, spend a recovery code, renew the codes, disable, re-enrol, reset."""
    user = UserFactory()
    agent = agent_of(user)
    secret, codes = enrol(auth, user)
    token = login(auth, user.email)["mfaToken"]
    auth.error(subjects.AUTH_LOGIN_MFA, {"mfaToken": token, "code": "000000"}, client=CLIENT)
    done = auth(subjects.AUTH_LOGIN_MFA, {"mfaToken": token, "recoveryCode": codes[0]}, client=CLIENT)
    renew = {"password": PASSWORD, "code": code_at(secret, 1)}
    fresh = auth(subjects.AUTH_RECOVERY_CODES_REGENERATE, renew, agent=agent)["recoveryCodes"]
    auth(subjects.AUTH_TOTP_DISABLE, {"password": PASSWORD, "code": fresh[0]}, agent=agent)
    again, more = enrol(auth, user)
    auth(subjects.AUTH_MFA_RESET, {"id": str(user.id)}, agent=agent_of(boss))
    spelled = [code.replace("-", "") for code in [*codes, *fresh, *more]]
    return [secret, again, token, done["accessToken"], done["refreshToken"], *codes, *fresh, *more, *spelled]


def new_user(tag: str) -> dict[str, Any]:
    return {"name": "Other Person", "username": f"{tag}0user", "email": f"{tag}@example.com", "roles": ["user"]}


def dump(events: Any) -> str:
    """Every stored value of the events, as one string to search."""
    return "\n".join(repr(sorted(row.items())) for row in events.values())
