"""Emergency revocation of a signing key: `manage_auth.py revoke_key KID` reaches every gateway over NATS."""

from __future__ import annotations

import jwt
import pytest
from django.test import Client

from devstack.testing.stack import RunningStack
from gateway.api.jwks import JwksCache
from gateway.api.tests.e2e import Account, Api, eventually, logged_in, registered
from gateway.api.tests.tokens import new_rsa_key, public_jwk


def test_a_revoked_kid_is_dropped_and_never_comes_back_from_a_refetch() -> None:
    kept, revoked = public_jwk(new_rsa_key().public_key(), "kept"), public_jwk(new_rsa_key().public_key(), "gone")
    cache = JwksCache(fetch=lambda: {"keys": [kept, revoked]}, refetch_interval=0.0)
    assert cache.key("gone") is not None

    assert cache.revoke("gone") is True

    assert cache.key("gone") is None  # refetched (interval 0), still listed by the fetch: refused all the same
    assert cache.key("kept") is not None
    assert [key["kid"] for key in cache.document()["keys"]] == ["kept"]
    assert cache.revoke("never-seen") is False


@pytest.mark.e2e
def test_revoke_key_ends_the_tokens_it_signed_at_once_and_logins_go_on(stack: RunningStack) -> None:
    account = registered(stack)
    api = logged_in(account)
    kid = jwt.get_unverified_header(api.access_token or "")["kid"]
    me = f"/api/user/{api.user_id}"
    assert api.get(me).status_code == 200  # this gateway holds the key (and listens to revocations)

    output = stack.manage("auth", "revoke_key", "--", kid)  # a kid may start with "-"

    assert f"Revoked signing key {kid}" in output
    # Well within the JWKS cache's lifetime (300 s): only the broadcast can have told this gateway.
    eventually(lambda: _assert_status(api.get(me).status_code, 401), timeout=5)
    assert kid not in {key["kid"] for key in Client().get("/.well-known/jwks.json").json()["keys"]}

    # The auth service signs with the next key at once (its bridges forgot the revoked one too).
    again = eventually(lambda: _new_login_with_another_key(account, kid), timeout=5)
    assert again.get(me).status_code == 200


def _assert_status(status: int, expected: int) -> None:
    assert status == expected


def _new_login_with_another_key(account: Account, kid: str) -> Api:
    api = logged_in(account)
    assert jwt.get_unverified_header(api.access_token or "")["kid"] != kid
    return api
