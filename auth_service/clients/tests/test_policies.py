"""Which scopes a token gets, and what a client may be given (pure decisions, no database)."""

from __future__ import annotations

import pytest

from auth_service.clients.policies import new_client_id, scopes_checked, scopes_granted
from common.contracts.errors import ServiceError, ValidationFailed


def test_no_scope_requested_grants_every_scope_held() -> None:
    assert scopes_granted(None, ["users:read"]) == ["users:read"]
    assert scopes_granted("", ["users:read"]) == ["users:read"]


def test_requested_scopes_must_all_be_held() -> None:
    assert scopes_granted("users:read", ["users:read"]) == ["users:read"]
    for requested in ("users:write", "users:read users:write", "users:read  users:read", "x" * 2000):
        with pytest.raises(ServiceError) as info:
            scopes_granted(requested, ["users:read"])
        assert (info.value.status, info.value.code) == (400, "invalid_scope")


def test_a_client_holding_nothing_gets_no_token() -> None:
    with pytest.raises(ServiceError) as info:
        scopes_granted(None, [])
    assert info.value.code == "invalid_scope"


def test_a_client_is_given_known_scopes_only() -> None:
    assert scopes_checked(["users:read", "users:read"]) == ["users:read"]
    for scopes in ([], ["users:write"]):
        with pytest.raises(ValidationFailed):
            scopes_checked(scopes)


def test_client_ids_are_random_url_safe_and_never_read_as_an_option() -> None:
    ids = {new_client_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(len(i) == 32 and all(c in "0123456789abcdef" for c in i) for i in ids)
