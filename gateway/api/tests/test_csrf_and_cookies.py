"""CSRF tokens (HMAC double submit) and the refresh/CSRF cookie pair: values, flags and clearing."""

from __future__ import annotations

import time
from http.cookies import Morsel

import jwt
import pytest
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory, override_settings
from rest_framework.exceptions import AuthenticationFailed, NotAuthenticated

from gateway.api.cookies import (
    REFRESH_COOKIE,
    clear_auth_cookies,
    read_refresh_cookie,
    refresh_max_age,
    set_auth_cookies,
)
from gateway.api.csrf import csrf_cookie_name, csrf_token_is_valid, new_csrf_token

WEEK = 7 * 24 * 3600
SID = "2f0c6a52-5c3a-4c55-9a55-0d7f3f8e0b01"
# A refresh token as the auth service issues it, as far as the gateway reads one: the session it names.
REFRESH_TOKEN = jwt.encode(
    {"sid": SID, "typ": "refresh"}, "not-the-refresh-secret-of-the-auth-service", algorithm="HS256"
)


def test_fresh_token_is_valid_when_echoed() -> None:
    token = new_csrf_token(SID)
    assert csrf_token_is_valid(token, token, sid=SID)


def test_tokens_are_random() -> None:
    assert new_csrf_token(SID) != new_csrf_token(SID)


@pytest.mark.parametrize(
    ("cookie", "header"),
    [
        (None, None),
        ("", ""),
        ("TOKEN", None),
        (None, "TOKEN"),
        ("TOKEN", "TOKEN-other"),
    ],
)
def test_missing_or_different_header_is_refused(cookie: str | None, header: str | None) -> None:
    token = new_csrf_token(SID)
    cookie = cookie.replace("TOKEN", token) if cookie else cookie
    header = header.replace("TOKEN", token) if header else header
    assert not csrf_token_is_valid(cookie, header, sid=SID)


def test_planted_value_without_our_mac_is_refused_even_when_header_matches() -> None:
    for planted in ("attacker", "attacker.", ".deadbeef", "value." + "0" * 64):
        assert not csrf_token_is_valid(planted, planted, sid=SID)


def test_mac_from_another_secret_is_refused() -> None:
    with override_settings(SECRET_KEY="another-secret-key-another-secret-key-0123"):
        foreign = new_csrf_token(SID)
    assert not csrf_token_is_valid(foreign, foreign, sid=SID)


def test_non_ascii_and_oversized_values_are_refused_without_error() -> None:
    assert not csrf_token_is_valid("\u00e9t\u00e9.x", "\u00e9t\u00e9.x", sid=SID)
    huge = "a" * 300 + "." + "b" * 64
    assert not csrf_token_is_valid(huge, huge, sid=SID)


def test_cookie_name_needs_secure_for_the_host_prefix() -> None:
    with override_settings(COOKIE_SECURE=True):
        assert csrf_cookie_name() == "__Host-csrf"
    with override_settings(COOKIE_SECURE=False):
        assert csrf_cookie_name() == "csrf"


def cookie(response: HttpResponse, name: str) -> Morsel[str]:
    return response.cookies[name]


@override_settings(COOKIE_SECURE=True, REFRESH_TOKEN_TTL_SECONDS=WEEK)
def test_login_cookies_have_the_right_flags_and_max_age_in_seconds() -> None:
    response = HttpResponse()
    set_auth_cookies(response, refresh_token=REFRESH_TOKEN, expires_at=time.time() + WEEK)
    refresh = cookie(response, REFRESH_COOKIE)
    assert refresh["httponly"] is True
    assert refresh["secure"] is True
    assert refresh["samesite"] == "Strict"
    assert refresh["path"] == "/api/auth"
    assert WEEK - 5 <= int(refresh["max-age"]) <= WEEK
    assert refresh.value != REFRESH_TOKEN  # signed
    csrf = cookie(response, "__Host-csrf")
    assert csrf["httponly"] == ""  # readable by the client's JavaScript
    assert csrf["secure"] is True
    assert csrf["samesite"] == "Strict"
    assert csrf["path"] == "/"
    assert csrf["domain"] == ""  # __Host- cookies must not name a domain
    assert csrf_token_is_valid(csrf.value, csrf.value, sid=SID)


