"""A small stdlib HTTP client for the gateway: JSON calls, the refresh and CSRF cookies, and envelope checks."""

from __future__ import annotations

import http.client
import json
import os
import time
import uuid
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any

REQUEST_TIMEOUT = 20.0
# The plain-HTTP names (COOKIE_SECURE off): gateway/api/cookies.py and csrf.py.
REFRESH_COOKIE = "Authentication"
CSRF_COOKIE = "csrf"
CSRF_HEADER = "x-csrf-token"
# The seeded accounts (SPEC §5), as the harness seeds them.
SEED_PASSWORD = os.environ.get("SEED_PASSWORD", "Password123!")
SEEDED = ("user@test.com", "admin@test.com", "guest@test.com", "sys-admin@test.com")
# Satisfies the policy (length, classes) and is neither common nor similar to the generated names.
LOAD_PASSWORD = "Qz7#Lumen-Harbor-42"  # noqa: S105 - test accounts on throwaway databases


@dataclass(frozen=True)
class Reply:
    """One HTTP exchange as the client saw it; status 0 when no response came back (timeout, reset)."""

    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    elapsed: float = 0.0
    error: str = ""

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((value for key, value in self.headers if key.lower() == lowered), None)

    def set_cookies(self) -> dict[str, str]:
        cookies: dict[str, str] = {}
        for key, value in self.headers:
            if key.lower() == "set-cookie":
                jar: SimpleCookie = SimpleCookie()
                jar.load(value)
                cookies.update({name: morsel.value for name, morsel in jar.items()})
        return cookies


def envelope_problem(reply: Reply) -> str | None:
    """Why an error reply is not the SPEC's envelope `{statusCode, error, message, fields?}`, or None if it is."""
    if reply.status < 400:
        return None
    body = reply.json()
    if not isinstance(body, dict):
        return f"{reply.status} body is not a JSON object: {reply.body[:120]!r}"
    if body.get("statusCode") != reply.status:
        return f"{reply.status} envelope says statusCode {body.get('statusCode')!r}"
    if not isinstance(body.get("error"), str):
        return f"{reply.status} envelope has no error phrase"
    message = body.get("message")
    if not (isinstance(message, str) or (isinstance(message, list) and all(isinstance(m, str) for m in message))):
        return f"{reply.status} envelope message is {type(message).__name__}"
    return None


def request(
    address: tuple[str, int],
    method: str,
    path: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = REQUEST_TIMEOUT,
) -> Reply:
    """One request on a fresh connection; transport failures come back as status 0, never as an exception."""
    started = time.monotonic()
    conn = http.client.HTTPConnection(*address, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        return Reply(response.status, data, tuple(response.getheaders()), time.monotonic() - started)
    except (OSError, http.client.HTTPException) as exc:
        kind = "timeout" if isinstance(exc, TimeoutError) else type(exc).__name__
        return Reply(0, elapsed=time.monotonic() - started, error=f"{kind}: {exc}")
    finally:
        conn.close()


def unique_user() -> dict[str, str]:
    """Sign-up fields for a user nobody else has: the name must be letters, the username alphanumeric."""
    tag = uuid.uuid4().hex[:16]
    return {
        "name": "Verify Load",
        "username": f"v{tag}",
        "email": f"v{tag}@verify.example",
        "password": LOAD_PASSWORD,
    }


@dataclass
class Session:
    """A client of the gateway: its cookies and access token, as a browser would keep them."""

    address: tuple[str, int]
    cookies: dict[str, str] = field(default_factory=dict)
    token: str | None = None

    def call(
        self,
        method: str,
        path: str,
        payload: Any = None,
        *,
        bearer: bool = False,
        csrf: bool = False,
        timeout: float = REQUEST_TIMEOUT,
    ) -> Reply:
        headers = {"Accept": "application/json", "User-Agent": "authmesh-verify"}
        body = None
        if payload is not None:
            body = json.dumps(payload).encode()
            headers["Content-Type"] = "application/json"
        if bearer and self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if csrf and CSRF_COOKIE in self.cookies:
            headers[CSRF_HEADER] = self.cookies[CSRF_COOKIE]
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        reply = request(self.address, method, path, body=body, headers=headers, timeout=timeout)
        for name, value in reply.set_cookies().items():
            # A cleared cookie comes back empty (max-age 0): forget it, as a browser would.
            if value:
                self.cookies[name] = value
            else:
                self.cookies.pop(name, None)
        return reply

    def login(self, slug: str, password: str = SEED_PASSWORD) -> Reply:
        reply = self.call("POST", "/api/login", {"slug": slug, "password": password})
        if reply.status == 200:
            self.token = str(reply.json()["accessToken"])
        return reply

    def refresh(self) -> Reply:
        reply = self.call("POST", "/api/auth/revalidate-credentials", bearer=False, csrf=True)
        if reply.status == 200:
            self.token = str(reply.json()["accessToken"])
        elif reply.status == 401:
            self.token = None
        return reply

    def logout(self) -> Reply:
        reply = self.call("POST", "/api/auth/logout", csrf=True)
        if reply.status in (200, 401):
            self.token = None
        return reply
