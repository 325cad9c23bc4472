"""User reads (main_api) and writes (auth service) through the gateway: roles, CSRF, the permission matrix."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from devstack.testing.mail import wait_for_mail
from devstack.testing.stack import RunningStack
from gateway.api.tests.e2e import (
    NEW_PASSWORD,
    Account,
    Api,
    eventually,
    logged_in,
    new_account,
    registered,
    sign_up,
)

pytestmark = pytest.mark.e2e

USER_FIELDS = {"id", "name", "username", "email", "roles", "verifiedAccount", "active", "createdAt", "updatedAt"}


def create_body(account: Account, roles: list[str]) -> dict[str, Any]:
    return {
        "name": account.name,
        "username": account.username,
        "email": account.email,
        "password": account.password,
        "roles": roles,
    }


def user_in_main(reader: Api, user_id: str, **expected: Any) -> dict[str, Any]:
    """The user as main_api shows it, once the identity event has arrived with the expected values."""

    def check() -> dict[str, Any]:
        response = reader.get(f"/api/user/{user_id}")
        assert response.status_code == 200, response.content
        user = response.json()
        assert {key: user[key] for key in expected} == expected
        return user

    return eventually(check)


def test_any_role_lists_users_with_pagination(guest: Api) -> None:
    response = guest.get("/api/user")
    assert response.status_code == 200, response.content
    page = response.json()
    assert set(page) == {"limit", "offset", "total", "results"}
    assert (page["limit"], page["offset"]) == (10, 0)
    assert len(page["results"]) <= 10
    assert page["total"] >= 4
    for user in page["results"]:
        assert set(user) == USER_FIELDS
    created = [user["createdAt"] for user in page["results"]]
    assert created == sorted(created), "oldest first"
    second = guest.get("/api/user?limit=2&offset=1").json()
    assert second["results"] == page["results"][1:3]


def test_list_filters_and_query_validation(stack: RunningStack, guest: Api) -> None:
    unverified = new_account()
    assert sign_up(Api(), unverified).status_code == 200

    def listed() -> None:
        page = guest.get("/api/user?verified=false&limit=100").json()
        assert unverified.email in {user["email"] for user in page["results"]}
        assert all(user["verifiedAccount"] is False for user in page["results"])

    eventually(listed)
    assert all(user["active"] for user in guest.get("/api/user?active=true&limit=100").json()["results"])
    for query in ("limit=0", "limit=101", "offset=-1", "active=perhaps", "sort=name"):
        response = guest.get(f"/api/user?{query}")
        assert response.status_code == 400, query
        assert response.json()["statusCode"] == 400


def test_one_user_by_id(member: tuple[Api, Account]) -> None:
    api, account = member
    user = user_in_main(api, api.user_id, verifiedAccount=True)
    assert set(user) == USER_FIELDS
    assert (user["email"], user["username"], user["roles"], user["active"]) == (
        account.email,
        account.username,
        ["user"],
        True,
    )
    missing = api.get(f"/api/user/{uuid.uuid4()}")
    assert missing.status_code == 404
    assert missing.json()["statusCode"] == 404
    assert api.get("/api/user/42").status_code == 400


def test_reading_users_needs_a_token(stack: RunningStack) -> None:
    assert Api().get("/api/user").status_code == 401
    assert Api().get(f"/api/user/{uuid.uuid4()}").status_code == 401


def test_admin_creates_an_unverified_user_and_a_code_is_mailed(stack: RunningStack, admin: Api) -> None:
    account = new_account()
    response = admin.post("/api/user", create_body(account, ["user"]))
    assert response.status_code == 201, response.content
    user = response.json()
    assert set(user) == USER_FIELDS
    assert (user["email"], user["roles"], user["verifiedAccount"]) == (account.email, ["user"], False)
    assert wait_for_mail(stack.mail_dir, account.email, subject="verification").code()
    user_in_main(admin, user["id"], email=account.email)
    duplicate = admin.post(
        "/api/user",
        create_body(Account(name="Copy Cat", username=account.username, email=new_account().email), ["user"]),
    )
    assert duplicate.status_code == 409


def test_creating_users_is_for_admins_and_never_grants_sys_admin_by_an_admin(
    admin: Api, sys_admin: Api, member: tuple[Api, Account]
) -> None:
    user_api, _ = member
    assert user_api.post("/api/user", create_body(new_account(), ["user"])).status_code == 403
    assert admin.post("/api/user", create_body(new_account(), ["sys_admin"])).status_code == 403
    assert admin.post("/api/user", create_body(new_account(), ["user"]), csrf=False).status_code == 403
    assert sys_admin.post("/api/user", create_body(new_account(), ["admin"])).status_code == 201
    invalid = admin.post("/api/user", {**create_body(new_account(), ["user"]), "active": True})
    assert invalid.status_code == 400
    assert invalid.json()["fields"]["active"] == ["property active should not exist"]


def test_users_update_themselves_but_never_raise_their_roles(member: tuple[Api, Account]) -> None:
    api, _ = member
    response = api.patch(f"/api/user/{api.user_id}", {"name": "Renamed Person"})
    assert response.status_code == 200, response.content
    assert response.json()["name"] == "Renamed Person"
    user_in_main(api, api.user_id, name="Renamed Person")
    assert api.patch(f"/api/user/{api.user_id}", {"roles": ["admin"]}).status_code == 403
    assert api.patch(f"/api/user/{api.user_id}", {"name": "Without Csrf"}, csrf=False).status_code == 403
    assert api.patch(f"/api/user/{api.user_id}", {}).status_code == 400


def test_password_change_needs_the_old_password(member: tuple[Api, Account]) -> None:
    api, account = member
    assert api.patch(f"/api/user/{api.user_id}", {"password": NEW_PASSWORD}).status_code == 400
    wrong = api.patch(f"/api/user/{api.user_id}", {"password": NEW_PASSWORD, "oldPassword": "Not!TheOld-1"})
    assert wrong.status_code == 400
    same = api.patch(f"/api/user/{api.user_id}", {"password": account.password, "oldPassword": account.password})
    assert same.status_code == 400
    ok = api.patch(f"/api/user/{api.user_id}", {"password": NEW_PASSWORD, "oldPassword": account.password})
    assert ok.status_code == 200, ok.content
    assert Api().post("/api/login", {"slug": account.email, "password": NEW_PASSWORD}).status_code == 200
    assert api.get("/api/auth/sessions").status_code == 200, "the caller's own session stays"


def test_guests_read_only(guest: Api, member: tuple[Api, Account]) -> None:
    user_api, _ = member
    assert guest.get("/api/user").status_code == 200
    assert guest.patch(f"/api/user/{guest.user_id}", {"name": "Guest Renamed"}).status_code == 403
    assert guest.patch(f"/api/user/deactivate/{user_api.user_id}").status_code == 403


def test_admin_cannot_touch_admins(stack: RunningStack, admin: Api, sys_admin: Api) -> None:
    other_admin = new_account()
    created = sys_admin.post("/api/user", create_body(other_admin, ["admin"]))
    assert created.status_code == 201
    target = created.json()["id"]
    assert admin.patch(f"/api/user/{target}", {"name": "Demoted Admin"}).status_code == 403
    assert admin.patch(f"/api/user/deactivate/{target}").status_code == 403
    assert admin.patch(f"/api/user/{sys_admin.user_id}", {"roles": ["user"]}).status_code == 403


def test_deactivation_ends_the_users_sessions(admin: Api, member: tuple[Api, Account]) -> None:
    api, account = member
    response = admin.patch(f"/api/user/deactivate/{api.user_id}")
    assert response.status_code == 200, response.content
    assert response.json()["active"] is False
    assert api.get("/api/user").status_code == 401
    assert Api().post("/api/login", {"slug": account.email, "password": account.password}).status_code == 401
    user_in_main(admin, api.user_id, active=False)


def test_self_deactivation(member: tuple[Api, Account]) -> None:
    api, _ = member
    assert api.patch(f"/api/user/deactivate/{api.user_id}").status_code == 200
    assert api.get("/api/user").status_code == 401


def test_sys_admin_deletes_a_user_everywhere(sys_admin: Api, admin: Api, member: tuple[Api, Account]) -> None:
    api, _ = member
    user_in_main(sys_admin, api.user_id)
    assert admin.delete(f"/api/user/{api.user_id}").status_code == 403
    assert sys_admin.delete(f"/api/user/{api.user_id}", csrf=False).status_code == 403
    response = sys_admin.delete(f"/api/user/{api.user_id}")
    assert response.status_code == 204
    assert response.content == b""
    assert api.get("/api/user").status_code == 401

    def gone() -> None:
        assert sys_admin.get(f"/api/user/{api.user_id}").status_code == 404

    eventually(gone)
    assert sys_admin.delete(f"/api/user/{api.user_id}").status_code == 404
    assert sys_admin.delete(f"/api/user/{sys_admin.user_id}").status_code == 400, "never itself"


def test_deny_access_takes_effect_within_a_second(sys_admin: Api, member: tuple[Api, Account]) -> None:
    api, account = member
    assert api.get("/api/user").status_code == 200
    response = sys_admin.post("/api/auth/deny-access", {"userId": api.user_id})
    assert response.status_code == 200, response.content
    denied_at = time.monotonic()
    eventually(lambda: _assert_status(api.get("/api/user"), 401), timeout=1.0, interval=0.05)
    assert time.monotonic() - denied_at <= 1.0
    assert api.refresh().status_code == 401
    assert Api().post("/api/login", {"slug": account.email, "password": account.password}).status_code == 401


def test_deny_access_is_for_sys_admins_with_csrf_and_never_self(
    sys_admin: Api, admin: Api, member: tuple[Api, Account]
) -> None:
    api, _ = member
    assert admin.post("/api/auth/deny-access", {"userId": api.user_id}).status_code == 403
    assert sys_admin.post("/api/auth/deny-access", {"userId": api.user_id}, csrf=False).status_code == 403
    assert sys_admin.post("/api/auth/deny-access", {"userId": sys_admin.user_id}).status_code == 400
    assert sys_admin.post("/api/auth/deny-access", {"userId": "nope"}).status_code == 400
    assert sys_admin.post("/api/auth/deny-access", {"userId": str(uuid.uuid4())}).status_code == 404
    assert api.get("/api/user").status_code == 200


def test_registered_users_reach_main_api(stack: RunningStack, guest: Api) -> None:
    account = registered(stack)
    api = logged_in(account)
    user_in_main(guest, api.user_id, email=account.email, verifiedAccount=True, roles=["user"])


def _assert_status(response: Any, status: int) -> None:
    assert response.status_code == status