def test_refresh_cookie_is_the_last_set_cookie() -> None:
    # Clients that keep one header per name (wrk's Lua, the refresh case of `make bench`) see the last
    # Set-Cookie: it must be the rotated refresh token, the one they have to send next.
    response = HttpResponse()
    set_auth_cookies(response, refresh_token=REFRESH_TOKEN, expires_at=time.time() + WEEK)
    assert list(response.cookies)[-1] == REFRESH_COOKIE


@override_settings(COOKIE_SECURE=True)
def test_clearing_repeats_the_flags() -> None:
    response = HttpResponse()
    clear_auth_cookies(response)
    refresh = cookie(response, REFRESH_COOKIE)
    csrf = cookie(response, "__Host-csrf")
    for morsel, path in ((refresh, "/api/auth"), (csrf, "/")):
        assert morsel.value == ""
        assert morsel["max-age"] == 0
        assert morsel["path"] == path
        assert morsel["secure"] is True
        assert morsel["samesite"] == "Strict"
    assert refresh["httponly"] is True


@override_settings(COOKIE_SECURE=False)
def test_plain_http_development_cookies() -> None:
    response = HttpResponse()
    set_auth_cookies(response, refresh_token="t", expires_at=None)
    assert cookie(response, REFRESH_COOKIE)["secure"] == ""
    assert cookie(response, "csrf")["secure"] == ""
    assert "__Host-csrf" not in response.cookies


@override_settings(REFRESH_TOKEN_TTL_SECONDS=WEEK)
def test_refresh_max_age_follows_the_family_expiry() -> None:
    now = 1_800_000_000.0
    assert refresh_max_age(now + 3600, now=now) == 3600
    assert refresh_max_age(now + 10 * WEEK, now=now) == WEEK
    assert refresh_max_age(now - 5, now=now) == 0
    assert refresh_max_age(None, now=now) == WEEK
    assert refresh_max_age("not a date", now=now) == WEEK


def test_refresh_max_age_reads_iso_timestamps() -> None:
    assert refresh_max_age("2030-01-01T00:10:00Z", now=1893456000.0) == 600
    assert refresh_max_age("2030-01-01T00:10:00+00:00", now=1893456000.0) == 600


def request_with_cookie(value: str | None) -> HttpRequest:
    request = RequestFactory().post("/api/auth/revalidate-credentials")
    if value is not None:
        request.COOKIES[REFRESH_COOKIE] = value
    return request


def signed_cookie_value(token: str) -> str:
    response = HttpResponse()
    set_auth_cookies(response, refresh_token=token, expires_at=None)
    return response.cookies[REFRESH_COOKIE].value


def test_refresh_cookie_round_trip() -> None:
    assert read_refresh_cookie(request_with_cookie(signed_cookie_value(REFRESH_TOKEN))) == REFRESH_TOKEN


def test_missing_refresh_cookie_is_not_authenticated() -> None:
    with pytest.raises(NotAuthenticated):
        read_refresh_cookie(request_with_cookie(None))
    with pytest.raises(NotAuthenticated):
        read_refresh_cookie(request_with_cookie(""))


@pytest.mark.parametrize("tamper", ["unsigned", "token", "signature", "other-salt"])
def test_tampered_refresh_cookie_is_refused(tamper: str) -> None:
    value = signed_cookie_value(REFRESH_TOKEN)
    token, _, rest = value.rpartition(":")
    other_salt = HttpResponse()
    other_salt.set_signed_cookie(REFRESH_COOKIE, REFRESH_TOKEN, salt="other")
    forged = {
        "unsigned": REFRESH_TOKEN,
        "token": f"{token[:-1]}{'B' if token.endswith('A') else 'A'}:{rest}",
        "signature": value[:-2] + ("AA" if not value.endswith("AA") else "BB"),
        "other-salt": other_salt.cookies[REFRESH_COOKIE].value,
    }[tamper]
    with pytest.raises(AuthenticationFailed):
        read_refresh_cookie(request_with_cookie(forged))
