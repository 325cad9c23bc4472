"""Refresh rotation and reuse detection, logout, logout-all and multi-device sessions, through the gateway."""

from __future__ import annotations

import pytest

from devstack.testing.stack import RunningStack
from gateway.api.tests.e2e import CSRF_COOKIE, REFRESH_COOKIE, Account, Api, logged_in

pytestmark = pytest.mark.e2e


def test_revalidate_rotates_the_access_token_and_both_cookies(member: tuple[Api, Account]) -> None:
    api, _ = member
    old_access, old_refresh, old_csrf = api.access_token, api.cookie(REFRESH_COOKIE), api.csrf_cookie
    response = api.refresh()
    assert response.status_code == 200, response.content
    assert set(response.json()) == {"accessToken"}
    assert response["Cache-Control"] == "no-store"
    assert api.access_token != old_access
    assert api.cookie(REFRESH_COOKIE) != old_refresh
    assert api.csrf_cookie != old_csrf
    assert response.cookies[REFRESH_COOKIE]["httponly"] is True
    assert response.cookies[REFRESH_COOKIE]["path"] == "/api/auth"
    assert api.get("/api/auth/sessions").status_code == 200


def test_revalidate_needs_the_cookie_then_the_csrf_header(member: tuple[Api, Account]) -> None:
    api, _ = member
    missing_csrf = api.post("/api/auth/revalidate-credentials", bearer=False, csrf=False)
    assert missing_csrf.status_code == 403
    assert missing_csrf.json()["code"] == "csrf_failed"
    wrong_csrf = api.post("/api/auth/revalidate-credentials", bearer=False, csrf=False, headers={"x-csrf-token": "x.y"})
    assert wrong_csrf.status_code == 403
    no_cookie = Api()
    no_cookie.client.cookies[CSRF_COOKIE] = api.csrf_cookie or ""
    assert no_cookie.post("/api/auth/revalidate-credentials").status_code == 401
    # The refused attempts changed nothing: the real cookie still refreshes.
    assert api.refresh().status_code == 200


def test_tampered_refresh_cookie_is_401_and_cleared(member: tuple[Api, Account]) -> None:
    api, _ = member
    token = api.refresh_token
    header, payload, signature = token.split(".")
    forged = f"{header}.{payload}x.{signature}"
    # A re-signed cookie with a forged token, and a forged cookie signature.
    for value in (
        api.sign_refresh_cookie(forged),
        api.cookie(REFRESH_COOKIE)[:-3] + "abc",  # type: ignore[index]
    ):
        thief = Api()
        thief.client.cookies[REFRESH_COOKIE] = value
        thief.client.cookies[CSRF_COOKIE] = api.csrf_cookie or ""
        response = thief.post("/api/auth/revalidate-credentials")
        assert response.status_code == 401
        assert response.cookies[REFRESH_COOKIE]["max-age"] == 0


def test_reusing_a_rotated_refresh_token_ends_the_whole_family(member: tuple[Api, Account]) -> None:
    api, _ = member
    stolen_cookie = api.cookie(REFRESH_COOKIE)
    stolen_csrf = api.csrf_cookie
    assert api.refresh().status_code == 200
    assert api.refresh().status_code == 200
    thief = Api()
    thief.client.cookies[REFRESH_COOKIE] = stolen_cookie or ""
    thief.client.cookies[CSRF_COOKIE] = stolen_csrf or ""
    assert thief.post("/api/auth/revalidate-credentials").status_code == 401
    # The legitimate holder is logged out too: its refresh and its access token are dead.
    assert api.refresh().status_code == 401
    assert api.get("/api/auth/sessions").status_code == 401


def test_logout_ends_this_session_only_and_clears_cookies(stack: RunningStack, member: tuple[Api, Account]) -> None:
    laptop, account = member
    phone = logged_in(account)
    response = laptop.post("/api/auth/logout", bearer=False)
    assert response.status_code == 200
    assert response.content == b""
    for name, path in ((REFRESH_COOKIE, "/api/auth"), (CSRF_COOKIE, "/")):
        assert response.cookies[name]["max-age"] == 0
        assert response.cookies[name]["path"] == path
        assert response.cookies[name]["samesite"] == "Strict"
        assert response.cookies[name]["secure"] is True
    assert laptop.get("/api/auth/sessions").status_code == 401
    assert phone.get("/api/auth/sessions").status_code == 200


def test_logout_all_ends_every_session(member: tuple[Api, Account]) -> None:
    laptop, account = member
    phone, tablet = logged_in(account), logged_in(account)
    assert laptop.post("/api/auth/logout?all=true", bearer=False).status_code == 200
    for device in (laptop, phone, tablet):
        assert device.get("/api/auth/sessions").status_code == 401
    assert phone.refresh().status_code == 401


def test_logout_needs_csrf_and_a_valid_query(member: tuple[Api, Account]) -> None:
    api, _ = member
    assert api.post("/api/auth/logout", bearer=False, csrf=False).status_code == 403
    assert api.post("/api/auth/logout?all=maybe", bearer=False).status_code == 400
    assert api.post("/api/auth/logout?everything=true", bearer=False).status_code == 400
    assert api.get("/api/auth/sessions").status_code == 200


def test_sessions_are_listed_per_device_and_can_be_ended_one_by_one(member: tuple[Api, Account]) -> None:
    laptop, account = member
    phone = logged_in(account, user_agent="e2e-phone/2.0")
    response = laptop.get("/api/auth/sessions")
    assert response.status_code == 200
    sessions = {session["id"]: session for session in response.json()}
    assert set(sessions) == {laptop.session_id, phone.session_id}
    assert sessions[laptop.session_id]["current"] is True
    assert sessions[phone.session_id]["current"] is False
    assert sessions[phone.session_id]["device"] == "e2e-phone/2.0"
    assert set(sessions[phone.session_id]) == {"id", "device", "ip", "createdAt", "lastUsedAt", "current"}

    assert laptop.delete(f"/api/auth/sessions/{phone.session_id}", csrf=False).status_code == 403
    assert laptop.delete(f"/api/auth/sessions/{phone.session_id}").status_code == 204
    assert phone.get("/api/auth/sessions").status_code == 401
    assert [s["id"] for s in laptop.get("/api/auth/sessions").json()] == [laptop.session_id]
    assert laptop.delete(f"/api/auth/sessions/{phone.session_id}").status_code == 404


def test_another_users_session_cannot_be_ended(member: tuple[Api, Account], sys_admin: Api) -> None:
    api, _ = member
    assert api.delete(f"/api/auth/sessions/{sys_admin.session_id}").status_code == 404
    assert sys_admin.get("/api/auth/sessions").status_code == 200
