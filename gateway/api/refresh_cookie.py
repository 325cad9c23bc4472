"""Reading the signed refresh cookie (`Authentication`) and the session it names; used by cookies.py and csrf.py."""

from __future__ import annotations

import jwt
from django.conf import settings
from django.core import signing
from django.http import HttpRequest
from rest_framework.request import Request

REFRESH_COOKIE = "Authentication"
SIGNING_SALT = "refresh"


class TamperedCookie(Exception):
    """The refresh cookie is there but does not carry our signature (or is older than a refresh lifetime)."""


def signed_refresh_token(request: HttpRequest | Request) -> str | None:
    """The refresh token from its signed cookie; None when there is no cookie, TamperedCookie when it is forged."""
    if not request.COOKIES.get(REFRESH_COOKIE):
        return None
    try:
        token = request.get_signed_cookie(REFRESH_COOKIE, salt=SIGNING_SALT, max_age=settings.REFRESH_TOKEN_TTL_SECONDS)
    except signing.BadSignature:
        raise TamperedCookie from None
    return token if isinstance(token, str) else ""


def refresh_token_session(token: str) -> str:
    """The session id (`sid`) a refresh token names, read without verifying it ("" if it names none).

    For binding the CSRF value only: the token comes from the auth service or from our signed cookie, and only the
    auth service verifies it (with a secret the gateway does not hold).
    """
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return ""
    sid = claims.get("sid") if isinstance(claims, dict) else None
    return sid if isinstance(sid, str) else ""


def refresh_cookie_session(request: HttpRequest | Request) -> str:
    """The session id of the request's refresh cookie, if it carries our signature ("" otherwise)."""
    try:
        token = signed_refresh_token(request)
    except TamperedCookie:
        return ""
    return refresh_token_session(token) if token else ""
