"""Shape rules of request bodies and queries (SPEC §2): exact limits, unknown properties refused."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.exceptions import ValidationError

from gateway.api import serializers as s

SIGNUP = {"name": "Ada Lovelace", "username": "ada1815", "email": "ada@example.com", "password": "Analytical!Engine1"}


def errors(serializer_class: type, data: Any) -> dict[str, Any]:
    with pytest.raises(ValidationError) as info:
        s.validated(serializer_class, data)
    detail = info.value.detail
    assert isinstance(detail, dict)
    return detail


def test_valid_signup_passes_through_unchanged() -> None:
    assert s.validated(s.SignupSerializer, SIGNUP) == SIGNUP


def test_unknown_properties_are_refused_together_with_other_errors() -> None:
    detail = errors(s.SignupSerializer, {**SIGNUP, "roles": ["sys_admin"], "email": "nope"})
    assert set(detail) == {"roles", "email"}
    assert detail["roles"] == ["property roles should not exist"]


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("Ada", False),
        ("Adam", True),
        ("A" * 40, True),
        ("A" * 41, False),
        ("Jos\u00e9 Mar\u00eda", True),
        ("Ada  Byron", True),
        ("Ada1", False),
        ("Ada_Byron", False),
        ("Ada-Byron", False),
        ("    ", False),
    ],
)
def test_name_is_4_to_40_letters_and_spaces(name: str, ok: bool) -> None:
    data = {**SIGNUP, "name": name}
    if ok:
        s.validated(s.SignupSerializer, data)
    else:
        assert "name" in errors(s.SignupSerializer, data)


@pytest.mark.parametrize(
    ("username", "ok"),
    [
        ("abc", False),
        ("abcd", True),
        ("a" * 40, True),
        ("a" * 41, False),
        ("ab cd", False),
        ("ab_cd", False),
        ("\u00e1bcd", False),
    ],
)
def test_username_is_4_to_40_ascii_alphanumerics(username: str, ok: bool) -> None:
    data = {**SIGNUP, "username": username}
    if ok:
        s.validated(s.SignupSerializer, data)
    else:
        assert "username" in errors(s.SignupSerializer, data)


def test_email_must_be_valid_and_at_most_254() -> None:
    assert "email" in errors(s.SignupSerializer, {**SIGNUP, "email": "not-an-email"})
    long_local = "a" * 64
    too_long = f"{long_local}@{'b' * 63}.{'c' * 63}.{'d' * 63}.com"
    assert len(too_long) > 254
    assert "email" in errors(s.SignupSerializer, {**SIGNUP, "email": too_long})


def test_password_is_at_most_128_and_never_trimmed() -> None:
    assert "password" in errors(s.SignupSerializer, {**SIGNUP, "password": "x" * 129})
    assert s.validated(s.LoginSerializer, {"slug": "ada", "password": "  spaced  "})["password"] == "  spaced  "


def test_missing_fields_are_named() -> None:
    assert set(errors(s.SignupSerializer, {})) == {"name", "username", "email", "password"}


def test_body_must_be_an_object() -> None:
    assert "non_field_errors" in errors(s.LoginSerializer, ["slug", "password"])


@pytest.mark.parametrize(
    ("code", "ok"), [("123456", True), ("12345", False), ("1234567", False), ("12a456", False), ("", False)]
)
def test_code_is_six_digits(code: str, ok: bool) -> None:
    data = {"email": "ada@example.com", "code": code}
    if ok:
        s.validated(s.VerifyAccountSerializer, data)
    else:
        assert "code" in errors(s.VerifyAccountSerializer, data)


def test_user_list_query_defaults_and_bounds() -> None:
    assert s.validated(s.UserListQuerySerializer, {}) == {"limit": 10, "offset": 0}
    assert s.validated(
        s.UserListQuerySerializer, {"limit": "100", "offset": "5", "active": "false", "verified": "true"}
    ) == {
        "limit": 100,
        "offset": 5,
        "active": False,
        "verified": True,
    }
    for bad in (
        {"limit": "0"},
        {"limit": "101"},
        {"offset": "-1"},
        {"limit": "ten"},
        {"active": "maybe"},
        {"page": "2"},
    ):
        errors(s.UserListQuerySerializer, bad)


def test_roles_are_known_and_non_empty() -> None:
    base = {**SIGNUP, "roles": ["admin"]}
    assert s.validated(s.UserCreateSerializer, base)["roles"] == ["admin"]
    assert "roles" in errors(s.UserCreateSerializer, {**base, "roles": []})
    assert "roles" in errors(s.UserCreateSerializer, {**base, "roles": ["root"]})
    assert "roles" in errors(s.UserCreateSerializer, {**base, "roles": "admin"})


def test_update_needs_at_least_one_known_field() -> None:
    assert s.validated(s.UserUpdateSerializer, {"name": "Ada Byron"}) == {"name": "Ada Byron"}
    assert errors(s.UserUpdateSerializer, {}) == {"non_field_errors": ["Nothing to update"]}
    assert "isActive" in errors(s.UserUpdateSerializer, {"isActive": True})


def test_log_level_is_normalised_and_checked() -> None:
    assert s.validated(s.LogLevelSerializer, {"service": "auth", "level": "debug"}) == {
        "service": "auth",
        "level": "DEBUG",
    }
    assert "level" in errors(s.LogLevelSerializer, {"service": "auth", "level": "LOUD"})
    assert "service" in errors(s.LogLevelSerializer, {"service": "billing", "level": "INFO"})


def test_path_ids() -> None:
    assert s.path_uuid("8D3F7C2E-0B8A-4C4E-9A53-4B8C2A9F1E11") == "8d3f7c2e-0b8a-4c4e-9a53-4b8c2a9f1e11"
    with pytest.raises(ValidationError):
        s.path_uuid("42")
    assert s.path_session_id("a1B2_c3-d4") == "a1B2_c3-d4"
    with pytest.raises(ValidationError):
        s.path_session_id("../etc")


def test_reset_password_token_is_opaque_but_bounded() -> None:
    assert s.validated(s.ResetPasswordSerializer, {"recoveryToken": "abc.DEF-ghi_123", "password": "x"})
    assert "recoveryToken" in errors(s.ResetPasswordSerializer, {"recoveryToken": "has space", "password": "x"})
    assert "recoveryToken" in errors(s.ResetPasswordSerializer, {"recoveryToken": "a" * 1025, "password": "x"})
