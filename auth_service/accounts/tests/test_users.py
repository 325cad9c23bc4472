"""User management over NATS (auth.user.*, auth.deny.access): the permission matrix on the agent's current state."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.core import mail
from django_redis import get_redis_connection

from auth_service.accounts.models import User, VerificationCode
from auth_service.accounts.snapshots import iso
from auth_service.accounts.tests.conftest import AuthApi, agent_of
from auth_service.accounts.tests.factories import PASSWORD, UserFactory
from common.contracts import events, subjects
from common.contracts.envelope import Agent
from common.contracts.sessions import session_key
from common.outbox.models import OutboxEvent

NEW_PASSWORD = "Brand-New-Secret-42"


def live(sid: str) -> bool:
    return bool(get_redis_connection("default").exists(session_key(sid)))


def outbox() -> list[tuple[str, uuid.UUID, int]]:
    return list(OutboxEvent.objects.values_list("event_type", "aggregate_id", "payload__version"))


def new_user_data(**overrides: Any) -> dict[str, Any]:
    return {
        "name": "New Person",
        "username": "newperson",
        "email": "new.person@example.com",
        "password": PASSWORD,
        "roles": ["user"],
    } | overrides


# -- create ----------------------------------------------------------------------------------------------------------


def test_an_admin_creates_an_unverified_user_and_a_code_is_mailed(auth: AuthApi) -> None:
    admin = UserFactory(roles=["admin"])

    reply = auth(subjects.AUTH_USER_CREATE, new_user_data(roles=["guest", "user"]), agent=agent_of(admin))

    created = User.objects.get(email="new.person@example.com")
    assert reply == {
        "id": str(created.id),
        "name": "New Person",
        "username": "newperson",
        "email": "new.person@example.com",
        "roles": ["guest", "user"],
        "verifiedAccount": False,
        "active": True,
        "createdAt": iso(created.created_at),
        "updatedAt": iso(created.updated_at),
    }
    assert outbox() == [(events.USER_REGISTERED, created.id, 1)]
    assert [(m.to, m.subject) for m in mail.outbox] == [(["new.person@example.com"], "Your verification code")]


def test_an_admin_cannot_grant_sys_admin(auth: AuthApi) -> None:
    admin = UserFactory(roles=["admin"])

    err = auth.error(subjects.AUTH_USER_CREATE, new_user_data(roles=["sys_admin"]), agent=agent_of(admin))

    assert (err.status, err.message) == (403, "Admins cannot grant sys_admin")
    assert User.objects.count() == 1
    assert outbox() == []
    assert mail.outbox == []


def test_a_user_cannot_create_users_even_if_its_token_says_sys_admin(auth: AuthApi) -> None:
    user = UserFactory(roles=["user"])
    forged = Agent(id=str(user.id), roles=("sys_admin",))

    err = auth.error(subjects.AUTH_USER_CREATE, new_user_data(), agent=forged)

    assert err.status == 403
    assert User.objects.count() == 1
    assert outbox() == []


def test_create_with_a_taken_email_or_username_is_409(auth: AuthApi) -> None:
    admin = UserFactory(roles=["sys_admin"])
    UserFactory(email="taken@example.com", username="takenname")

    email = auth.error(subjects.AUTH_USER_CREATE, new_user_data(email="Taken@example.com"), agent=agent_of(admin))
    username = auth.error(subjects.AUTH_USER_CREATE, new_user_data(username="TakenName"), agent=agent_of(admin))

    assert (email.status, email.fields) == (409, {"email": ["Email already in use"]})
    assert (username.status, username.fields) == (409, {"username": ["Username already taken"]})
    assert outbox() == []


def test_create_needs_an_agent_that_still_exists_and_is_active(auth: AuthApi) -> None:
    inactive = UserFactory(roles=["sys_admin"], is_active=False)

    assert auth.error(subjects.AUTH_USER_CREATE, new_user_data()).status == 401
    assert auth.error(subjects.AUTH_USER_CREATE, new_user_data(), agent=Agent(id=str(uuid.uuid4()))).status == 401
    err = auth.error(subjects.AUTH_USER_CREATE, new_user_data(), agent=agent_of(inactive))
    assert (err.status, err.message) == (403, "Your account is inactive")
    assert outbox() == []


# -- update ----------------------------------------------------------------------------------------------------------


def test_a_user_updates_its_own_name_and_username(auth: AuthApi) -> None:
    user = UserFactory()

    reply = auth(
        subjects.AUTH_USER_UPDATE,
        {"id": str(user.id), "changes": {"name": "Renamed Person", "username": "renamed01"}},
        agent=agent_of(user),
    )

    assert (reply["name"], reply["username"]) == ("Renamed Person", "renamed01")
    event = OutboxEvent.objects.get()
    assert (event.event_type, event.payload["name"], event.payload["version"]) == (
        events.USER_UPDATED,
        "Renamed Person",
        2,
    )
    assert User.objects.get(pk=user.pk).version == 2


def test_an_unchanged_value_writes_no_event(auth: AuthApi) -> None:
    user = UserFactory(name="Same Name")

    auth(subjects.AUTH_USER_UPDATE, {"id": str(user.id), "changes": {"name": "Same Name"}}, agent=agent_of(user))

    assert outbox() == []


def test_changing_the_email_asks_to_verify_the_new_address_and_warns_the_old_one(auth: AuthApi) -> None:
    user = UserFactory(email="old@example.com")
    login = auth.login(user.email)

    reply = auth(
        subjects.AUTH_USER_UPDATE, {"id": str(user.id), "changes": {"email": "New@Example.com"}}, agent=agent_of(user)
    )

    assert (reply["email"], reply["verifiedAccount"]) == ("new@example.com", False)
    assert sorted((m.to[0], m.subject) for m in mail.outbox) == [
        ("new@example.com", "Your verification code"),
        ("old@example.com", "Your e-mail address was changed"),
    ]
    assert VerificationCode.objects.filter(user=user).count() == 1
    assert [(e, v) for e, _, v in outbox()] == [(events.USER_UPDATED, 2)]
    # The session in hand lives on; a new login waits for the new address to be verified.
    assert "accessToken" in auth(subjects.AUTH_REVALIDATE, {"refreshToken": login["refreshToken"]})
    assert auth.error(subjects.AUTH_LOGIN, {"slug": "new@example.com", "password": PASSWORD}).status == 400


def test_own_password_change_needs_the_old_password_and_a_different_new_one(auth: AuthApi) -> None:
    user = UserFactory()

    def update(changes: dict[str, str]) -> dict[str, Any]:
        return auth.error(
            subjects.AUTH_USER_UPDATE, {"id": str(user.id), "changes": changes}, agent=agent_of(user)
        ).to_body()

    assert update({"password": NEW_PASSWORD})["fields"] == {
        "oldPassword": ["oldPassword is required to change your password"]
    }
    assert update({"password": NEW_PASSWORD, "oldPassword": "Wrong-Password-1"})["fields"] == {
        "oldPassword": ["Old password is incorrect"]
    }
    assert update({"password": PASSWORD, "oldPassword": PASSWORD})["fields"] == {
        "password": ["The new password must differ from the old one"]
    }
    assert update({"oldPassword": PASSWORD})["fields"] == {
        "oldPassword": ["oldPassword is only accepted together with password"]
    }
    assert outbox() == []
    assert User.objects.get(pk=user.pk).password == user.password


def test_own_password_change_keeps_this_session_and_ends_the_others(auth: AuthApi) -> None:
    user = UserFactory()
    here = auth.login(user.email)
    there = auth.login(user.email)

    auth(
        subjects.AUTH_USER_UPDATE,
        {"id": str(user.id), "changes": {"password": NEW_PASSWORD, "oldPassword": PASSWORD}},
        agent=agent_of(user, sid=here["sessionId"]),
    )

    assert live(here["sessionId"])
    assert not live(there["sessionId"])
    assert [(e, v) for e, _, v in outbox()] == [(events.USER_PASSWORD_CHANGED, 2)]
    assert "accessToken" in auth.login(user.email, NEW_PASSWORD)


@pytest.mark.parametrize(
    ("agent_roles", "target_roles", "changes", "message"),
    [
        # target_roles None: the agent updates itself.
        pytest.param(["user"], None, {"roles": ["admin"]}, "You cannot raise your own roles", id="own-roles-raised"),
        pytest.param(["guest"], None, {"name": "Other Name"}, "Guests have read-only access", id="guest-updates-self"),
        pytest.param(
            ["admin"],
            ["sys_admin"],
            {"roles": ["user"]},
            "Admins can only manage users who are neither admin nor sys_admin",
            id="admin-demotes-sys_admin",
        ),
    ],
)
def test_a_refused_update_writes_nothing(
    auth: AuthApi, agent_roles: list[str], target_roles: list[str] | None, changes: dict[str, Any], message: str
) -> None:
    agent = UserFactory(roles=agent_roles)
    target = agent if target_roles is None else UserFactory(roles=target_roles)
    before = User.objects.values().get(pk=target.pk)

    err = auth.error(subjects.AUTH_USER_UPDATE, {"id": str(target.id), "changes": changes}, agent=agent_of(agent))

    assert (err.status, err.message) == (403, message)
    assert User.objects.values().get(pk=target.pk) == before
    assert outbox() == []


def test_a_sys_admin_changes_profile_and_roles_in_one_request(auth: AuthApi) -> None:
    boss = UserFactory(roles=["sys_admin"])
    user = UserFactory()

    reply = auth(
        subjects.AUTH_USER_UPDATE,
        {"id": str(user.id), "changes": {"name": "Promoted Person", "roles": ["admin", "user"]}},
        agent=agent_of(boss),
    )

    assert (reply["name"], reply["roles"]) == ("Promoted Person", ["user", "admin"])
    assert outbox() == [(events.USER_UPDATED, user.id, 2), (events.USER_ROLES_CHANGED, user.id, 3)]
    payloads = list(OutboxEvent.objects.values_list("payload__roles", flat=True))
    assert payloads == [["user", "admin"], ["user", "admin"]]


def test_update_errors_unknown_user_unknown_key_empty_and_conflict(auth: AuthApi) -> None:
    boss = UserFactory(roles=["sys_admin"])
    user = UserFactory()
    UserFactory(username="takenname")
    missing = str(uuid.uuid4())

    def update(target: str, changes: Any, agent: Agent) -> dict[str, Any]:
        return auth.error(subjects.AUTH_USER_UPDATE, {"id": target, "changes": changes}, agent=agent).to_body()

    assert update(missing, {"name": "Some Name"}, agent_of(boss))["statusCode"] == 404
    # Whoever may not act on such a user learns nothing about whether it exists.
    assert update(missing, {"name": "Some Name"}, agent_of(user))["statusCode"] == 403
    assert update(str(user.id), {"isAdmin": True}, agent_of(boss))["fields"] == {
        "changes.isAdmin": ["property changes.isAdmin should not exist"]
    }
    assert update(str(user.id), {}, agent_of(boss))["fields"] == {"changes": ["Give at least one field to change"]}
    assert update("not-a-uuid", {"name": "Some Name"}, agent_of(boss))["fields"] == {"id": ["id must be a UUID"]}
    conflict = update(str(user.id), {"username": "TAKENNAME"}, agent_of(boss))
    assert (conflict["statusCode"], conflict["fields"]) == (409, {"username": ["Username already taken"]})
    assert outbox() == []


# -- deactivate, delete, deny ----------------------------------------------------------------------------------------


def test_a_user_deactivates_itself_and_its_sessions_end(auth: AuthApi) -> None:
    user = UserFactory()
    login = auth.login(user.email)

    reply = auth(subjects.AUTH_USER_DEACTIVATE, {"id": str(user.id)}, agent=agent_of(user))

    assert reply["active"] is False
    assert not live(login["sessionId"])
    assert outbox() == [(events.USER_DEACTIVATED, user.id, 2)]


def test_deactivation_follows_the_matrix(auth: AuthApi) -> None:
    boss = UserFactory(roles=["sys_admin"])
    admin = UserFactory(roles=["admin"])
    other_admin = UserFactory(roles=["admin"])
    user = UserFactory()

    self_deactivation = auth.error(subjects.AUTH_USER_DEACTIVATE, {"id": str(boss.id)}, agent=agent_of(boss))
    peer = auth.error(subjects.AUTH_USER_DEACTIVATE, {"id": str(other_admin.id)}, agent=agent_of(admin))
    assert (self_deactivation.status, self_deactivation.message) == (400, "You cannot deactivate yourself")
    assert peer.status == 403
    assert outbox() == []

    assert auth(subjects.AUTH_USER_DEACTIVATE, {"id": str(user.id)}, agent=agent_of(admin))["active"] is False
    assert outbox() == [(events.USER_DEACTIVATED, user.id, 2)]


def test_a_sys_admin_deletes_a_user_everywhere(auth: AuthApi) -> None:
    boss = UserFactory(roles=["sys_admin"])
    user = UserFactory()
    login = auth.login(user.email)

    assert auth(subjects.AUTH_USER_DELETE, {"id": str(user.id)}, agent=agent_of(boss)) is None

    assert not User.objects.filter(pk=user.pk).exists()
    assert not live(login["sessionId"])
    event = OutboxEvent.objects.get()
    assert (event.event_type, event.payload) == (events.USER_DELETED, {"id": str(user.id), "version": 2})


def test_deny_access_deactivates_and_ends_every_session(auth: AuthApi) -> None:
    boss = UserFactory(roles=["sys_admin"])
    user = UserFactory()
    laptop = auth.login(user.email)
    phone = auth.login(user.email)

    assert auth(subjects.AUTH_DENY_ACCESS, {"userId": str(user.id)}, agent=agent_of(boss)) is None

    assert not live(laptop["sessionId"])
    assert not live(phone["sessionId"])
    assert User.objects.get(pk=user.pk).is_active is False
    assert outbox() == [(events.USER_DEACTIVATED, user.id, 2)]
    assert auth.error(subjects.AUTH_LOGIN, {"slug": user.email, "password": PASSWORD}).status == 401


@pytest.mark.parametrize(
    ("subject", "id_key", "self_message"),
    [
        (subjects.AUTH_USER_DELETE, "id", "You cannot delete yourself"),
        (subjects.AUTH_DENY_ACCESS, "userId", "You cannot deny access to yourself"),
    ],
    ids=["delete", "deny-access"],
)
@pytest.mark.parametrize(
    ("agent_roles", "target", "status"),
    [(["sys_admin"], "self", 400), (["admin"], "user", 403), (["sys_admin"], "missing", 404)],
)
def test_delete_and_deny_access_refusals(
    auth: AuthApi, subject: str, id_key: str, self_message: str, agent_roles: list[str], target: str, status: int
) -> None:
    agent = UserFactory(roles=agent_roles)
    user = UserFactory()
    target_id = {"self": str(agent.id), "user": str(user.id), "missing": str(uuid.uuid4())}[target]

    err = auth.error(subject, {id_key: target_id}, agent=agent_of(agent))

    message = {400: self_message, 403: "Only a sys_admin can do this", 404: "User not found"}[status]
    assert (err.status, err.message) == (status, message)
    assert User.objects.filter(is_active=True).count() == 2  # nobody deleted, nobody deactivated
    assert outbox() == []
