"""authmesh_client used the way a user's own service uses it: against the gateway over real HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.test import override_settings
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from authmesh_client import InvalidToken, KeysUnavailable, TokenVerifier
from authmesh_client.drf import AuthmeshTokenAuthentication, AuthmeshUser
from gateway.api import jwks
from gateway.api.tests.e2e import Api
from gateway.api.tests.tokens import Signer, access_claims, hs256_token, public_pem_from_jwk, with_payload

DISCOVERY = "/.well-known/openid-configuration"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Published:
    """The key set the gateway publishes (the auth service's, plus test keys), counting the fetches it serves."""

    def __init__(self, keys: list[dict[str, Any]]) -> None:
        self.keys = keys
        self.fetches = 0

    def document(self) -> dict[str, Any]:
        self.fetches += 1
        return {"keys": list(self.keys)}

    def current_document(self) -> None:
        return None  # nothing for the WSGI front to replay: every fetch reaches `document`


@pytest.fixture
def discovery_url(live_gateway: str) -> Iterator[str]:
    with override_settings(GATEWAY_PUBLIC_URL=live_gateway):
        yield f"{live_gateway}{DISCOVERY}"


@pytest.fixture
def published(discovery_url: str, monkeypatch: pytest.MonkeyPatch) -> Published:
    keys = Published(list(jwks.get_jwks().document()["keys"]))
    monkeypatch.setattr(jwks, "get_jwks", lambda: keys)
    return keys


def test_a_real_access_token_is_accepted(discovery_url: str, guest: Api) -> None:
    verifier = TokenVerifier(discovery_url, audience=settings.JWT_AUDIENCE)

    claims = verifier.verify(str(guest.access_token))

    assert claims["sub"] == guest.user_id
    assert claims["iss"] == settings.JWT_ISSUER
    assert claims["roles"] == ["guest"]


def test_another_audience_or_issuer_is_refused(discovery_url: str, guest: Api, published: Published) -> None:
    token = str(guest.access_token)
    signer = Signer()
    published.keys.append(signer.jwk())
    verifier = TokenVerifier(discovery_url, audience=settings.JWT_AUDIENCE)
    assert verifier.verify(signer.token())["sub"]  # the published test key is trusted like the real one

    with pytest.raises(InvalidToken, match="wrong audience"):
        TokenVerifier(discovery_url, audience="another-api").verify(token)
    with pytest.raises(InvalidToken, match="wrong issuer"):
        TokenVerifier(discovery_url, audience=settings.JWT_AUDIENCE, issuer="https://elsewhere.example").verify(token)
    with pytest.raises(InvalidToken, match="wrong issuer"):
        verifier.verify(signer.token(iss="https://elsewhere.example"))


def test_expired_tampered_and_mistyped_tokens_are_refused(discovery_url: str, guest: Api, published: Published) -> None:
    signer = Signer()
    published.keys.append(signer.jwk())
    verifier = TokenVerifier(discovery_url, audience=settings.JWT_AUDIENCE)
    now = int(time.time())

    with pytest.raises(InvalidToken, match="expired"):
        verifier.verify(signer.token(iat=now - 1000, exp=now - 60))
    with pytest.raises(InvalidToken, match="bad signature"):
        verifier.verify(with_payload(str(guest.access_token), sub="someone-else"))
    with pytest.raises(InvalidToken, match="typ"):
        verifier.verify(signer.token(headers={"typ": "JWT"}))
    confused = hs256_token(access_claims(), secret=public_pem_from_jwk(signer.jwk()), kid=signer.kid)
    with pytest.raises(InvalidToken, match="algorithm"):
        verifier.verify(confused)
    with pytest.raises(InvalidToken, match="malformed"):
        verifier.verify("not-a-token")


def test_a_rotated_key_is_fetched_at_most_once_per_interval(discovery_url: str, published: Published) -> None:
    clock = Clock()
    verifier = TokenVerifier(discovery_url, audience=settings.JWT_AUDIENCE, clock=clock)
    old, new = Signer(), Signer()
    published.keys.append(old.jwk())
    verifier.verify(old.token())
    assert published.fetches == 1

    published.keys.append(new.jwk())  # the issuer rotates: a new key is published, then signs
    clock.now += 29
    for _ in range(5):
        with pytest.raises(InvalidToken, match="unknown key"):
            verifier.verify(new.token())
    assert published.fetches == 1  # unknown kids within the interval fetch nothing

    clock.now += 1
    assert verifier.verify(new.token())["sub"]
    assert verifier.verify(old.token())["sub"]
    assert published.fetches == 2


def test_without_any_key_set_tokens_cannot_be_checked() -> None:
    verifier = TokenVerifier("http://127.0.0.1:1/.well-known/openid-configuration", audience="x", timeout=1)

    with pytest.raises(KeysUnavailable):
        verifier.verify(Signer().token())


class Whoami(APIView):
    authentication_classes = [AuthmeshTokenAuthentication]
    permission_classes = [IsAuthenticated]

    def get(self, request: Request) -> Response:
        user = request.user
        assert isinstance(user, AuthmeshUser)
        return Response({"id": user.id, "roles": list(user.roles), "service": user.is_service})


def test_the_drf_authentication_class_authenticates_a_request(discovery_url: str, guest: Api) -> None:
    view = Whoami.as_view()
    factory = APIRequestFactory()
    with override_settings(AUTHMESH_DISCOVERY_URL=discovery_url, AUTHMESH_AUDIENCE=settings.JWT_AUDIENCE):
        good = view(factory.get("/whoami", HTTP_AUTHORIZATION=f"Bearer {guest.access_token}"))
        tampered = with_payload(str(guest.access_token), roles=["sys_admin"])
        bad = view(factory.get("/whoami", HTTP_AUTHORIZATION=f"Bearer {tampered}"))
        anonymous = view(factory.get("/whoami"))

    assert good.status_code == 200
    assert good.data == {"id": guest.user_id, "roles": ["guest"], "service": False}
    assert bad.status_code == 401 and bad["WWW-Authenticate"] == 'Bearer realm="api"'
    assert anonymous.status_code == 401
