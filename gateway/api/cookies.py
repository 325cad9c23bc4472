"""The refresh cookie (`Authentication`, signed, HttpOnly, path /api/auth), the CSRF cookie it comes with, and the
browsable API's `access` cookie."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from rest_framework.exceptions import AuthenticationFailed, NotAuthenticated
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from gateway.api.csrf import CSRF_HEADER, clear_csrf_cookie, new_csrf_token, set_csrf_cookie
from gateway.api.refresh_cookie import (
    REFRESH_COOKIE,
    SIGNING_SALT,
    TamperedCookie,
    refresh_token_session,
    signed_refresh_token,
)

# Sent only to the routes that use it: the refresh token never travels with ordinary API calls.
REFRESH_COOKIE_PATH = "/api/auth"
# The access token of a person using the browsable API (HttpOnly, never readable by the page's scripts). Only
# AccessTokenAuthentication reads it, as a fallback when there is no Authorization header; see README.
ACCESS_COOKIE = "access"
ACCESS_COOKIE_PATH = "/api"


def refresh_max_age(expires_at: Any, *, now: float | None = None) -> int:
    """Seconds until the session family's absolute expiry (epoch seconds or ISO 8601), capped at the refresh lifetime.

    Max-Age is in seconds; the original sent milliseconds, keeping refresh cookies ~1000x too long.
    """
    lifetime = int(settings.REFRESH_TOKEN_TTL_SECONDS)
    moment = time.time() if now is None else now
    expiry: float | None = None
    if isinstance(expires_at, (int, float)) and not isinstance(expires_at, bool):
        expiry = float(expires_at)
    elif isinstance(expires_at, str):
        try:
            expiry = datetime.fromisoformat(expires_at.replace("Z", "+00:00")).timestamp()
        except ValueError:
            expiry = None
    if expiry is None:
        return lifetime
    return max(0, min(lifetime, int(expiry - moment)))


def set_auth_cookies(response: HttpResponse, *, refresh_token: str, expires_at: Any) -> None:
    """A new refresh cookie and a new CSRF token bound to its session, both living as long as the session family.

    The CSRF token is also answered in the `x-csrf-token` header: a front end on another origin listed in
    CORS_ALLOWED_ORIGINS (which may read this header, and nothing else may) cannot read the gateway's host-only
    cookie, and echoes the header's value instead."""
    max_age = refresh_max_age(expires_at)
    csrf = new_csrf_token(refresh_token_session(refresh_token))
    set_csrf_cookie(response, csrf, max_age=max_age)
    response[CSRF_HEADER] = csrf  # answered under the name it is echoed in
    response.set_signed_cookie(
        REFRESH_COOKIE,
        refresh_token,
        salt=SIGNING_SALT,
        max_age=max_age,
        path=REFRESH_COOKIE_PATH,
        secure=settings.COOKIE_SECURE,
        httponly=True,
        samesite="Strict",
    )


def set_access_cookie(response: HttpResponse, *, access_token: str) -> None:
    """The access token as a cookie for the browsable API: it lives no longer than the token itself."""
    response.set_cookie(
        ACCESS_COOKIE,
        access_token,
        max_age=int(settings.ACCESS_TOKEN_TTL_SECONDS),
        path=ACCESS_COOKIE_PATH,
        secure=settings.COOKIE_SECURE,
        httponly=True,
        samesite="Strict",
    )


def clear_auth_cookies(response: HttpResponse) -> None:
    # Same path, SameSite and Secure as when set, or the browser keeps the old cookie.
    for name, path in ((REFRESH_COOKIE, REFRESH_COOKIE_PATH), (ACCESS_COOKIE, ACCESS_COOKIE_PATH)):
        response.set_cookie(
            name,
            "",
            max_age=0,
            expires="Thu, 01 Jan 1970 00:00:00 GMT",
            path=path,
            secure=settings.COOKIE_SECURE,
            httponly=True,
            samesite="Strict",
        )
    clear_csrf_cookie(response)


def read_refresh_cookie(request: HttpRequest) -> str:
    """The refresh token from its signed cookie: 401 when missing, tampered with, older than a refresh lifetime or
    naming no session."""
    try:
        token = signed_refresh_token(request)
    except TamperedCookie:
        raise AuthenticationFailed("Invalid refresh token", code="invalid_refresh_token") from None
    if token is None:
        raise NotAuthenticated("Refresh token missing")
    # A token that names no session is refused here, before the CSRF check (which needs that session).
    if not token or not refresh_token_session(token):
        raise AuthenticationFailed("Invalid refresh token", code="invalid_refresh_token")
    return token


class RefreshCookieRequired(BasePermission):
    """The signed refresh cookie is present and intact (401 otherwise, before CSRF is looked at)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        read_refresh_cookie(request)
        return True
