"""OpenID Connect discovery (SPEC §2c): the document, and off-the-shelf verifiers that find our keys through it."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import jwt
import pytest
from authlib.oidc.discovery import OpenIDProviderMetadata
from django.conf import settings
from django.test import Client, override_settings
from joserfc import jwt as jose_jwt
from joserfc.errors import InvalidClaimError
from joserfc.jwk import KeySet

from gateway.api.tests.e2e import Api

DISCOVERY = "/.well-known/openid-configuration"


def http_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - the test's own http://127.0.0.1 server
        assert response.status == 200
        return json.loads(response.read())


def test_the_document_names_the_issuer_keys_and_token_endpoint() -> None:
    with override_settings(GATEWAY_PUBLIC_URL="https://auth.example.com", JWT_ISSUER="https://auth.example.com"):
        response = Client().get(DISCOVERY)

    assert response.status_code == 200
    assert response["Cache-Control"] == "public, max-age=3600"
    assert response.json() == {
        "issuer": "https://auth.example.com",
        "jwks_uri": "https://auth.example.com/.well-known/jwks.json",
        "token_endpoint": "https://auth.example.com/api/oauth/token",
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "response_types_supported": ["none"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["users:read"],
    }


def test_by_default_the_issuer_is_the_public_base_url() -> None:
    document = Client().get(DISCOVERY).json()

    assert settings.JWT_ISSUER == settings.GATEWAY_PUBLIC_URL == "http://127.0.0.1:8000"
    assert document["issuer"] == "http://127.0.0.1:8000"
    assert document["jwks_uri"] == "http://127.0.0.1:8000/.well-known/jwks.json"


def test_authlib_accepts_the_document_as_openid_provider_metadata() -> None:
    with override_settings(GATEWAY_PUBLIC_URL="https://auth.example.com", JWT_ISSUER="https://auth.example.com"):
        document = Client().get(DISCOVERY).json()

    metadata = OpenIDProviderMetadata(document)
    metadata.validate()  # raises ValueError naming the first field it refuses

    assert metadata.grant_types_supported == ["client_credentials"]


def test_the_document_is_public_and_ignores_a_stale_bearer_header() -> None:
    response = Client().get(DISCOVERY, headers={"Authorization": "Bearer stale"})

    assert response.status_code == 200


# --- off-the-shelf verifiers against the live gateway ------------------------------------------------------------


@pytest.fixture
def discovered(live_gateway: str) -> Any:
    """The discovery document as a client reads it over HTTP (the gateway's URLs pointed at the live server)."""
    with override_settings(GATEWAY_PUBLIC_URL=live_gateway):
        yield http_json(f"{live_gateway}{DISCOVERY}")


def test_pyjwt_verifies_a_user_token_with_the_discovered_keys(discovered: Any, guest: Api) -> None:
    token = guest.access_token
    assert token

    signing_key = jwt.PyJWKClient(discovered["jwks_uri"]).get_signing_key_from_jwt(token)
    claims = jwt.decode(
        token,
        signing_key.key,
        algorithms=discovered["id_token_signing_alg_values_supported"],
        issuer=discovered["issuer"],
        audience=settings.JWT_AUDIENCE,
    )

    assert claims["sub"] == guest.user_id
    assert claims["iss"] == discovered["issuer"] == settings.JWT_ISSUER
    with pytest.raises(jwt.InvalidIssuerError):
        jwt.decode(token, signing_key.key, algorithms=["RS256"], issuer="https://elsewhere.example", audience="x")


def test_authlib_reads_the_live_document_and_its_keys_verify_a_user_token(discovered: Any, guest: Api) -> None:
    token = guest.access_token
    assert token
    OpenIDProviderMetadata(discovered).validate()
    # authlib's JOSE implementation (joserfc; authlib.jose is deprecated in its favour).
    key_set = KeySet.import_key_set(http_json(discovered["jwks_uri"]))

    decoded = jose_jwt.decode(token, key_set, algorithms=discovered["id_token_signing_alg_values_supported"])
    expected = jose_jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": discovered["issuer"]},
        aud={"essential": True, "value": settings.JWT_AUDIENCE},
        sub={"essential": True, "value": guest.user_id},
    )
    expected.validate(decoded.claims)

    assert decoded.header["typ"] == "at+jwt"
    with pytest.raises(InvalidClaimError):
        jose_jwt.JWTClaimsRegistry(aud={"essential": True, "value": "another-api"}).validate(decoded.claims)
