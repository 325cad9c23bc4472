"""Service accounts' tokens at the gateway: the lean and DRF paths answer them alike; forgeries and stale ones fail."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
from django_redis import get_redis_connection

from common.contracts.oauth import client_key
from devstack.testing.stack import RunningStack
from gateway.api import jwks
from gateway.api.tests.test_e2e_service_accounts import create_client, token_for
from gateway.api.tests.test_fastlane import Paths, bearer, paths, status_of  # noqa: F401 - the fixture
from gateway.api.tests.tokens import Signer, hs256_token, public_pem_from_jwk, unsigned_token, with_payload


@pytest.fixture
def client_trusted(trusted: Signer, monkeypatch: pytest.MonkeyPatch) -> Signer:
    """`trusted`, for client tokens too (they look their key up through gateway.api.jwks)."""
    return trusted.trusted_by(jwks, monkeypatch)


@pytest.fixture
def live_client() -> Iterator[str]:
    """A client id whose liveness marker says epoch 4 (as the auth service would write it)."""
    client_id = uuid.uuid4().hex[:22]
    redis = get_redis_connection("default")
    redis.set(client_key(client_id), 4)
    yield client_id
    redis.delete(client_key(client_id))


def client_claims(client_id: str, **overrides: object) -> dict[str, object]:
    claims: dict[str, object] = {
        "sub": client_id,
        "client_id": client_id,
        "scope": "users:read",
        "cep": 4,
        "sid": None,
        "roles": None,
    }
    claims.update(overrides)
    return claims


def test_issued_client_tokens_answer_alike_and_die_on_both(stack: RunningStack, paths: Paths) -> None:  # noqa: F811
    account = create_client(stack, "users:read")
    auth = bearer(token_for(account))
    listed = paths.same("/api/user?limit=1", lean=True, headers=auth)
    assert status_of(listed) == 200
    assert status_of(paths.same(f"/api/user/{uuid.uuid4()}", lean=True, headers=auth)) == 404
    assert "disabled" in stack.manage("auth", "disable_client", account.client_id)
    assert status_of(paths.same("/api/user?limit=1", lean=True, headers=auth)) == 401
    assert status_of(paths.same(f"/api/user/{uuid.uuid4()}", lean=True, headers=auth)) == 401


def test_forged_and_stale_client_tokens_answer_alike(
    services: RunningStack,
    paths: Paths,  # noqa: F811
    client_trusted: Signer,
    live_client: str,
) -> None:
    signer = client_trusted
    now = int(time.time())
    good = signer.token(**client_claims(live_client))
    claims = {"iss": "x", **client_claims(live_client)}
    tokens = {
        "good": good,
        "no scope": signer.token(**client_claims(live_client, scope="")),
        "another scope": signer.token(**client_claims(live_client, scope="users:write")),
        "expired": signer.token(**client_claims(live_client, iat=now - 1000, exp=now - 60)),
        "older epoch": signer.token(**client_claims(live_client, cep=3)),
        "unknown client": signer.token(**client_claims(uuid.uuid4().hex)),
        "sub is not the client": signer.token(**client_claims(live_client, sub="someone")),
        "with roles": signer.token(**client_claims(live_client, roles=["sys_admin"])),
        "wrong audience": signer.token(**client_claims(live_client, aud="another-api")),
        "not an access token": signer.token(headers={"typ": "JWT"}, **client_claims(live_client)),
        "alg none": unsigned_token(claims, kid=signer.kid),
        "hs256 with the public key": hs256_token(claims, secret=public_pem_from_jwk(signer.jwk()), kid=signer.kid),
        "tampered": with_payload(good, scope="users:read users:write", client_id="other"),
    }
    expected = {"good": 200, "no scope": 403, "another scope": 403}
    for name, token in tokens.items():
        answer = paths.same("/api/user?limit=1", lean=True, headers=bearer(token))
        assert status_of(answer) == expected.get(name, 401), name
        paths.same(f"/api/user/{uuid.uuid4()}", lean=True, headers=bearer(token))


def test_client_tokens_are_checked_by_the_simple_jwt_backend(client_trusted: Signer, live_client: str) -> None:
    from rest_framework.exceptions import AuthenticationFailed

    from gateway.api.client_tokens import ClientCaller, authenticate_client_token
    from gateway.api.tests.tokens import simple_jwt

    token = client_trusted.token(**client_claims(live_client))
    authenticated = authenticate_client_token(token, now=time.time())
    assert authenticated is not None
    assert authenticated[0] == ClientCaller(client_id=live_client, scopes=frozenset({"users:read"}), epoch=4)
    for changes in ({"AUDIENCE": "another-api"}, {"ISSUER": "https://issuer.example"}):
        with simple_jwt(**changes), pytest.raises(AuthenticationFailed):
            authenticate_client_token(token, now=time.time())
    with pytest.raises(AuthenticationFailed):
        authenticate_client_token(client_trusted.token(**client_claims(live_client, jti=None)), now=time.time())
