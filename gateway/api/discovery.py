"""The OpenID Connect discovery document (SPEC §2c): where off-the-shelf clients find the keys and the token endpoint.

Everything in it is derived from settings: `issuer` is JWT_ISSUER (the tokens' `iss`, by default the gateway's public
base URL), the URLs are under GATEWAY_PUBLIC_URL. Only access tokens are issued (no ID tokens, no authorization
endpoint); the OpenID fields that discovery requires anyway say what those tokens are.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.urls import reverse

from common.contracts.oauth import SCOPES

TOKEN_PATH = "/api/oauth/token"  # noqa: S105 - a path, not a secret
SIGNING_ALGORITHMS = ["RS256"]


def openid_configuration() -> dict[str, Any]:
    base = settings.GATEWAY_PUBLIC_URL
    return {
        "issuer": settings.JWT_ISSUER,
        "jwks_uri": f"{base}{reverse('jwks')}",
        "token_endpoint": f"{base}{TOKEN_PATH}",
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        # Discovery requires these two: no authorization endpoint issues anything ("none"), and `sub` is the same
        # user id for every client ("public").
        "response_types_supported": ["none"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": SIGNING_ALGORITHMS,
        "token_endpoint_auth_signing_alg_values_supported": SIGNING_ALGORITHMS,
        "scopes_supported": list(SCOPES),
    }
