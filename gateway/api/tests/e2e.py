"""Helpers of the end-to-end tests: a browser-like API client, fresh accounts through sign-up, the seeded ones."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from django.http import HttpRequest, HttpResponse
from django.test import Client, override_settings

from common.messaging.client import reset_client
from devstack.testing.mail import wait_for_mail
from devstack.testing.stack import RunningStack
from gateway.api.jwks import reset_jwks
from gateway.api.tests.tokens import unverified_claims

T = TypeVar("T")
PASSWORD = "Cobalt!Orbit-7392"
NEW_PASSWORD = "Quartz#Meadow-5081"
SEED_PASSWORD = "Password123!"
SEEDED = {
    "sys_admin": "sys-admin@test.com",
    "admin": "admin@test.com",
    "user": "user@test.com",
    "guest": "guest@test.com",
}
CSRF_COOKIE = "__Host-csrf"  # gateway.settings.test keeps COOKIE_SECURE on
REFRESH_COOKIE = "Authentication"
_UNSET: Any = object()


@contextmanager
def gateway_pointed_at(nats_url: str) -> Iterator[None]:
    """This test process acts as the gateway of a stack on `nats_url`: its NATS client and key cache start afresh."""
    with override_settings(NATS_URL=nats_url):
        reset_client()
        reset_jwks()
        try:
            yield
        finally:
            reset_client()
            reset_jwks()


def random_ip() -> str:
    # Every client gets its own address, so per-IP throttles never carry over between tests or runs.
    return f"10.{random.randint(0, 255)}.{random.randint(0, 255)}.{random.randint(1, 254)}"


class Api:
    """One browser: keeps its cookies, sends JSON, holds an access token, echoes the CSRF cookie when asked."""

    def __init__(self, *, ip: str | None = None, user_agent: str = "e2e-browser/1.0") -> None:
        self.client = Client(REMOTE_ADDR=ip or random_ip(), HTTP_USER_AGENT=user_agent)
        self.access_token: str | None = None

    def call(
        self,
        method: str,
        path: str,
        body: Any = _UNSET,
        *,
        bearer: bool = True,
        csrf: bool = True,
        headers: dict[str, str] | None = None,
    ) -> HttpResponse:
        sent: dict[str, str] = {}
        if bearer and self.access_token:
            sent["Authorization"] = f"Bearer {self.access_token}"
        if csrf and self.csrf_cookie:
            sent["x-csrf-token"] = self.csrf_cookie
        sent.update(headers or {})
        data = b"" if body is _UNSET else orjson.dumps(body)
        return self.client.generic(method, path, data=data, content_type="application/json", headers=sent)

    def get(self, path: str, **kwargs: Any) -> HttpResponse:
        return self.call("GET", path, **kwargs)

    def post(self, path: str, body: Any = _UNSET, **kwargs: Any) -> HttpResponse:
        return self.call("POST", path, body, **kwargs)

    def patch(self, path: str, body: Any = _UNSET, **kwargs: Any) -> HttpResponse:
        return self.call("PATCH", path, body, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> HttpResponse:
        return self.call("DELETE", path, **kwargs)

    def cookie(self, name: str) -> str | None:
        morsel = self.client.cookies.get(name)
        return morsel.value if morsel is not None and morsel.value else None

    @property
    def csrf_cookie(self) -> str | None:
        return self.cookie(CSRF_COOKIE)

    @property
    def refresh_token(self) -> str:
        """The refresh token inside the signed cookie (what a thief of the cookie would hold)."""
        value = self.cookie(REFRESH_COOKIE)
        assert value, "no refresh cookie"
        request = HttpRequest()
        request.COOKIES[REFRESH_COOKIE] = value
        return str(request.get_signed_cookie(REFRESH_COOKIE, salt="refresh"))

    def sign_refresh_cookie(self, token: str) -> str:
        """A cookie value carrying `token` with the gateway's own signature (as if the gateway had set it)."""
        response = HttpResponse()
        response.set_signed_cookie(REFRESH_COOKIE, token, salt="refresh")
        return response.cookies[REFRESH_COOKIE].value

    @property
    def user_id(self) -> str:
        assert self.access_token
        return str(unverified_claims(self.access_token)["sub"])

    @property
    def session_id(self) -> str:
        assert self.access_token
        return str(unverified_claims(self.access_token)["sid"])

    def login(self, slug: str, password: str) -> HttpResponse:
        response = self.post("/api/login", {"slug": slug, "password": password}, bearer=False, csrf=False)
        assert response.status_code == 200, response.content
        self.access_token = response.json()["accessToken"]
        return response

    def refresh(self) -> HttpResponse:
        response = self.post("/api/auth/revalidate-credentials", bearer=False)
        if response.status_code == 200:
            self.access_token = response.json()["accessToken"]
        return response


@dataclass
class Account:
    name: str
    username: str
    email: str
    password: str = PASSWORD


def new_account() -> Account:
    tag = uuid.uuid4().hex[:12]
    return Account(name="Test Person", username=f"u{tag}", email=f"u{tag}@e2e.example.com")


def seeded(role: str) -> Account:
    return Account(name="Seeded", username="", email=SEEDED[role], password=SEED_PASSWORD)


def sign_up(api: Api, account: Account) -> HttpResponse:
    body = {"name": account.name, "username": account.username, "email": account.email, "password": account.password}
    return api.post("/api/signup", body, bearer=False, csrf=False)


def verify(stack: RunningStack, api: Api, account: Account, *, count: int = 1) -> HttpResponse:
    code = wait_for_mail(stack.mail_dir, account.email, subject="verification", count=count).code()
    return api.post("/api/verify-account", {"email": account.email, "code": code}, bearer=False, csrf=False)


def registered(stack: RunningStack, account: Account | None = None) -> Account:
    """A verified account made the way a user makes one: sign-up, then the mailed code."""
    account = account or new_account()
    api = Api()
    assert sign_up(api, account).status_code == 200
    response = verify(stack, api, account)
    assert response.status_code == 200, response.content
    return account


def logged_in(account: Account, **kwargs: Any) -> Api:
    api = Api(**kwargs)
    api.login(account.email, account.password)
    return api


def eventually(check: Callable[[], T], *, timeout: float = 15.0, interval: float = 0.1) -> T:
    """Retry `check` until it stops raising AssertionError (events reach main_api asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(interval)
