"""Failure budgets: logins per account and source reserved before the hash, code checks per account across resends."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.core import mail
from django.test import Client
from django_redis import get_redis_connection

from auth_service.accounts.models import User
from auth_service.accounts.tests.conftest import AuthApi, mailed_code
from auth_service.accounts.tests.factories import PASSWORD, UserFactory
from auth_service.accounts.throttle import login_attempt_keys
from common.contracts import subjects
from common.contracts.errors import ServiceError

WRONG = "Wrong-Password-1"


def attempt(auth: AuthApi, slug: str, password: str, ip: str) -> int:
    """One login from `ip`: 200, or the status of the error."""
    try:
        auth(subjects.AUTH_LOGIN, {"slug": slug, "password": password}, client={"ip": ip, "user_agent": "t"})
    except ServiceError as exc:
        return exc.status
    return 200


def test_a_strangers_failures_do_not_lock_the_owner_out(auth: AuthApi) -> None:
    owner = UserFactory(roles=["sys_admin"])

    stranger = [attempt(auth, owner.email, WRONG, "203.0.113.5") for _ in range(11)]

    assert stranger == [401] * 10 + [429]
    assert attempt(auth, owner.email, PASSWORD, "203.0.113.5") == 429  # that source waits, even with the password
    assert attempt(auth, owner.username, PASSWORD, "198.51.100.7") == 200  # the owner, from elsewhere, does not


def test_a_burst_of_parallel_guesses_gets_exactly_the_budget(auth: AuthApi) -> None:
    user = UserFactory()

    with ThreadPoolExecutor(max_workers=12) as pool:
        statuses = list(pool.map(lambda _: attempt(auth, user.email, WRONG, "203.0.113.6"), range(24)))

    # Each attempt was counted before its hash: the burst could not all pass a check none of them was counted in.
    assert sorted(statuses) == [401] * 10 + [429] * 14


def test_an_ipv6_client_is_one_source_per_64(auth: AuthApi) -> None:
    user = UserFactory()

    statuses = [attempt(auth, user.email, WRONG, f"2001:db8:5:6::{n + 1:x}") for n in range(10)]

    assert statuses == [401] * 10
    assert attempt(auth, user.email, WRONG, "2001:db8:5:6:ffff:1:2:3") == 429
    assert attempt(auth, user.email, PASSWORD, "2001:db8:5:7::1") == 200


def test_past_the_account_budget_a_source_gets_one_failure_and_a_clean_source_still_its_try(
    auth: AuthApi, settings: Any
) -> None:
    settings.LOGIN_ACCOUNT_FAILURE_LIMIT = 3
    user = UserFactory()
    for n in range(3):
        assert attempt(auth, user.email, WRONG, f"192.0.2.{n + 1}") == 401

    # The account is under a spread-out attack: a source with a failure waits, a new source gets one failure.
    assert attempt(auth, user.email, WRONG, "192.0.2.1") == 429
    assert attempt(auth, user.email, WRONG, "192.0.2.50") == 401
    assert attempt(auth, user.email, WRONG, "192.0.2.50") == 429
    # The owner, from a source without failures, gets in.
    assert attempt(auth, user.email, PASSWORD, "192.0.2.99") == 200
    redis = get_redis_connection("default")
    assert redis.get(login_attempt_keys(user_id=str(user.id), slug="", ip="192.0.2.99").account_key) == b"4"


def test_guesses_through_the_api_do_not_lock_a_sys_admin_out_of_the_console(auth: AuthApi, settings: Any) -> None:
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
    boss = UserFactory(roles=["sys_admin"])
    for _ in range(10):
        attempt(auth, boss.email, WRONG, "203.0.113.7")
    assert attempt(auth, boss.email, PASSWORD, "203.0.113.7") == 429

    console = Client(REMOTE_ADDR="198.51.100.8")
    response = console.post("/admin/login/?next=/admin/", {"username": boss.email, "password": PASSWORD})

    assert response.status_code == 302


def test_the_admin_login_form_is_limited_per_client(auth: AuthApi, settings: Any) -> None:
    settings.ADMIN_LOGIN_RATE = "3/10m"
    network = f"2001:db8:{uuid.uuid4().int % 0xFFFF:x}"
    statuses = [
        Client(REMOTE_ADDR=f"{network}:1::{n + 1}").post(
            "/admin/login/", {"username": "x@example.com", "password": "x"}
        )
        for n in range(4)
    ]

    assert [r.status_code for r in statuses] == [200, 200, 200, 429]
    assert 1 <= int(statuses[-1]["Retry-After"]) <= 600
    assert Client(REMOTE_ADDR=f"{network}:1::9").get("/admin/login/").status_code == 200  # the form still shows
    other = Client(REMOTE_ADDR=f"{network}:2::1").post("/admin/login/", {"username": "x@example.com", "password": "x"})
    assert other.status_code == 200
    auth.forget_slug("x@example.com")


def test_the_code_budget_of_an_account_survives_a_resend(auth: AuthApi) -> None:
    email = f"jane-{uuid.uuid4().hex[:8]}@example.com"
    auth(
        subjects.AUTH_SIGNUP,
        {"name": "Jane Doe", "username": f"jane{uuid.uuid4().hex[:8]}", "email": email, "password": PASSWORD},
    )
    statuses: list[int] = []
    for _ in range(2):
        code = mailed_code()
        wrong = "000000" if code != "000000" else "111111"
        for _ in range(5):
            statuses.append(auth.error(subjects.AUTH_VERIFY_ACCOUNT, {"email": email, "code": wrong}).status)
        auth(subjects.AUTH_RESEND_VERIFICATION, {"email": email})

    # Ten failures across two codes spend the account's budget: the third code waits, even when it is right.
    err = auth.error(subjects.AUTH_VERIFY_ACCOUNT, {"email": email, "code": mailed_code()})

    assert statuses == [400] * 10
    assert (err.status, err.message) == (429, "Too many verification attempts, try again later")
    assert 0 < int(err.headers["Retry-After"]) <= 3600
    assert len(mail.outbox) == 3
    assert User.objects.get(email=email).is_verified is False


def test_unknown_emails_have_the_same_code_budget(auth: AuthApi) -> None:
    email = f"nobody-{uuid.uuid4().hex[:8]}@example.com"
    auth.forget_slug(email)

    statuses = [auth.error(subjects.AUTH_VERIFY_ACCOUNT, {"email": email, "code": "123456"}).status for _ in range(11)]

    assert statuses == [400] * 10 + [429]
