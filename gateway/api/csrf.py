"""Signed double-submit CSRF bound to the session: a cookie `issued.nonce.HMAC(sid, issued, nonce)` that the
client echoes in the `x-csrf-token` header.

The cookie is `__Host-csrf` (Secure, Path=/, no Domain, so a sibling subdomain cannot plant one). Browsers refuse
a `__Host-` cookie without Secure, so plain-HTTP development (COOKIE_SECURE off) uses the name `csrf` instead.
The HMAC means a value the attacker made up (or planted) is refused even if header and cookie agree. It covers the
session id (the refresh family) the value was issued with, checked against the session of the request: the
access token's `sid`, or, on the refresh routes, the `sid` of the refresh cookie. The refresh cookie cannot be a
`__Host-` cookie (its path is /api/auth), so a sibling subdomain could plant one of its own session: that cookie
names another session than the CSRF value, and the request is refused. A value also expires a refresh lifetime
after it was issued, and is useless for any later session (logout, a new login).
"""

from __future__ import annotations

import hmac
import secrets
import time
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.crypto import salted_hmac
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from gateway.api.refresh_cookie import refresh_cookie_session

CSRF_HEADER = "x-csrf-token"
# Key separation: the MAC key is derived from SECRET_KEY for this purpose only, so no other value signed with
# SECRET_KEY can pass as a CSRF token and vice versa.
_SALT = "gateway.api.csrf"
_MAX_TOKEN_LENGTH = 256


def csrf_cookie_name() -> str:
    return "__Host-csrf" if settings.COOKIE_SECURE else "csrf"


def _mac(sid: str, issued: str, nonce: str) -> str:
    return salted_hmac(_SALT, f"{sid}|{issued}|{nonce}", algorithm="sha256").hexdigest()


def new_csrf_token(sid: str, *, now: float | None = None) -> str:
    """A CSRF value for the session `sid`, issued `now`."""
    issued = str(int(time.time() if now is None else now))
    nonce = secrets.token_urlsafe(16)
    return f"{issued}.{nonce}.{_mac(sid, issued, nonce)}"


def csrf_token_is_valid(cookie: str | None, header: str | None, *, sid: str, now: float | None = None) -> bool:
    """Header equals cookie, the cookie carries our MAC over `sid` and is not older than a refresh lifetime; the
    comparisons in constant time."""
    if not sid or not cookie or not header or len(cookie) > _MAX_TOKEN_LENGTH or len(header) > _MAX_TOKEN_LENGTH:
        return False
    if not hmac.compare_digest(cookie.encode(), header.encode()):
        return False
    parts = cookie.split(".")
    if len(parts) != 3:
        return False
    issued, nonce, mac = parts
    if not (issued.isascii() and issued.isdigit()) or not nonce:
        return False
    if not hmac.compare_digest(mac.encode(), _mac(sid, issued, nonce).encode()):
        return False
    age = (time.time() if now is None else now) - int(issued)
    return -float(settings.JWT_LEEWAY_SECONDS) <= age <= float(settings.REFRESH_TOKEN_TTL_SECONDS)


def request_session_id(request: HttpRequest | Request) -> str:
    """The session a request acts for: its access token's, else its refresh cookie's ("" for none)."""
    sid = getattr(getattr(request, "user", None), "sid", None)
    if isinstance(sid, str) and sid:
        return sid
    return refresh_cookie_session(request)


def request_passes_csrf(request: HttpRequest | Request, *, sid: str | None = None) -> bool:
    return csrf_token_is_valid(
        request.COOKIES.get(csrf_cookie_name()),
        request.headers.get(CSRF_HEADER),
        sid=request_session_id(request) if sid is None else sid,
    )


def set_csrf_cookie(response: HttpResponse, token: str, *, max_age: int) -> None:
    # Readable by JavaScript on purpose: the client must copy it into the header.
    response.set_cookie(
        csrf_cookie_name(),
        token,
        max_age=max_age,
        path="/",
        secure=settings.COOKIE_SECURE,
        httponly=False,
        samesite="Strict",
    )


def clear_csrf_cookie(response: HttpResponse) -> None:
    # A browser only replaces a cookie set with the same name, path and (for __Host-) Secure flag.
    response.set_cookie(
        csrf_cookie_name(),
        "",
        max_age=0,
        expires="Thu, 01 Jan 1970 00:00:00 GMT",
        path="/",
        secure=settings.COOKIE_SECURE,
        httponly=False,
        samesite="Strict",
    )


class CsrfProtected(BasePermission):
    """Unsafe methods need a valid CSRF header; a failure is 403 (never 401: the caller may well be logged in)."""

    message = "Invalid or missing CSRF token"
    code = "csrf_failed"

    def has_permission(self, request: Request, view: Any) -> bool:
        return request.method in SAFE_METHODS or request_passes_csrf(request)
