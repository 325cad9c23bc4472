"""Signed double-submit CSRF: a cookie `value.HMAC(value)` that the client echoes in the `x-csrf-token` header.

The cookie is `__Host-csrf` (Secure, Path=/, no Domain, so a sibling subdomain cannot plant one). Browsers refuse
a `__Host-` cookie without Secure, so plain-HTTP development (COOKIE_SECURE off) uses the name `csrf` instead.
The HMAC means a value the attacker made up (or planted) is refused even if header and cookie agree.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.crypto import salted_hmac
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

CSRF_HEADER = "x-csrf-token"
# Key separation: the MAC key is derived from SECRET_KEY for this purpose only, so no other value signed with
# SECRET_KEY can pass as a CSRF token and vice versa.
_SALT = "gateway.api.csrf"
_MAX_TOKEN_LENGTH = 256


def csrf_cookie_name() -> str:
    return "__Host-csrf" if settings.COOKIE_SECURE else "csrf"


def _mac(value: str) -> str:
    return salted_hmac(_SALT, value, algorithm="sha256").hexdigest()


def new_csrf_token() -> str:
    value = secrets.token_urlsafe(32)
    return f"{value}.{_mac(value)}"


def csrf_token_is_valid(cookie: str | None, header: str | None) -> bool:
    """Header equals cookie and the cookie carries our MAC; both comparisons in constant time."""
    if not cookie or not header or len(cookie) > _MAX_TOKEN_LENGTH or len(header) > _MAX_TOKEN_LENGTH:
        return False
    if not hmac.compare_digest(cookie.encode(), header.encode()):
        return False
    value, dot, mac = cookie.rpartition(".")
    if not dot or not value:
        return False
    return hmac.compare_digest(mac.encode(), _mac(value).encode())


def request_passes_csrf(request: HttpRequest) -> bool:
    return csrf_token_is_valid(request.COOKIES.get(csrf_cookie_name()), request.headers.get(CSRF_HEADER))


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
